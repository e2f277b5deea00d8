"""Plain confluent-kafka helpers: topic creation, producing events, reading alerts.

Producers use the ``murmur2_random`` partitioner, the Java client's default,
so that a key lands on the same partition whichever client (gateway, our
simulator, the Faust worker) produced it.
"""
from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterable, Iterator

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .errors import UserError
from .kafka_config import client_config, describe_auth
from .logs import KAFKA_LOGGER, PROBE_LOGGER
from .settings import Settings


class KafkaUnavailable(UserError):
    """The broker did not answer, or refused our credentials; ``reason`` is the short cause,
    the message adds the fix."""

    def __init__(self, reason: str, fix: str = "start one with `make broker`", fatal: bool = False):
        super().__init__(f"{reason}; {fix}" if fix else reason)
        self.reason = reason
        self.fatal = fatal   # waiting will not help (refused credentials or certificate): start-up stops at once


def admin(settings: Settings, logger: str = KAFKA_LOGGER, **extra) -> AdminClient:
    return AdminClient(client_config(settings, logger, **extra))


def _listening(bootstrap: str, timeout: float = 1.0) -> bool:
    """Does anything accept a TCP connection at one of the bootstrap addresses? (A refused
    connection answers at once; librdkafka would retry it until the metadata timeout.)"""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def check_broker(settings: Settings, timeout: float = 5.0) -> None:
    """Raise ``KafkaUnavailable`` (one line, with the fix) unless a broker answers a metadata
    request: nobody listens, nobody answered, authentication (SASL or TLS) failed, or a TLS
    handshake failed. librdkafka's own connection errors go to the (silent) probe logger and
    its ``error_cb``: this line says it."""
    if not _listening(settings.kafka_bootstrap, min(timeout, 2.0)):
        raise KafkaUnavailable(f"nothing accepts connections at {settings.kafka_bootstrap}")
    errors: list = []     # librdkafka reports auth and TLS failures only through error_cb
    client = admin(settings, PROBE_LOGGER, error_cb=errors.append)
    try:
        md = client.list_topics(timeout=timeout)
    except KafkaException as err:
        client.poll(0.5)   # error_cb runs from poll()
        auth = _connection_error(errors)
        cause = auth or (err.args[0].str() if err.args else str(err))
        raise KafkaUnavailable(
            f"cannot use the Kafka broker at {settings.kafka_bootstrap} ({describe_auth(settings)}): {cause}",
            "check the DG_KAFKA_SECURITY_PROTOCOL, DG_KAFKA_SASL_* and DG_KAFKA_SSL_* settings" if auth
            else "start one with `make broker`", fatal=bool(auth)) from None
    if not md.brokers:
        raise KafkaUnavailable(f"no Kafka broker answered at {settings.kafka_bootstrap}")


def _connection_error(errors: list) -> str:
    """The first authentication or TLS error librdkafka reported, as text ('' if none)."""
    for err in errors:
        text = err.str()
        if err.code() == KafkaError._AUTHENTICATION or "SSL" in text or "SASL" in text:
            return text.split(": ", 1)[1] if text.startswith(("127.", "sasl", "ssl")) or "/" in text.split(":", 1)[0] else text
    return ""


def topic_specs(settings: Settings) -> dict[str, int]:
    """Topic name -> partitions for every topic distillguard reads or writes itself."""
    specs = {
        settings.topic_requests: settings.partitions,
        settings.topic_dlq: settings.dlq_partitions,
        settings.topic_alerts: settings.alerts_partitions,
        settings.topic_sink: settings.partitions,
        f"{settings.topic_sink}.dlq": 1,   # rows ClickHouse rejects for good (streams/sink.py)
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
        specs[settings.topic_ocsf] = settings.alerts_partitions
    return specs


class TopicMismatch(UserError):
    """An existing topic cannot work with the settings (the message says which and how to fix it)."""


def topic_differences(settings: Settings, actual: dict[str, tuple[int, int]]) -> tuple[list[str], list[str]]:
    """Compare existing topics (name -> (partitions, replication factor)) with what the settings
    declare. Returns (errors, warnings), one line each. Only the request topic must match: the
    account-state table's changelog is partitioned like it, so a different count would send
    states to partitions that do not exist. Elsewhere a difference works but is worth knowing."""
    errors, warnings = [], []
    for name, want in topic_specs(settings).items():
        if name not in actual:
            continue
        partitions, replicas = actual[name]
        if partitions != want:
            line = f"topic {name} has {partitions} partitions, the settings expect {want} ({_partition_setting(settings, name)})"
            if name == settings.topic_requests:
                errors.append(f"{line}; the account-state table is partitioned like it: "
                              f"set DG_PARTITIONS={partitions}")
            else:
                warnings.append(f"{line}; it works, set the setting to {partitions} to match")
        if replicas != settings.replication_factor:
            warnings.append(f"topic {name} has replication factor {replicas}, DG_REPLICATION_FACTOR is "
                            f"{settings.replication_factor}" + (" (a broker loss can lose its data)" if replicas < 2 else ""))
    return errors, warnings


def _partition_setting(settings: Settings, name: str) -> str:
    if name == settings.topic_alerts or name == settings.topic_ocsf:
        return "DG_ALERTS_PARTITIONS"
    if name == settings.topic_dlq:
        return "DG_DLQ_PARTITIONS"
    if name == settings.topic_cluster:
        return "always 1"
    return "DG_PARTITIONS"


def check_topics(settings: Settings) -> list[str]:
    """Raise TopicMismatch if an existing topic cannot work with the settings; return warnings."""
    md = admin(settings).list_topics(timeout=10)
    actual = {name: (len(t.partitions), len(t.partitions[0].replicas) if 0 in t.partitions else 0)
              for name, t in md.topics.items() if t.error is None}
    errors, warnings = topic_differences(settings, actual)
    if errors:
        raise TopicMismatch("; ".join(errors))
    return warnings


STATE_TABLE = "account-state"   # the worker's Faust table of account states (streams/app.py)


def state_changelog(settings: Settings) -> str:
    """The name Faust gives the state table's changelog topic (``{app id}-{table}-changelog``)."""
    return f"{settings.app_id}-{STATE_TABLE}-changelog"


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics (idempotent), and wait until the broker's metadata shows each new one
    with all its partitions; return the names created now.

    The state table's changelog is created here too (compacted, partitioned like the requests),
    before the worker's Faust app starts. Created by Faust at start, it could still be without
    partitions in the metadata the consumer took when it joined its group; Faust's check of the
    table's first write then read 0 partitions, raised ``PartitionsMismatch``, and the detect
    agent stopped for good (seen once, in a CI run on a fresh broker)."""
    check_broker(settings)
    client = admin(settings)
    existing = set(client.list_topics(timeout=10).topics)
    changelog = state_changelog(settings)
    wanted = {**topic_specs(settings), changelog: settings.partitions}
    new = [NewTopic(name, num_partitions=n, replication_factor=settings.replication_factor,
                    config={"cleanup.policy": "compact"} if name == changelog else {})
           for name, n in wanted.items() if name not in existing]
    if not new:
        return []
    for name, future in client.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise
    _wait_visible(client, {t.topic: wanted[t.topic] for t in new}, timeout)
    return [t.topic for t in new]


def _wait_visible(client, partitions: dict[str, int], timeout: float) -> None:
    """Until the metadata shows every topic of ``partitions`` with that many partitions, each with
    a leader; raises TimeoutError naming the ones that are not there after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        topics = client.list_topics(timeout=10).topics
        missing = [name for name, n in partitions.items()
                   if name not in topics or topics[name].error is not None or len(topics[name].partitions) != n
                   or any(p.leader < 0 for p in topics[name].partitions.values())]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics created but not visible with their partitions after {timeout:.0f}s: "
                               + ", ".join(missing))
        time.sleep(0.1)


def group_offsets(consumer: Consumer, topic: str, timeout: float) -> tuple[int, int, bool] | None:
    """Where the group of ``consumer`` stands on ``topic``: (records between its committed offsets
    and the log's end, those offsets summed, whether any partition has a commit), a partition
    without one counted from the log's start; None if the broker does not know the topic.
    ``consumer`` only asks: it need not be subscribed (the doctor's and the sink's probes)."""
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    waiting = summed = 0
    any_commit = False
    for tp in consumer.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=timeout):
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        at = tp.offset if tp.offset >= 0 else low
        any_commit = any_commit or tp.offset >= 0
        waiting += max(0, high - at)   # offsets past the end (a topic made again) wait for nothing
        summed += at
    return waiting, summed, any_commit


def producer(settings: Settings, **extra) -> Producer:
    config = client_config(
        settings,
        partitioner="murmur2_random",
        **{"linger.ms": 20, "batch.num.messages": 10000, "compression.type": "lz4", "enable.idempotence": True,
           "queue.buffering.max.messages": 200000},
    )
    config.update(extra)
    return Producer(config)


def produce_waiting(p: Producer, topic: str, **message) -> None:
    """``p.produce(topic, **message)``; while the client's local queue is full, serve delivery
    reports (which empties it) and try again: a message is never dropped for want of room."""
    while True:
        try:
            p.produce(topic, **message)
            return
        except BufferError:
            p.poll(0.05)


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
        produce_waiting(p, topic, value=value, key=key, on_delivery=on_delivery)
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
    c = Consumer(client_config(settings, **{
        "group.id": group or f"distillguard-reader-{time.time_ns()}",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
    }))
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
