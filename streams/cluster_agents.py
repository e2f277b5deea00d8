"""Faust wiring of cross-account (hydra) detection: the three stages of
``models/linking.py`` and ``models/clusters.py`` as agents.

::

    [detect]  (streams/app.py) LinkObserver: ≤ 1 observation per account+key per few minutes
        │  ──► DG_TOPIC_LINKS (key = link key fingerprint, DG_PARTITIONS partitions)
    [link]    Linker per partition: bounded per-key account sketches ──► pair evidence
        │  ──► DG_TOPIC_CLUSTER (ONE partition)
    [cluster] ClusterEngine: union-find, collective scores, alert lifecycle
           ──► llm.alerts (cluster alerts), distillguard.sink (alert_events, cluster_members)

Partition safety. Link observations are keyed by link key, so every
observation of one key reaches the same linker, whichever worker owns the
account. Clusters span keys and partitions, so the cluster stage runs as a
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

from distillguard.models.clusters import STREAM_SETTLE, ClusterEngine
from distillguard.models.features import extract
from distillguard.models.linking import Linker, LinkObserver

from .settings import Settings
from .sink import alert_row, sink_message

log = logging.getLogger("distillguard.clusters")


class ClusterIO:
    """What the detect agent needs: ``await observe(event, detector)`` after ``detector.process_one``."""

    def __init__(self, observer: LinkObserver, links_topic, key: bytes):
        self.observer = observer
        self.links = links_topic
        self.key = key
        self.observations = 0
        self.evidence = 0
        self.cluster_alerts = 0
        self.engine: ClusterEngine | None = None

    async def observe(self, event, detector) -> None:
        features = getattr(detector, "last_features", None)
        if features is None or features.event_id != event.event_id:
            features = extract(event, self.key)
        for obs in self.observer.observe(event, features):
            self.observations += 1
            await self.links.send(key=obs["k"].encode(), value=orjson.dumps(obs))

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
    io = ClusterIO(LinkObserver(detector.key), links, detector.key)
    linker = Linker()
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
                msg = linker.process(orjson.loads(raw))
            except (orjson.JSONDecodeError, KeyError, TypeError) as err:
                log.error("link: skipped a malformed link observation (%s)", err)
                continue
            if msg is not None:
                io.evidence += 1
                await evidence.send(key=b"cluster", value=orjson.dumps(msg))

    @app.agent(evidence)
    async def cluster(stream):
        async for raw in stream:
            try:
                out = engine.process(orjson.loads(raw))
            except (orjson.JSONDecodeError, KeyError, TypeError) as err:
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
