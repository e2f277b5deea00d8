"""Topic-level input adapters: gateway logs on their own topics → ``llm.requests``;
and the optional OCSF output topic (``ocsf_topic``).

When ``DG_TOPIC_LITELLM`` and/or ``DG_TOPIC_OTEL`` are set, the worker runs
one extra Faust agent per source. Each record is mapped by
``schemas.adapters`` to a contract-v1 event and forwarded to the requests
topic keyed by ``account_id`` (so it lands on the partition of that account
whichever client produced it); a record that cannot be mapped goes to the
DLQ with its original bytes and ``dg-reason``/``dg-detail``/``dg-source``
headers, like a bad request event (``streams/dlq.py``, values cut to 900 kB as
there). Counts per source and outcome are returned by ``register_adapter_agents``
(and shown on ``/metrics``).
"""
from __future__ import annotations

import logging
from collections import Counter

import orjson

from distillguard.schemas.adapters import adapt_bytes
from distillguard.schemas.event import BadEvent

from .dlq import send_to_dlq
from .settings import Settings

log = logging.getLogger("distillguard.adapters")


def adapter_topics(settings: Settings) -> dict[str, str]:
    """Source name → topic for the adapters that are switched on."""
    return {src: topic for src, topic in (("litellm", settings.topic_litellm), ("otel", settings.topic_otel))
            if topic}


def register_adapter_agents(app, settings: Settings, requests_topic, dlq_topic) -> dict[str, Counter]:
    """Add one forwarding agent per configured source; return the per-source counters."""
    stats: dict[str, Counter] = {}
    for source, topic_name in adapter_topics(settings).items():
        stats[source] = Counter()
        # internal=True: Faust creates the topic (if missing) when the agent subscribes to it
        topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw", partitions=settings.partitions, internal=True)
        app.agent(topic, name=f"distillguard.adapter.{source}")(_make_agent(source, stats[source], requests_topic,
                                                                           dlq_topic, settings))
    return stats


def ocsf_topic(app, settings: Settings):
    """The OCSF output topic when ``DG_TOPIC_OCSF`` is set (created at worker start if missing), else None."""
    if not settings.topic_ocsf:
        return None
    topic = app.topic(settings.topic_ocsf, key_serializer="raw", value_serializer="raw", partitions=settings.alerts_partitions,
                      internal=True)

    @app.task
    async def _declare_ocsf_topic() -> None:
        await topic.maybe_declare()

    return topic


def _make_agent(source: str, counts: Counter, requests_topic, dlq_topic, settings: Settings):
    async def adapt(stream):
        async for event in stream.events():
            msg = event.message
            value = msg.value or b""
            if len(value) > settings.max_event_bytes * 16:
                items = [BadEvent("too_large", f"{len(value)} bytes")]
            else:
                items = adapt_bytes(source, value)
            for item in items:
                if isinstance(item, BadEvent):
                    counts[f"dlq_{item.reason}"] += 1
                    await send_to_dlq(dlq_topic, msg, item.reason, item.detail)
                    continue
                counts["forwarded"] += 1
                await requests_topic.send(key=item["account_id"].encode(), value=orjson.dumps(item))
    adapt.__name__ = adapt.__qualname__ = f"adapt_{source}"
    return adapt
