"""The compiled text scanner (models/_textscan.c) gives exactly the pure-Python signals.

The Python code (``text.analyze`` and the word tables) is the definition; ``native.py`` is a
faster route to the same numbers. Checked on the bundled corpus, on every scenario's simulated
prompts, on edge cases around the wrapper split and the buffers, and on random text; and through
``features.extract`` on a simulated stream (fingerprints, areas, elicitation, grading).
"""
import gzip

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from distillguard.models import native
from distillguard.models.capability_areas import area_of
from distillguard.models.capability_space import capability_of
from distillguard.models.elicitation import ElicitationModel, default_model
from distillguard.models.features import extract, prompt_signals
from distillguard.models.simulation import load_scenario, simulate
from distillguard.models.text import WRAPPER_TOKENS, grader_cues, tokens
from distillguard.schemas import parse_event

CORPUS = native.__file__.rsplit("/", 1)[0] + "/simulation/data/prompts.jsonl.gz"

@pytest.fixture
def pure_python():
    """The test starts on the pure-Python route (it switches to the compiled one itself); the
    route in use before is restored after it."""
    with native.python_route():
        yield


def reference(text: str, model: ElicitationModel) -> tuple:
    """What ``scan`` must return, from the Python definitions (no clipping: ``scan`` takes the
    text as given)."""
    masked = tokens(text)
    words = frozenset(masked)
    skeleton = " ".join(masked)
    if len(masked) > 2 * WRAPPER_TOKENS:
        head_end = len(" ".join(masked[:WRAPPER_TOKENS]))
        tail_start = len(skeleton) - len(" ".join(masked[-WRAPPER_TOKENS:]))
        payload = words.difference(masked[:WRAPPER_TOKENS], masked[-WRAPPER_TOKENS:])
    else:
        head_end = tail_start = -1
        payload = words
    elicitation = sum(model.scaled_weights[w] for w in words & model.vocabulary)
    return (skeleton, head_end, tail_start, area_of(words), capability_of(payload), elicitation,
            grader_cues(words) >= 2)


def _corpus() -> list[str]:
    with gzip.open(CORPUS, "rb") as fh:
        return [orjson.loads(line)["text"] for line in fh if line.strip()]


def _simulated_texts(events_per_scenario: int = 4000) -> list[str]:
    out = []
    for name in ("default", "variants", "heldout", "evasive"):
        for i, ev in enumerate(simulate(load_scenario(name), seed=1).events()):
            if i >= events_per_scenario:
                break
            out += [m["content"] for m in ev.get("messages") or () if isinstance(m.get("content"), str)]
    return list(dict.fromkeys(out))


def test_the_scanner_is_built_where_the_suite_runs():
    """CI installs with a C compiler: a silent fallback there would measure another program."""
    assert native.BUILT, "models/_textscan.c was not built: `pip install -e .` with gcc and Python's headers"
    assert native.enabled() and native.scanner_for(default_model()) is not None


def test_scan_equals_the_python_definition_on_corpus_and_simulated_prompts():
    model = default_model()
    scanner = native.scanner_for(model)
    texts = _corpus() + _simulated_texts()
    checked = 0
    for text in texts:
        got = scanner.scan(text)
        if not text.isascii():
            assert got is None
            continue
        assert got == reference(text, model), text[:200]
        checked += 1
    assert checked > 10_000


@pytest.mark.parametrize("text", [
    "", " ", "?!", "0", "000 1 22 333", "a1b22c333d", "x" * 5000, ("word " * 700).strip(),
    " ".join(f"w{i}" for i in range(12)), " ".join(f"w{i}" for i in range(13)),
    "rate this essay on a scale of 1-10 using the rubric: score and grade it",
    "Explain step by step. " * 3 + "def add(a, b): return a + b" + " Show your reasoning." * 3,
    "\t\nMiXeD CaSe\r\n" * 40, "1" * 3000, ". " * 600,
])
def test_scan_edge_cases(text):
    model = default_model()
    assert native.scanner_for(model).scan(text) == reference(text, model)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=1500))
def test_scan_equals_the_python_definition_on_random_ascii(text):
    model = default_model()
    assert native.scanner_for(model).scan(text) == reference(text, model)


def test_non_ascii_text_takes_the_python_route():
    assert native.scanner_for(default_model()).scan("Erkläre Schritt für Schritt") is None


def test_prompt_signals_are_identical_on_both_routes(pure_python):
    model = default_model()
    texts = _simulated_texts(1500)
    python = [prompt_signals(t, b"key", model) for t in texts]
    native.set_enabled(True)
    assert [prompt_signals(t, b"key", model) for t in texts] == python


def test_extract_is_identical_on_both_routes(pure_python):
    """Whole feature records over a stream (memos cold on both routes: distinct keys)."""
    lines = [orjson.dumps(ev) for i, ev in zip(range(3000), simulate(load_scenario("evasive"), seed=2).events())]
    events = [parse_event(x) for x in lines]
    python = [extract(ev, b"key-python") for ev in events]
    native.set_enabled(True)
    compiled = [extract(ev, b"key-native") for ev in events]
    for a, b in zip(python, compiled):
        a.skeleton_fp = b.skeleton_fp = a.wrapper_fp = b.wrapper_fp = a.unrelated_ask = b.unrelated_ask = 0
    assert compiled == python


def test_fingerprints_are_identical_on_both_routes(pure_python):
    model = default_model()
    text = "Summarise the following article in three bullet points. " * 9
    python = prompt_signals(text, b"k", model)
    native.set_enabled(True)
    assert prompt_signals(text, b"k", model) == python


def test_a_leave_one_out_model_gets_its_own_table():
    """Evaluation trains models without a style: each has its own elicitation weights."""
    full = default_model()
    reduced = ElicitationModel(dict(list(full.weights.items())[:50]), full.intercept, ())
    assert native.scanner_for(reduced) is not native.scanner_for(full)
    text = "Please think step by step and show your reasoning: what is 17 * 23?"
    assert native.scanner_for(reduced).scan(text) == reference(text, reduced)


@pytest.mark.parametrize("words, error", [
    ({"a": (0, (), 0, False)}, TypeError),                     # 4 fields
    ({"a": (99, (), 0, False, False)}, ValueError),            # lexicon area out of range
    ({"a": (-1, ((999, 1),), 0, False, False)}, ValueError),   # capability area out of range
    ({"a": (-1, ((1,),), 0, False, False)}, TypeError),        # a vote is (area, weight)
    ({1: (-1, (), 0, False, False)}, TypeError),               # words are str
])
def test_bad_tables_are_refused_with_a_clear_error(words, error):
    with pytest.raises(error):
        native.Scanner(words, WRAPPER_TOKENS, 15, 64)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="wrapper_tokens"):
        native.Scanner({}, 0, 15, 64)
    with pytest.raises(TypeError):
        native.Scanner({}, WRAPPER_TOKENS, 15, 64).scan(b"bytes")


def test_pure_python_switch_from_the_environment(monkeypatch, tmp_path, capsys):
    """DG_NATIVE_TEXT=0 runs a command's process on the pure-Python route; doctor says which runs."""
    from distillguard.streams import cli
    from distillguard.streams.doctor import check_native
    from distillguard.streams.settings import load_settings

    monkeypatch.setenv("DG_NATIVE_TEXT", "0")
    try:
        assert cli.main(["replay", str(tmp_path / "absent.jsonl"), "--alerts", str(tmp_path / "a.jsonl")]) == 2
        assert not native.enabled()
    finally:
        native.set_enabled(True)
    assert "absent.jsonl" in capsys.readouterr().err
    off = check_native(load_settings({"DG_NATIVE_TEXT": "0"}))
    on = check_native(load_settings({}))
    assert (off.ok, off.detail) == (True, "pure Python (DG_NATIVE_TEXT=0)")
    assert (on.ok, on.detail) == (True, "compiled (schemas/_eventcheck.c, models/_textscan.c, models/_statecore.c, models/_linkprofile.c, "
                                  "models/_eventfront.c)")


def _learn_all(events, features) -> dict:
    from distillguard.models.state import AccountState
    states: dict = {}
    for ev, f in zip(events, features):
        s = states.get(ev.account_id)
        if s is None:
            s = states[ev.account_id] = AccountState()
        s.learn_one(f)
    return states


@pytest.mark.parametrize("scenario, seed, n, shuffle_ms", [
    ("default", 1, 30_000, 0), ("evasive", 2, 20_000, 0), ("heldout", 3, 20_000, 0),
    ("variants", 1, 20_000, 5_000),   # seconds of lateness: late events are discounted, not dropped
])
def test_state_updates_are_identical_on_both_routes(pure_python, scenario, seed, n, shuffle_ms):
    """Whole streams leave byte-identical account states (counters, rings, sketches, times)."""
    import random
    from distillguard.models.state import AccountState
    rng = random.Random(seed)
    lines = [orjson.dumps(ev) for _, ev in zip(range(n), simulate(load_scenario(scenario), seed=seed).events())]
    events = [parse_event(x) for x in lines]
    if shuffle_ms:   # arrival order: each event up to shuffle_ms late
        events.sort(key=lambda ev: ev.ts_ms + rng.uniform(0, shuffle_ms))
    features = [extract(ev, b"k") for ev in events]
    python = _learn_all(events, features)
    native.set_enabled(True)
    compiled = _learn_all(events, features)
    assert python.keys() == compiled.keys()
    for account, s in python.items():
        c = compiled[account]
        assert c.to_bytes() == s.to_bytes(), account
        assert (c.events, c.first_ms, c.last_ms, c.base_ms, c.tier, c.created_ms) == \
               (s.events, s.first_ms, s.last_ms, s.base_ms, s.tier, s.created_ms)
    # a long gap rebases the stored counters (exp of the elapsed time) on both routes alike
    a, b = AccountState(), AccountState()
    for k, f in enumerate(features[:200]):
        f2 = type(f)(**{name: getattr(f, name) for name in f.__slots__})
        f2.ts_ms = f.ts_ms + k * 3_600_000
        b.learn_one(f2)
        with native.python_route():
            a.learn_one(f2)
    assert a.to_bytes() == b.to_bytes()


def test_the_state_update_refuses_bad_input_and_leaves_the_state_untouched():
    from distillguard.models.state import AccountState
    from distillguard.models.features import EventFeatures
    s = AccountState()
    good = EventFeatures(1000, "e", 1, 2, 3, True, False, False, 0, False, False, 10, 20, False, "m")
    s.learn_one(good)
    before = s.to_bytes()
    bad = EventFeatures(2000, "e", 1, 2, 3, True, False, False, 0, False, False, 10, 20, False, "m", capability=10**6)
    with pytest.raises(IndexError):
        s.learn_one(bad)
    bad = EventFeatures(2000, "e", 2**70, 2, 3, True, False, False, 0, False, False, 10, 20, False, "m")
    with pytest.raises(OverflowError):
        s.learn_one(bad)
    assert s.to_bytes() == before and s.events == 1


_FEATURES = st.builds(
    lambda dt, sk, wr, flags, bias, tin, tout, model, cap, ask: (dt, sk, wr, flags, bias, tin, tout, model, cap, ask),
    st.one_of(st.integers(-600_000, 3_000), st.integers(0, 30 * 3_600_000)),   # late, bursts, long gaps
    st.integers(0, 40), st.integers(0, 12),   # small pools: repeats, template fills, Space-Saving evictions
    st.lists(st.booleans(), min_size=10, max_size=10), st.integers(0, 3),
    st.integers(0, 5_000), st.one_of(st.just(0), st.integers(0, 4_000)),
    st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6"]), st.integers(0, 64), st.integers(0, 30))


@settings(max_examples=200, deadline=None)
@given(st.lists(_FEATURES, min_size=1, max_size=120), st.integers(0, 2**40))
def test_state_update_is_identical_on_random_sequences(steps, start):
    """Random feature sequences (late events, bursts, day-long gaps that rebase the counters,
    ring repeats, model pivots, repeated asks) leave byte-identical states on both routes."""
    from distillguard.models.features import EventFeatures
    from distillguard.models.state import AccountState
    python, compiled = AccountState(), AccountState()
    ts = start
    for dt, sk, wr, flags, bias, tin, tout, model, cap, ask in steps:
        ts = max(0, ts + dt)
        f = EventFeatures(ts, "e", sk * 7919, wr * 104729, 0, *flags[:2], flags[2], bias, flags[3], flags[4],
                          tin, tout, flags[5], model, fresh=flags[6], capability=cap, long_answer=flags[7],
                          short_answer=flags[8], unrelated_ask=ask * 31 if flags[9] else 0)
        with native.python_route():
            python.learn_one(f)
        compiled.learn_one(f)
    assert compiled.to_bytes() == python.to_bytes()
    assert (compiled.events, compiled.first_ms, compiled.last_ms, compiled.base_ms) == \
           (python.events, python.first_ms, python.last_ms, python.base_ms)
