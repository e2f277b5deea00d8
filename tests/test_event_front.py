"""The compiled request front (models/_eventfront.c) against its definition: ``prompt_parts`` and
``link_record`` on the Python route give what the C gives, on every scenario, on redacted,
content-less and batch requests and on random messages; types the C does not expect go to the
Python."""
import itertools

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from distillguard.models import features, linking, native
from distillguard.models.features import NO_PARTS, PromptParts, extract, prompt_parts
from distillguard.models.linking import link_record
from distillguard.models.records import LinkRecord
from distillguard.models.simulation import load_scenario, simulate
from distillguard.schemas import event_from_dict, parse_event
from distillguard.schemas.event import Message
from distillguard.schemas.redaction import MARKERS

pytestmark = pytest.mark.skipif(native.EventFront is None, reason="models/_eventfront.c not built")
BASE = {"schema_version": "1", "event_id": "e1", "ts_ms": 1_793_613_600_000, "account_id": "a", "model": "m",
        "operation": "chat", "params": {}}


def _both(event):
    """(compiled, python) of prompt_parts and link_record of one event."""
    parts = prompt_parts(event)
    record = link_record(event, extract(event, b"k", parts=parts), parts)
    with native.python_route():
        assert features._compiled_parts is None and linking._compiled_record is None
        py_parts = prompt_parts(event)
        py_record = link_record(event, extract(event, b"k", parts=py_parts), py_parts)
    return (parts, record), (py_parts, py_record)


def _same(event) -> None:
    (parts, record), (py_parts, py_record) = _both(event)
    assert parts == py_parts and type(parts) is PromptParts and (parts is NO_PARTS) == (py_parts is NO_PARTS)
    assert record == py_record and type(record) is LinkRecord
    assert orjson.dumps(tuple(record)) == orjson.dumps(tuple(py_record))


def test_the_front_runs_compiled_where_the_suite_runs():
    assert native.enabled() and features._compiled_parts is not None and linking._compiled_record is not None


@pytest.mark.parametrize("scenario", ["default", "evasive", "variants", "heldout"])
def test_every_simulated_request_gets_the_same_parts_and_record(scenario):
    for ev in itertools.islice(simulate(load_scenario(scenario), seed=4).events(), 1500):
        _same(parse_event(orjson.dumps(ev)))


MESSAGES = st.lists(st.tuples(st.sampled_from(["user", "system", "assistant", "tool"]),
                              st.one_of(st.text(max_size=80), st.sampled_from(sorted(MARKERS) + ["", "  ", " *** ",
                                        "\u2003", "x" * 200, " " * 300, "\n" * 40 + "a", "REDACTED"]))),
                    max_size=6)


@settings(max_examples=400, deadline=None)
@given(MESSAGES, st.sampled_from(["chat", "batch", "embeddings"]), st.one_of(st.none(), st.booleans()),
       st.one_of(st.none(), st.text(max_size=5)), st.one_of(st.none(), st.text(max_size=5)))
def test_random_messages_and_fields(messages, operation, redacted, ip, agent):
    doc = {**BASE, "operation": operation, "messages": [{"role": r, "content": c} for r, c in messages]}
    if redacted is not None:
        doc["content_redacted"] = redacted
    if ip is not None:
        doc["client_ip"] = ip
    if agent is not None:
        doc["user_agent"], doc["api_key_id"] = agent, "sk-" + agent
    _same(event_from_dict(doc))


def test_long_prompts_and_system_prompts_are_cut_as_the_python_cuts():
    for n in (59, 60, 61, 159, 160, 161, 5000):
        for s in (0, 1, 399, 400, 401, 2000):
            msgs = ([{"role": "system", "content": "s" * s}] if s else []) + [{"role": "user", "content": "p" * n}]
            _same(event_from_dict({**BASE, "messages": msgs, "payment_fingerprint": "pf"}))


def test_types_the_c_does_not_expect_go_to_the_python():
    ev = event_from_dict({**BASE, "messages": [{"role": "user", "content": "hi there"}]})
    front = features._FRONT
    ev.messages = (Message("user", "hi there"),)             # a tuple, not a list
    assert front.parts(ev) is None and prompt_parts(ev) == PromptParts("hi there", "", 1, "hi there")
    ev.messages = [Message("user", 5)]                      # a content that is no str
    assert front.parts(ev) is None
    ev.messages = [Message("user", "hi")]
    ev.extra = ["content_redacted"]                         # extra that is no dict
    assert front.parts(ev) is None
    ev.extra = None
    parts = PromptParts("p", "s", 1, "p")
    assert linking._FRONT.record(ev, None, ("p", "s", 1, "p")) is None   # parts that are no PromptParts
    with native.python_route():
        expected = link_record(ev, None, parts)
    assert linking._FRONT.record(ev, None, parts) == expected
    with pytest.raises(TypeError):
        front.record(ev, None, parts)                       # made without record_cls


def test_classes_that_are_no_plain_named_tuples_are_refused():
    class Parts(tuple):
        pass
    with pytest.raises(TypeError, match="NamedTuple"):
        native.EventFront(Parts, NO_PARTS, frozenset(MARKERS), 30, "content_redacted")
    with pytest.raises(TypeError, match="NamedTuple"):
        native.EventFront(PromptParts, NO_PARTS, frozenset(MARKERS), 30, "content_redacted", record_cls=PromptParts)
