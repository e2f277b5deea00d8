"""The ClickHouse sink: rows from the internal sink topic into ClickHouse.

Detection agents never talk to ClickHouse: they publish batches of rows to
``DG_TOPIC_SINK``. This sink (a thread in the worker that owns the store, or
``distillguard sink``) reads them with its own consumer group, inserts in
batches (``DG_SINK_BATCH_ROWS`` rows or every ``DG_SINK_FLUSH_S`` seconds),
and commits its Kafka offsets only after ClickHouse accepted the rows.

So an outage of ClickHouse loses nothing and never blocks the stream: the
Kafka topic is the spool (bounded by its retention), the sink pauses its
consumer and retries with exponential backoff, and resumes where it left off.
Delivery is at-least-once; ``alerts_latest`` dedupes alerts by ``alert_id``.

Fault injection (tests only): ``DG_FAULT_CLICKHOUSE_DOWN_S=N`` makes every
insert fail for N seconds from the sink's first insert attempt, as if
ClickHouse were down (``tests/faults/test_clickhouse_down.py``). Unset, it
costs nothing.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException

from distillguard.schemas import Alert

from .clickhouse import COLUMNS, Store
from .memory import clickhouse_memory
from .settings import Settings

log = logging.getLogger("distillguard.sink")
_ACTIVITY_RANK = {"create": 0, "update": 1, "close": 2}
MEMORY_SAMPLE_S = 10.0   # seconds between samples of the store's memory metrics


def alert_row(alert: Alert) -> list:
    """An alert event as an ``alert_events`` row (see clickhouse.COLUMNS)."""
    return [alert.alert_id, alert.activity, alert.detector, alert.severity, alert.score, alert.account_ids[0],
            alert.account_ids, alert.cluster_id, alert.window_start_ms, alert.window_end_ms, alert.raised_at_ms,
            alert.event_count, orjson.dumps(alert.reasons).decode(), alert.sample_event_ids,
            alert.recommended_action, alert.model, alert.window_end_ms * 4 + _ACTIVITY_RANK[alert.activity]]


def sink_message(table: str, rows: list[list]) -> bytes:
    return orjson.dumps({"table": table, "rows": rows})


class Sink(threading.Thread):
    """Consumes the sink topic and inserts into ClickHouse until ``stop()``."""

    def __init__(self, settings: Settings, store: Store):
        super().__init__(name="clickhouse-sink", daemon=True)
        self.settings = settings
        self.store = store
        self._stopping = threading.Event()
        self.inserted: dict[str, int] = defaultdict(int)
        self.pending_rows = 0
        self.retries = 0
        self.skipped_messages = 0
        self.last_error = ""
        self._fault_down_s = float(os.environ.get("DG_FAULT_CLICKHOUSE_DOWN_S") or 0)  # tests only
        self._fault_until: float | None = None
        self.clickhouse_memory: dict | None = None   # latest memory.clickhouse_memory sample
        self.consumer = Consumer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.app_id}-sink",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        })

    def stats(self) -> dict:
        return {"inserted": dict(self.inserted), "pending_rows": self.pending_rows, "retries": self.retries,
                "skipped_messages": self.skipped_messages, "last_error": self.last_error}

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self.join(timeout)

    def run(self) -> None:
        c = self.consumer
        c.subscribe([self.settings.topic_sink])
        buffer: dict[str, list[list]] = defaultdict(list)
        last_flush = time.monotonic()
        last_sample = 0.0
        try:
            while not self._stopping.is_set():
                for msg in c.consume(num_messages=500, timeout=0.2):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("sink consumer: %s", msg.error())
                        continue
                    self._add(msg.value(), buffer)
                due = time.monotonic() - last_flush >= self.settings.sink_flush_s
                if self.pending_rows and (due or self.pending_rows >= self.settings.sink_batch_rows):
                    self._flush(buffer)
                    last_flush = time.monotonic()
                if time.monotonic() - last_sample >= MEMORY_SAMPLE_S:
                    self._sample_memory()
                    last_sample = time.monotonic()
            if self.pending_rows:
                self._flush(buffer)
        finally:
            c.close()

    def _sample_memory(self) -> None:
        """The store's own memory figures, for the status page (this thread owns the store)."""
        try:
            self.clickhouse_memory = clickhouse_memory(self.store)
        except Exception as err:  # noqa: BLE001 - a store that is down has no figures; inserts report it
            self.clickhouse_memory = {"error": str(err)[:200]}

    def _add(self, raw: bytes, buffer: dict[str, list[list]]) -> None:
        try:
            doc = orjson.loads(raw)
            table, rows = doc["table"], doc["rows"]
            if table not in COLUMNS:
                raise KeyError(table)
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            self.skipped_messages += 1
            log.error("sink: skipped a malformed sink message (%s)", err)
            return
        buffer[table].extend(rows)
        self.pending_rows += len(rows)

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
                    self.store.insert(table, buffer[table])
                    self.inserted[table] += len(buffer[table])
                    del buffer[table]
                break
            except Exception as err:  # any store failure: keep the rows, retry
                self.retries += 1
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
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as err:  # e.g. a rebalance took the partitions: rows are re-read, deduped
            log.warning("sink: offset commit failed (%s)", err)
