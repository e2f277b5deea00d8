"""Gateway log adapters (LiteLLM StandardLoggingPayload, OpenTelemetry GenAI spans) → contract v1."""
import copy
import subprocess
import sys

import orjson
import pytest

from distillguard.schemas import BadEvent, parse_event
from distillguard.schemas.adapters import adapt_bytes, from_litellm, from_otel_span, split_records

from .workers import WorkerProcess

CLI = [sys.executable, "-m", "distillguard.streams.cli"]

# A LiteLLM proxy success log (kwargs["standard_logging_object"]), trimmed to the fields we read
# plus a few we ignore. Values are made up; the shape follows LiteLLM's StandardLoggingPayload.
LITELLM_OK = {
    "id": "chatcmpl-9f1c2b7e-4d1a-4c55-9a51-0c2f6b1d9e11",
    "trace_id": "c1a8f0e4-52b3-4c7a-8d0a-2d7f3b9e6a10",
    "call_type": "acompletion",
    "cache_hit": False,
    "stream": False,
    "status": "success",
    "custom_llm_provider": "openai",
    "saved_cache_cost": 0.0,
    "startTime": 1735732800.125,
    "endTime": 1735732802.5,
    "completionStartTime": 1735732802.5,
    "response_time": 2.375,
    "model": "gpt-4o-mini",
    "model_id": "6b0d2f5c1e",
    "model_group": "gpt-4o-mini",
    "api_base": "https://api.openai.com/v1",
    "metadata": {
        "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "user_api_key_alias": "prod-key-1",
        "user_api_key_org_id": "org_acme",
        "user_api_key_team_id": "team_search",
        "user_api_key_user_id": "u_owner",
        "user_api_key_team_alias": "search",
        "user_api_key_end_user_id": None,
        "spend_logs_metadata": None,
        "requester_ip_address": "203.0.113.7",
        "user_agent": "OpenAI/Python 1.59.3",
        "requester_metadata": {"session_id": "sess_42"},
        "applied_guardrails": [],
    },
    "response_cost": 0.000123,
    "prompt_tokens": 21,
    "completion_tokens": 180,
    "total_tokens": 201,
    "request_tags": [],
    "end_user": "alice@example.com",
    "requester_ip_address": "203.0.113.7",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "text", "text": "Explain step by step: 17 * 23"}]},
    ],
    "response": {"id": "chatcmpl-x", "object": "chat.completion",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": "391"}}],
                 "usage": {"prompt_tokens": 21, "completion_tokens": 180,
                           "completion_tokens_details": {"reasoning_tokens": 64}}},
    "model_parameters": {"temperature": 0.2, "max_tokens": 512, "top_p": 1, "stream": False,
                         "tools": [{"type": "function", "function": {"name": "calc"}}], "user": "alice"},
    "hidden_params": {"model_id": "6b0d2f5c1e", "cache_key": None, "api_base": "https://api.openai.com/v1",
                      "response_cost": "0.000123", "additional_headers": {}},
    "model_map_information": {"model_map_key": "gpt-4o-mini", "model_map_value": None},
    "error_str": None,
}

# An OTLP/JSON trace export (as the OTel Collector's file exporter writes it): a GenAI client span
# using the current conventions (gen_ai.input.messages with parts), next to an HTTP span.
OTLP_EXPORT = {"resourceSpans": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "llm-gateway"}},
        {"key": "gen_ai.account.id", "value": {"stringValue": "acct_from_resource"}}]},
    "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
         "name": "chat gpt-4o", "kind": 3,
         "startTimeUnixNano": "1735732800125000000", "endTimeUnixNano": "1735732801375000000",
         "attributes": [
             {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
             {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
             {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
             {"key": "gen_ai.request.max_tokens", "value": {"intValue": "200"}},
             {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.7}},
             {"key": "gen_ai.request.top_p", "value": {"doubleValue": 0.9}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "97"}},
             {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "52"}},
             {"key": "gen_ai.response.finish_reasons",
              "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
             {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv_5j66UpCpwteGg4YSxUnt7lPY"}},
             {"key": "gen_ai.system_instructions",
              "value": {"stringValue": '[{"type":"text","content":"You are a translator."}]'}},
             {"key": "gen_ai.input.messages", "value": {"stringValue":
                 '[{"role":"user","parts":[{"type":"text","content":"Translate to French: good morning"}]}]'}},
             {"key": "client.address", "value": {"stringValue": "198.51.100.23"}},
             {"key": "user_agent.original", "value": {"stringValue": "curl/8.5.0"}},
             {"key": "user.id", "value": {"stringValue": "u_77"}},
         ],
         "status": {}},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "aaa19b7ec3c1b100", "name": "POST /v1/chat",
         "startTimeUnixNano": "1735732800100000000", "endTimeUnixNano": "1735732801400000000",
         "attributes": [{"key": "http.request.method", "value": {"stringValue": "POST"}}]},
    ]}]}]}

# A flat JSON span (Python SDK ConsoleSpanExporter style) with the older conventions:
# gen_ai.system, prompt/completion content as span events.
FLAT_SPAN = {
    "name": "chat claude-3-5-sonnet",
    "context": {"trace_id": "0x4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "0x00f067aa0ba902b7"},
    "start_time": "2025-01-01T12:00:00.250000Z", "end_time": "2025-01-01T12:00:03.000000Z",
    "status": {"status_code": "ERROR"},
    "attributes": {"gen_ai.system": "anthropic", "gen_ai.operation.name": "chat",
                   "gen_ai.request.model": "claude-3-5-sonnet", "enduser.id": "acct_flat",
                   "error.type": "429", "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 0},
    "events": [
        {"name": "gen_ai.system.message", "timestamp": "2025-01-01T12:00:00.250000Z",
         "attributes": {"content": "Be terse."}},
        {"name": "gen_ai.user.message", "timestamp": "2025-01-01T12:00:00.250000Z",
         "attributes": {"content": "List 3 primes."}},
        {"name": "gen_ai.choice", "timestamp": "2025-01-01T12:00:03.000000Z",
         "attributes": {"index": 0, "finish_reason": "stop"}},
    ],
    "resource": {"attributes": {"service.name": "gateway"}},
}


def test_litellm_success():
    ev = from_litellm(LITELLM_OK)
    assert parse_event(orjson.dumps(ev)).account_id == "org_acme"
    assert ev["event_id"] == LITELLM_OK["id"]
    assert ev["ts_ms"] == 1735732800125 and ev["latency_ms"] == 2375
    assert ev["operation"] == "chat" and ev["model"] == "gpt-4o-mini"
    assert ev["api_key_id"] == LITELLM_OK["metadata"]["user_api_key_hash"]
    assert ev["user_id"] == "alice@example.com" and ev["client_ip"] == "203.0.113.7"
    assert ev["user_agent"] == "OpenAI/Python 1.59.3" and ev["session_id"] == "sess_42"
    assert ev["messages"] == [{"role": "system", "content": "You are a helpful assistant."},
                              {"role": "user", "content": "Explain step by step: 17 * 23"}]
    assert ev["params"] == {"temperature": 0.2, "max_tokens": 512, "top_p": 1, "stream": False, "tools_count": 1}
    assert ev["usage"] == {"input_tokens": 21, "output_tokens": 180, "reasoning_tokens": 64}
    assert ev["status"] == "ok" and ev["finish_reason"] == "stop"


def test_litellm_account_falls_back_to_team_then_key_owner():
    rec = copy.deepcopy(LITELLM_OK)
    rec["metadata"]["user_api_key_org_id"] = None
    assert from_litellm(rec)["account_id"] == "team_search"
    rec["metadata"]["user_api_key_team_id"] = None
    assert from_litellm(rec)["account_id"] == "u_owner"
    rec["metadata"]["user_api_key_user_id"] = None   # master key: only the key hash is left
    assert from_litellm(rec)["account_id"] == LITELLM_OK["metadata"]["user_api_key_hash"]


def test_litellm_failure_rate_limited_and_other_call_types():
    rec = copy.deepcopy(LITELLM_OK)
    rec.update(status="failure", response=None, completion_tokens=0,
               error_information={"error_code": "429", "error_class": "RateLimitError"})
    assert from_litellm(rec)["status"] == "rate_limited"
    rec["error_information"]["error_code"] = "500"
    assert from_litellm(rec)["status"] == "error"
    rec = copy.deepcopy(LITELLM_OK)
    rec.update(call_type="atext_completion", messages="Once upon a time")
    ev = from_litellm(rec)
    assert ev["operation"] == "text_completion" and ev["messages"] == [{"role": "user", "content": "Once upon a time"}]
    rec.update(call_type="aembedding", messages=["first text", "second text"])
    assert from_litellm(rec)["operation"] == "embeddings"


@pytest.mark.parametrize("change,detail", [
    (lambda r: r["metadata"].update(user_api_key_org_id=None, user_api_key_team_id=None,
                                    user_api_key_user_id=None, user_api_key_hash=None), "no account id"),
    (lambda r: r.update(call_type="image_generation"), "call_type"),
    (lambda r: r.pop("id"), "no id"),
    (lambda r: r.pop("startTime"), "no startTime"),
    (lambda r: r.update(model=None, model_group=None), "no model"),
])
def test_litellm_unmapped(change, detail):
    rec = copy.deepcopy(LITELLM_OK)
    change(rec)
    with pytest.raises(BadEvent) as err:
        from_litellm(rec)
    assert err.value.reason == "adapter_unmapped" and detail in err.value.detail


def test_otlp_export_maps_genai_spans_only():
    records = list(split_records("otel", OTLP_EXPORT))
    assert len(records) == 1   # the HTTP span is not a GenAI span
    resource, span = records[0]
    ev = from_otel_span(span, resource)
    assert parse_event(orjson.dumps(ev)).event_id == "5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
    assert ev["account_id"] == "acct_from_resource" and ev["user_id"] == "u_77"
    assert ev["ts_ms"] == 1735732800125 and ev["latency_ms"] == 1250
    assert ev["model"] == "gpt-4o" and ev["operation"] == "chat" and ev["provider"] == "openai"
    assert ev["params"] == {"max_tokens": 200, "temperature": 0.7, "top_p": 0.9}
    assert ev["usage"] == {"input_tokens": 97, "output_tokens": 52}
    assert ev["finish_reason"] == "stop" and ev["status"] == "ok"
    assert ev["client_ip"] == "198.51.100.23" and ev["user_agent"] == "curl/8.5.0"
    assert ev["session_id"] == "conv_5j66UpCpwteGg4YSxUnt7lPY"
    assert ev["messages"] == [{"role": "system", "content": "You are a translator."},
                              {"role": "user", "content": "Translate to French: good morning"}]


def test_flat_span_with_message_events():
    ev = from_otel_span(FLAT_SPAN)
    assert ev["account_id"] == "acct_flat" and ev["provider"] == "anthropic"
    assert ev["ts_ms"] == 1735732800250 and ev["latency_ms"] == 2750
    assert ev["status"] == "rate_limited"
    assert ev["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "List 3 primes."}]


def test_span_with_flattened_prompt_attributes():
    span = copy.deepcopy(FLAT_SPAN)
    span["events"] = []
    span["attributes"].update({"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi",
                               "gen_ai.prompt.1.role": "assistant", "gen_ai.prompt.1.content": "hello",
                               "gen_ai.prompt.2.role": "user", "gen_ai.prompt.2.content": "again"})
    assert [m["content"] for m in from_otel_span(span)["messages"]] == ["hi", "hello", "again"]


@pytest.mark.parametrize("change,detail", [
    (lambda s: s["attributes"].pop("enduser.id"), "no account id"),
    (lambda s: s["attributes"].update({"gen_ai.operation.name": "execute_tool"}), "execute_tool"),
    (lambda s: s["attributes"].pop("gen_ai.request.model"), "no model"),
    (lambda s: [s["attributes"].pop(k) for k in ("gen_ai.system", "gen_ai.operation.name")], "not a GenAI span"),
])
def test_span_unmapped(change, detail):
    span = copy.deepcopy(FLAT_SPAN)
    change(span)
    with pytest.raises(BadEvent) as err:
        from_otel_span(span)
    assert err.value.reason == "adapter_unmapped" and detail in err.value.detail


def test_adapt_bytes_reports_bad_records_without_raising():
    items = list(adapt_bytes("litellm", b"{oops"))
    assert isinstance(items[0], BadEvent) and items[0].reason == "invalid_json"
    items = list(adapt_bytes("otel", orjson.dumps(OTLP_EXPORT)))
    assert len(items) == 1 and items[0]["model"] == "gpt-4o"


def test_ingest_cli_to_jsonl_that_replay_reads(tmp_path):
    src = tmp_path / "litellm.jsonl"
    bad = copy.deepcopy(LITELLM_OK)
    bad["metadata"] = {}
    lines = []
    for i in range(5):
        rec = copy.deepcopy(LITELLM_OK)
        rec["id"] = f"call-{i}"
        rec["startTime"] += i
        lines.append(orjson.dumps(rec))
    lines += [orjson.dumps(bad), b"not json"]
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "events.jsonl"
    proc = subprocess.run([*CLI, "ingest", "--from", "litellm", str(src), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ingested 5 events" in proc.stderr and "adapter_unmapped: 1" in proc.stderr
    assert "invalid_json: 1" in proc.stderr
    assert "Explain step by step" not in proc.stderr   # no prompt text in logs
    events = [parse_event(line) for line in out.read_bytes().splitlines()]
    assert [e.event_id for e in events] == [f"call-{i}" for i in range(5)]
    alerts = tmp_path / "alerts.jsonl"
    proc = subprocess.run([*CLI, "replay", str(out), "--alerts", str(alerts), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "5 events, 0 bad lines" in proc.stderr, proc.stderr


def test_ingest_cli_otel(tmp_path):
    src = tmp_path / "otel.jsonl"
    src.write_bytes(orjson.dumps(OTLP_EXPORT) + b"\n" + orjson.dumps(FLAT_SPAN) + b"\n")
    out = tmp_path / "events.jsonl"
    proc = subprocess.run([*CLI, "ingest", "--from", "otel", str(src), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "ingested 2 events" in proc.stderr, proc.stderr


@pytest.mark.integration
def test_topic_adapters_forward_to_requests(tmp_path, isolated_env, isolated_settings):
    """Worker with DG_TOPIC_LITELLM / DG_TOPIC_OTEL: records are mapped and forwarded to the
    requests topic keyed by account id; unmappable ones go to the DLQ with the reason."""
    from distillguard.streams.kafka_io import consume, ensure_topics, produce_events

    env = {**isolated_env, "DG_TOPIC_LITELLM": isolated_env["DG_TOPIC_REQUESTS"] + ".litellm",
           "DG_TOPIC_OTEL": isolated_env["DG_TOPIC_REQUESTS"] + ".otel", "DG_SINK": "0"}
    settings = isolated_settings
    ensure_topics(settings)
    records = []
    for i in range(20):
        rec = copy.deepcopy(LITELLM_OK)
        rec["id"] = f"call-{i}"
        rec["metadata"]["user_api_key_org_id"] = f"org_{i % 3}"
        records.append(orjson.dumps(rec))
    bad = copy.deepcopy(LITELLM_OK)
    bad["metadata"] = {}
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        produce_events(settings, records + [orjson.dumps(bad)], progress=False, topic=env["DG_TOPIC_LITELLM"])
        produce_events(settings, [orjson.dumps(OTLP_EXPORT)], progress=False, topic=env["DG_TOPIC_OTEL"])
        status = worker.wait_for(lambda s: s and s["events"] >= 21, 120, "21 adapted events processed")
        assert status["dlq"] == {}   # adapted events are valid contract v1
    finally:
        assert worker.stop() == 0, worker.log_tail()
    forwarded = list(consume(settings, settings.topic_requests, timeout=30, idle=5))
    assert len(forwarded) == 21
    for key, value, _h in forwarded:
        assert key.decode() == parse_event(value).account_id
    assert {parse_event(v).account_id for _k, v, _h in forwarded} == {"org_0", "org_1", "org_2",
                                                                       "acct_from_resource"}
    dlq = list(consume(settings, settings.topic_dlq, timeout=30, idle=5))
    assert len(dlq) == 1 and dlq[0][1] == orjson.dumps(bad)
    headers = dict(dlq[0][2])
    assert headers["dg-reason"] == b"adapter_unmapped" and b"no account id" in headers["dg-detail"]
