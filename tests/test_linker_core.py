"""The compiled linker (``LinkerCore`` in models/_linkprofile.c) against its definition,
``linking.Linker.process``: the same evidence and the same key sketches after any sequence of
observations (ties, late and out-of-range timestamps, evictions by count and by age), after
pickling, and the same errors for what is not an observation. Whole streams are compared in
tests/test_link_profile.py (the cross-account outputs on both routes)."""
import dataclasses
import pickle

import pytest
from hypothesis import given, settings, strategies as st

from distillguard.models import linking, native
from distillguard.models.config import ClusterConfig
from distillguard.models.records import LinkObservation

pytestmark = pytest.mark.skipif(native.LinkerCore is None, reason="models/_linkprofile.c not built")


def _linkers(cfg: ClusterConfig | None = None) -> tuple[linking.Linker, linking.Linker]:
    compiled = linking.Linker(cfg)
    with native.python_route():
        python = linking.Linker(cfg)
    assert compiled._core is not None and python._core is None
    return compiled, python


def _state(linker: linking.Linker) -> bytes:
    """Every key in order with its kind, sketch, ring and clock, and the eviction count."""
    keys = [(k, st.kind, st.anchors, st.recent, st.last_ts) for k, st in linker.keys.items()]
    return repr([keys, linker.evicted]).encode()   # repr: integers beyond 64 bits too


def _evidence(ev) -> bytes:
    return repr(None if ev is None else dataclasses.astuple(ev)).encode()


def _obs(account: str, kind: str, key: str, ts: int, summary: dict | None = None) -> LinkObservation:
    return LinkObservation(account, kind, key, ts, f"e-{account}-{ts}", "m", summary or {"n": 1, "first": ts})


# timestamps: ties, the sync and pairing windows' edges, late events, and integers beyond 64 bits
_TS = st.one_of(st.sampled_from([0, 1, 8_000, 8_001, 7_200_000, 7_200_001, 21_600_001]),
                st.integers(0, 30_000_000), st.integers(-2**70, 2**70))
_OBS = st.tuples(st.integers(0, 40).map(lambda i: f"acct_{i:02d}"), st.sampled_from(linking.KINDS),
                 st.integers(0, 6), _TS)


def _run(pairs, steps) -> None:
    compiled, python = pairs
    for account, kind, key, ts in steps:
        obs = _obs(account, kind, f"{kind}:{key}", ts)
        a, b = compiled.process(obs), python.process(obs)
        assert _evidence(a) == _evidence(b)
    assert _state(compiled) == _state(python)


@settings(max_examples=300, deadline=None)
@given(st.lists(_OBS, max_size=120))
def test_random_observation_sequences_give_identical_evidence_and_sketches(steps):
    _run(_linkers(), steps)


@settings(max_examples=100, deadline=None)
@given(st.lists(_OBS, max_size=120))
def test_small_bounds_evict_the_same_keys(steps):
    """Few keys and short sketches and rings: evictions by count on both routes (the bounds are
    read when a linker is made, so they are set before)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(linking, "MAX_KEYS", 3)
        mp.setattr(linking, "ANCHORS", 2)
        mp.setattr(linking, "RECENT", 2)
        _run(_linkers(), steps)


def test_keys_idle_past_their_ttl_are_evicted_alike():
    cfg = dataclasses.replace(ClusterConfig(), key_ttl_ms=10_000)
    compiled, python = _linkers(cfg)
    steps = [(f"acct_{i % 7}", "net", i % 5, i * 3_000) for i in range(200)]
    _run((compiled, python), steps)
    assert compiled.evicted == python.evicted > 0


def test_a_repeated_weight_reuses_its_rounding_and_a_new_one_does_not():
    """The compiled linker keeps round(w, 4) of the last weight: the same for the same double only."""
    compiled, python = _linkers()
    for i in range(30):
        for obs in (_obs(f"a{i}", "wrap", "wrap:x", 1000 + i), _obs(f"a{i}", "sys", f"sys:{i % 3}", 1000 + i)):
            assert _evidence(compiled.process(obs)) == _evidence(python.process(obs))


@pytest.mark.parametrize("compiled", [True, False])
def test_a_pickled_linker_goes_on_as_the_original(compiled):
    """``replay --jobs 2`` sends the cross-account stages to a child process by pickle."""
    if compiled:
        original = linking.Linker()
    else:
        with native.python_route():
            original = linking.Linker()
    steps = [(f"acct_{i % 23}", linking.KINDS[i % 5], i % 4, 1_000 * i) for i in range(600)]
    for account, kind, key, ts in steps[:300]:
        original.process(_obs(account, kind, f"{kind}:{key}", ts))
    copy = pickle.loads(pickle.dumps(original))
    assert (copy._core is not None) is compiled
    for account, kind, key, ts in steps[300:]:
        obs = _obs(account, kind, f"{kind}:{key}", ts)
        assert _evidence(original.process(obs)) == _evidence(copy.process(obs))
    assert _state(copy) == _state(original)


@pytest.mark.parametrize("obs", [None, "x", LinkObservation("a", "nope", "nope:1", 5, "e", "m", {}),
                                 LinkObservation("a", "net", "net:1", "5", "e", "m", {})])
def test_what_is_not_an_observation_raises_the_same_error(obs):
    compiled, python = _linkers()
    python.process(_obs("b", "net", "net:1", 4))   # "net:1" exists: the string timestamp meets an int
    compiled.process(_obs("b", "net", "net:1", 4))
    errors = []
    for linker in (compiled, python):
        with pytest.raises(Exception) as err:
            linker.process(obs)
        errors.append(type(err.value))
    assert errors[0] is errors[1]
