"""``distillguard otlp-receiver`` driven by the real OpenTelemetry SDK and OTLP/HTTP exporter
(protobuf, gzip) and by OTLP/JSON requests, producing to the real broker."""
import gzip
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest

from distillguard.schemas import parse_event
from distillguard.streams.otlp_receiver import BadExport, decode_export, encode_response

from .conftest import free_port
from .real_clients import captures_dir


def test_decode_export_errors_and_json_partial_success():
    with pytest.raises(BadExport) as err:
        decode_export("traces", b"{}", "text/plain")
    assert err.value.status == 415
    with pytest.raises(BadExport) as err:
        decode_export("traces", b"not gzip", "application/json", "gzip")
    assert err.value.status == 400
    with pytest.raises(BadExport) as err:
        decode_export("logs", b"\xff\xff\xff", "application/x-protobuf")
    assert err.value.status == 400
    assert decode_export("traces", gzip.compress(b'{"resourceSpans": []}'), "application/json; charset=utf-8",
                         "gzip") == {"resourceSpans": []}
    assert orjson.loads(encode_response("traces", "application/json", 2, "no account id")) == {
        "partialSuccess": {"rejectedSpans": 2, "errorMessage": "no account id"}}
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    msg = ExportLogsServiceResponse.FromString(encode_response("logs", "application/x-protobuf", 1, "x"))
    assert msg.partial_success.rejected_log_records == 1


class Receiver:
    def __init__(self, env: dict, log_path):
        self.port = free_port()
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "distillguard.streams.cli", "otlp-receiver",
                                      "--port", str(self.port)], env={**os.environ, **env},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while self.status() is None:
            assert self.proc.poll() is None and time.monotonic() < deadline, open(log_path).read()
            time.sleep(0.2)

    def status(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.url + "/status", timeout=2) as r:
                return orjson.loads(r.read())
        except OSError:
            return None

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)


def _export_with_the_real_sdk(endpoint: str) -> None:
    """What a gateway instrumented like openai-v2 sends: chat spans whose prompts are in
    ``gen_ai.client.inference.operation.details`` log records, one in no-content mode, one 429
    with the prompt on the span, an HTTP span, a GenAI span without an account."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    resource = Resource.create({"service.name": "gateway-under-test"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{endpoint}/v1/traces", compression=Compression.Gzip)))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
    tracer = tracer_provider.get_tracer("test.gateway")
    logger = logger_provider.get_logger("opentelemetry.util.genai.handler")

    def chat(account: str | None, prompt: str | None, **extra):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                 "gen_ai.provider.name": "openai", "gen_ai.request.max_tokens": 5,
                 "gen_ai.usage.input_tokens": 17, "gen_ai.usage.output_tokens": 9, **extra}
        if account:
            attrs.update({"gen_ai.account.id": account, "enduser.id": f"eu-{account}"})
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attrs):
            if prompt:
                logger.emit(event_name="gen_ai.client.inference.operation.details", attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.input.messages": [{"role": "system", "parts": [{"type": "text", "content": "Be terse."}]},
                                              {"role": "user", "parts": [{"type": "text", "content": prompt}]}]})

    for i in range(3):
        chat("org-otlp-1", f"question number {i}")
    chat("org-otlp-2", None)                                   # no-content mode: no log record ever
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.account.id": "org-otlp-2",
            "gen_ai.input.messages": '[{"role":"user","parts":[{"content":"RATE_LIMIT","type":"text"}]}]',
            "error.type": "<class 'openai.RateLimitError'>"}) as span:
        span.set_status(Status(StatusCode.ERROR, "Error code: 429 - Rate limit reached"))
    with tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER):
        pass
    chat(None, "who am I?")                                    # no account: rejected, to the DLQ
    tracer_provider.force_flush()
    logger_provider.force_flush()
    tracer_provider.shutdown()
    logger_provider.shutdown()


@pytest.mark.integration
def test_real_otlp_exporter_to_receiver_to_kafka(tmp_path, isolated_env, isolated_settings):
    from distillguard.streams.kafka_io import consume, ensure_topics

    ensure_topics(isolated_settings)
    receiver = Receiver({**isolated_env, "DG_OTEL_JOIN_TIMEOUT_S": "1"}, tmp_path / "receiver.log")
    try:
        _export_with_the_real_sdk(receiver.url)
        deadline = time.monotonic() + 20
        while (receiver.status() or {}).get("waiting_spans", 1) and time.monotonic() < deadline:
            time.sleep(0.3)    # the no-content span waits its second for logs that never come
        status = receiver.status()
        assert status["adapter"]["joined"] == 4 and status["adapter"]["join_timeout"] == 1, status
        # OTLP/JSON too, gzipped: a captured OpenLLMetry export (one span without an account)
        if captures_dir() is not None:
            line = (captures_dir() / "otel/tl.traces.jsonl").read_bytes().splitlines()[0]
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            code, body = receiver.post("/v1/traces", gzip.compress(line), headers)
            assert code == 200 and orjson.loads(body)["partialSuccess"]["rejectedSpans"] == 1
            code, _ = receiver.post("/v1/traces", gzip.compress(line), headers)   # a retried export
            assert code == 200 and receiver.status()["adapter"]["duplicate"] == 6
        code, body = receiver.post("/v1/logs", b"{oops", {"Content-Type": "application/json"})
        assert code == 400 and b"invalid JSON" in body
    finally:
        assert receiver.stop() == 0
    events = [parse_event(v) for _k, v, _h in consume(isolated_settings, isolated_settings.topic_requests,
                                                      timeout=30, idle=5)]
    mine = [e for e in events if e.account_id.startswith("org-otlp")]
    assert len(mine) == 5 and len(events) == (11 if captures_dir() is not None else 5)
    prompts = sorted(e.messages[-1].content for e in mine if e.messages)
    assert prompts == ["RATE_LIMIT", "question number 0", "question number 1", "question number 2"]
    blind = [e for e in mine if not e.messages]
    assert len(blind) == 1 and blind[0].extra["content_redacted"] is True and blind[0].account_id == "org-otlp-2"
    assert [e.status for e in mine if e.messages and e.messages[-1].content == "RATE_LIMIT"] == ["rate_limited"]
    assert all(e.event_id.count(":") == 1 and len(e.event_id) == 32 + 1 + 16 for e in mine)
    dlq = list(consume(isolated_settings, isolated_settings.topic_dlq, timeout=20, idle=4))
    assert all(dict(h)["dg-reason"] == b"adapter_unmapped" for _k, _v, h in dlq)
    # the SDK's span without an account, and the captured one twice: the retry is dead-lettered again
    # (the dedupe window holds forwarded events only)
    assert len(dlq) == (3 if captures_dir() is not None else 1)
