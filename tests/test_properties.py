"""Property-based tests (hypothesis) of the hot-path parser and of the per-account state.

Parser: whatever bytes or JSON arrive, ``parse_event`` returns an event or raises
``BadEvent`` with a known reason, never anything else; valid events round-trip.
State: any sequence of ``EventFeatures`` (late events, gaps, extreme counts)
keeps counters non-negative and finite, flag shares in [0, 1], and
``to_bytes``/``from_bytes`` exact.
"""
import math
import re

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from distillguard.models.features import EventFeatures
from distillguard.models.state import (
    C_BURST, C_ERRORS, C_FRESH, C_GRADER, C_LOGPROB, C_BIAS, C_LONG_OUT, C_NEW_MODEL, C_REASONING,
    C_REPEAT_SKELETON, C_TEMPLATE_FILL, C_TRUNCATED, HORIZONS_MS, N_COUNTERS, AccountState)
from distillguard.models.text import tokens, words
from distillguard.models.capability_areas import AREAS
from distillguard.models.capability_space import N_SLOTS
from distillguard.schemas import BadEvent, parse_event
from distillguard.schemas.event import OPERATIONS, ROLES

REASONS = {"invalid_json", "too_large", "not_object", "missing_field", "wrong_type", "bad_value"}
FLAGS = (C_REASONING, C_GRADER, C_LOGPROB, C_BIAS, C_LONG_OUT, C_TRUNCATED, C_REPEAT_SKELETON,
         C_TEMPLATE_FILL, C_ERRORS, C_FRESH, C_BURST, C_NEW_MODEL)

json_leaf = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False,
                                                                                    allow_infinity=False) | st.text()
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=12), kids, max_size=5), max_leaves=25)

text = st.text(min_size=1, max_size=40)
valid_event = st.fixed_dictionaries(
    {"schema_version": st.just("1"), "event_id": text, "ts_ms": st.integers(0, 2**53 - 1),
     "account_id": text, "model": text, "operation": st.sampled_from(sorted(OPERATIONS)),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(sorted(ROLES)),
                                                 "content": st.text(max_size=200)}), max_size=4),
     "params": st.fixed_dictionaries({}, optional={
         "temperature": st.floats(0, 2), "max_tokens": st.integers(0, 10**6), "logprobs": st.booleans(),
         "logit_bias": st.dictionaries(st.text(max_size=6), st.integers(-100, 100), max_size=20)})},
    optional={"usage": st.fixed_dictionaries({"input_tokens": st.integers(0, 10**7),
                                              "output_tokens": st.integers(0, 10**7)}),
              "status": st.sampled_from(["ok", "error", "rate_limited"]),
              "access_tier": st.sampled_from(["free", "pro", "enterprise"]),
              "account_created_ms": st.integers(0, 2**53 - 1)})


def _parse_or_reason(raw: bytes):
    try:
        return parse_event(raw)
    except BadEvent as err:
        assert err.reason in REASONS, err.reason
        assert isinstance(err.detail, str)
        return err.reason


@given(st.binary(max_size=300))
def test_parser_never_crashes_on_bytes(raw):
    _parse_or_reason(raw)


@given(json_value)
def test_parser_never_crashes_on_any_json(doc):
    _parse_or_reason(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))


@given(valid_event, st.sampled_from(["drop", "null", "retype"]), st.data())
def test_parser_mutated_events_are_accepted_or_rejected_with_a_reason(doc, how, data):
    key = data.draw(st.sampled_from(sorted(doc)))
    doc = dict(doc)
    if how == "drop":
        del doc[key]
    elif how == "null":
        doc[key] = None
    else:
        doc[key] = data.draw(json_value)
    _parse_or_reason(orjson.dumps(doc))


@given(valid_event)
def test_parser_valid_events_round_trip(doc):
    ev = parse_event(orjson.dumps(doc))
    out = ev.to_dict()
    if out.get("usage") == {} and "usage" not in doc:
        del out["usage"]   # to_dict always writes usage
    assert out == doc


@given(st.integers(0, 1024), st.integers(1, 200))
def test_parser_size_limit(extra, limit):
    raw = b'{"x":"' + b"a" * extra + b'"}'
    got = _parse_or_reason(raw if len(raw) <= 262144 else raw[:262144])
    assert got == "missing_field" or got == "too_large"
    try:
        parse_event(raw, max_bytes=limit)
    except BadEvent as err:
        assert err.reason == ("too_large" if len(raw) > limit else "missing_field")


features = st.builds(
    lambda ts, fps, area, flags, bias, tokens, model, tier, created, cap, user: EventFeatures(
        ts_ms=ts, event_id=f"e{ts}", skeleton_fp=fps[0], wrapper_fp=fps[1], area=area,
        reasoning=flags[0], grader=flags[1], logprob_probe=flags[2], logit_bias_size=bias,
        long_output=flags[3], truncated=flags[4], input_tokens=tokens[0], output_tokens=tokens[1],
        error=flags[5], model=model, fresh=flags[6], tier=tier, created_ms=created, capability=cap,
        long_answer=flags[3], short_answer=flags[4] and not flags[3], end_user=user),
    st.integers(1_700_000_000_000, 1_700_000_000_000 + 10 * 24 * 3_600_000),
    st.tuples(st.integers(-2**63, 2**63 - 1), st.integers(-2**63, 2**63 - 1)) | st.tuples(
        st.integers(0, 5), st.integers(0, 3)),                               # few distinct prints: repeats
    st.integers(0, len(AREAS) - 1),
    st.tuples(*[st.booleans()] * 7),
    st.integers(0, 5000),
    st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)),
    st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]),
    st.none() | st.sampled_from(["free", "pro"]),
    st.none() | st.integers(0, 2**53 - 1),
    st.integers(0, N_SLOTS - 1),
    st.none() | st.sampled_from([f"u{i}" for i in range(80)]),                # end users, past the cap
)


def _check(s: AccountState) -> None:
    assert s.events >= 0
    for h in range(len(HORIZONS_MS)):   # only the public reads: the layout behind them may change
        for c in range(N_COUNTERS):
            v = s.count(c, h)
            assert math.isfinite(v) and v >= 0, (c, h, v)
        for c in FLAGS:
            assert 0.0 <= s.share(c, h) <= 1.0 + 1e-9, (c, h, s.share(c, h))
            assert s.count(c, h) >= 0
    assert 0.0 <= s.top_template_share() <= 1.0
    assert s.distinct_skeletons() >= 0
    breadth, unplaced = s.capability_spread()
    assert 0.0 <= breadth <= N_SLOTS and -1e-9 <= unplaced <= 1.0 + 1e-9
    if s.users is not None:
        assert len(s.users.ids) <= 64
    assert s.gap_spread() >= 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(features, min_size=1, max_size=120), st.booleans())
def test_state_invariants_and_exact_round_trip(seq, sort):
    if sort:
        seq = sorted(seq, key=lambda f: f.ts_ms)
    s = AccountState()
    for i, f in enumerate(seq):
        s.learn_one(f)
        if i % 17 == 0:
            s.remember_sample(f.event_id)
        _check(s)
    assert s.events == len(seq)
    raw = s.to_bytes()
    back = AccountState.from_bytes(raw)
    assert back.to_bytes() == raw
    for name in AccountState.__slots__:
        assert getattr(back, name) == getattr(s, name), name
    # a restored state goes on exactly like the original
    nxt = seq[-1]
    s.learn_one(nxt)
    back.learn_one(nxt)
    assert back.to_bytes() == s.to_bytes()


_RE_TOKEN, _RE_NUMBER = re.compile(r"[a-z0-9]+"), re.compile(r"[0-9]+")


@settings(max_examples=400)
@given(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=300)
       | st.text(alphabet="aZ09 .,-_\n\u00e9\u2026İ", max_size=60))
def test_tokens_fast_path_equals_the_regex_definition(s):
    """The translate-based tokenisers (ASCII and other text) give exactly the tokens of the regex definition."""
    assert tokens(s) == _RE_TOKEN.findall(_RE_NUMBER.sub("0", s.lower()))
    assert words(s) == _RE_TOKEN.findall(s.lower())
