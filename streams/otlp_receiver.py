"""``distillguard otlp-receiver``: an OTLP/HTTP endpoint, so a gateway's OpenTelemetry SDK can
export GenAI spans and log records to distillguard without a Collector in between.

``POST /v1/traces`` and ``POST /v1/logs`` take protobuf (``application/x-protobuf``) or JSON
(``application/json``) export requests, gzip-compressed or not, as the OTLP exporters send them.
Each request is decoded to OTLP/JSON (protobuf through ``opentelemetry-proto``) and mapped by the
same ``StreamAdapter`` the worker's OpenTelemetry topic adapter runs (span/log join, dedupe,
content-less spans after ``DG_OTEL_JOIN_TIMEOUT_S``). Events go to ``DG_TOPIC_REQUESTS`` keyed by
account id (confluent-kafka, murmur2 like every producer of ours); a GenAI record that cannot be
mapped goes to the DLQ on its own (``dg-reason``/``dg-detail`` headers) and is reported back to
the exporter as rejected (OTLP ``partial_success``).

The answer waits until Kafka confirmed delivery: 200 when every event of the request is on the
broker, 503 (which OTLP exporters retry) when not, with the undelivered events' ids taken out of
the dedupe window so that the retry is not dropped as a duplicate. A span that waits for its log
records is held in memory only; it is lost if the receiver is killed in that window (a normal
stop forwards every waiting span content-less). ``GET /status`` returns the counts as JSON.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import sys
import time
import zlib
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from distillguard.models.coverage import BlindSpotWatch
from distillguard.schemas.adapter_stream import StreamAdapter
from distillguard.schemas.event import BadEvent

from .kafka_io import produce_waiting
from .settings import Settings

log = logging.getLogger("distillguard.otlp")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_BODY_BYTES = 32 << 20            # compressed
MAX_DECODED_BYTES = 128 << 20        # after gzip: a bomb is refused, not inflated
DELIVERY_TIMEOUT_S = 30.0
EXPIRE_EVERY_S = 0.5
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


class BadExport(ValueError):
    """An export request that cannot be read at all (HTTP 400/413/415, not retried)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _proto_types(kind: str):
    if kind == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
        return pb.ExportTraceServiceRequest, pb.ExportTraceServiceResponse, pb.ExportTracePartialSuccess
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb
    return pb.ExportLogsServiceRequest, pb.ExportLogsServiceResponse, pb.ExportLogsPartialSuccess


def _hex_ids(value: Any) -> Any:
    """MessageToDict writes bytes as base64; OTLP/JSON writes trace and span ids as hex."""
    if isinstance(value, dict):
        return {k: (_b64_to_hex(v) if k in _ID_KEYS and isinstance(v, str) else _hex_ids(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


def _b64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()


def _gunzip(body: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, MAX_DECODED_BYTES)
    except zlib.error as err:
        raise BadExport(400, f"gzip body does not decompress: {err}") from None
    if d.unconsumed_tail:
        raise BadExport(413, f"request inflates beyond {MAX_DECODED_BYTES >> 20} MB")
    return out


def decode_export(kind: str, body: bytes, content_type: str, content_encoding: str = "") -> dict:
    """One OTLP/HTTP request body (``kind``: traces or logs) → the OTLP/JSON document."""
    if content_encoding.strip().lower() == "gzip":
        body = _gunzip(body)
    elif content_encoding.strip().lower() not in ("", "identity"):
        raise BadExport(415, f"Content-Encoding {content_encoding[:40]!r} (gzip or none)")
    media = content_type.split(";")[0].strip().lower()
    if media == PROTOBUF:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError

        request_type = _proto_types(kind)[0]
        try:
            message = request_type.FromString(body)
        except DecodeError as err:
            raise BadExport(400, f"not an OTLP {kind} protobuf request: {err}") from None
        return _hex_ids(MessageToDict(message, use_integers_for_enums=True))
    if media == JSON:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise BadExport(400, f"invalid JSON: {err}") from None
        if not isinstance(doc, dict):
            raise BadExport(400, "an OTLP/JSON request is an object")
        return doc
    raise BadExport(415, f"Content-Type {content_type[:60]!r}: {PROTOBUF} or {JSON}")


def encode_response(kind: str, media: str, rejected: int, message: str) -> bytes:
    """The OTLP export response, with ``partial_success`` when records were rejected."""
    field = "rejected_spans" if kind == "traces" else "rejected_log_records"
    if media == JSON:
        if not rejected:
            return b"{}"
        camel = "rejectedSpans" if kind == "traces" else "rejectedLogRecords"
        return orjson.dumps({"partialSuccess": {camel: rejected, "errorMessage": message}})
    _req, response_type, partial_type = _proto_types(kind)
    response = response_type()
    if rejected:
        response.partial_success.CopyFrom(partial_type(**{field: rejected, "error_message": message}))
    return response.SerializeToString()


class OtlpReceiver:
    """The receiver's state: the adapter, the Kafka producer, counts."""

    def __init__(self, settings: Settings, producer=None) -> None:
        from .kafka_io import producer as make_producer

        self.settings = settings
        self.adapter = StreamAdapter("otel", settings.adapter_dedupe_ids, settings.otel_join_timeout_s)
        self.producer = producer if producer is not None else make_producer(settings)
        self.counts: Counter = Counter()
        self.watch = BlindSpotWatch(settings.content_less_warn_share)

    async def deliver(self, items: list) -> tuple[int, list[str]]:
        """Produce events and dead letters; wait for the broker. Returns (rejected records,
        what was not delivered: event ids, or a note); empty when all is on the broker."""
        failed: list[str] = []
        rejected = 0
        for item in items:
            if isinstance(item, BadEvent):
                rejected += 1
                self._produce(self.settings.topic_dlq, b"", orjson.dumps(getattr(item, "record", None)), None,
                              failed, headers={"dg-reason": item.reason.encode(),
                                               "dg-detail": item.detail.encode("utf-8", "replace"),
                                               "dg-source": b"otlp-receiver"})
            else:
                self._produce(self.settings.topic_requests, item["account_id"].encode(), orjson.dumps(item),
                              item["event_id"], failed)
        if items:
            left = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, DELIVERY_TIMEOUT_S)
            if left:
                failed.append(f"{left} messages still queued")
        self.counts["delivery_failed"] += len(failed)
        self.counts["produced"] += max(0, len(items) - len(failed))
        return rejected, failed

    def _produce(self, topic: str, key: bytes, value: bytes, event_id: str | None, failed: list[str],
                 headers: dict | None = None) -> None:
        def on_delivery(err, _msg):
            if err is not None:
                failed.append(event_id or "dead letter")
        produce_waiting(self.producer, topic, key=key, value=value, headers=headers, on_delivery=on_delivery)

    async def handle(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            body = await request.read()   # aiohttp has inflated a gzip body already (client_max_size applies)
            doc = decode_export(kind, body, request.headers.get("Content-Type", ""))
            if kind == "traces" and "resourceSpans" not in doc or kind == "logs" and "resourceLogs" not in doc:
                raise BadExport(400, f"not an OTLP {kind} export request")
        except BadExport as err:
            self.counts[f"bad_request_{err.status}"] += 1
            return web.Response(status=err.status, text=str(err))
        self.counts[f"requests_{kind}"] += 1
        items = self.adapter.feed_doc(doc, time.monotonic())
        rejected, undelivered = await self.deliver(items)
        if undelivered:
            self.adapter.forget(i["event_id"] for i in items if isinstance(i, dict))
            return web.Response(status=503, text="Kafka did not confirm delivery; retry")
        bad = [i for i in items if isinstance(i, BadEvent)]
        message = "; ".join(sorted({f"{b.reason}: {b.detail}" for b in bad}))[:500]
        out = encode_response(kind, JSON if media == JSON else PROTOBUF, rejected, message)
        return web.Response(status=200, body=out, content_type=JSON if media == JSON else PROTOBUF)

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def stats(self) -> dict:
        return {"adapter": dict(self.adapter.stats), "waiting_spans": len(self.adapter.joiner), **self.counts}

    async def release_spans(self) -> None:
        """Forward spans whose log records did not come in time (content-less); warn when blind."""
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(EXPIRE_EVERY_S)
            items = self.adapter.expire(time.monotonic())
            if items:
                _rejected, undelivered = await self.deliver(items)
                if undelivered:
                    log.error("%d events released after the log join were not delivered to Kafka", len(undelivered))
            if time.monotonic() - last_check >= 60:
                last_check = time.monotonic()
                stats = self.adapter.stats
                warning = self.watch.check(stats["forwarded"], stats["content_less"])
                if warning:
                    log.warning(warning)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/{kind:traces|logs}", self.handle)
        app.router.add_get("/status", self.status)

        async def background(app):
            task = asyncio.create_task(self.release_spans())
            yield
            task.cancel()
            items = self.adapter.flush()   # a normal stop forwards what still waits, content-less
            if items:
                await self.deliver(items)
            await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, DELIVERY_TIMEOUT_S)

        app.cleanup_ctx.append(background)
        return app


def add_arguments(p) -> None:
    p.add_argument("--host", help="address to listen on (default DG_OTLP_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default DG_OTLP_PORT, 4318, the OTLP/HTTP port)")


def run(args) -> int:
    from . import logs
    from .errors import UserError
    from .kafka_io import check_broker
    from .settings import load_settings

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    check_broker(settings)   # KafkaUnavailable is a UserError: one line, exit 2
    host = args.host or settings.otlp_host
    port = args.port or settings.otlp_port
    receiver = OtlpReceiver(settings)
    print(f"distillguard otlp-receiver: http://{host}:{port}/v1/traces and /v1/logs (OTLP/HTTP, protobuf or "
          f"JSON) -> Kafka {settings.kafka_bootstrap} topic {settings.topic_requests}; status at /status",
          file=sys.stderr, flush=True)
    try:
        web.run_app(receiver.build_app(), host=host, port=port, print=None, handle_signals=True)
    except OSError as err:
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return 0
