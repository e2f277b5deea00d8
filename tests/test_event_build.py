"""The compiled event build (schemas/_eventcheck.c) against its definition, the Python
``python_event_from_dict``: for every document, either the C builds the same event or it
declines (None) and the Python runs. It must never accept what the Python rejects, and it
must accept the documents producers send (or it saves nothing)."""
import itertools

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from distillguard.models import native
from distillguard.models.simulation import load_scenario, simulate
from distillguard.schemas import BadEvent, event as event_schema, parse_event
from distillguard.schemas.event import CHECKER, PARAM_TYPES, python_event_from_dict

from .test_schemas import VALID, json_values, test_each_kind_of_bad_event_is_rejected_with_a_reason as bad_cases

pytestmark = pytest.mark.skipif(CHECKER is None, reason="schemas/_eventcheck.c not built (no C compiler)")
KNOWN_ONLY = {k: v for k, v in VALID.items() if k != "some_future_field"}


def _python(doc):
    try:
        return python_event_from_dict(doc)
    except BadEvent as err:
        return (err.reason, err.detail)


def _same(doc) -> bool:
    """The C build of ``doc`` agrees with the Python; True if the C built it."""
    built = CHECKER.build(doc)
    if built is None:
        return False
    expected = _python(doc)
    assert not isinstance(expected, tuple), f"C accepted what Python rejects: {expected}"
    assert built == expected and built.to_dict() == expected.to_dict()
    assert built.params is doc["params"] and type(built.usage) is dict and built.extra is None
    return True


@pytest.mark.parametrize("scenario", ["default", "evasive", "variants", "heldout"])
def test_the_c_builds_every_simulated_event_as_the_python_does(scenario):
    events = itertools.islice(simulate(load_scenario(scenario), seed=2).events(), 3000)
    built = [_same(orjson.loads(orjson.dumps(ev))) for ev in events]
    assert all(built)   # producers' documents take the compiled route


def test_the_c_declines_unknown_fields_and_the_python_keeps_them():
    doc = orjson.loads(orjson.dumps(VALID))
    assert CHECKER.build(doc) is None
    assert parse_event(orjson.dumps(VALID)).extra == {"some_future_field": {"x": 1}}


@pytest.mark.parametrize("raw,reason", bad_cases.pytestmark[0].args[1])
def test_each_bad_event_gets_the_same_error_on_both_routes(raw, reason):
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    assert CHECKER.build(doc) is None
    with native.python_route():
        with pytest.raises(BadEvent) as python_err:
            parse_event(raw)
    with pytest.raises(BadEvent) as err:
        parse_event(raw)
    assert (err.value.reason, err.value.detail) == (python_err.value.reason, python_err.value.detail)
    assert err.value.reason == reason


EDGES = [
    {"ts_ms": 2**53 - 1}, {"ts_ms": 2**53}, {"ts_ms": 0}, {"ts_ms": 2**70}, {"ts_ms": -1},
    {"usage": None}, {"usage": {}}, {"usage": {"input_tokens": 0, "output_tokens": None}},
    {"usage": {"reasoning_tokens": -2**70}}, {"usage": {"input_tokens": 2**70}}, {"usage": {"input_tokens": True}},
    {"usage": {"other": "x"}}, {"params": {"logit_bias": {}}}, {"params": {"logit_bias": None}},
    {"params": {"logit_bias": {"1": True}}}, {"params": {"logit_bias": {"1": 1.5, "2": -100}}},
    {"params": {"temperature": True}}, {"params": {"temperature": 1}}, {"params": {"max_tokens": 1.0}},
    {"params": {"max_tokens": False}}, {"params": {"stream": 0}}, {"params": {"unknown": [1]}},
    {"params": {"tools_count": None, "seed": -3}}, {"messages": []}, {"messages": [{"role": "user"}]},
    {"messages": [{"role": "tool", "content": "", "name": "x"}]}, {"messages": [["user", "x"]]},
    {"messages": [{"role": "user", "content": "x"}] * 2049}, {"account_created_ms": True},
    {"latency_ms": 1.0}, {"status": 1}, {"finish_reason": 0}, {"finish_reason": None}, {"event_id": ""},
    {"operation": "CHAT"}, {"schema_version": "1.0"}, {"model": None},
]


@pytest.mark.parametrize("patch", EDGES, ids=[",".join(p) for p in EDGES])
def test_edges_agree(patch):
    _same({**KNOWN_ONLY, **patch})


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(KNOWN_ONLY)), json_values, max_size=4),
       st.dictionaries(st.sampled_from(sorted(PARAM_TYPES) + ["other"]), json_values, max_size=4))
def test_random_documents_agree(patch, params):
    doc = {**KNOWN_ONLY, **patch}
    if type(doc.get("params")) is dict:
        doc["params"] = {**doc["params"], **params}
    _same(doc)


def test_the_native_switch_turns_the_compiled_build_off_and_on():
    assert event_schema.compiled() is native.enabled()
    with native.python_route():
        assert not event_schema.compiled()
    assert event_schema.compiled() is native.enabled()


def _checker(**fields):
    s = event_schema
    return type(CHECKER)(s.RequestEvent, s.Message, s.OPERATIONS, s.ROLES, s.KNOWN,
                         {k: s._KIND_CODES[v] for k, v in PARAM_TYPES.items()}, s.MAX_MESSAGES,
                         s.MAX_LOGIT_BIAS, s.MAX_TS_MS, **fields)


def test_the_c_fills_the_dataclasses_slots_as_their_init_does():
    """The shipped checker fills RequestEvent and Message in itself (no __init__ call per object);
    a checker that calls the classes builds equal events, every slot set, messages included."""
    assert event_schema._slot_fields(event_schema.RequestEvent) is not None
    assert event_schema._slot_fields(event_schema.Message) == ("role", "content")
    calling = _checker()
    for ev in itertools.islice(simulate(load_scenario("default"), seed=3).events(), 500):
        doc = orjson.loads(orjson.dumps(ev))
        a, b = CHECKER.build(doc), calling.build(doc)
        assert a == b and type(a) is type(b) and all(type(m) is event_schema.Message for m in a.messages)
        assert [getattr(a, n) for n in a.__slots__] == [getattr(b, n) for n in b.__slots__]


def test_a_class_the_c_cannot_fill_is_called_or_refused():
    from dataclasses import dataclass

    @dataclass(slots=True)
    class Checked:
        role: str
        content: str

        def __post_init__(self):
            self.role = self.role.upper()

    assert event_schema._slot_fields(Checked) is None   # __post_init__: the class is called

    class NotSlots:
        role = "x"
        content = "y"

    with pytest.raises(TypeError, match="writable object slot"):
        type(CHECKER)(event_schema.RequestEvent, NotSlots, *_args_after_classes(), message_fields=("role", "content"))
    with pytest.raises(ValueError, match="20 fields"):
        _checker(event_fields=("event_id",))


def _args_after_classes():
    s = event_schema
    return (s.OPERATIONS, s.ROLES, s.KNOWN, {k: s._KIND_CODES[v] for k, v in PARAM_TYPES.items()},
            s.MAX_MESSAGES, s.MAX_LOGIT_BIAS, s.MAX_TS_MS)
