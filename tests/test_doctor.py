"""`distillguard doctor` passes on a healthy setup (real broker, real worker) and names each
fault it is shown, with its fix: broker down, wrong partitions, development key, ClickHouse
unreachable."""
import subprocess
import sys

import pytest
from confluent_kafka.admin import NewTopic

from distillguard.streams.clickhouse import MIGRATIONS

from distillguard.streams.kafka_io import admin
from distillguard.streams.settings import load_settings

from .conftest import free_port
from .workers import WorkerProcess

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "distillguard.streams.cli", "doctor", "--timeout", "3"]
KEY = "0123456789abcdef0123456789abcdef"


def doctor(env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(CLI, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", **env})
    print(f"\n$ distillguard doctor   # exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    assert "Traceback" not in proc.stderr
    return proc


def line(proc, name: str) -> str:
    return next(ln for ln in proc.stdout.splitlines() if ln[2:].startswith(name))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory, broker):
    """A real worker on its own topics and store, ready; doctor's env for it."""
    import uuid
    tmp = tmp_path_factory.mktemp("doctor")
    run = uuid.uuid4().hex[:8]
    env = {"DG_KAFKA_BOOTSTRAP": broker, "DG_DATA_DIR": str(tmp / "var"), "DG_APP_ID": f"dg-doc-{run}",
           "DG_TOPIC_REQUESTS": f"d{run}.requests", "DG_TOPIC_DLQ": f"d{run}.dlq", "DG_TOPIC_ALERTS": f"d{run}.alerts",
           "DG_TOPIC_SINK": f"d{run}.sink", "DG_PARTITIONS": "4", "DG_WORKER_WEB_PORT": str(free_port()),
           "DG_FINGERPRINT_KEY": KEY}
    worker = WorkerProcess(env, tmp / "worker.log").start(wait="ready")
    try:
        yield env
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_doctor_passes_on_a_healthy_setup(healthy):
    proc = doctor(healthy)
    assert proc.returncode == 0, proc.stdout
    assert all(ln.startswith("✓") for ln in proc.stdout.strip().splitlines()[:-2]), proc.stdout
    assert "all checks passed" in proc.stdout
    assert f"schema version {MIGRATIONS[-1][0]} of {MIGRATIONS[-1][0]}" in line(proc, "clickhouse") and "ready" in line(proc, "worker")


def only_failures(proc) -> list[str]:
    return [ln for ln in proc.stdout.splitlines() if ln.startswith("✗")]


def test_doctor_names_a_broker_that_is_down(healthy):
    proc = doctor({**healthy, "DG_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})
    assert proc.returncode == 1
    assert only_failures(proc) == [line(proc, "broker")] and "DG_KAFKA_BOOTSTRAP" in line(proc, "broker")
    assert line(proc, "topics").startswith("-")


def test_doctor_names_wrong_partitions(healthy):
    """The topics have 4 partitions; settings that expect 3 are told which topics differ and how to fix it."""
    settings = load_settings(healthy)
    proc = doctor({**healthy, "DG_PARTITIONS": "3"})
    assert proc.returncode == 1
    bad = line(proc, f"topic {settings.topic_requests}")
    assert bad.startswith("✗") and "4 partitions, expected 3" in bad and "fix:" in bad
    assert all(ln.startswith("✗ topic") for ln in only_failures(proc))


def test_doctor_names_a_missing_topic_with_wrong_partitions(isolated_env, isolated_settings):
    s = isolated_settings
    client = admin(s)   # kept: a collected client cancels its futures
    for future in client.create_topics([NewTopic(s.topic_requests, num_partitions=3, replication_factor=1)]).values():
        future.result()
    proc = doctor({**isolated_env, "DG_FINGERPRINT_KEY": KEY})
    assert proc.returncode == 1
    assert "3 partitions, expected 4" in line(proc, f"topic {s.topic_requests}")
    assert "distillguard topics" in line(proc, f"topic {s.topic_dlq}")       # not created yet: missing


def test_doctor_names_the_development_key(healthy):
    proc = doctor({k: v for k, v in healthy.items() if k != "DG_FINGERPRINT_KEY"})
    assert proc.returncode == 1
    assert only_failures(proc) == [line(proc, "fingerprint key")]
    assert line(proc, "fingerprint key").startswith("✗ fingerprint key: DG_FINGERPRINT_KEY is the development key")


def test_doctor_names_clickhouse_unreachable(healthy):
    dsn = f"http://dg:s3cret@127.0.0.1:{free_port()}/distillguard"
    proc = doctor({**healthy, "DG_CLICKHOUSE_DSN": dsn})
    assert proc.returncode == 1
    ch = line(proc, "clickhouse")
    assert only_failures(proc) == [ch]
    assert "Connection refused" in ch and "DG_CLICKHOUSE_DSN" in ch
    assert "s3cret" not in proc.stdout + proc.stderr and proc.stderr == ""
