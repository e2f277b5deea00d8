"""Faust wiring of cross-account (hydra) detection: the stage objects of
``models/pipeline.py`` (``LinkObserver``, ``Linker``, ``ClusterStage``) in three
agents, which only parse, route their typed outputs between topics and write
them out; ``distillguard replay`` chains the same objects in-process
(``CrossAccountPipeline``).

::

    [detect]  (streams/app.py) LinkObserver: ≤ 1 observation per account+key per few minutes
        │  ──► DG_TOPIC_LINKS (partition = murmur2(link key fingerprint), DG_PARTITIONS partitions;
        │      one message per partition per detect batch: a JSON array of observations)
    [link]    Linker per partition: bounded per-key account sketches ──► pair evidence
        │  ──► DG_TOPIC_CLUSTER (ONE partition; one evidence message per links message: its
        │      items, each account summary once, ``records.evidence_message``)
    [cluster] ClusterEngine: union-find, collective scores, alert lifecycle
           ──► llm.alerts (cluster alerts), distillguard.sink (alert_events, cluster_members)

Partition safety. Link observations are partitioned by link key (the
murmur2 partitioner of the Java client and of Faust's producer, as if the
link key were the message key), so every observation of one key reaches the
same linker, whichever worker owns the account. They travel in batches, one
message per partition per detect batch: per-message costs (a produce, a Faust
event on the linker's side) are paid per batch, not per observation. Readers
also accept the single-object form (one observation or evidence per
message) that earlier versions wrote; the objects' wire form (``LinkObservation.to_wire``,
``PairEvidence.to_wire``) is the short-key JSON of earlier versions. Evidence messages are
version 2 (``records.evidence_message``: each account summary once per message, 56% of the
bench's bytes), which workers before it cannot read: a rolling upgrade from them runs with
``DG_CLUSTER_WIRE=1`` until every worker is upgraded. Clusters span keys and partitions, so
the cluster stage runs as a single instance cluster-wide: its topic has one partition, and Kafka gives
that partition to exactly one worker of the group. Its input is small --
observations are deduplicated per account and key (at most one per key per 3
minutes, 30 for payment/system prompt/client), keys shared by too many
accounts emit nothing, and each observation yields at most one evidence
message -- but not free: ``python -m distillguard.streams.cluster_ceiling``
measures at what total request rate it fills one core (README,
"Cross-account detection"). Most of its work, the pair state, is in
``PairShard``s (``models/pair_shards.py``), split by pair, so it can move to
other partitions without changing a decision; here the engine runs one.

State. Linker sketches and cluster state live in memory, bounded (see the
module docstrings). After a restart or rebalance they refill from new
traffic within the pairing window (2 h of event time); cluster ids are
derived from event-time facts (earliest member, hour of first link), so a
rebuilt cluster gets the same id and alert id within the hour.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from aiokafka.partitioner import murmur2

from distillguard.models.config import DetectorConfig
from distillguard.models.feedback import FeedbackBook
from distillguard.models.linking import Linker, LinkObserver
from distillguard.models.memo import Memo
from distillguard.models.pipeline import ClusterOutput, ClusterStage
from distillguard.models.records import LinkObservation, LinkRecord, PairEvidence, evidence_items, evidence_message
from distillguard.models.rows import AlertEventRow

from .faust_stream import RawSchema
from .settings import Settings
from .sink import publish_rows_then_alerts

log = logging.getLogger("distillguard.clusters")


# A links or evidence message stays well below the producer's (and the broker's) default
# 1 MB limit: a larger batch is split (DG_BATCH_MAX and DG_PARTITIONS set how many observations
# one partition gets per batch).
MAX_BATCH_MESSAGE_BYTES = 256 * 1024
_HASHES = Memo("cluster_agents.link_hashes", 100_000)  # link key -> murmur2 (pure Python: ~5 µs)
MALFORMED = (LookupError, TypeError, ValueError, AttributeError)   # what from_wire raises on a bad item


def link_partition(link_key: str, partitions: int) -> int:
    """The links partition of a link key: what Kafka's default (murmur2) partitioner would
    choose with the link key as message key, so every observation of one key, whichever
    worker or version sent it, reaches the same linker."""
    h = _HASHES.get(link_key)
    if h is None:
        h = murmur2(link_key.encode()) & 0x7FFFFFFF
        _HASHES.put(link_key, h)
    return h % partitions


def batch_messages(items: list, limit: int = MAX_BATCH_MESSAGE_BYTES, encode=orjson.dumps) -> list[bytes]:
    """``items`` as messages of at most ``limit`` bytes each (unless one item alone is larger):
    ``encode(part)`` for consecutive parts of ``items`` (default: a JSON array)."""
    raw = encode(items)
    if len(raw) <= limit or len(items) == 1:
        return [raw]
    half = len(items) // 2
    return batch_messages(items[:half], limit, encode) + batch_messages(items[half:], limit, encode)


def evidence_messages(items: list[PairEvidence], version: int = 2) -> list[bytes]:
    """The linker's evidence for one links message, as evidence messages of wire ``version``
    (``records.evidence_message``; a split message carries the summaries its part names)."""
    return batch_messages(items, encode=lambda part: orjson.dumps(evidence_message(part, version)))


def _batch(raw: bytes) -> list:
    """A links message: a JSON array of objects, or (earlier versions) one object."""
    doc = orjson.loads(raw)
    return doc if isinstance(doc, list) else [doc]


def read_evidence(raw: bytes) -> tuple[list[PairEvidence], list[str]]:
    """An evidence message (either wire version) → (its evidence, why each item skipped was
    malformed). Raises ``orjson.JSONDecodeError`` or TypeError for a message that is not one."""
    items, table = evidence_items(orjson.loads(raw))
    found, bad = [], []
    for item in items:
        try:
            found.append(PairEvidence.from_wire(item, table))
        except MALFORMED as err:
            bad.append(f"{type(err).__name__}: {err}")
    return found, bad


class LinkPublisher:
    """Stage 1 in the detect agent: ``observe(record)`` per request (the ``LinkRecord`` of
    ``AccountStage.process``), ``await flush()`` once per batch, before the batch's producer
    flush: the observations go to the links topic, one message per partition."""

    def __init__(self, observer: LinkObserver, links_topic, partitions: int):
        self.observer = observer
        self.links = links_topic
        self.partitions = partitions
        self.pending: dict[int, list[dict]] = {}   # links partition -> observations not sent yet
        self.observations = 0

    def observe(self, record: LinkRecord) -> None:
        for obs in self.observer.observe(record):
            self.observations += 1
            self.pending.setdefault(link_partition(obs.key, self.partitions), []).append(obs.to_wire())

    async def flush(self) -> None:
        """Send the observations of the batch: one message per links partition."""
        pending, self.pending = self.pending, {}
        for partition, batch in pending.items():
            for value in batch_messages(batch):
                await self.links.send(value=value, partition=partition)


@dataclass
class CrossAccountAgents:
    """What ``register_cluster_agents`` built: the publisher for the detect agent, and the
    stages and counters for the status page."""
    publisher: LinkPublisher
    linker: Linker
    clusters: ClusterStage
    evidence: int = 0
    cluster_alerts: int = 0

    def stats(self) -> dict:
        return {"observations": self.publisher.observations, "evidence": self.evidence,
                "cluster_alerts": self.cluster_alerts, **self.clusters.stats()}

    def bounds(self) -> dict:
        """The cross-account stages' ``models.memo.Bounds`` (those of this worker)."""
        return {**self.publisher.observer.bounds(), **self.linker.bounds(), **self.clusters.engine.bounds()}


def stream_settle(partitions: int, config: DetectorConfig) -> int:
    """The cluster engine's clock window (``ClusterEngine``): with one links partition the
    evidence arrives in event order, as in a replay; with several it interleaves partitions
    consumed at different speeds."""
    return 1 if partitions == 1 else config.clusters.stream_settle


def register_cluster_agents(app, settings: Settings, config: DetectorConfig, key: bytes, emit_alert,
                            sink_topic, feedback: FeedbackBook | None = None) -> CrossAccountAgents:
    """Declare the link topic, the cluster topic and the linker and cluster agents on ``app``.
    ``await emit_alert(alert)`` publishes an alert exactly as the per-account agent does."""
    links = app.topic(settings.topic_links, schema=RawSchema(), partitions=settings.partitions)
    evidence = app.topic(settings.topic_cluster, schema=RawSchema(), partitions=1)
    agents = CrossAccountAgents(LinkPublisher(LinkObserver(key, config.clusters), links, settings.partitions),
                                Linker(config.clusters),
                                ClusterStage(config, settle=stream_settle(settings.partitions, config),
                                             feedback=feedback))
    quiet = {"since": time.monotonic(), "flushed": True}

    async def publish(out: ClusterOutput) -> None:
        agents.cluster_alerts += len(out.alerts)
        rows = [*(AlertEventRow.of(a) for a in out.alerts), *out.members]
        await publish_rows_then_alerts(app.producer, sink_topic, rows, out.alerts, emit_alert)

    wire = settings.cluster_wire

    @app.agent(links)
    async def link(stream):
        async for raw in stream:
            try:
                batch = _batch(raw)
            except orjson.JSONDecodeError as err:
                log.error("link: skipped a malformed link observation message (%s)", err)
                continue
            out = []
            for item in batch:
                try:
                    obs = LinkObservation.from_wire(item)
                except MALFORMED as err:
                    log.error("link: skipped a malformed link observation (%s)", err)
                    continue
                found = agents.linker.process(obs)
                if found is not None:
                    out.append(found)
            if out:
                agents.evidence += len(out)
                for value in evidence_messages(out, wire):
                    await evidence.send(key=b"cluster", value=value)

    @app.agent(evidence)
    async def cluster(stream):
        async for raw in stream:
            try:
                batch, bad = read_evidence(raw)
            except (orjson.JSONDecodeError, TypeError) as err:
                log.error("cluster: skipped a malformed pair evidence message (%s)", err)
                continue
            for why in bad:
                log.error("cluster: skipped malformed pair evidence (%s)", why)
            out = ClusterOutput()
            for found in batch:
                out.extend(agents.clusters.process(found))
            quiet["since"], quiet["flushed"] = time.monotonic(), False
            await publish(out)

    @app.timer(0.25)
    async def settle_when_quiet() -> None:
        # no evidence for a while: every source has delivered, score what waits to settle
        if not quiet["flushed"] and time.monotonic() - quiet["since"] >= 0.5:
            quiet["flushed"] = True
            await publish(agents.clusters.finish())

    return agents
