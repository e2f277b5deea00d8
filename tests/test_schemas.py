import json

import orjson
import pytest
from hypothesis import given, settings, strategies as st
from jsonschema import Draft202012Validator

from distillguard.schemas import Alert, BadEvent, event_from_dict, json_schema, make_alert_id, parse_event, validate_alert

VALID = {
    "schema_version": "1", "event_id": "e1", "ts_ms": 1_793_613_600_000, "account_id": "acct-1",
    "api_key_id": "k1", "user_id": None, "client_ip": "10.1.2.3", "user_agent": "sdk/1.0",
    "session_id": "s1", "payment_fingerprint": "pf", "account_created_ms": 1_700_000_000_000,
    "access_tier": "pro", "model": "atlas-2", "operation": "chat",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    "params": {"temperature": 0.2, "max_tokens": 100, "logprobs": False, "logit_bias": {"50256": -100}},
    "usage": {"input_tokens": 3, "output_tokens": 5}, "status": "ok", "latency_ms": 120,
    "finish_reason": "stop", "some_future_field": {"x": 1},
}
EVENT_SCHEMA = Draft202012Validator(json.loads(json_schema("request_event.v1")))
ALERT_SCHEMA = Draft202012Validator(json.loads(json_schema("alert.v1")))


def with_(**changes):
    doc = dict(VALID)
    for k, v in changes.items():
        if v is ...:
            doc.pop(k)
        else:
            doc[k] = v
    return orjson.dumps(doc)


def test_valid_event_parses_with_all_fields():
    ev = parse_event(orjson.dumps(VALID))
    assert ev.account_id == "acct-1" and ev.ts_ms == VALID["ts_ms"]
    assert [m.role for m in ev.messages] == ["system", "user"]
    assert ev.extra == {"some_future_field": {"x": 1}}  # unknown fields kept, ignored
    assert ev.usage["output_tokens"] == 5
    assert EVENT_SCHEMA.is_valid(VALID)


def test_minimal_embeddings_event():
    ev = parse_event(with_(messages=[], params={}, operation="embeddings"))
    assert ev.messages == [] and ev.params == {}


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe\x00garbage", "invalid_json"),
    (b"[1,2,3]", "not_object"),
    (b'"just a string"', "not_object"),
    (with_(account_id=...), "missing_field"),
    (with_(ts_ms=...), "missing_field"),
    (with_(messages=...), "missing_field"),
    (with_(params=...), "missing_field"),
    (with_(schema_version=...), "missing_field"),
    (with_(ts_ms="123"), "wrong_type"),
    (with_(ts_ms=1.5), "wrong_type"),
    (with_(ts_ms=True), "wrong_type"),
    (with_(account_id=42), "wrong_type"),
    (with_(messages={"role": "user"}), "wrong_type"),
    (with_(messages=[{"role": "user", "content": 5}]), "wrong_type"),
    (with_(params=[]), "wrong_type"),
    (with_(params={"max_tokens": "many"}), "wrong_type"),
    (with_(params={"logprobs": 1}), "wrong_type"),
    (with_(params={"logit_bias": {"1": "x"}}), "wrong_type"),
    (with_(usage={"input_tokens": -1}), "wrong_type"),
    (with_(client_ip=123), "wrong_type"),
    (with_(schema_version="2"), "bad_value"),
    (with_(schema_version=1), "bad_value"),
    (with_(operation="image"), "bad_value"),
    (with_(messages=[{"role": "wizard", "content": "x"}]), "bad_value"),
    (with_(account_id=""), "bad_value"),
    (with_(ts_ms=-5), "bad_value"),
    (with_(params={"logit_bias": {str(i): 1 for i in range(5000)}}), "bad_value"),
])
def test_each_kind_of_bad_event_is_rejected_with_a_reason(raw, reason):
    with pytest.raises(BadEvent) as err:
        parse_event(raw)
    assert err.value.reason == reason
    assert err.value.detail


def test_too_large_is_rejected_before_decoding():
    big = with_(messages=[{"role": "user", "content": "x" * 300_000}])
    with pytest.raises(BadEvent) as err:
        parse_event(big, max_bytes=262144)
    assert err.value.reason == "too_large"


def test_deep_nesting_is_bad_json_not_a_crash():
    deep = b'{"schema_version":"1","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(BadEvent):
        parse_event(deep)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(VALID)), json_values, max_size=len(VALID)))
def test_parser_never_raises_anything_but_bad_event_and_agrees_with_json_schema(patch):
    doc = {**VALID, **patch}
    try:
        event_from_dict(doc)
        accepted = True
    except BadEvent:
        accepted = False
    if accepted:  # the fast path accepts nothing the JSON Schema rejects
        assert EVENT_SCHEMA.is_valid(doc), list(EVENT_SCHEMA.iter_errors(doc))[:1]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parser(raw):
    try:
        parse_event(raw)
    except BadEvent:
        pass


def test_alert_round_trip_validates_against_both_schemas():
    a = Alert(alert_id=make_alert_id("d", "acct", 0), activity="create", detector="d", severity="high",
              score=0.8, account_ids=["acct"], window_start_ms=0, window_end_ms=10, raised_at_ms=10,
              event_count=3, reasons=[{"feature": "f", "value": 1.0, "baseline": None}],
              sample_event_ids=["e"], recommended_action="throttle")
    doc = orjson.loads(a.to_json())
    assert validate_alert(doc) == []
    assert ALERT_SCHEMA.is_valid(doc)


def test_alert_validation_names_each_problem():
    errors = validate_alert({"schema_version": "1", "activity": "explode", "score": 2, "account_ids": []})
    text = " ".join(errors)
    for word in ("alert_id", "activity", "score", "account_ids", "reasons", "recommended_action"):
        assert word in text


def test_alert_id_is_stable_and_scoped():
    assert make_alert_id("d", "a", 3600000) == make_alert_id("d", "a", 3600000)
    assert make_alert_id("d", "a", 3600000) != make_alert_id("d", "b", 3600000)
