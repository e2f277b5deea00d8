"""Operating a worker (issue #17): it waits for its broker, says so in one line per attempt,
becomes ready when the broker appears, gives up with one line after its deadline, and stops
gracefully on SIGTERM without losing events. Real broker(s), real worker processes."""
import json
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from distillguard.streams.bench import bench_events
from distillguard.streams.health import LIVE_PATH, PROBE_PATHS
from distillguard.streams.processes import http_json
from distillguard.streams.kafka_io import ensure_topics, produce_events
from distillguard.streams.settings import load_settings

from .conftest import free_port
from .workers import WorkerProcess

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "distillguard.streams.cli"]


def _env(tmp_path, bootstrap: str, **extra) -> dict:
    run = uuid.uuid4().hex[:8]
    return {"DG_KAFKA_BOOTSTRAP": bootstrap, "DG_DATA_DIR": str(tmp_path / "var"), "DG_APP_ID": f"dg-op-{run}",
            "DG_TOPIC_REQUESTS": f"o{run}.requests", "DG_TOPIC_DLQ": f"o{run}.dlq", "DG_TOPIC_ALERTS": f"o{run}.alerts",
            "DG_TOPIC_SINK": f"o{run}.sink", "DG_PARTITIONS": "2", "DG_WORKER_WEB_PORT": str(free_port()),
            "DG_BATCH_WITHIN_S": "0.2", **extra}


def test_worker_started_before_its_broker_waits_then_becomes_ready(tmp_path, private_broker):
    env = _env(tmp_path, private_broker.bootstrap)
    worker = WorkerProcess(env, tmp_path / "worker.log").start(ready_timeout=None)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:       # alive and waiting, not ready, while no broker answers
            r = worker.readiness()
            if r is not None and "waiting_for" in r:
                break
            assert worker.proc.poll() is None, worker.log_tail()
            time.sleep(0.3)
        assert r == {"ready": False, "phase": "waiting", "waiting_for": f"the Kafka broker at {private_broker.bootstrap}"}
        assert http_json(worker.port, LIVE_PATH)["alive"] is True     # alive while it waits: no restart loop
        time.sleep(3)
        private_broker.start()
        t0 = time.monotonic()
        ready = worker.wait_ready(120)
        print(f"\n[operability] ready {time.monotonic() - t0:.1f}s after the broker answered: {ready}")
        for path in PROBE_PATHS:     # every path the Kubernetes probes use answers 200 on a ready worker
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=5) as resp:
                assert resp.status == 200, path
    finally:
        code = worker.stop()
    log = worker.log_path.read_text()
    print("[operability] worker console:\n" + "\n".join(
        line for line in log.splitlines() if "waiting for" in line or "up after" in line or "worker" in line[:60]))
    assert code == 0, log[-3000:]
    waits = [line for line in log.splitlines() if "waiting for the Kafka broker" in line]
    assert waits and all("retrying in" in w for w in waits)
    assert "Traceback" not in log and "%3|" not in log and "%4|" not in log


def test_no_broker_until_the_deadline_is_one_line_and_exit_2(tmp_path, broker):
    env = _env(tmp_path, f"127.0.0.1:{free_port()}", DG_STARTUP_TIMEOUT_S="3", DG_LOG_FORMAT="json", DG_DEV="1")
    proc = subprocess.run([*CLI, "worker"], capture_output=True, text=True, timeout=60,
                          env={**env, "PATH": "/usr/bin:/bin"})
    print("\n[operability] stderr:\n" + proc.stderr)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    *logs, last = lines
    assert last.startswith("distillguard worker: error: gave up waiting for the Kafka broker at 127.0.0.1:")
    assert "DG_KAFKA_BOOTSTRAP" in last
    docs = [json.loads(line) for line in logs]      # every log line is one JSON object
    assert all({"time", "level", "component", "message"} <= set(d) for d in docs)
    attempts = [d for d in docs if d["message"].startswith("waiting for the Kafka broker")]
    assert len(attempts) >= 2 and all(d["component"] == "startup" and "counts" in d for d in attempts)
    assert docs[0]["message"] == "distillguard worker settings" and docs[0]["settings"]["fingerprint_key"]
    assert "Traceback" not in proc.stderr and "%3|" not in proc.stderr


def test_sigterm_mid_stream_finishes_the_batch_and_loses_nothing(tmp_path, isolated_env, isolated_settings):
    """SIGTERM while events stream in: the worker exits 0 within DG_SHUTDOWN_TIMEOUT_S; restarted,
    it finishes the stream; every event reaches ClickHouse, duplicates at most one batch per partition."""
    from .faults.conftest import query, wait_drained

    settings = isolated_settings
    n = 12_000
    ensure_topics(settings)
    assert produce_events(settings, bench_events(n), progress=False) == n
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log").start()
    st = worker.wait_for(lambda s: s and s["events"] >= n // 4, 180, "a quarter of the events")
    t0 = time.monotonic()
    code = worker.stop(timeout=60)
    stop_s = time.monotonic() - t0
    first = worker.log_tail(4000)
    assert code == 0, first
    assert stop_s < settings.shutdown_timeout_s
    worker = WorkerProcess(isolated_env, tmp_path / "worker2.log").start()
    try:
        wait_drained(settings, worker, timeout=300)
        second = worker.status()["events"]
    finally:
        assert worker.stop() == 0, worker.log_tail()
    requests = query(settings, "SELECT sum(requests) FROM {db}.account_minute")
    print(f"\n[operability] SIGTERM after {st['events']:,} of {n:,} events; stopped in {stop_s:.1f}s (exit 0); "
          f"restart processed {second:,}; ClickHouse requests {requests:,} (duplicates {requests - n})")
    assert requests >= n, "events lost"
    assert requests - n <= settings.batch_max * settings.partitions, "more duplicates than at-least-once explains"
    assert "stopping: finishing the batch in progress" in first and "sink stopped, store closed" in first


def test_topics_are_made_before_the_worker_with_the_state_changelog_visible(tmp_path, isolated_settings):
    """The state table's changelog is created with the other topics, compacted and partitioned like
    the requests, and ensure_topics returns only once the metadata shows every partition with a
    leader: a consumer joining right after sees them all (Faust checks the count at a table's
    first write and stops the agent if it reads 0)."""
    from confluent_kafka.admin import ConfigResource

    from distillguard.streams.app import create_app
    from distillguard.streams.kafka_io import admin, state_changelog

    settings = isolated_settings
    created = ensure_topics(settings)
    name = state_changelog(settings)
    assert name in created and settings.topic_requests in created
    client = admin(settings)
    topic = client.list_topics(name, timeout=10).topics[name]
    assert len(topic.partitions) == settings.partitions and all(p.leader >= 0 for p in topic.partitions.values())
    config = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)])
    assert list(config.values())[0].result()["cleanup.policy"].value == "compact"
    # the name Faust gives the worker's table changelog
    app = create_app(load_settings({"DG_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "DG_APP_ID": settings.app_id,
                                    "DG_DATA_DIR": str(tmp_path / "app"), "DG_DEV": "1"}))
    assert app.tables["account-state"].changelog_topic.get_topic_name() == name
    assert ensure_topics(settings) == []   # idempotent
