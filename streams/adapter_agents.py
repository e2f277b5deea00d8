"""Topic-level input adapters: gateway logs on their own topics → ``llm.requests``;
and the optional OCSF output topic (``ocsf_topic``).

When ``DG_TOPIC_LITELLM`` and/or ``DG_TOPIC_OTEL`` are set, the worker runs
one extra Faust agent per source. Each record is mapped by a
``schemas.adapter_stream.StreamAdapter`` (dedupe window, and for
OpenTelemetry the span/log join) to a contract-v1 event and forwarded to the
requests topic keyed by ``account_id`` (so it lands on the partition of that
account whichever client produced it); a record that cannot be mapped goes to
the DLQ with its original bytes and ``dg-reason``/``dg-detail``/``dg-source``
headers, like a bad request event (``streams/dlq.py``, values cut to 900 kB as
there). A timer releases OpenTelemetry spans whose
log records did not come within ``DG_OTEL_JOIN_TIMEOUT_S`` (content-less).
Counts per source and outcome are returned by ``register_adapter_agents`` (and
shown on ``/distillguard/`` and ``/metrics``). Spans waiting for their logs live in memory only: a worker
killed in that window loses them (their offsets are committed).

Every worker also watches its blind spot (``models.coverage``, ``watch_blind_spot``): a warning in
the log when more than ``DG_CONTENT_LESS_WARN_SHARE`` of the events it read
carried no prompt text, and per-minute counts in ClickHouse (``content_minute``)
for ``distillguard report``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping

import orjson

from distillguard.models.coverage import BlindSpotWatch
from distillguard.models.rows import ContentMinuteRow
from distillguard.schemas.adapter_stream import StreamAdapter
from distillguard.schemas.event import BadEvent

from .dlq import dlq_record
from .faust_stream import RawSchema
from .settings import Settings
from .sink import sink_messages

log = logging.getLogger("distillguard.adapters")
BLIND_SPOT_CHECK_S = 60.0
BLIND_SPOT_ROW_S = 10.0
JOIN_EXPIRY_S = 1.0


class AdapterStats(Mapping):
    """Source → its adapter's current counts (what the status and metrics pages read)."""

    def __init__(self, adapters: dict[str, StreamAdapter]) -> None:
        self.adapters = adapters

    def __getitem__(self, source: str):
        return self.adapters[source].stats

    def __iter__(self) -> Iterator[str]:
        return iter(self.adapters)

    def __len__(self) -> int:
        return len(self.adapters)


def adapter_topics(settings: Settings) -> dict[str, str]:
    """Source name → topic for the adapters that are switched on."""
    return {src: topic for src, topic in (("litellm", settings.topic_litellm), ("otel", settings.topic_otel))
            if topic}


def register_adapter_agents(app, settings: Settings, requests_topic, dlq_topic) -> AdapterStats:
    """Add one forwarding agent per configured source (and the join-expiry timer); return the
    per-source counts."""
    adapters: dict[str, StreamAdapter] = {}
    for source, topic_name in adapter_topics(settings).items():
        adapter = adapters[source] = StreamAdapter(source, settings.adapter_dedupe_ids, settings.otel_join_timeout_s)
        # internal=True: Faust creates the topic (if missing) when the agent subscribes to it
        topic = app.topic(topic_name, schema=RawSchema(), partitions=settings.partitions, internal=True)
        app.agent(topic, name=f"distillguard.adapter.{source}")(_make_agent(source, adapter, requests_topic,
                                                                           dlq_topic, settings))
    if "otel" in adapters:
        @app.timer(interval=JOIN_EXPIRY_S)
        async def _release_spans_without_logs() -> None:
            for item in adapters["otel"].expire(time.monotonic()):
                value = orjson.dumps(getattr(item, "record", None)) if isinstance(item, BadEvent) else b""
                await _forward(item, None, value, "otel-join-timeout", requests_topic, dlq_topic)
    return AdapterStats(adapters)


def watch_blind_spot(app, settings: Settings, sink_topic, counts: Callable[[], tuple[int, int]]) -> None:
    """Every BLIND_SPOT_ROW_S: a ``content_minute`` row (events, content-less events) for the report;
    every BLIND_SPOT_CHECK_S: the warning when the share is high. ``counts()`` gives the worker's
    (events read, events without prompt text) so far."""
    watch = BlindSpotWatch(settings.content_less_warn_share)
    last = {"events": 0, "content_less": 0, "checked": time.monotonic()}

    @app.timer(interval=BLIND_SPOT_ROW_S)
    async def _record_blind_spot() -> None:
        events, blind = counts()
        if events > last["events"]:
            minute = int(time.time()) // 60 * 60
            row = ContentMinuteRow(minute, events - last["events"], blind - last["content_less"])
            for value in sink_messages([row]):
                await sink_topic.send(value=value)
            last.update(events=events, content_less=blind)
        if time.monotonic() - last["checked"] >= BLIND_SPOT_CHECK_S:
            last["checked"] = time.monotonic()
            warning = watch.check(events, blind)
            if warning:
                log.warning(warning)


def ocsf_topic(app, settings: Settings):
    """The OCSF output topic when ``DG_TOPIC_OCSF`` is set (created at worker start if missing), else None."""
    if not settings.topic_ocsf:
        return None
    topic = app.topic(settings.topic_ocsf, key_serializer="raw", value_serializer="raw", partitions=1,
                      internal=True)

    @app.task
    async def _declare_ocsf_topic() -> None:
        await topic.maybe_declare()

    return topic


async def _forward(item, key: bytes | None, value: bytes, where: str, requests_topic, dlq_topic) -> None:
    """A mapped event to the requests topic, a bad record to the DLQ (original bytes, reason headers)."""
    if isinstance(item, BadEvent):
        value, headers = dlq_record(value, item.reason, item.detail, where)
        await dlq_topic.send(key=key, value=value, headers=headers)
    else:
        await requests_topic.send(key=item["account_id"].encode(), value=orjson.dumps(item))


def _make_agent(source: str, adapter: StreamAdapter, requests_topic, dlq_topic, settings: Settings):
    async def adapt(stream):
        async for event in stream.events():
            msg = event.message
            value = msg.value or b""
            if len(value) > settings.max_event_bytes * 16:
                items = [BadEvent("too_large", f"{len(value)} bytes")]
                adapter.stats_add(items)
            else:
                items = adapter.feed(value, time.monotonic())
            where = f"{msg.topic}/{msg.partition}/{msg.offset}"
            for item in items:
                await _forward(item, msg.key, value, where, requests_topic, dlq_topic)
    adapt.__name__ = adapt.__qualname__ = f"adapt_{source}"
    return adapt
