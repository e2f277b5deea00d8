"""The ClickHouse sink: rows from the internal sink topic into ClickHouse.

Detection agents never talk to ClickHouse: they publish batches of rows to
``DG_TOPIC_SINK``. This sink (a thread of ``distillguard sink``, the child process a worker
with the embedded store runs by default, streams/sink_process.py; or, with a ClickHouse
server or ``DG_SINK_PROCESS=0``, a thread in the worker) reads them with its own consumer group, inserts in
batches (``DG_SINK_BATCH_ROWS`` rows or every ``DG_SINK_FLUSH_S`` seconds),
and commits its Kafka offsets only after ClickHouse accepted the rows.

So an outage of ClickHouse loses nothing and never blocks the stream: the
Kafka topic is the spool (bounded by its retention), the sink pauses its
consumer and retries with exponential backoff, and resumes where it left off.
Delivery is at-least-once; ``alerts_latest`` dedupes alerts by ``alert_id``.

Rows ClickHouse rejects for good (``REJECTED_FOR_GOOD``: a value of the wrong
type, a row of the wrong length), and messages that are not row batches, never
wedge the sink: the batch is split until the bad rows are alone, and those go
to ``<DG_TOPIC_SINK>.dlq`` as ``{"table", "rows", "reason"}`` (header
``dg-reason``), counted per table (``dead_letter_rows``, ``/metrics``).

A consumer that stops fetching while records wait for it (librdkafka has open reports of this
after a broker restart) is found by a stall watch (models/stall.py): every ``STALL_CHECK_S``
seconds, with no rows held, the sink asks the broker, through a probe apart from its consumer,
how far its group's committed offsets are behind the log's end; when records have waited
``DG_SINK_STALL_S`` seconds and none was read and no offset moved, the consumer is closed and made
again (it resumes from the committed offsets), with a warning, counted as ``consumer_restarts``.

Fault injection (tests only): ``DG_FAULT_CLICKHOUSE_DOWN_S=N`` makes every
insert fail for N seconds from the sink's first insert attempt, as if
ClickHouse were down (``tests/faults/test_clickhouse_down.py``); ``DG_FAULT_SINK_DEAF=1`` makes
the sink's first consumer fetch nothing (all its partitions paused, as a stalled consumer), which
the stall watch must undo (tests/test_sink.py). Unset, they cost nothing.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict

import orjson
from collections.abc import Iterable

from clickhouse_connect.driver.exceptions import DataError, ProgrammingError
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from distillguard.models.rows import Row
from distillguard.models.stall import StallWatch

from .clickhouse import COLUMNS, MIGRATIONS, Store
from .kafka_config import client_config
from .kafka_io import group_offsets
from .memory import TRIM_EVERY_S, clickhouse_memory, purge_clickhouse
from .settings import Settings

log = logging.getLogger("distillguard.sink")
# Errors that say the rows themselves are wrong (a value of the wrong type, a row of the wrong
# length): inserting them again can never succeed. Anything else (connection refused, timeouts,
# a server restarting) is retried.
REJECTED_FOR_GOOD = (DataError, ProgrammingError, ValueError, TypeError, IndexError, KeyError)
MEMORY_SAMPLE_S = 10.0   # seconds between samples of the store's memory metrics
STALL_CHECK_S = 10.0     # seconds between the stall watch's questions to the broker
PROBE_TIMEOUT_S = 5.0    # each of them waits at most this long (a broker away: no answer, no stall)


def sink_messages(rows: Iterable[Row]) -> list[bytes]:
    """Typed rows as sink-topic messages, one per table: ``{"table", "rows": [values, ...]}``."""
    by_table: dict[str, list[list]] = {}
    for row in rows:
        by_table.setdefault(row.TABLE, []).append(row.values())
    return [orjson.dumps({"table": t, "rows": values}) for t, values in by_table.items()]


async def publish_rows_then_alerts(producer, sink_topic, rows: Iterable[Row], alerts: list, emit_alert) -> None:
    """Send a batch's rows to the sink topic, then (delivered first) its alerts with ``await
    emit_alert(alert)``: a kill -9 between the two leaves rows whose alerts the restarted worker
    raises again (same ids, with rows again), never an alert on the topic without its row in the
    store. The detect and cluster agents publish through this."""
    for value in sink_messages(rows):
        await sink_topic.send(value=value)
    if alerts:
        await producer.flush()
        for alert in alerts:
            await emit_alert(alert)


def dead_letter_topic(settings: Settings) -> str:
    """Where the sink puts what ClickHouse rejects for good: ``<DG_TOPIC_SINK>.dlq``."""
    return f"{settings.topic_sink}.dlq"


def open_sink(settings: Settings) -> Sink:
    """A sink (not started) on the store, opened -- an embedded one locked: ``StoreBusy`` if another
    process holds it -- and migrated."""
    store = Store(settings)
    try:
        applied = store.migrate()
        if applied:
            log.info("applied ClickHouse migrations %s", applied)
        sink = Sink(settings, store)
        sink.store_info = {"store": store.describe(), "schema_version": store.schema_version(),
                           "expected_schema_version": MIGRATIONS[-1][0]}
    except BaseException:
        store.close()
        raise
    return sink


class Sink(threading.Thread):
    """Consumes the sink topic and inserts into ClickHouse until ``stop()``."""

    def __init__(self, settings: Settings, store: Store):
        super().__init__(name="clickhouse-sink", daemon=True)
        self.settings = settings
        self.store = store
        self._stopping = threading.Event()
        self.inserted: dict[str, int] = defaultdict(int)
        self.pending_rows = 0
        self._uncommitted = False   # messages consumed since the last commit that went through
        self.retries = 0
        self.skipped_messages = 0
        self.beat = time.monotonic()   # the loop's last turn: a thread stuck in a call stops it (sink_cli)
        self.dead_letter_rows: dict[str, int] = defaultdict(int)
        self.last_error = ""
        self.dead_letters = Producer(client_config(settings, **{"enable.idempotence": True}))
        self.dead_letter_topic = dead_letter_topic(settings)
        self._fault_down_s = float(os.environ.get("DG_FAULT_CLICKHOUSE_DOWN_S") or 0)  # tests only
        self._fault_until: float | None = None
        self.clickhouse_memory: dict | None = None   # latest memory.clickhouse_memory sample
        self.jemalloc_purged_mb = 0.0   # what purge_clickhouse gave back so far
        self.store_info: dict = {}   # store, schema versions: /readyz's "clickhouse" (set by the owner)
        self.child_memory: dict | None = None   # a thread has no process of its own (cf. SinkProcess)
        self._deaf = os.environ.get("DG_FAULT_SINK_DEAF") == "1"   # tests only
        self._watch = StallWatch(settings.sink_stall_s)
        self._check_every_s = min(STALL_CHECK_S, max(1.0, settings.sink_stall_s / 3))
        self._read = 0    # records read since the stall watch's last check
        self._probe: Consumer | None = None   # asks for the group's committed offsets; never subscribes
        self.consumer = self._new_consumer()

    @property
    def consumer_restarts(self) -> int:
        """Consumers made again after a stall: every stall the watch found (``_watch_for_stall``)."""
        return self._watch.stalls

    def _new_consumer(self) -> Consumer:
        return Consumer(client_config(self.settings, **{
            "group.id": f"{self.settings.app_id}-sink",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }))

    def stats(self) -> dict:
        return {"inserted": dict(self.inserted), "pending_rows": self.pending_rows, "retries": self.retries,
                "skipped_messages": self.skipped_messages, "dead_letter_rows": dict(self.dead_letter_rows),
                "consumer_restarts": self.consumer_restarts, "last_error": self.last_error}

    def state(self) -> str:
        """For ``/readyz``: ``starting``, ``connected``, ``spooling`` (ClickHouse away, rows held in
        Kafka) or ``stopped``."""
        if self.ident is None:
            return "starting"         # the thread starts with the app's tasks
        if not self.is_alive():
            return "stopped"
        return "spooling" if self.pending_rows and self.last_error else "connected"

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self.join(timeout)

    def run(self) -> None:
        self._subscribe()
        buffer: dict[str, list[list]] = defaultdict(list)
        last_flush = time.monotonic()
        last_sample = 0.0
        last_purge = time.monotonic()
        last_check = time.monotonic()
        try:
            while not self._stopping.is_set():
                self.beat = time.monotonic()
                for msg in self.consumer.consume(num_messages=500, timeout=0.2):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("sink consumer: %s", msg.error())
                        continue
                    self._uncommitted = True
                    self._read += 1
                    self._add(msg.value(), buffer)
                due = time.monotonic() - last_flush >= self.settings.sink_flush_s
                if self.pending_rows and (due or self.pending_rows >= self.settings.sink_batch_rows):
                    self._flush(buffer)
                    last_flush = time.monotonic()
                elif self._uncommitted and due and not self.pending_rows:
                    # messages that left no row to insert (dead-lettered), or a commit that failed:
                    # committed now, not only once more rows come (they may not, and a restart
                    # would read and dead-letter them again)
                    self._commit()
                    last_flush = time.monotonic()
                if time.monotonic() - last_sample >= MEMORY_SAMPLE_S:
                    self._sample_memory()
                    last_sample = time.monotonic()
                if self.settings.embedded_clickhouse and time.monotonic() - last_purge >= TRIM_EVERY_S:
                    self._purge()
                    last_purge = time.monotonic()
                if not self.pending_rows and time.monotonic() - last_check >= self._check_every_s:
                    self._watch_for_stall()
                    last_check = time.monotonic()
            if self.pending_rows:
                self._flush(buffer)
            elif self._uncommitted:
                self._commit()
        finally:
            self.consumer.close()
            if self._probe is not None:
                self._probe.close()

    def _subscribe(self) -> None:
        self.consumer.subscribe([self.settings.topic_sink], on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list) -> None:
        if self._deaf:   # DG_FAULT_SINK_DEAF: this consumer fetches nothing, as a stalled one
            consumer.assign(partitions)   # a pause before the assignment is taken would be lost
            consumer.pause(partitions)

    def _watch_for_stall(self) -> None:
        """One check of the stall watch (models/stall.py); a stalled consumer is made again."""
        waiting, committed = self._group_backlog()
        read, self._read = self._read, 0
        if not self._watch.check(time.monotonic(), waiting, committed, read):
            return
        log.warning("sink: %d records wait on %s and the consumer read none for %.0fs; closing it and "
                    "making it again (it resumes from the committed offsets)", waiting, self.settings.topic_sink,
                    self._watch.after_s)
        self._deaf = False
        try:
            self.consumer.close()
        except KafkaException as err:   # it is replaced either way
            log.warning("sink: closing the stalled consumer failed (%s)", err)
        self.consumer = self._new_consumer()
        self._subscribe()
        self._uncommitted = False   # nothing read since the last commit (the watch saw no record read)

    def _group_backlog(self) -> tuple[int | None, int | None]:
        """(records between the sink group's committed offsets and the log's end, those offsets
        summed), asked through a probe apart from the consumer; (None, None) if the broker did not
        answer."""
        if self._probe is None:
            self._probe = Consumer(client_config(self.settings, **{"group.id": f"{self.settings.app_id}-sink",
                                                                   "enable.auto.commit": False}))
        try:
            found = group_offsets(self._probe, self.settings.topic_sink, PROBE_TIMEOUT_S)
        except KafkaException:
            return None, None
        return (None, None) if found is None else found[:2]

    def _sample_memory(self) -> None:
        """The store's own memory figures, for the status page (this thread owns the store)."""
        try:
            self.clickhouse_memory = {**clickhouse_memory(self.store),
                                      "jemalloc_purged_mb": round(self.jemalloc_purged_mb, 1)}
        except Exception as err:  # noqa: BLE001 - a store that is down has no figures; inserts report it
            self.clickhouse_memory = {"error": str(err)[:200]}

    def _purge(self) -> None:
        """The embedded engine's free pages back to the system (memory.purge_clickhouse)."""
        try:
            self.jemalloc_purged_mb += purge_clickhouse(self.store)
        except Exception as err:  # noqa: BLE001 - not worth more than a line: memory, not data
            log.warning("sink: SYSTEM JEMALLOC PURGE failed (%s)", str(err)[:200])

    def _add(self, raw: bytes, buffer: dict[str, list[list]]) -> None:
        try:
            doc = orjson.loads(raw)
            table, rows = doc["table"], doc["rows"]
            if table not in COLUMNS or not isinstance(rows, list):
                raise KeyError(table)
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            self.skipped_messages += 1
            log.error("sink: a malformed sink message goes to %s (%s)", self.dead_letter_topic, err)
            self._dead_letter(raw, "malformed sink message", str(err), None, 0)
            return
        width = len(COLUMNS[table])
        good = [r for r in rows if isinstance(r, list) and len(r) == width]
        if len(good) < len(rows):
            bad = [r for r in rows if not (isinstance(r, list) and len(r) == width)]
            self._reject(table, bad, f"rows must be lists of {width} values ({', '.join(COLUMNS[table])})")
        buffer[table].extend(good)
        self.pending_rows += len(good)

    def _reject(self, table: str, rows: list, reason: str) -> None:
        """Rows that can never be inserted: to the dead-letter topic, counted."""
        log.error("sink: %d %s row(s) rejected for good, to %s: %s", len(rows), table, self.dead_letter_topic,
                  reason[:300])
        self._dead_letter(orjson.dumps({"table": table, "rows": rows, "reason": reason}, default=repr),
                          "rejected", reason, table, len(rows))

    def _dead_letter(self, value: bytes, reason: str, detail: str, table: str | None, rows: int) -> None:
        self.dead_letters.produce(self.dead_letter_topic, value=value, headers={
            "dg-reason": reason.encode(), "dg-detail": detail[:1000].encode("utf-8", "replace")})
        self.dead_letters.flush(30)   # before the offsets of what it replaces are committed
        if table is not None:
            self.dead_letter_rows[table] += rows

    def _insert(self, table: str, rows: list[list]) -> None:
        """Insert ``rows``; a batch rejected for good is split until the bad rows are alone,
        and those are dead-lettered. Other errors propagate (the caller retries)."""
        try:
            self.store.insert(table, rows)
            self.inserted[table] += len(rows)
        except REJECTED_FOR_GOOD as err:
            if len(rows) == 1:
                self._reject(table, rows, f"{type(err).__name__}: {err}")
                return
            half = len(rows) // 2
            self._insert(table, rows[:half])
            self._insert(table, rows[half:])

    def _injected_outage(self) -> None:
        """DG_FAULT_CLICKHOUSE_DOWN_S: fail inserts for that long after the first attempt."""
        now = time.monotonic()
        if self._fault_until is None:
            self._fault_until = now + self._fault_down_s
            log.warning("sink: fault injection: ClickHouse 'down' for %.0fs", self._fault_down_s)
        if now < self._fault_until:
            raise ConnectionError("injected fault: ClickHouse unavailable (DG_FAULT_CLICKHOUSE_DOWN_S)")

    def _flush(self, buffer: dict[str, list[list]]) -> None:
        """Insert everything buffered, retrying with backoff; commit offsets after."""
        backoff = 0.5
        paused = False
        while True:
            try:
                if self._fault_down_s:
                    self._injected_outage()
                for table in list(buffer):
                    self._insert(table, buffer[table])
                    del buffer[table]
                break
            except Exception as err:  # any store failure: keep the rows, retry
                self.retries += 1
                self.beat = time.monotonic()
                self.last_error = str(err)[:300]
                log.warning("sink: ClickHouse insert failed (%s); retrying in %.1fs, %d rows held",
                            self.last_error, backoff, self.pending_rows)
                if not paused:
                    self.consumer.pause(self.consumer.assignment())
                    paused = True
                if self._stopping.wait(backoff):
                    return  # stopping: offsets stay uncommitted, rows are re-read next time
                self.consumer.poll(0)  # stay in the group while paused
                backoff = min(backoff * 2, 30.0)
        if paused:
            self.consumer.resume(self.consumer.assignment())
        self.pending_rows = 0
        self._commit()

    def _commit(self) -> None:
        """Commit the offsets of everything consumed (inserted or dead-lettered by now). A failed
        commit is tried again at the next flush interval, rows or not."""
        try:
            self.consumer.commit(asynchronous=False)
            self._uncommitted = False
        except KafkaException as err:
            if err.args[0].code() == KafkaError._NO_OFFSET:   # nothing new since the last commit
                self._uncommitted = False
                return
            # e.g. a rebalance took the partitions: rows are re-read, deduped
            log.warning("sink: offset commit failed (%s); tried again in %.1fs", err, self.settings.sink_flush_s)
