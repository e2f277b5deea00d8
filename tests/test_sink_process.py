"""The worker's sink as a supervised child process (DG_SINK_PROCESS=1, the default with the
embedded store): real broker, real chDB, real processes.

A child killed with SIGKILL mid-stream is started again and no row is lost (at-least-once:
its uncommitted rows are inserted again); the child holds the store's lock (no second
process opens it); the status page keeps its ``sink`` and ``memory.clickhouse`` keys and
shows the child's own memory; the worker's SIGTERM stops the child and frees the store."""
import os
import signal
import time

import orjson
import pytest

from distillguard.streams.bench import bench_events
from distillguard.streams.clickhouse import Store, StoreBusy
from distillguard.streams.kafka_io import ensure_topics, produce_events

from .faults.conftest import query, read_all, wait_drained
from .workers import WorkerProcess

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_killed_sink_child_is_restarted_and_no_row_is_lost(tmp_path, isolated_env, isolated_settings):
    settings = isolated_settings
    n = 12_000
    ensure_topics(settings)
    assert produce_events(settings, bench_events(n), progress=False) == n
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log").start()
    try:
        st = worker.wait_for(lambda s: s and s["sink"]["process"]["pid"] and s["sink"]["inserted"], 180,
                             "the sink child to insert rows")
        first = st["sink"]["process"]["pid"]
        assert first != worker.proc.pid and _alive(first)
        assert {"rss_mb", "rss_anon_mb"} <= set(st["memory"]["sink_process"]), st["memory"]
        assert "MemoryTracking" in worker.wait_for(lambda s: s["memory"].get("clickhouse"), 30,
                                                   "chDB's memory figures")["memory"]["clickhouse"]
        with pytest.raises(StoreBusy):      # the child holds the embedded store: nobody else opens it
            Store(settings)
        os.kill(first, signal.SIGKILL)
        st = worker.wait_for(lambda s: s["sink"]["process"]["restarts"] >= 1 and s["sink"]["process"]["pid"]
                             and s["sink"]["process"]["pid"] != first, 60, "the sink child to be restarted")
        second = st["sink"]["process"]["pid"]
        # The first child may have drained everything before it was killed; a stop sent while
        # the second is still importing would end it before its handlers exist (exit -15).
        worker.wait_for(lambda s: f"sink started (pid {second})" in worker.log_tail(20_000), 60,
                        "the second sink child to start")
        wait_drained(settings, worker, timeout=300)
        worker.wait_for(lambda s: s["sink"]["pending_rows"] == 0 and s["events"] >= n, 60, "the sink to settle")
    finally:
        code = worker.stop()
    log = worker.log_tail(20_000)
    assert code == 0, log
    assert not _alive(second), "the worker's stop left its sink child running"
    assert "sink process exited (code -9); starting it again" in log
    assert "sink stopped, store closed" in log
    requests = query(settings, "SELECT sum(requests) FROM {db}.account_minute")   # the lock is free again
    alert_ids = {orjson.loads(m.value())["alert_id"] for m in read_all(settings, settings.topic_alerts)}
    stored = query(settings, "SELECT uniqExact(alert_id) FROM {db}.alert_events")
    print(f"\n[sink process] child {first} killed, restarted as {second}; ClickHouse requests {requests:,} "
          f"of {n:,} (re-inserted {requests - n:,}); alert ids {stored} of {len(alert_ids)}")
    assert requests >= n, "rows lost"
    assert alert_ids and stored == len(alert_ids)


def test_sink_thread_in_the_worker_when_asked(tmp_path, isolated_env, isolated_settings):
    """DG_SINK_PROCESS=0 keeps the sink a thread of the worker: no child, same status keys."""
    ensure_topics(isolated_settings)
    assert produce_events(isolated_settings, bench_events(2_000), progress=False) == 2_000
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log", DG_SINK_PROCESS="0").start()
    try:
        st = worker.wait_for(lambda s: s and s["sink"]["inserted"] and s["memory"].get("clickhouse"), 120,
                             "rows inserted by the sink thread")
        assert "process" not in st["sink"] and "sink_process" not in st["memory"]
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_a_sink_whose_loop_stopped_turning_exits_1_for_its_worker_to_restart(isolated_settings, monkeypatch):
    # a thread stuck in a call (a librdkafka call that never returns) stops the loop; the process
    # notices its heartbeat stopped and exits 1, so the supervising worker starts a fresh one
    import threading

    from distillguard.streams import sink_cli

    class StuckSink(threading.Thread):
        def __init__(self):
            super().__init__(daemon=True)
            self.beat = time.monotonic()
            self.last_error = ""
            self.store = type("S", (), {"close": lambda self: None, "describe": lambda self: "stub"})()

        def run(self):
            threading.Event().wait()   # never turns

    monkeypatch.setattr(sink_cli, "open_sink", lambda settings: StuckSink())
    monkeypatch.setattr(sink_cli, "WEDGED_S", 1.0)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    try:
        assert sink_cli.run_sink(isolated_settings) == 1
    finally:
        for sig, handler in handlers.items():   # run_sink installs its own
            signal.signal(sig, handler)
    assert 1.0 <= time.monotonic() - started < 10
