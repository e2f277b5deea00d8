"""Restart the broker under load: the worker reconnects and continues; every
event is accounted for. Runs its OWN broker (infra/kafka/broker.sh on free
ports, its own data dir, the shared broker's jars via DG_KAFKA_LIBS); the
shared broker on 19092 is never touched."""
import threading
import time
import uuid

import pytest

from distillguard.streams.bench import bench_events
from distillguard.streams.kafka_io import ensure_topics, produce_events
from distillguard.streams.settings import load_settings

from ..conftest import free_port
from ..workers import WorkerProcess
from .conftest import pick, query, wait_drained

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture
def own_broker(private_broker):
    """A second, private broker (conftest.PrivateBroker), started; stopped (only it) at the end."""
    private_broker.start()
    return private_broker.bootstrap, private_broker.ctl


def test_broker_restart_under_load(tmp_path, own_broker, report):
    bootstrap, ctl = own_broker
    run = uuid.uuid4().hex[:8]
    env = {"DG_KAFKA_BOOTSTRAP": bootstrap, "DG_DATA_DIR": str(tmp_path / "var"), "DG_APP_ID": f"dg-br-{run}",
           "DG_TOPIC_REQUESTS": f"b{run}.requests", "DG_TOPIC_DLQ": f"b{run}.dlq", "DG_TOPIC_ALERTS": f"b{run}.alerts",
           "DG_TOPIC_SINK": f"b{run}.sink", "DG_PARTITIONS": "4", "DG_WORKER_WEB_PORT": str(free_port()),
           "DG_BATCH_WITHIN_S": "0.2"}
    settings = load_settings(env)
    n, rate = pick(12_000, 60_000), pick(600, 1000)
    events = list(bench_events(n))
    ensure_topics(settings)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    produced: list[int] = []
    errors: list[BaseException] = []

    def produce():
        try:   # paced: the restart happens while events keep arriving
            produced.append(produce_events(settings, events, rate=rate, progress=False))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    t0 = time.monotonic()
    th = threading.Thread(target=produce, daemon=True)
    try:
        th.start()
        st = worker.wait_for(lambda s: s and s["events"] >= n // 4, 300, "a quarter of the events")
        report["events_before_restart"] = st["events"]
        r = ctl("stop")
        assert r.returncode == 0, r.stderr
        down = time.monotonic()
        time.sleep(pick(5, 20))
        r = ctl("start")
        assert r.returncode == 0, r.stderr
        report["broker_down_s"] = round(time.monotonic() - down, 1)
        th.join(600)
        assert not errors, errors
        assert produced == [n]
        assert worker.proc.poll() is None, worker.log_tail()
        wait_drained(settings, worker, timeout=pick(400, 900))
        st = worker.status()
        report["processed_after_restart_counter"] = st["events"]
        report["alerts"] = sum(st["alerts"].values())
        report["sink"] = {k: st["sink"].get(k) for k in ("inserted", "retries", "consumer_restarts")}
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    requests = query(settings, "SELECT sum(requests) FROM {db}.account_minute")
    report.update(produced=n, aggregated_requests=requests, duplicate_requests=requests - n,
                  seconds=round(time.monotonic() - t0, 1))
    assert requests >= n
