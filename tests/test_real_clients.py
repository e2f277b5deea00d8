"""The adapters on records captured from real producers (shared/data/real-clients): LiteLLM SDK
and proxy, LiteLLM with message logging off, opentelemetry-instrumentation-openai-v2 in its
content modes, traceloop's OpenLLMetry."""
import orjson
import pytest

from distillguard.models import AccountDetector
from distillguard.models.features import extract
from distillguard.schemas import event_from_dict, parse_event
from distillguard.schemas.adapter_stream import StreamAdapter
from distillguard.schemas.redaction import MARKERS, is_content_less

from .real_clients import PRODUCERS, adapt, captures_dir, field_table

pytestmark = pytest.mark.skipif(captures_dir() is None, reason="no real-client captures (shared/data/real-clients)")


def _by(events, **match):
    return [e for e in events if all(e.get(k) == v for k, v in match.items())]


def test_litellm_sdk():
    events, bad, stats = adapt("LiteLLM SDK")
    assert stats["duplicate"] == 1 and len({e["event_id"] for e in events}) == len(events) == 11
    assert [b.detail for b in bad] == ["no account id (metadata.user_api_key_org_id / team_id / user_id / hash)"]
    assert {e["session_id"] for e in events} == {"sess-1"}
    mct = [e for e in events if e["params"].get("max_tokens") == 128]
    assert len(mct) == 1    # max_completion_tokens=128 arrives as max_tokens
    probe = _by(events, finish_reason="length", operation="chat")[0]
    assert probe["params"] == {"temperature": 0.7, "top_p": 0.9, "max_tokens": 5, "n": 1, "seed": 7, "logprobs": True,
                               "top_logprobs": 5, "logit_bias": {"50256": -100}}
    assert _by(events, status="rate_limited")[0]["messages"] == [{"role": "user", "content": "RATE_LIMIT please"}]
    assert _by(events, finish_reason="tool_calls")[0]["params"] == {"tools_count": 1}
    assert _by(events, account_id="team-ml")   # team-only key


def test_litellm_proxy():
    events, bad, _stats = adapt("LiteLLM proxy")
    assert not bad and len(events) == 12
    # the customer-facing model group, never the deployment behind it
    assert {e["model"] for e in events} == {"gpt-4o-mini", "text-embedding-3-small", "mock-model"}
    accounts = {e["account_id"] for e in events}
    master = [a for a in accounts if a not in ("org-acme", "org-evil", "team-solo")]
    assert len(master) == 1 and len(master[0]) == 64   # master key: the key hash is the account
    assert _by(events, account_id=master[0])[0]["api_key_id"] == master[0]
    assert "s-123" in {e["session_id"] for e in events}              # requester metadata
    assert _by(events, params={"max_tokens": 200, "stream": False})  # max_completion_tokens
    assert _by(events, user_id="end-user-abc")
    assert len(_by(events, status="rate_limited")) == 1


def test_litellm_redacted_prompts_are_content_less_and_metadata_still_works():
    events, _bad, stats = adapt("LiteLLM SDK, message logging off")
    assert stats["content_less"] == stats["forwarded"] == 11
    for e in events:
        assert e["content_redacted"] is True and e["messages"] == []
        assert not any(m in orjson.dumps(e).decode() for m in ("redacted-by-litellm",))
    probe = [e for e in events if e["params"].get("logprobs")][0]
    f = extract(event_from_dict(probe), b"k")
    assert f.content_less and f.logprob_probe and f.logit_bias_size == 1 and f.truncated
    assert not (f.reasoning or f.grader or f.fresh)
    d = AccountDetector()
    for e in events:
        d.process_one(event_from_dict(e))
    assert d.content_less == 11


@pytest.mark.parametrize("text", sorted(MARKERS) + ["", "   "])
def test_events_a_gateway_redacted_itself_are_content_less(text):
    raw = orjson.dumps({"schema_version": "1", "event_id": "e", "ts_ms": 1, "account_id": "a", "model": "m",
                        "operation": "chat", "messages": [{"role": "system", "content": ""},
                                                          {"role": "user", "content": text}], "params": {}})
    assert is_content_less(parse_event(raw))
    assert not is_content_less(parse_event(raw.replace(b'"content":"' + text.encode() + b'"',
                                                       b'"content":"what is a monad?"')))


def test_otel_prompts_from_log_records_match_prompts_on_spans():
    on_spans, _b, _s = adapt("openai-v2, content on spans")
    in_logs, _b, stats = adapt("openai-v2, content in log events")
    assert stats["joined"] == 6   # every chat span met its details record (one had no account)
    assert [e["messages"] for e in in_logs] == [e["messages"] for e in on_spans]
    assert in_logs[0]["messages"] == [{"role": "system", "content": "Be terse."},
                                      {"role": "user", "content": "What is a monad?"}]
    legacy, _b, stats = adapt("openai-v2, legacy mode")
    assert stats["logs_after_span"] == 6 and stats["orphan_logs"] == 0   # content on both: spans win
    assert [e["messages"] for e in legacy] == [e["messages"] for e in on_spans]


def test_otel_logs_before_spans_and_timeouts():
    root = captures_dir()
    traces = (root / "otel/exp_event.traces.jsonl").read_bytes().splitlines()
    logs = (root / "otel/exp_event.logs.jsonl").read_bytes().splitlines()
    a = StreamAdapter("otel", join_timeout_s=5.0)
    out = [i for line in logs for i in a.feed(line, now=0.0)]
    assert out == []                               # logs wait for their spans
    out = [i for line in traces for i in a.feed(line, now=1.0)]
    assert sum(1 for i in out if isinstance(i, dict) and i["messages"]) == 5
    out = a.expire(now=10.0)                       # the embeddings span: no log ever comes
    assert [i["operation"] for i in out] == ["embeddings"] and out[0]["content_redacted"] is True
    assert a.stats["join_timeout"] == 1 and a.stats["content_less"] == 1
    # spans only (no-content mode): each waits its timeout, then goes on content-less
    a = StreamAdapter("otel", join_timeout_s=5.0)
    assert [i for line in traces for i in a.feed(line, now=0.0)] == []
    assert a.expire(now=4.9) == []
    out = a.expire(now=5.0)
    assert len(out) == 7 and a.stats["content_less"] == 6 and a.stats["dlq_adapter_unmapped"] == 1
    # logs whose spans never come are counted, per record
    a = StreamAdapter("otel", join_timeout_s=5.0)
    for line in logs:
        a.feed(line, now=0.0)
    assert a.expire(now=6.0) == [] and a.stats["orphan_logs"] == 6


def test_otel_statuses_users_streaming_tools():
    v2, _b, _s = adapt("openai-v2, content on spans")
    tl, _b, _s = adapt("OpenLLMetry (traceloop)")
    for events in (v2, tl):
        assert len(_by(events, status="rate_limited")) == 1   # openai.RateLimitError / RateLimitError
        assert len(_by(events, finish_reason="tool_calls")) == 1   # tool_call (traceloop) too
    assert _by(tl, user_id="u-1")                                 # gen_ai.user
    assert sorted(e["params"].get("stream") for e in tl) == [False] * 5 + [True]   # gen_ai.is_streaming
    assert _by(tl, finish_reason="tool_calls")[0]["params"]["tools_count"] == 1    # gen_ai.tool.definitions


def test_unmapped_records_are_counted_per_record():
    root = captures_dir()
    doc = orjson.loads((root / "otel/tl.traces.jsonl").read_bytes().splitlines()[0])
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for span in spans:   # strip the account from every span of one export
        span["attributes"] = [a for a in span["attributes"] if a["key"] not in ("gen_ai.account.id", "enduser.id")]
    a = StreamAdapter("otel")
    items = a.feed(orjson.dumps(doc), now=0.0)
    assert len(items) == len(spans) and a.stats["dlq_adapter_unmapped"] == len(spans)


def test_every_mapped_event_is_contract_v1_and_has_no_marker():
    for producer in PRODUCERS:
        events, _bad, _stats = adapt(producer)
        for e in events:
            parse_event(orjson.dumps(e))
            assert all(m["content"] not in MARKERS for m in e["messages"]), producer


def test_field_table():
    table = field_table()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[2:]}
    assert rows["`account_id`"] == ["11/11", "11/11", "12/12", "6/6", "6/6", "6/6", "6/6", "6/6"]
    assert rows["`messages`"][1] == "–" and rows["`content_redacted`"][1] == "11/11"
    assert rows["`content_redacted`"][5] == "6/6"            # openai-v2 without content
    assert rows["`params.logprobs`"][3:] == ["–"] * 5        # no instrumentation records logprobs


@pytest.mark.integration
def test_worker_adapts_real_captures(tmp_path, isolated_env, isolated_settings):
    """The worker's topic adapters on the captures: LiteLLM (with a duplicate and redacted prompts)
    and openai-v2 spans and log records on one topic, joined; the blind spot on the status page
    and in the metrics."""
    import urllib.request

    from distillguard.streams.kafka_io import consume, ensure_topics, produce_events

    from .workers import WorkerProcess

    root = captures_dir()
    litellm = [line for name in ("litellm/ll_sdk.jsonl", "litellm/ll_redact.jsonl")
               for line in (root / name).read_bytes().splitlines()]
    otel = [line for name in ("otel/exp_event.traces.jsonl", "otel/exp_event.logs.jsonl")
            for line in (root / name).read_bytes().splitlines()]
    expected = {}
    for source, lines in (("litellm", litellm), ("otel", otel)):
        a = StreamAdapter(source)
        items = [i for line in lines for i in a.feed(line, now=0.0)] + a.flush()
        expected.update({i["event_id"]: i for i in items if isinstance(i, dict)})
    blind = sum(1 for e in expected.values() if e.get("content_redacted"))
    assert len(expected) == 27 and blind == 11   # the mocked responses call has one id in both logs
    env = {**isolated_env, "DG_TOPIC_LITELLM": isolated_env["DG_TOPIC_REQUESTS"] + ".litellm",
           "DG_TOPIC_OTEL": isolated_env["DG_TOPIC_REQUESTS"] + ".otel", "DG_OTEL_JOIN_TIMEOUT_S": "2"}
    ensure_topics(isolated_settings)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        produce_events(isolated_settings, litellm, progress=False, topic=env["DG_TOPIC_LITELLM"])
        produce_events(isolated_settings, otel, progress=False, topic=env["DG_TOPIC_OTEL"])
        status = worker.wait_for(lambda s: s and s["events"] >= 27, 120, "27 adapted events processed")
        assert status["content_less"] == {"events": 11, "share": round(11 / 27, 4)}
        assert status["adapters"]["litellm"]["duplicate"] == 2   # one in the SDK log, one across the two
        assert status["adapters"]["otel"]["joined"] == 6 and status["adapters"]["otel"]["join_timeout"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert "distillguard_content_less_events_total 11" in metrics
        assert 'distillguard_adapter_records_total{source="otel",outcome="joined"} 6' in metrics
        worker.wait_for(lambda s: s["sink"]["inserted"].get("content_minute"), 60, "content_minute rows")
    finally:
        assert worker.stop() == 0, worker.log_tail()
    from distillguard.streams.clickhouse import Store
    from distillguard.streams.report_cli import collect

    store = Store(isolated_settings)
    try:
        assert collect(store, None)["content"] == (27, 11)   # what `distillguard report` shows
    finally:
        store.close()
    forwarded = {parse_event(v).event_id: orjson.loads(v)
                 for _k, v, _h in consume(isolated_settings, isolated_settings.topic_requests, timeout=30, idle=5)}
    assert forwarded == expected
    dlq = list(consume(isolated_settings, isolated_settings.topic_dlq, timeout=20, idle=4))
    assert sorted(dict(h)["dg-detail"].decode()[:13] for _k, _v, h in dlq) == ["no account id"] * 3


def test_report_line_on_the_blind_spot():
    from distillguard.streams.report_cli import _blind_spot

    assert "no event counts" in _blind_spot(None)
    line = _blind_spot((1000, 950))
    assert "950 of 1,000 events (95.0%) carried none" in line and "#b91c1c" in line
    assert "#b91c1c" not in _blind_spot((1000, 10))


def test_legacy_message_events_as_log_records_join_their_span():
    """openai-v2's default (legacy) event mode: one ``gen_ai.*.message`` log record per message,
    body ``{"content": ...}``, the event name in ``eventName`` or the ``event.name`` attribute."""
    root = captures_dir()
    export = orjson.loads((root / "otel/exp_event.traces.jsonl").read_bytes().splitlines()[0])
    spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
    span = next(s for s in spans if any(a["key"] == "gen_ai.account.id" for a in s["attributes"]))
    export["resourceSpans"][0]["scopeSpans"][0]["spans"] = [span]
    key = {"traceId": span["traceId"], "spanId": span["spanId"]}

    def record(name, content, in_attribute=False):
        rec = {**key, "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": content}}]}}}
        if in_attribute:
            rec["attributes"] = [{"key": "event.name", "value": {"stringValue": name}}]
        else:
            rec["eventName"] = name
        return rec

    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        record("gen_ai.system.message", "Be terse."), record("gen_ai.user.message", "What is a monad?", True),
        {**key, "eventName": "gen_ai.choice", "body": {"stringValue": "answer text is not a prompt"}}]}]}]}
    a = StreamAdapter("otel")
    assert a.feed(orjson.dumps(logs), now=0.0) == []
    out = a.feed(orjson.dumps(export), now=1.0)
    assert [e["messages"] for e in out] == [[{"role": "system", "content": "Be terse."},
                                             {"role": "user", "content": "What is a monad?"}]]
