"""Faust wiring of cross-account (hydra) detection: the three stages of
``models/linking.py`` and ``models/clusters.py`` as agents.

::

    [detect]  (streams/app.py) LinkObserver: ≤ 1 observation per account+key per few minutes
        │  ──► DG_TOPIC_LINKS (partition = murmur2(link key fingerprint), DG_PARTITIONS partitions;
        │      one message per partition per detect batch: a JSON array of observations)
    [link]    Linker per partition: bounded per-key account sketches ──► pair evidence
        │  ──► DG_TOPIC_CLUSTER (ONE partition; one JSON array of evidence per links message)
    [cluster] ClusterEngine: union-find, collective scores, alert lifecycle
           ──► llm.alerts (cluster alerts), distillguard.sink (alert_events, cluster_members)

Partition safety. Link observations are partitioned by link key (the
murmur2 partitioner of the Java client and of Faust's producer, as if the
link key were the message key), so every observation of one key reaches the
same linker, whichever worker owns the account. They travel in batches, one
message per partition per detect batch: per-message costs (a produce, a Faust
event on the linker's side) are paid per batch, not per observation. Readers
also accept the single-object form (one observation or evidence per
message) that earlier versions wrote. Clusters span keys and partitions, so the cluster stage runs as a
single instance cluster-wide: its topic has one partition, and Kafka gives
that partition to exactly one worker of the group. That is acceptable
because its input is small -- observations are deduplicated per account and
key (at most one per key per 3 minutes, 30 for payment/system prompt/client),
keys shared by too many accounts emit nothing, and each observation yields
one evidence message.

State. Linker sketches and cluster state live in memory, bounded (see the
module docstrings). After a restart or rebalance they refill from new
traffic within the pairing window (2 h of event time); cluster ids are
derived from event-time facts (earliest member, hour of first link), so a
rebuilt cluster gets the same id and alert id within the hour.
"""
from __future__ import annotations

import logging
import time

import orjson
from aiokafka.partitioner import murmur2

from distillguard.models.clusters import STREAM_SETTLE, ClusterEngine
from distillguard.models.features import extract
from distillguard.models.linking import Linker, LinkObserver
from distillguard.models.memo import Memo

from .settings import Settings
from .sink import alert_row, sink_message

log = logging.getLogger("distillguard.clusters")


# A links or evidence message stays well below the producer's (and the broker's) default
# 1 MB limit: a larger batch is split (DG_BATCH_MAX and DG_PARTITIONS set how many observations
# one partition gets per batch).
MAX_BATCH_MESSAGE_BYTES = 256 * 1024
_HASHES = Memo("cluster_agents.link_hashes", 100_000)  # link key -> murmur2 (pure Python: ~5 µs)


def link_partition(link_key: str, partitions: int) -> int:
    """The links partition of a link key: what Kafka's default (murmur2) partitioner would
    choose with the link key as message key, so every observation of one key, whichever
    worker or version sent it, reaches the same linker."""
    h = _HASHES.get(link_key)
    if h is None:
        h = murmur2(link_key.encode()) & 0x7FFFFFFF
        _HASHES.put(link_key, h)
    return h % partitions


def batch_messages(items: list, limit: int = MAX_BATCH_MESSAGE_BYTES) -> list[bytes]:
    """``items`` as JSON arrays of at most ``limit`` bytes each (unless one item alone is larger)."""
    raw = orjson.dumps(items)
    if len(raw) <= limit or len(items) == 1:
        return [raw]
    half = len(items) // 2
    return batch_messages(items[:half], limit) + batch_messages(items[half:], limit)


def _batch(raw: bytes) -> list:
    """A links or evidence message: a JSON array of objects, or (earlier versions) one object."""
    doc = orjson.loads(raw)
    return doc if isinstance(doc, list) else [doc]


class ClusterIO:
    """What the detect agent needs: ``observe(event, detector)`` after ``detector.process_one``,
    and ``await flush()`` once per batch, before the batch's producer flush."""

    def __init__(self, observer: LinkObserver, links_topic, key: bytes, partitions: int):
        self.observer = observer
        self.links = links_topic
        self.key = key
        self.partitions = partitions
        self.pending: dict[int, list[dict]] = {}   # links partition -> observations not sent yet
        self.observations = 0
        self.evidence = 0
        self.cluster_alerts = 0
        self.engine: ClusterEngine | None = None
        self.linker: Linker | None = None

    def observe(self, event, detector) -> None:
        features = getattr(detector, "last_features", None)
        if features is None or features.event_id != event.event_id:
            features = extract(event, self.key)
        for obs in self.observer.observe(event, features):
            self.observations += 1
            self.pending.setdefault(link_partition(obs["k"], self.partitions), []).append(obs)

    async def flush(self) -> None:
        """Send the observations of the batch: one message per links partition."""
        pending, self.pending = self.pending, {}
        for partition, batch in pending.items():
            for value in batch_messages(batch):
                await self.links.send(value=value, partition=partition)

    def bounds(self) -> dict:
        """The cross-account stages' ``models.memo.Bounds`` (those of this worker)."""
        out = self.observer.bounds()
        for stage in (self.linker, self.engine):
            if stage is not None:
                out.update(stage.bounds())
        return out

    def stats(self) -> dict:
        out = {"observations": self.observations, "evidence": self.evidence, "cluster_alerts": self.cluster_alerts}
        if self.engine is not None:
            out.update(self.engine.stats())
        return out


def register_cluster_agents(app, settings: Settings, detector, emit_alert, sink_topic) -> ClusterIO:
    """Declare the link topic, the cluster topic and the linker and cluster agents on ``app``.
    ``await emit_alert(alert)`` publishes an alert exactly as the per-account agent does."""
    links = app.topic(settings.topic_links, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=settings.partitions)
    evidence = app.topic(settings.topic_cluster, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=1)
    io = ClusterIO(LinkObserver(detector.key), links, detector.key, settings.partitions)
    linker = io.linker = Linker()
    engine = io.engine = ClusterEngine(detector.config, settle=STREAM_SETTLE)
    quiet = {"since": time.monotonic(), "flushed": True}

    async def publish(out: list) -> None:
        for alert in out:
            io.cluster_alerts += 1
            await emit_alert(alert)
        if out:
            await sink_topic.send(value=sink_message("alert_events", [alert_row(a) for a in out]))
        rows = engine.drain_rows()
        if rows:
            await sink_topic.send(value=sink_message(
                "cluster_members", [[c, a, ts, score, orjson.dumps(ev).decode()] for c, a, ts, score, ev in rows]))

    @app.agent(links)
    async def link(stream):
        async for raw in stream:
            try:
                batch = _batch(raw)
            except orjson.JSONDecodeError as err:
                log.error("link: skipped a malformed link observation message (%s)", err)
                continue
            out = []
            for obs in batch:
                try:
                    msg = linker.process(obs)
                except (KeyError, TypeError, AttributeError) as err:
                    log.error("link: skipped a malformed link observation (%s)", err)
                    continue
                if msg is not None:
                    out.append(msg)
            if out:
                io.evidence += len(out)
                for value in batch_messages(out):
                    await evidence.send(key=b"cluster", value=value)

    @app.agent(evidence)
    async def cluster(stream):
        async for raw in stream:
            try:
                batch = _batch(raw)
            except orjson.JSONDecodeError as err:
                log.error("cluster: skipped a malformed pair evidence message (%s)", err)
                continue
            out: list = []
            for msg in batch:
                try:
                    out.extend(engine.process(msg))
                except (KeyError, TypeError, AttributeError) as err:
                    log.error("cluster: skipped malformed pair evidence (%s)", err)
                    continue
                out.extend(engine.advance())
            quiet["since"], quiet["flushed"] = time.monotonic(), False
            await publish(out)

    @app.timer(0.25)
    async def settle_when_quiet() -> None:
        # no evidence for a while: every source has delivered, score what waits to settle
        if not quiet["flushed"] and time.monotonic() - quiet["since"] >= 0.5:
            quiet["flushed"] = True
            await publish(engine.flush())

    app.distillguard_clusters = io
    return io
