"""The compiled link profile (models/_linkprofile.c) against its definition, ``linking._Profile``:
the same observations, summaries and evidence after whole streams, the same profile after any
sequence of calls, and bad input refused without a change."""
import dataclasses
import itertools
import math

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from distillguard.models import linking, native
from distillguard.models.config import ClusterConfig
from distillguard.models.pipeline import AccountStage, CrossAccountPipeline
from distillguard.models.simulation import load_scenario, simulate
from distillguard.schemas import parse_event

pytestmark = pytest.mark.skipif(native.LinkProfile is None, reason="models/_linkprofile.c not built")
FIELDS = linking._Profile.__slots__


def _bytes(value) -> bytes:
    return orjson.dumps(value, default=list, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)   # Partner as a list


def _profile_state(p) -> dict:
    return {name: getattr(p, name) for name in FIELDS}


def _cross_outputs(records, compiled: bool) -> list:
    """Every observation (with its summary), evidence and cluster output of the cross-account stages."""
    if compiled:
        cross = CrossAccountPipeline(key=b"k")
    else:
        with native.python_route():
            cross = CrossAccountPipeline(key=b"k")
    assert (cross.observer._core is not None) is compiled
    assert (cross.linker._core is not None) is compiled
    out = []
    for record in records:
        for obs in cross.observer.observe(record):
            out.append(dataclasses.asdict(obs))
            evidence = cross.linker.process(obs)
            if evidence is not None:
                out.append(dataclasses.asdict(evidence))
                out.append(dataclasses.asdict(cross.clusters.process(evidence)))
    out.append(dataclasses.asdict(cross.finish()))
    out.append({a: _profile_state(p) for a, p in cross.observer.profiles.items()})
    return out


@pytest.mark.parametrize("scenario, n", [("default", 20000), ("evasive", 15000), ("variants", 10000)])
def test_cross_account_outputs_are_identical_on_both_routes(scenario, n):
    stage = AccountStage(key=b"k")
    records = [o.record for o in (stage.process(parse_event(orjson.dumps(ev)))
                                  for ev in itertools.islice(simulate(load_scenario(scenario), seed=3).events(), n))
               if o is not None]
    compiled, python = _cross_outputs(records, True), _cross_outputs(records, False)
    assert len(compiled) > n // 10
    assert _bytes(compiled) == _bytes(python)   # byte for byte


def test_an_observer_uses_the_compiled_profile_unless_the_python_route_is_forced():
    record = ("acct", 1, "e1", "m", None, None, [("net", "10.1.2.3")], (False, 1, 7))
    compiled = linking.LinkObserver(b"k")
    compiled.observe(record)
    assert isinstance(compiled.profiles["acct"], native.LinkProfile)
    with native.python_route():
        python = linking.LinkObserver(b"k")
    python.observe(record)
    assert isinstance(python.profiles["acct"], linking._Profile)


_CFG = ClusterConfig()
_TS = st.one_of(st.sampled_from([0, 1, 2, 3_600_000]), st.integers(0, 5 * 86_400_000))   # ties and gaps
_STEP = st.one_of(
    st.tuples(st.just("learn"), st.one_of(st.none(), st.tuples(st.booleans(), st.one_of(st.none(), st.integers(-2, 20)),
                                                                st.one_of(st.none(), st.integers(0, 6)))),
              _TS),
    st.tuples(st.just("saw_network"), st.sampled_from(["10.0.0", "10.0.1", "10.0.2", "a", "b", "c", "d", "e", "f", "g"]),
              _TS),
    st.tuples(st.just("allow_wrap"), st.sampled_from([f"wrap:{i}" for i in range(12)]), _TS),
    st.tuples(st.just("summary"), _TS, st.sampled_from([None, 0, 1_700_000_000_000]),
              st.sampled_from([None, "free", "pro"])),
)


def _apply(p, step):
    name = step[0]
    if name == "learn":
        return p.learn(step[1], step[2])
    if name == "saw_network":
        return p.saw_network(step[1], step[2])
    if name == "allow_wrap":
        return p.allow_wrap(step[1], step[2], _CFG)
    return p.summary(step[1], step[2], step[3], _CFG.net_window_ms)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 86_400_000), st.lists(_STEP, max_size=80))
def test_random_call_sequences_leave_identical_profiles(start, steps):
    python, compiled = linking._Profile(start), native.LinkProfile(start)
    for step in sorted(steps, key=lambda s: s[2] if s[0] != "summary" else s[1]) + steps:   # in order, then late
        assert orjson.dumps(_apply(compiled, step)) == orjson.dumps(_apply(python, step)), step
        assert _profile_state(compiled) == _profile_state(python), step


@pytest.mark.parametrize("call", [
    lambda p: p.learn((True, 1), 5),
    lambda p: p.learn((True, 1.0, 3), 5),
    lambda p: p.learn("xyz", 5),
    lambda p: p.learn((True, 1, 3), "5"),
    lambda p: p.saw_network("10.0.0", None),
    lambda p: p.allow_wrap("k", 5, object()),
])
def test_bad_input_is_refused_and_changes_nothing(call):
    p = native.LinkProfile(1)
    p.learn((True, 2, 7), 2)
    p.saw_network("10.0.0", 2)
    before = _profile_state(p)
    with pytest.raises((TypeError, AttributeError)):
        call(p)
    assert _profile_state(p) == before


def test_the_network_ring_evicts_the_least_recent_then_the_least_network():
    nets = ["10.0.5", "10.0.1", "10.0.9", "10.0.3", "10.0.7", "10.0.2", "10.0.8", "10.0.4", "10.0.6", "10.0.0"]
    python, compiled = linking._Profile(0), native.LinkProfile(0)
    for i, net in enumerate(nets):
        for p in (python, compiled):
            p.saw_network(net, 100 if i < 9 else 50)   # nine ties at 100, then an older one
        assert compiled.nets == python.nets
    # the ninth tie evicted the least network ("10.0.1"); the older tenth evicted itself
    assert sorted(python.nets) == sorted(set(nets[:9]) - {"10.0.1"})


def test_the_compiled_observer_forgets_as_the_python_one_under_small_bounds(monkeypatch):
    """Dedupe entries and profiles evicted by count and by age, on both routes: the same
    observations, and the same entries left, in the same order."""
    monkeypatch.setattr(linking, "OBSERVER_MAX", 50)
    monkeypatch.setattr(linking, "OBSERVER_MAX_ACCOUNTS", 20)
    cfg = dataclasses.replace(ClusterConfig(), slow_dedupe_ms=600_000, profile_idle_ms=1_800_000)
    stage = AccountStage(key=b"k")
    records = [o.record for o in (stage.process(parse_event(orjson.dumps(ev)))
                                  for ev in itertools.islice(simulate(load_scenario("default"), seed=4).events(), 6000))
               if o is not None]
    compiled = linking.LinkObserver(b"k", cfg)
    with native.python_route():
        python = linking.LinkObserver(b"k", cfg)
    assert compiled._core is not None and python._core is None
    for record in records:
        a, b = compiled.observe(record), python.observe(record)
        assert _bytes([dataclasses.asdict(o) for o in a]) == _bytes([dataclasses.asdict(o) for o in b])
    assert list(compiled.sent.items()) == list(python.sent.items())
    assert list(compiled.profiles) == list(python.profiles)
    assert compiled.bounds() == python.bounds()


@pytest.mark.parametrize("record", [None, (1, 2, 3), ("a", "x", "e", "m", None, None, [], None),
                                    ("a", 5, "e", "m", None, None, [("nope", "x")], None),
                                    ("a", 5, "e", "m", None, None, ["net"], None)])
def test_the_compiled_observer_refuses_bad_records(record):
    with pytest.raises((TypeError, KeyError, ValueError)):
        linking.LinkObserver(b"k").observe(record)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_pickled_observer_goes_on_as_the_original(compiled):
    """``replay --jobs 2`` sends the cross-account stages to a child process by pickle."""
    import pickle
    stage = AccountStage(key=b"k")
    records = [o.record for o in (stage.process(parse_event(orjson.dumps(ev)))
                                  for ev in itertools.islice(simulate(load_scenario("default"), seed=5).events(), 4000))
               if o is not None]
    if compiled:
        original = linking.LinkObserver(b"k")
    else:
        with native.python_route():
            original = linking.LinkObserver(b"k")
    for record in records[:2000]:
        original.observe(record)
    copy = pickle.loads(pickle.dumps(original))
    assert (copy._core is not None) is compiled
    assert {a: _profile_state(p) for a, p in copy.profiles.items()} == \
        {a: _profile_state(p) for a, p in original.profiles.items()}
    for record in records[2000:]:
        a, b = original.observe(record), copy.observe(record)
        assert _bytes([dataclasses.asdict(o) for o in a]) == _bytes([dataclasses.asdict(o) for o in b])
    assert list(copy.sent.items()) == list(original.sent.items())


_TAIL = st.text(alphabet=st.sampled_from("aZ09 .,-_\n\tÉé!x1Q"), max_size=200)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), _TAIL), max_size=40))
def test_wrap_links_made_in_c_are_the_python_ones(steps):
    """The compiled observer makes a wrap link itself (an ASCII tail: its last tokens, numbers
    masked) and remembers it as ``_link`` does: the same observations and the same memos, in order;
    a non-ASCII tail goes to the Python."""
    compiled = linking.LinkObserver(b"k")
    with native.python_route():
        python = linking.LinkObserver(b"k")
    for i, (account, tail) in enumerate(steps):
        record = (account, 1_000 * i, f"e{i}", "m", None, None, [("wrap", tail)], (False, 1, 7))
        a, b = compiled.observe(record), python.observe(record)
        assert _bytes([dataclasses.asdict(o) for o in a]) == _bytes([dataclasses.asdict(o) for o in b])
    for memos in ("_links", "_keys"):
        assert list(getattr(compiled, memos)["wrap"].entries.items()) == list(getattr(python, memos)["wrap"].entries.items())


@pytest.mark.parametrize("tail, wrapper", [
    ("cut Answer in 12 words, then STOP now please", "0 words then stop now please"),
    ("only five tokens here ok", None),                  # 5 tokens after the first: none
    ("x a b c d e f", "a b c d e f"),
    ("3rd 1st 2nd b4 x9 a1", None),
    ("lead 3rd 1st 2nd b4 x9 a1", "0 0 0 b4 x9 a1"),
])
def test_a_wrap_link_reads_the_last_tokens_with_numbers_masked(tail, wrapper):
    with native.python_route():
        python = linking.LinkObserver(b"k")
    for observer in (linking.LinkObserver(b"k"), python):
        observer.observe(("a", 1, "e", "m", None, None, [("wrap", tail)], (False, 1, 7)))
        value, key = observer._links["wrap"].entries[tail]
        assert value == wrapper == linking._wrapper_of(tail)
        assert (key is None) is (wrapper is None)


def _same_float(a: float, b: float) -> bool:
    return orjson.dumps(a) == orjson.dumps(b) and math.copysign(1.0, a) == math.copysign(1.0, b)


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False), st.sampled_from((2, 3, 4)))
def test_compiled_round_is_pythons(x, digits):
    """summary() and the linker round in C without Python's decimal conversion where the answer
    is plain; it must be round()'s answer, ties, near-ties, signed zeros and huge values included."""
    from distillguard.models._linkprofile import round_digits
    assert _same_float(round_digits(x, digits), round(x, digits))


def test_compiled_round_near_ties():
    from distillguard.models._linkprofile import round_digits
    for digits in (2, 3, 4):
        for k in range(-20_000, 20_000, 7):
            tie = (k + 0.5) / 10**digits
            for x in (tie, math.nextafter(tie, math.inf), math.nextafter(tie, -math.inf), k / 10**digits):
                assert _same_float(round_digits(x, digits), round(x, digits)), (x, digits)
    with pytest.raises(ValueError):
        round_digits(1.0, 5)
