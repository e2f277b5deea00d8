"""Plain confluent-kafka helpers: topic creation, producing events, reading alerts.

Producers use the ``murmur2_random`` partitioner, the Java client's default,
so that a key lands on the same partition whichever client (gateway, our
simulator, the Faust worker) produced it.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

import orjson
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .settings import Settings


class KafkaUnavailable(RuntimeError):
    """The broker did not answer."""


def admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


def check_broker(settings: Settings, timeout: float = 5.0) -> None:
    try:
        md = admin(settings).list_topics(timeout=timeout)
    except KafkaException as err:
        raise KafkaUnavailable(
            f"no Kafka broker answered at {settings.kafka_bootstrap} within {timeout:.0f}s "
            f"({err.args[0].str() if err.args else err}); start one with `make broker`") from None
    if not md.brokers:
        raise KafkaUnavailable(f"no Kafka broker answered at {settings.kafka_bootstrap}")


def topic_specs(settings: Settings) -> dict[str, int]:
    """Topic name -> partitions for every topic distillguard reads or writes itself."""
    specs = {
        settings.topic_requests: settings.partitions,
        settings.topic_dlq: 1,
        settings.topic_alerts: 1,
        settings.topic_sink: settings.partitions,
        settings.topic_links: settings.partitions,
        settings.topic_cluster: 1,   # one cluster agent instance cluster-wide (streams/cluster_agents.py)
        settings.topic_feedback: 1,  # few records, every worker reads all of them (streams/feedback_agent.py)
    }
    # optional topics, when switched on: created before the worker subscribes, so its
    # first assignment already includes them
    for name in (settings.topic_litellm, settings.topic_otel):
        if name:
            specs[name] = settings.partitions
    if settings.topic_ocsf:
        specs[settings.topic_ocsf] = 1
    return specs


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics (idempotent); return the names created now."""
    check_broker(settings)
    client = admin(settings)
    existing = set(client.list_topics(timeout=10).topics)
    new = [NewTopic(name, num_partitions=n, replication_factor=1)
           for name, n in topic_specs(settings).items() if name not in existing]
    if not new:
        return []
    for name, future in client.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise
    return [t.topic for t in new]


def producer(settings: Settings, **extra) -> Producer:
    config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "partitioner": "murmur2_random",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "enable.idempotence": True,
        "queue.buffering.max.messages": 200000,
    }
    config.update(extra)
    return Producer(config)


def produce_events(settings: Settings, events: Iterable[dict | bytes], rate: float = 0.0,
                   progress: bool = True, topic: str | None = None) -> int:
    """Produce request events (dicts, or raw bytes as-is) keyed by account id.

    ``rate`` > 0 paces production to that many events per second. Returns the
    number of events whose delivery the broker confirmed; raises if any failed.
    """
    topic = topic or settings.topic_requests
    p = producer(settings)
    failures: list[str] = []
    delivered = 0

    def on_delivery(err, _msg):
        nonlocal delivered
        if err is not None:
            failures.append(str(err))
        else:
            delivered += 1

    start = last = time.perf_counter()
    sent = 0
    for ev in events:
        if isinstance(ev, (bytes, bytearray)):
            value, key = bytes(ev), _key_of(ev)
        else:
            value, key = orjson.dumps(ev), str(ev.get("account_id", "")).encode()
        while True:
            try:
                p.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        sent += 1
        p.poll(0)
        if rate > 0:
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        if progress and sent % 2000 == 0:
            now = time.perf_counter()
            if now - last >= 1.0:
                last = now
                print(f"\rproduced {sent:,} events ({sent / (now - start):,.0f}/s)", end="",
                      file=sys.stderr, flush=True)
    p.flush(60)
    elapsed = time.perf_counter() - start
    if progress:
        print(f"\rproduced {sent:,} events in {elapsed:.1f}s ({sent / max(elapsed, 1e-9):,.0f}/s)",
              file=sys.stderr, flush=True)
    if failures or delivered != sent:
        raise KafkaException(f"{sent - delivered} of {sent} events were not delivered: {failures[:3]}")
    return delivered


def _key_of(raw: bytes) -> bytes:
    """Account id of a raw event for its key; a bad event gets an empty key (it is still produced)."""
    try:
        return str(orjson.loads(raw).get("account_id", "")).encode()
    except (orjson.JSONDecodeError, AttributeError):
        return b""


def consume(settings: Settings, topic: str, group: str | None = None, timeout: float = 30.0,
            idle: float | None = None, from_beginning: bool = True) -> Iterator[tuple[bytes | None, bytes, list]]:
    """Yield (key, value, headers) from ``topic`` until ``timeout`` seconds pass,
    or ``idle`` seconds pass without a message."""
    c = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group or f"distillguard-reader-{time.time_ns()}",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                if idle is not None and time.monotonic() - quiet_since > idle:
                    return
                continue
            if msg.error():
                continue
            quiet_since = time.monotonic()
            yield msg.key(), msg.value(), msg.headers() or []
    finally:
        c.close()
