"""Soak: 1M events (full form; 20k short) through one worker; its RSS stays flat
after warm-up. Every copy of the scenario is the same seed shifted in event time,
so the same accounts continue and the state does not grow with the copies (the
first run of the full form used a new seed per copy: the account population grew
sixfold and RSS with it)."""
import threading
import time

import pytest

from distillguard.streams.bench import bench_events
from distillguard.streams.kafka_io import ensure_topics, produce_events

from ..workers import WorkerProcess
from .conftest import pick, vm_rss_mb

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_soak_rss_flat(tmp_path, isolated_env, isolated_settings, report):
    settings = isolated_settings
    n = pick(20_000, 1_000_000)
    ensure_topics(settings)
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log", DG_LOG_LEVEL="warn").start()
    produced: list[int] = []
    producer = threading.Thread(target=lambda: produced.append(
        produce_events(settings, bench_events(n, new_accounts=False), progress=False)), daemon=True)
    t0 = time.monotonic()
    producer.start()
    samples: list[tuple[int, float]] = []   # (events processed, VmRSS MB)
    try:
        deadline = time.monotonic() + pick(600, 3600)
        while time.monotonic() < deadline:
            st = worker.status()
            if worker.proc.poll() is not None:
                raise AssertionError(worker.log_tail())
            if st:
                samples.append((st["events"], vm_rss_mb(worker.proc.pid)))
                if st["events"] >= n:
                    break
            time.sleep(1)
        producer.join(60)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert produced == [n]
    assert samples[-1][0] >= n, f"processed {samples[-1][0]} of {n} in time"
    elapsed = time.monotonic() - t0
    # the curve at every 10% of the stream
    curve = []
    for k in range(1, 11):
        at = k * n // 10
        curve.append([at, round(next(r for e, r in samples if e >= at), 1)])
    warm = next(r for e, r in samples if e >= 0.3 * n)     # after warm-up: 30% of the stream
    after = [r for e, r in samples if e >= 0.3 * n]
    growth = max(after) - warm
    report.update(events=n, seconds=round(elapsed, 1), events_per_s=round(n / elapsed),
                  rss_curve_mb=curve, rss_at_warmup_mb=round(warm, 1), rss_max_after_mb=round(max(after), 1),
                  growth_after_warmup_mb=round(growth, 1))
    # flat: at most 15% (or 40 MB on small runs, allocator noise) above the warmed-up size
    assert growth <= max(40.0, 0.15 * warm), report
