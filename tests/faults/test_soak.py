"""Soak: 5M events (full form; 20k short) through one worker; its memory stays flat.

Every copy of the scenario is the same seed shifted in event time, so the same
accounts continue (a steady population; the first run of the full form used a new
seed per copy: the population grew sixfold and RSS with it), and with churn: each
copy renames a quarter of the accounts (``bench_events(churn=4)``), so new accounts
arrive and old ones go idle past the detector's expiry, as in production.

The worker's status page reports its memory by component (``memory``: RSS, malloc,
Python, the embedded ClickHouse, and the sink's own process, ``sink.*``: with the embedded
store the sink and chDB run in a child of the worker by default, ``DG_SINK_PROCESS=1``) and every bounded structure's (size, bound)
(``bounds``); the test samples both and prints the curve at every 10% of the stream.
Checked, short and full form: the status page reports every structure the pipeline bounds,
and none is over its bound at any sample. Full form (``soak_check``, medians of windows and a
robust slope, not single samples): the worker's RSS grows by at most 5% between 30% and 100% of
the stream (median of the last 10% over the median at 25-35%; the sink process's and the sum's
growth are reported beside it), and no component -- the sink process's included -- rose by more than 3% of
its level (+8) over the second half, at the lower 95% confidence bound of its robust slope. Every sample goes to ``var/faults/soak_samples.json``.
``DG_SOAK_EVENTS=N`` sets the length (diagnosis runs).
"""
import os
import threading
import time

import orjson
import pytest

from distillguard.streams.bench import bench_events
from distillguard.streams.kafka_io import ensure_topics, produce_events

from ..workers import WorkerProcess
from .conftest import FULL, REPO, pick, vm_rss_mb
from .soak_check import growth_after_warmup, trend_rise, trending_up

pytestmark = [pytest.mark.faults, pytest.mark.integration]
CHURN = 4               # a quarter of the accounts are new in each copy of the scenario
RSS_GROWTH = 0.05       # RSS after warm-up (30% of the stream) may grow this much by the end
CUMULATIVE = {"malloc_trimmed_mb", "sink.malloc_trimmed_mb", "clickhouse.jemalloc_purged_mb"}   # totals since the start, not sizes: shown, never trend-checked
MAX_LAG = 50_000        # events produced ahead of the worker at most (see ``paced``)


def paced(events, processed: list[int]):
    """``events``, never more than MAX_LAG ahead of ``processed[0]``. Like a live gateway, not a
    backlog: Faust reads the four partitions at about the same message rate, so over a backlog of
    millions the partitions with fewer events run days ahead in event time (136 h after 1M events
    in the first 5M run), the low watermark that expires idle accounts trails the fast ones, and
    the state count grows with the skew -- a catch-up effect, not the steady state soaked here."""
    for i, ev in enumerate(events):
        while i % 1000 == 0 and i - processed[0] > MAX_LAG:
            time.sleep(0.2)
        yield ev


def memory_components(status: dict) -> dict[str, float]:
    """Flat ``component -> size`` of a status page: memory figures (MB, blocks) and
    bounded structures' sizes."""
    mem = status.get("memory", {})
    out = {k: v for k, v in mem.items() if isinstance(v, (int, float))}
    out.update({f"clickhouse.{k}": v for k, v in mem.get("clickhouse", {}).items() if isinstance(v, (int, float))})
    # the sink's own process (DG_SINK_PROCESS=1, the default): chDB lives there
    out.update({f"sink.{k}": v for k, v in mem.get("sink_process", {}).items() if isinstance(v, (int, float))})
    out.update({f"traced.{k}": v for k, v in mem.get("python_top_files_mb", {}).items()})   # DG_TRACEMALLOC=1
    out.update({k: size for k, (size, _) in status.get("bounds", {}).items()})
    return out


def save_samples(n: int, samples: list) -> None:
    """Every sample so far, for a second look at a curve (``soak_check``), also of a cut-short run."""
    out = REPO / "var" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak_samples.json").write_bytes(orjson.dumps({"events": n, "samples": samples}))


def _pct(growth: float | None) -> float | None:
    return None if growth is None else round(100 * growth, 2)


def expected_bounds() -> set[str]:
    """The structures a worker's pipeline bounds: the status page must report each of them (a
    structure dropped from ``bounds`` would otherwise pass the soak unseen)."""
    from distillguard.models.pipeline import Pipeline
    p = Pipeline()
    cross = p.cross
    return {*p.accounts.detector.bounds(), *cross.observer.bounds(), *cross.linker.bounds(),
            *cross.clusters.engine.bounds(), "worker.table", "worker.partition_of"}


def test_soak_rss_flat(tmp_path, isolated_env, isolated_settings, report):
    settings = isolated_settings
    n = int(os.environ.get("DG_SOAK_EVENTS") or pick(20_000, 5_000_000))
    ensure_topics(settings)
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log", DG_LOG_LEVEL="warn").start()
    produced: list[int] = []
    processed = [0]      # the worker's count, for the producer's pacing
    producer = threading.Thread(target=lambda: produced.append(produce_events(
        settings, paced(bench_events(n, new_accounts=False, churn=CHURN), processed), progress=False)), daemon=True)
    t0 = time.monotonic()
    producer.start()
    samples: list[tuple[int, float, dict]] = []   # (events processed, VmRSS MB, components)
    over: dict[str, tuple[int, int]] = {}         # structure -> (size, bound) when over its bound
    tenth = 1
    try:
        deadline = time.monotonic() + pick(600, 3 * 3600)
        while time.monotonic() < deadline:
            st = worker.status()
            if worker.proc.poll() is not None:
                raise AssertionError(worker.log_tail())
            if st:
                processed[0] = st["events"]
                samples.append((st["events"], vm_rss_mb(worker.proc.pid), memory_components(st)))
                over.update({k: (s, b) for k, (s, b) in st.get("bounds", {}).items() if s > b})
                if st["events"] >= tenth * n // 10:   # progress: a long soak shows its curve as it goes
                    print(f"[soak] {st['events']:,} events, {time.monotonic() - t0:.0f} s: "
                          f"{orjson.dumps(samples[-1][2]).decode()}", flush=True)
                    tenth = st["events"] * 10 // n + 1
                    save_samples(n, samples)
                if st["events"] >= n:
                    break
            time.sleep(2 if FULL else 1)
        producer.join(60)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert produced == [n]
    assert samples[-1][0] >= n, f"processed {samples[-1][0]} of {n} in time"
    elapsed = time.monotonic() - t0
    # the curves at every 10% of the stream: RSS, and every component
    curve, table = [], {}
    for k in range(1, 11):
        at = k * n // 10
        e, rss, comp = next(s for s in samples if s[0] >= at)
        curve.append([at, round(rss, 1)])
        table[at] = comp
    rss = [(e, r) for e, r, _ in samples]
    growth = growth_after_warmup(rss, n)
    # the sink child's RSS (its own report) and the two together: what the machine pays
    sink_rss = [(e, comp["sink.rss_mb"]) for e, _, comp in samples if "sink.rss_mb" in comp]
    both = [(e, r + comp["sink.rss_mb"]) for e, r, comp in samples if "sink.rss_mb" in comp]
    sink_curve = [[at, table[at].get("sink.rss_mb")] for at in table]
    sink_growth, both_growth = growth_after_warmup(sink_rss, n), growth_after_warmup(both, n)
    names = sorted({c for _, _, comp in samples for c in comp})
    series = {c: [(e, comp[c]) for e, _, comp in samples if c in comp] for c in names}
    trending = sorted(c for c in names if c not in CUMULATIVE and trending_up(series[c], n))
    missing = sorted(expected_bounds() - set(samples[-1][2]))
    report.update(events=n, seconds=round(elapsed, 1), events_per_s=round(n / elapsed), rss_curve_mb=curve,
                  growth_after_warmup_pct=None if growth is None else round(100 * growth, 2),
                  sink_rss_curve_mb=sink_curve, sink_growth_after_warmup_pct=_pct(sink_growth),
                  worker_plus_sink_growth_after_warmup_pct=_pct(both_growth),
                  over_bound=over, trending_up=trending, bounds_missing=missing,
                  rise_over_second_half={c: round(trend_rise(series[c], n), 1) for c in names},
                  components={c: [table[at].get(c) for at in table] for c in names})
    save_samples(n, samples)
    print(f"\n[soak] component sizes at every 10% of {n:,} events:")
    print("  " + f"{'component':<32}" + "".join(f"{at // 1000:>9,}k" for at in table))
    for c in names:
        print("  " + f"{c:<32}" + "".join(f"{table[at].get(c, ''):>10}" for at in table))
    print(f"[soak] RSS growth, median of the last 10% over the median at 25-35%: worker "
          f"{report['growth_after_warmup_pct']}%, sink process {report['sink_growth_after_warmup_pct']}%, "
          f"both {report['worker_plus_sink_growth_after_warmup_pct']}%")
    print(f"[soak] RSS MB at every 10%: worker {[r for _, r in curve]}, sink process {[r for _, r in sink_curve]}")
    assert not missing, f"the status page does not report these bounded structures: {missing}"
    assert not over, f"structures over their bound: {over}"
    if FULL:
        assert growth is not None and growth <= RSS_GROWTH, report
        assert not trending, f"still growing at the end: {trending}"
    else:   # short runs are mostly warm-up: allocator noise, a generous bound
        after = [r for e, r in rss if e >= 0.3 * n]
        assert max(after) - after[0] <= max(40.0, 0.15 * after[0]), rss
