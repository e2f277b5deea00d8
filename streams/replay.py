"""``distillguard replay``: request events from a file through the same
detection code the stream workers run, in event-time order, no Kafka needed.

Input is JSONL (or JSONL.gz by file name). Events are re-ordered through a
bounded heap (``reorder`` events deep); an event older than what was already
processed is still processed, as a late event, and counted, exactly as the
stream worker handles late traffic.
"""
from __future__ import annotations

import gzip
import heapq
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distillguard.models import Detector
from distillguard.models.clusters import HydraPipeline
from distillguard.schemas import Alert, BadEvent, RequestEvent, parse_event

PROGRESS_EVERY_S = 1.0


@dataclass
class ReplayStats:
    lines: int = 0
    events: int = 0
    bad: Counter = field(default_factory=Counter)
    late: int = 0
    alerts: int = 0
    seconds: float = 0.0

    @property
    def eps(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        bad = sum(self.bad.values())
        by_reason = ", ".join(f"{r}={n}" for r, n in self.bad.most_common())
        return (f"replay: {self.events} events, {bad} bad lines{f' ({by_reason})' if bad else ''}, "
                f"{self.late} late, {self.alerts} alert events in {self.seconds:.1f}s "
                f"({self.eps:,.0f} events/s)")


def open_lines(path: str | Path) -> Iterator[bytes]:
    """Lines of a JSONL or JSONL.gz file (by name), blank lines skipped."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield line


def ordered_events(lines: Iterable[bytes], stats: ReplayStats, reorder: int = 50_000,
                   max_bytes: int = 262144, on_bad: Callable[[int, BadEvent], None] | None = None
                   ) -> Iterator[RequestEvent]:
    """Parse lines and yield events in event-time order (within a ``reorder``-deep buffer)."""
    heap: list[tuple[int, int, RequestEvent]] = []
    emitted = -1
    for n, line in enumerate(lines, 1):
        stats.lines = n
        try:
            ev = parse_event(line, max_bytes)
        except BadEvent as err:
            stats.bad[err.reason] += 1
            if on_bad:
                on_bad(n, err)
            continue
        heapq.heappush(heap, (ev.ts_ms, n, ev))
        if len(heap) > reorder:
            ts, _, out = heapq.heappop(heap)
            if ts < emitted:
                stats.late += 1
            emitted = max(emitted, ts)
            yield out
    while heap:
        ts, _, out = heapq.heappop(heap)
        if ts < emitted:
            stats.late += 1
        emitted = max(emitted, ts)
        yield out


def replay(lines: Iterable[bytes], detector: Detector, on_alert: Callable[[Alert], None],
           progress: Callable[[ReplayStats], None] | None = None, reorder: int = 50_000,
           on_bad: Callable[[int, BadEvent], None] | None = None,
           hydra: HydraPipeline | None | bool = None) -> ReplayStats:
    """Run ``detector`` over ``lines``; call ``on_alert`` for every alert event.

    After the per-account detector, every event also goes through the cross-account
    pipeline (``models.clusters.HydraPipeline``, the code the stream's link, linker and
    cluster agents run); by default one is built for a :class:`Detector`, ``hydra=False``
    turns it off."""
    if hydra is None and isinstance(detector, Detector):
        hydra = HydraPipeline(detector.key, detector.config)
    stats = ReplayStats()
    start = last_report = time.perf_counter()
    last_advance = 0
    for ev in ordered_events(lines, stats, reorder, on_bad=on_bad):
        stats.events += 1
        for alert in detector.process_one(ev):
            stats.alerts += 1
            on_alert(alert)
        if hydra:
            for alert in hydra.process_one(ev, getattr(detector, "last_features", None),
                                           detector.states.get(ev.account_id)):
                stats.alerts += 1
                on_alert(alert)
        if ev.ts_ms - last_advance >= 60_000:   # close quiet alerts once a minute of event time
            last_advance = ev.ts_ms
            for alert in detector.advance():
                stats.alerts += 1
                on_alert(alert)
            for alert in hydra.advance() if hydra else ():
                stats.alerts += 1
                on_alert(alert)
        if progress and stats.events % 4096 == 0:
            now = time.perf_counter()
            if now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                stats.seconds = now - start
                progress(stats)
    for alert in [*detector.advance(), *(hydra.advance() if hydra else ())]:
        stats.alerts += 1
        on_alert(alert)
    stats.seconds = time.perf_counter() - start
    return stats


def print_progress(stats: ReplayStats) -> None:
    print(f"\rreplay: {stats.events:,} events, {stats.alerts} alert events, {stats.eps:,.0f} events/s",
          end="", file=sys.stderr, flush=True)
