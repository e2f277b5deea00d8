"""Helpers of the fault-injection suite (tests/faults, marker ``faults``).

Each test runs real worker processes on its own topics (``isolated_env``),
the real broker and the real embedded ClickHouse. ``DG_FAULTS_FULL=1``
(``make test-faults``) selects the full forms; without it the short forms run
as part of ``make test``. Every test writes its figures to
``var/faults/<test>.json`` and prints them (``pytest -s`` shows them).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer

from distillguard.streams.clickhouse import Store
from distillguard.streams.kafka_io import group_offsets

REPO = Path(__file__).resolve().parents[2]
FULL = os.environ.get("DG_FAULTS_FULL", "") not in ("", "0")


def pick(short, full):
    return full if FULL else short


@pytest.fixture
def report(request):
    """Collects a test's figures; written to var/faults/<test>.json and printed at the end."""
    doc: dict = {"test": request.node.name, "full": FULL}
    yield doc
    out = REPO / "var" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{request.node.name}.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print(f"\n[faults] {orjson.dumps(doc).decode()}")


def group_lag(bootstrap: str, group: str, topic: str) -> int | None:
    """Messages of ``topic`` not yet committed by ``group`` (None if the broker did not answer)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = group_offsets(c, topic, timeout=10)   # the product's reading (doctor, sink stall probe)
        return None if found is None else found[0]
    except Exception:  # noqa: BLE001 - broker restarting: ask again
        return None
    finally:
        c.close()


def wait_drained(settings, worker=None, timeout: float = 300) -> None:
    """Until the worker committed every request and the sink every row batch."""
    deadline = time.monotonic() + timeout
    for group, topic in ((settings.app_id, settings.topic_requests),
                         (f"{settings.app_id}-sink", settings.topic_sink)):
        while True:
            if group_lag(settings.kafka_bootstrap, group, topic) == 0:
                break
            if worker is not None and worker.proc.poll() is not None:
                raise AssertionError(f"worker exited ({worker.proc.returncode}):\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{group} did not drain {topic} within {timeout}s (lag "
                                     f"{group_lag(settings.kafka_bootstrap, group, topic)})"
                                     + (f"; status {worker.status()}\nlog:\n{worker.log_tail()}" if worker else ""))
            time.sleep(1)


def read_all(settings, topic: str, idle: float = 4, timeout: float = 60) -> list:
    """Every message of ``topic`` (confluent Message objects), in partition order."""
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"reader-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, quiet = [], time.monotonic()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and time.monotonic() - quiet < idle:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if not m.error():
                    out.append(m)
                    quiet = time.monotonic()
    finally:
        c.close()
    return out


def query(settings, sql: str):
    """One scalar from the embedded store (the worker must be stopped: one process owns it)."""
    store = Store(settings)
    try:
        return store.query(sql.format(db=settings.clickhouse_database)).result_rows[0][0]
    finally:
        store.close()


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
