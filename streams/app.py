"""The Faust app: request events in, alerts and ClickHouse rows out.

One agent does ingest and per-account detection. The gateway already keys
``llm.requests`` by ``account_id``, so parsing in the same agent saves a
repartition hop. Per batch (``BatchStream.take_batches``, streams/faust_stream.py) it:

1. parses each message (bad ones → ``llm.requests.dlq`` with the original
   bytes and ``dg-reason``/``dg-detail`` headers, counted; ``streams/dlq.py``);
2. runs ``models.pipeline.AccountStage.process`` per event and ``end_batch`` at
   the low watermark after the batch (the very objects ``distillguard replay``
   drives), and hands each event's ``LinkRecord`` to the link publisher;
3. publishes the typed outputs: alerts to ``llm.alerts``, rows to the sink topic;
4. writes each touched account's state once to a changelogged table.

Offsets are committed after a batch is processed (at-least-once); alert ids
are stable, so a re-processed batch cannot make a second, different alert.
"""
from __future__ import annotations

import logging
import math
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field

import faust
import orjson
from faust.streams import _current_event  # set per account before a table write, see _save_states

from distillguard.models import load_config, native
from distillguard.models.coverage import coverage
from distillguard.models.feedback import FeedbackBook
from distillguard.models.memo import memo_bounds
from distillguard.models.pipeline import AccountStage
from distillguard.models.rows import AlertEventRow, DlqMinuteRow, Row
from distillguard.models.state import AccountState
from distillguard.schemas import Alert, BadEvent, parse_event

from .adapter_agents import adapter_topics, ocsf_topic, register_adapter_agents, watch_blind_spot
from .cluster_agents import register_cluster_agents
from .dlq import PROCESSING_ERROR, ProcessingFailure, process_guarded, send_to_dlq
from .faust_stream import BatchStream, RawSchema
from .faust_transport import QuietMonitor
from .feedback_agent import register_feedback_reader
from .kafka_io import STATE_TABLE
from .kafka_config import faust_broker_options
from .memory import process_memory
from .metrics import faust_lag, render as render_metrics
from .ocsf import to_ocsf
from .settings import Settings, tune_gc
from .sink import Sink, publish_rows_then_alerts
from .sink_process import SinkProcess

log = logging.getLogger("distillguard.worker")


class StateCache(MutableMapping):
    """Account states as objects, backed by the Faust table (bytes).

    Reads hit the local dict; a miss loads from the table, which a restarted
    worker has rebuilt from the changelog. Writes mark the account dirty; the
    agent writes dirty states to the table once per batch.
    """

    def __init__(self, table, owned: Callable[[], Iterable[int]] = tuple):
        self.table = table
        self.owned = owned                         # the partitions this worker holds now
        self.local: dict[str, AccountState] = {}
        self.dirty: set[str] = set()
        self.partition: dict[str, int] = {}        # account -> changelog partition of its state
        self.to_delete: dict[str, int] = {}        # expired accounts whose tombstone is not written yet

    def saw_changelog(self, key: str, partition: int, deleted: bool) -> None:
        """A changelog record read while the table is restored: remember its partition, so a state
        that is only in the table (its account not seen since a restart or a rebalance) is
        iterated, expired when idle and its tombstone written like any other."""
        if deleted:
            self.partition.pop(key, None)
        else:
            self.partition[key] = partition

    def keep_partitions(self, partitions: Iterable[int]) -> None:
        """After an assignment: forget accounts of partitions another worker holds now (it
        restores and expires them), so these maps stay bounded across rebalances."""
        keep = set(partitions)
        for mapping in (self.partition, self.to_delete):
            for key in [k for k, p in mapping.items() if p not in keep]:
                del mapping[key]

    def _table_only(self) -> list[str]:
        """Accounts whose state is in the table and not loaded yet, on partitions held now."""
        owned = set(self.owned())
        return [k for k, p in self.partition.items()
                if p in owned and k not in self.local and k not in self.to_delete and k in self.table]

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
        # an account back before its expiry's tombstone was written: the tombstone would
        # delete the state written in the same batch
        self.to_delete.pop(key, None)

    def __delitem__(self, key: str) -> None:
        # The table row goes at the end of a batch that has an event of its partition
        # (a changelog tombstone needs that partition as the current event).
        self.local.pop(key, None)
        self.dirty.discard(key)
        partition = self.partition.pop(key, None)
        if partition is not None:
            self.to_delete[key] = partition

    def __iter__(self) -> Iterator[str]:
        # a snapshot: reading a table-only state loads it into ``local``
        return iter([*self.local, *self._table_only()])

    def __len__(self) -> int:
        return len(self.local) + len(self._table_only())


class Counters:
    """Worker counters, read by the web page and the logs."""

    def __init__(self) -> None:
        self.events = 0
        self.duplicates = 0     # re-deliveries (event id seen, or offset in the account's state), counted once
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


def faust_options(settings: Settings, stock: bool = False) -> dict:
    """``faust.App`` settings shared by the worker and the bench's bare Faust agent
    (``streams/bench.py``), so that the two are measured under the same Faust.

    The product's Faust (issue #15): our consumer (``streams/faust_transport.py``: no tasks per
    message), our stream class (``streams/faust_stream.py``: ``take_batches`` drains the queue
    without a coroutine per event), a monitor without per-message bookkeeping, 4 MiB fetches
    per partition (Faust's default 1 MiB is ~670 simulated events of ~1.5 kB). ``stock``:
    Faust's own consumer, stream, monitor and fetch size (the bench's "before")."""
    tuned = {} if stock else {"Monitor": QuietMonitor, "Stream": BatchStream,
                              "consumer_max_fetch_size": 4 * 1024 * 1024}
    return dict(
        **faust_broker_options(settings, stock_consumer=stock),   # broker URLs, SASL/TLS credentials
        **tuned,
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        web_port=settings.worker_web_port,
        # web_bind is the listening address (Faust's default is 0.0.0.0, every interface);
        # web_host only names the host in the worker's canonical URL
        web_bind=settings.worker_web_bind,
        web_host=settings.worker_web_bind if settings.worker_web_bind not in ("0.0.0.0", "::") else "localhost",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.batch_max,
        stream_wait_empty=False,
    )


def run_faust_worker(app: faust.App, loglevel: str, logging_config: dict | None = None,
                     worker_class: type[faust.Worker] = faust.Worker) -> None:
    """Run ``app`` as a Faust worker (blocks), for the worker and the bench's bare agent.

    Without the terminal spinner: faust.Worker always makes one, and with it sets the root
    logger to DEBUG (the spinner spins on every record), so every ``log.debug`` of Faust and
    aiokafka -- several per message produced -- built a LogRecord that the handler then dropped.
    ``logging_config`` (streams/logs.py) replaces Faust's console format; ``worker_class`` adds
    the worker's bounded graceful stop (streams/worker.py).
    """
    tune_gc()   # here too, so the bench's bare agent runs under the same collector settings
    worker = worker_class(app, loglevel=loglevel, quiet=True, logging_config=logging_config)
    worker.spinner = None
    worker.execute_from_commandline()


def create_app(settings: Settings, sink: Sink | SinkProcess | None = None) -> faust.App:
    """The worker's Faust app; ``sink`` (if this worker runs one) is shown on its status pages."""
    app = faust.App(
        settings.app_id,
        **faust_options(settings),
        producer_partitioner=None,
        table_cleanup_interval=3600,
    )
    requests = app.topic(settings.topic_requests, schema=RawSchema(), partitions=settings.partitions)
    dlq = app.topic(settings.topic_dlq, key_serializer="raw", value_serializer="raw",
                    partitions=settings.dlq_partitions)
    alerts = app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw",
                       partitions=settings.alerts_partitions)
    sink_topic = app.topic(settings.topic_sink, key_serializer="raw", value_serializer="raw",
                           partitions=settings.partitions)
    async def restored(event) -> None:   # each changelog record read while the table is restored
        key = event.key.decode() if isinstance(event.key, bytes) else event.key
        cache.saw_changelog(key, event.message.partition, event.message.value is None)

    table = app.Table(STATE_TABLE, default=None, partitions=settings.partitions,
                      key_type=str, value_type=bytes, on_changelog_event=restored)
    cache = StateCache(table, owned=lambda: assigned_request_partitions())
    key = settings.fingerprint_key.encode()
    feedback = FeedbackBook()   # analysts' decisions, filled from the feedback topic (issue #16)
    stage = AccountStage(load_config(settings.detector_config or None), key, states=cache, feedback=feedback)
    counters = Counters()
    partition_time: dict[int, int] = {}   # highest event time seen per source partition
    # integrations (issue #6): optional OCSF copy of the alerts, topic-level input adapters
    ocsf = ocsf_topic(app, settings)
    adapter_counts = register_adapter_agents(app, settings, requests, dlq)

    def read_events() -> int:
        """Events the detector read (DLQ rejects excluded)."""
        return counters.events - sum(counters.dlq.values())

    # the blind spot (issue #14): content_minute rows and a warning when many events carry no prompt
    watch_blind_spot(app, settings, sink_topic, lambda: (read_events(), stage.detector.content_less))

    async def emit_alert(alert: Alert) -> None:
        """Publish one alert (and its OCSF copy)."""
        counters.alerts[alert.severity] += 1
        key = alert.account_ids[0].encode()
        await alerts.send(key=key, value=alert.to_json())
        if ocsf is not None:
            await ocsf.send(key=key, value=orjson.dumps(to_ocsf(alert.to_dict())))

    cross = register_cluster_agents(app, settings, stage.config, key, emit_alert, sink_topic, feedback)  # issue #5
    feedback_reader = register_feedback_reader(app, settings, feedback)

    @app.on_partitions_assigned.connect
    async def _keep(app, assigned, **kwargs) -> None:
        cache.keep_partitions(tp.partition for tp in assigned if tp.topic == settings.topic_requests)

    @app.on_partitions_revoked.connect
    async def _forget(app, revoked, **kwargs) -> None:
        # States of revoked partitions may move to another worker: re-read them from the table.
        cache.local.clear()
        cache.dirty.clear()
        stage.forget_open_alerts()
        partition_time.clear()

    @app.agent(requests)
    async def detect(stream):
        async for events in stream.take_batches(settings.batch_max, within=settings.batch_within_s,
                                                  backlog_max=settings.batch_backlog_max):
            batch = _Batch()
            for event in events:
                msg = event.message
                try:
                    ev = parse_event(msg.value, settings.max_event_bytes)
                except BadEvent as err:
                    counters.dlq[err.reason] += 1
                    batch.dlq[(int(msg.timestamp) // 60 * 60, err.reason)] += 1
                    await send_to_dlq(dlq, msg, err.reason, err.detail)
                    continue
                out = process_guarded(stage, ev, (msg.partition, msg.offset))
                if type(out) is ProcessingFailure:   # dead-lettered, not a crashed agent (dlq.py)
                    log.error("the detector failed on event %s (%s): dead-lettered as %s",
                              ev.event_id, out.detail, PROCESSING_ERROR)
                    counters.dlq[PROCESSING_ERROR] += 1
                    batch.dlq[(int(msg.timestamp) // 60 * 60, PROCESSING_ERROR)] += 1
                    await send_to_dlq(dlq, msg, PROCESSING_ERROR, out.detail)
                    continue
                if out is None:   # a re-delivery (event id or offset already applied): counted once
                    counters.duplicates += 1
                    continue
                batch.alerts.extend(out.alerts)
                if out.snapshot is not None:
                    batch.rows.append(out.snapshot)
                cross.publisher.observe(out.record)   # link observations, sent below
                batch.last_event_of[ev.account_id] = event
                if ev.ts_ms > partition_time.get(msg.partition, 0):
                    partition_time[msg.partition] = ev.ts_ms
            # The low watermark: partitions are consumed at different speeds, so one
            # partition's event time says nothing about another's accounts.
            done = stage.end_batch(min(partition_time.values(), default=0))
            batch.alerts.extend(done.alerts)
            batch.rows.extend(done.minute_rows)
            await cross.publisher.flush()   # one links message per partition for the whole batch
            await publish_rows_then_alerts(app.producer, sink_topic, batch.table_rows(), batch.alerts, emit_alert)
            # States last, once the batch's outputs are delivered: a state in the changelog that
            # already includes this batch means its alerts and rows are out. (The other order lost
            # them after a kill -9: the restored state did not raise them again.)
            await app.producer.flush()
            _save_states(cache, table, batch.last_event_of)
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
        body = {"events": counters.events, "duplicates": counters.duplicates,
                "redelivered_by_offset": stage.detector.redelivered, "dlq": dict(counters.dlq),
                "alerts": dict(counters.alerts),
                "accounts_cached": len(cache.local), "accounts_expired": stage.expired_total,
                "uptime_s": round(time.time() - counters.started),
                "latency_ms": counters.latency.summary(), "clusters": cross.stats(),
                "partitions": assigned_request_partitions(), "feedback": feedback_reader.stats(),
                # blind spot (issue #14): events read without prompt text; gateway adapters' counts
                "content_less": coverage(stage.detector.content_less, read_events()),
                "adapters": {src: dict(c) for src, c in adapter_counts.items()},
                # which route runs the hot path (models/native.py): the same results, not the same cost
                "hot_path": native.route_name(),
                # commits held back at an unacked offset, seeks of never-committed partitions
                # (streams/faust_transport.py); Faust's own consumer (no report) shows {}
                "offsets": getattr(app.consumer, "offset_report", dict)()}
        if sink is not None:
            body["sink"] = sink.stats()
        # issue #18: memory by component, and every bounded structure's (size, bound)
        body["memory"] = process_memory(sink.clickhouse_memory if sink is not None else None)
        if sink is not None and sink.child_memory is not None:   # the sink's own process (DG_SINK_PROCESS=1)
            body["memory"]["sink_process"] = sink.child_memory
        max_accounts = stage.config.max_accounts
        body["bounds"] = {**stage.detector.bounds(), **cross.bounds(), **memo_bounds(),
                          "worker.table": (len(table), max_accounts),
                          "worker.partition_of": (len(cache.partition), max_accounts)}
        return web.json(body)

    @app.page("/metrics")
    async def metrics_page(web, request):
        text = render_metrics(counters, sink.stats() if sink is not None else None,
                              faust_lag(app, [settings.topic_requests, *adapter_topics(settings).values()]),
                              {k: dict(v) for k, v in adapter_counts.items()},
                              content_less=stage.detector.content_less)
        return web.text(text, content_type="text/plain")  # aiohttp adds charset=utf-8; format 0.0.4

    return app


@dataclass
class _Batch:
    """What one detect batch sends: alert events, rows, DLQ counts, and each account's last
    event (for the state write)."""
    alerts: list[Alert] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    dlq: Counter = field(default_factory=Counter)
    last_event_of: dict[str, object] = field(default_factory=dict)

    def table_rows(self) -> list[Row]:
        return [*(AlertEventRow.of(a) for a in self.alerts), *self.rows,
                *(DlqMinuteRow(m, r, n) for (m, r), n in self.dlq.items())]


def _save_states(cache: StateCache, table, last_event_of: dict[str, object]) -> None:
    """Write each dirty account state to the table once per batch, and delete expired ones.

    Faust routes a table write to the changelog partition of the *current*
    event; in a batch there is none, so we make the account's last event of
    the batch current while writing its state. An account changed without an
    event of its own in the batch (an alert closed by ``end_batch``'s clock)
    is written under any event of its state's partition, and a deletion the
    same way; one whose partition has no event in this batch waits, dirty or
    pending, for a batch that has one.
    """
    of_partition: dict[int, object] = {}
    for event in last_event_of.values():
        of_partition.setdefault(event.message.partition, event)
    waiting: set[str] = set()
    for account in cache.dirty:
        event = last_event_of.get(account)
        if event is None:
            event = of_partition.get(cache.partition.get(account, -1))
            if event is None:
                waiting.add(account)
                continue
        _current_event.set(weakref.ref(event))
        table[account] = cache.local[account].to_bytes()
        cache.partition[account] = event.message.partition
    for account, partition in list(cache.to_delete.items()):
        event = of_partition.get(partition)
        if event is None:
            continue
        _current_event.set(weakref.ref(event))
        if account in table:
            del table[account]
        del cache.to_delete[account]
    _current_event.set(None)
    cache.dirty = waiting
