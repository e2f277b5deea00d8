"""The Faust app: request events in, alerts and ClickHouse rows out.

One agent does ingest and per-account detection. The gateway already keys
``llm.requests`` by ``account_id``, so parsing in the same agent saves a
repartition hop. Per batch (``stream.take_events``) it:

1. parses each message (bad ones → ``llm.requests.dlq`` with the original
   bytes and ``dg-reason``/``dg-detail`` headers, counted);
2. runs ``models.Detector`` (the very code ``distillguard replay`` runs);
3. writes each touched account's state once to a changelogged table;
4. publishes alerts to ``llm.alerts`` and row batches to the sink topic.

Offsets are committed after a batch is processed (at-least-once); alert ids
are stable, so a re-processed batch cannot make a second, different alert.
"""
from __future__ import annotations

import logging
import math
import time
import weakref
from collections import Counter
from collections.abc import Iterator, MutableMapping

import faust
import orjson
from faust.streams import _current_event  # set per account before a table write, see _save_states

from distillguard.models import Detector, load_config
from distillguard.models.aggregates import MinuteAggregates
from distillguard.models.state import AccountState
from distillguard.schemas import BadEvent, parse_event

from .cluster_agents import register_cluster_agents
from .settings import Settings, tune_gc
from .sink import alert_row, sink_message
from .adapter_agents import adapter_topics, ocsf_topic, register_adapter_agents
from .metrics import faust_lag, render as render_metrics
from .ocsf import to_ocsf

log = logging.getLogger("distillguard.worker")
EXPIRY_EVERY_MS = 10 * 60_000  # event time between idle-account expiry passes
# DLQ values are cut to this many bytes (header dg-truncated: original length): the producer's
# and the broker's default limit is 1 MB, and a gateway topic may carry larger events.
DLQ_MAX_VALUE_BYTES = 900_000


class StateCache(MutableMapping):
    """Account states as objects, backed by the Faust table (bytes).

    Reads hit the local dict; a miss loads from the table, which a restarted
    worker has rebuilt from the changelog. Writes mark the account dirty; the
    agent writes dirty states to the table once per batch.
    """

    def __init__(self, table):
        self.table = table
        self.local: dict[str, AccountState] = {}
        self.dirty: set[str] = set()
        self.partition: dict[str, int] = {}        # account -> changelog partition of its state
        self.to_delete: dict[str, int] = {}        # expired accounts whose tombstone is not written yet

    def __getitem__(self, key: str) -> AccountState:
        s = self.local.get(key)
        if s is None:
            raw = self.table.get(key)
            if raw is None:
                raise KeyError(key)
            s = self.local[key] = AccountState.from_bytes(raw)
        return s

    def __setitem__(self, key: str, value: AccountState) -> None:
        self.local[key] = value
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        # The table row goes at the end of a batch that has an event of its partition
        # (a changelog tombstone needs that partition as the current event).
        self.local.pop(key, None)
        self.dirty.discard(key)
        partition = self.partition.pop(key, None)
        if partition is not None:
            self.to_delete[key] = partition

    def __iter__(self) -> Iterator[str]:
        return iter(self.local)

    def __len__(self) -> int:
        return len(self.local)


class Counters:
    """Worker counters, read by the web page and the logs."""

    def __init__(self) -> None:
        self.events = 0
        self.dlq: Counter = Counter()
        self.alerts: Counter = Counter()
        self.batches = 0
        self.started = time.time()
        self.latency = LatencyHistogram()


class LatencyHistogram:
    """Kafka message timestamp (produce time) -> end of its batch's processing, in ms.

    Log buckets of 5% width (20 per decade), so percentiles cost nothing to keep;
    ``distillguard.streams.bench`` reads them from the status page."""

    def __init__(self) -> None:
        self.buckets: Counter = Counter()
        self.n = 0

    def add_batch(self, events) -> None:
        now = time.time()
        b = self.buckets
        for event in events:
            ms = (now - event.message.timestamp) * 1000.0
            b[int(math.log10(ms + 1.0) * 20) if ms > 0 else 0] += 1
        self.n += len(events)

    def summary(self) -> dict:
        out: dict = {"n": self.n}
        if not self.n:
            return out
        keys = sorted(self.buckets)
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            need, seen = q * self.n, 0
            for k in keys:
                seen += self.buckets[k]
                if seen >= need:
                    out[name] = round(10 ** ((k + 1) / 20) - 1.0, 1)   # bucket's upper edge
                    break
        out["max"] = round(10 ** ((keys[-1] + 1) / 20) - 1.0, 1)
        return out


def faust_options(settings: Settings) -> dict:
    """``faust.App`` settings shared by the worker and the bench's bare Faust agent
    (``streams/bench.py``), so that the two are measured under the same Faust."""
    return dict(
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        web_port=settings.worker_web_port,
        web_host="127.0.0.1",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.batch_max,
        stream_wait_empty=False,
    )


def run_faust_worker(app: faust.App, loglevel: str) -> None:
    """Run ``app`` as a Faust worker (blocks), for the worker and the bench's bare agent.

    Without the terminal spinner: faust.Worker always makes one, and with it sets the root
    logger to DEBUG (the spinner spins on every record), so every ``log.debug`` of Faust and
    aiokafka -- several per message produced -- built a LogRecord that the handler then dropped.
    """
    tune_gc()   # here too, so the bench's bare agent runs under the same collector settings
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        **faust_options(settings),
        producer_partitioner=None,
        table_cleanup_interval=3600,
    )
    requests = app.topic(settings.topic_requests, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    dlq = app.topic(settings.topic_dlq, key_serializer="raw", value_serializer="raw", partitions=1)
    alerts = app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw", partitions=1)
    sink = app.topic(settings.topic_sink, key_serializer="raw", value_serializer="raw",
                     partitions=settings.partitions)
    table = app.Table("account-state", default=None, partitions=settings.partitions,
                      key_type=str, value_type=bytes)
    cache = StateCache(table)
    detector = Detector(load_config(settings.detector_config or None), settings.fingerprint_key.encode(),
                        states=cache)
    counters = Counters()
    snapshots: list[list] = []            # account_features rows of the current batch
    detector.on_score = lambda account, ts, score, reasons: snapshots.append(
        [account, ts, score, {r["feature"]: float(r["value"]) for r in reasons}])
    partition_time: dict[int, int] = {}   # highest event time seen per source partition
    expiry = {"last": 0, "accounts": 0}     # idle-account expiry: last run (event ms), accounts expired
    app.distillguard = {"detector": detector, "counters": counters, "cache": cache}
    # integrations (issue #6): optional OCSF copy of the alerts, topic-level input adapters
    ocsf = ocsf_topic(app, settings)
    register_adapter_agents(app, settings, requests, dlq)

    async def emit_alert(alert) -> None:
        """Publish one alert (and its OCSF copy)."""
        counters.alerts[alert.severity] += 1
        key = alert.account_ids[0].encode()
        await alerts.send(key=key, value=alert.to_json())
        if ocsf is not None:
            await ocsf.send(key=key, value=orjson.dumps(to_ocsf(alert.to_dict())))

    clusters = register_cluster_agents(app, settings, detector, emit_alert, sink)  # issue #5

    @app.on_partitions_revoked.connect
    async def _forget(app, revoked, **kwargs) -> None:
        # States of revoked partitions may move to another worker: re-read them from the table.
        cache.local.clear()
        cache.dirty.clear()
        detector.open_alerts.clear()
        partition_time.clear()

    @app.agent(requests)
    async def detect(stream):
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            aggregates = MinuteAggregates()
            dlq_counts: Counter = Counter()
            last_event_of: dict[str, object] = {}
            out = []
            for event in events:
                msg = event.message
                try:
                    ev = parse_event(msg.value, settings.max_event_bytes)
                except BadEvent as err:
                    counters.dlq[err.reason] += 1
                    dlq_counts[(int(msg.timestamp) // 60 * 60, err.reason)] += 1
                    headers = {
                        "dg-reason": err.reason.encode(), "dg-detail": err.detail.encode("utf-8", "replace"),
                        "dg-source": f"{msg.topic}/{msg.partition}/{msg.offset}".encode()}
                    value = msg.value
                    if len(value) > DLQ_MAX_VALUE_BYTES:
                        # a message larger than a produce request would crash the agent (and again
                        # after each restart): keep a prefix, say how long the original was
                        headers["dg-truncated"] = str(len(value)).encode()
                        value = value[:DLQ_MAX_VALUE_BYTES]
                    await dlq.send(key=msg.key, value=value, headers=headers)
                    continue
                out.extend(detector.process_one(ev))
                clusters.observe(ev, detector)   # link observations for cross-account detection, sent below
                last_event_of[ev.account_id] = event
                if ev.ts_ms > partition_time.get(msg.partition, 0):
                    partition_time[msg.partition] = ev.ts_ms
                f = detector.last_features
                if f is not None:   # None: a re-delivered event_id the detector skipped
                    aggregates.learn_one(ev.account_id, ev.ts_ms, f.input_tokens, f.output_tokens, f.error,
                                         f.skeleton_fp, f.area)
            # Close quiet alerts at the low watermark: partitions are consumed at different
            # speeds, so one partition's event time says nothing about another's accounts.
            low_watermark = min(partition_time.values(), default=0)
            out.extend(detector.advance(low_watermark))
            if low_watermark - expiry["last"] >= EXPIRY_EVERY_MS:  # forget long-idle accounts
                expiry["last"] = low_watermark
                expiry["accounts"] += len(detector.expire_idle(low_watermark))
            await clusters.flush()   # one links message per partition for the whole batch
            for alert in out:
                await emit_alert(alert)
            rows = aggregates.rows()
            if rows:
                await sink.send(value=sink_message("account_minute_in", rows))
            feature_rows = snapshots[:]
            snapshots.clear()
            if feature_rows:
                await sink.send(value=sink_message("account_features", feature_rows))
            if out:
                await sink.send(value=sink_message("alert_events", [alert_row(a) for a in out]))
            if dlq_counts:
                await sink.send(value=sink_message("dlq_minute", [[m, r, n] for (m, r), n in dlq_counts.items()]))
            # States last, once the batch's outputs are delivered: a state in the changelog that
            # already includes this batch means its alerts and rows are out. (The other order lost
            # them after a kill -9: the restored state did not raise them again.)
            await app.producer.flush()
            _save_states(cache, table, last_event_of)
            # and the states right away: a kill -9 before they reach the changelog would make
            # the restarted worker re-raise this batch's alerts (same ids, but a second create)
            await app.producer.flush()
            counters.events += len(events)
            counters.batches += 1
            counters.latency.add_batch(events)

    def assigned_request_partitions() -> list[int]:
        """Partitions of the request topic this worker holds now (empty before the group join)."""
        try:
            return sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic_requests)
        except Exception:  # noqa: BLE001 - consumer not started yet
            return []

    @app.page("/distillguard/")
    async def status(web, request):
        body = {"events": counters.events, "dlq": dict(counters.dlq), "alerts": dict(counters.alerts),
                "accounts_cached": len(cache.local), "accounts_expired": expiry["accounts"],
                "uptime_s": round(time.time() - counters.started),
                "latency_ms": counters.latency.summary(), "clusters": clusters.stats(),
                "partitions": assigned_request_partitions()}
        sink = app.distillguard.get("sink")
        if sink is not None:
            body["sink"] = sink.stats()
        return web.json(body)

    @app.page("/metrics")
    async def metrics_page(web, request):
        sink = app.distillguard.get("sink")
        text = render_metrics(counters, sink.stats() if sink is not None else None,
                              faust_lag(app, [settings.topic_requests, *adapter_topics(settings).values()]),
                              {k: dict(v) for k, v in app.distillguard.get("adapters", {}).items()})
        return web.text(text, content_type="text/plain")  # aiohttp adds charset=utf-8; format 0.0.4

    return app


def _save_states(cache: StateCache, table, last_event_of: dict[str, object]) -> None:
    """Write each dirty account state to the table once per batch, and delete expired ones.

    Faust routes a table write to the changelog partition of the *current*
    event; in a batch there is none, so we make the account's last event of
    the batch current while writing its state (and, for a deletion, any event
    of the same partition).
    """
    for account in cache.dirty:
        event = last_event_of.get(account)
        if event is None:
            continue
        _current_event.set(weakref.ref(event))
        table[account] = cache.local[account].to_bytes()
        cache.partition[account] = event.message.partition
    for account, partition in list(cache.to_delete.items()):
        event = next((e for e in last_event_of.values() if e.message.partition == partition), None)
        if event is None:
            continue
        _current_event.set(weakref.ref(event))
        if account in table:
            del table[account]
        del cache.to_delete[account]
    _current_event.set(None)
    cache.dirty.clear()
