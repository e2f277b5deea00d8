"""``distillguard replay``: request events from a file through the same
detection code the stream workers run, in event-time order, no Kafka needed.

Input is JSONL (or JSONL.gz by file name). Events are re-ordered through a
bounded heap (``reorder`` events deep); an event older than what was already
processed is still processed, as a late event, and counted, exactly as the
stream worker handles late traffic.
"""
from __future__ import annotations

import fcntl
import gzip
import heapq
import marshal
import multiprocessing
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distillguard.models import Detector
from distillguard.models.clusters import HydraPipeline
from distillguard.schemas import Alert, BadEvent, RequestEvent, parse_event

PROGRESS_EVERY_S = 1.0


class ReplayError(RuntimeError):
    """The cross-account process of ``jobs=2`` failed or exited; says where."""


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


ADVANCE_EVERY_MS = 60_000   # close quiet alerts once a minute of event time
BATCH = 1024                # events per batch handed to the cross-account process (~250 KB)
PIPE_BYTES = 1 << 20


def replay(lines: Iterable[bytes], detector: Detector, on_alert: Callable[[Alert], None],
           progress: Callable[[ReplayStats], None] | None = None, reorder: int = 50_000,
           on_bad: Callable[[int, BadEvent], None] | None = None,
           hydra: HydraPipeline | None | bool = None, jobs: int = 1) -> ReplayStats:
    """Run ``detector`` over ``lines``; call ``on_alert`` for every alert event.

    After the per-account detector, every event also goes through the cross-account
    pipeline (``models.clusters.HydraPipeline``, the code the stream's link, linker and
    cluster agents run); by default one is built for a :class:`Detector`, ``hydra=False``
    turns it off.

    ``jobs=2`` runs the cross-account pipeline in a second process, fed in batches of
    ``BATCH`` events: the same alert events in the same order, sooner on two cores; but
    ``on_alert`` gets an event's cluster alerts a batch or two later than in one process."""
    if hydra is None and isinstance(detector, Detector):
        hydra = HydraPipeline(detector.key, detector.config)
    stats = ReplayStats()
    start = time.perf_counter()
    events = ordered_events(lines, stats, reorder, on_bad=on_bad)
    if hydra and jobs > 1:
        with _HydraProcess(hydra) as child:
            _replay_split(events, detector, child, on_alert, stats, progress)
    else:
        _replay_inline(events, detector, hydra or None, on_alert, stats, progress)
    stats.seconds = time.perf_counter() - start
    return stats


def _advance_due(ts: int, last_advance: int) -> bool:
    return ts - last_advance >= ADVANCE_EVERY_MS


class _Progress:
    """Calls ``progress`` at most once per ``PROGRESS_EVERY_S``."""

    def __init__(self, stats: ReplayStats, progress: Callable[[ReplayStats], None] | None):
        self.stats, self.progress = stats, progress
        self.start = self.last = time.perf_counter()

    def tick(self) -> None:
        if self.progress and self.stats.events % 4096 == 0:
            now = time.perf_counter()
            if now - self.last >= PROGRESS_EVERY_S:
                self.last = now
                self.stats.seconds = now - self.start
                self.progress(self.stats)


def _replay_inline(events: Iterable[RequestEvent], detector: Detector, hydra: HydraPipeline | None,
                   on_alert: Callable[[Alert], None], stats: ReplayStats,
                   progress: Callable[[ReplayStats], None] | None) -> None:
    def emit(alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            stats.alerts += 1
            on_alert(alert)

    ticker = _Progress(stats, progress)
    last_advance = 0
    for ev in events:
        stats.events += 1
        emit(detector.process_one(ev))
        if hydra:
            emit(hydra.process_one(ev, getattr(detector, "last_features", None),
                                   detector.states.get(ev.account_id)))
        if _advance_due(ev.ts_ms, last_advance):
            last_advance = ev.ts_ms
            emit(detector.advance())
            emit(hydra.advance() if hydra else ())
        ticker.tick()
    emit(detector.advance())
    emit(hydra.advance() if hydra else ())


# Alert events are merged back in the order one process emits them: by event number, then
# by phase within an event.
P_DETECT, P_CLUSTER, P_DETECT_ADVANCE, P_CLUSTER_ADVANCE = range(4)


def _replay_split(events: Iterable[RequestEvent], detector: Detector, child: _HydraProcess,
                  on_alert: Callable[[Alert], None], stats: ReplayStats,
                  progress: Callable[[ReplayStats], None] | None) -> None:
    ticker = _Progress(stats, progress)
    hydra = child.hydra
    last_advance = 0
    mine: list[tuple[int, int, Alert]] = []
    records: list[tuple] = []
    in_flight: deque[list[tuple[int, int, Alert]]] = deque()

    def emit(own: list[tuple[int, int, Alert]], theirs: list[tuple[int, int, Alert]]) -> None:
        for _, _, alert in heapq.merge(own, theirs, key=lambda t: (t[0], t[1])):
            stats.alerts += 1
            on_alert(alert)

    def send() -> None:
        nonlocal mine, records
        child.send(records)
        in_flight.append(mine)
        mine, records = [], []
        if len(in_flight) > 2:   # keep two batches in flight: both processes stay busy
            emit(in_flight.popleft(), child.receive())

    for seq, ev in enumerate(events):
        stats.events += 1
        mine.extend((seq, P_DETECT, a) for a in detector.process_one(ev))
        records.append(hydra.record(ev, getattr(detector, "last_features", None)))
        if _advance_due(ev.ts_ms, last_advance):
            last_advance = ev.ts_ms
            mine.extend((seq, P_DETECT_ADVANCE, a) for a in detector.advance())
        if len(records) >= BATCH:
            send()
        ticker.tick()
    mine.extend((stats.events, P_DETECT_ADVANCE, a) for a in detector.advance())
    send()
    child.finish()
    while in_flight:
        emit(in_flight.popleft(), child.receive())


def start_method() -> str:
    """``fork`` (no start-up cost) from a single-threaded process, else ``spawn``: forking a
    process with other threads running can copy a lock one of them holds."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


class _HydraProcess:
    """``HydraPipeline`` in a child process. Batches of ``link_record`` tuples go down a pipe
    (marshal); alert events come back per batch, tagged (event number, phase). A failure in
    the child is raised here as :class:`ReplayError`."""

    def __init__(self, hydra: HydraPipeline):
        self.hydra = hydra
        self._next = 0     # number of the first event of the next batch

    def __enter__(self) -> _HydraProcess:
        ctx = multiprocessing.get_context(start_method())
        down_r, self.down = ctx.Pipe(duplex=False)
        self.up, up_w = ctx.Pipe(duplex=False)
        try:   # room for a few batches (the default 64 KB holds none): the parent never waits to write
            fcntl.fcntl(self.down.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        except OSError:   # not Linux, or above /proc/sys/fs/pipe-max-size: slower, not wrong
            pass
        self.proc = ctx.Process(target=_hydra_child, args=(down_r, up_w, self.hydra), daemon=True,
                                name="distillguard-replay-clusters")
        self.proc.start()
        down_r.close()
        up_w.close()
        return self

    def __exit__(self, *exc) -> None:
        self.down.close()
        self.up.close()
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()

    def send(self, records: list[tuple]) -> None:
        self._write(marshal.dumps((self._next, records)))
        self._next += len(records)

    def finish(self) -> None:
        self._write(b"")

    def _write(self, data: bytes) -> None:
        try:
            self.down.send_bytes(data)
        except OSError:   # the child is gone: its replies say why (receive raises)
            while True:
                self.receive()

    def receive(self) -> list[tuple[int, int, Alert]]:
        try:
            kind, payload = pickle.loads(self.up.recv_bytes())
        except EOFError:
            self.proc.join(timeout=5)
            raise ReplayError(f"the cross-account process exited (exit code {self.proc.exitcode})") from None
        if kind == "error":
            raise ReplayError(f"the cross-account process failed: {payload}")
        return payload


def _hydra_child(down, up, hydra: HydraPipeline) -> None:
    """The child's loop: one reply per batch; an empty message asks for the final advance."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # ^C is the parent's to handle: it closes the pipe
    last_advance = seq = 0
    try:
        while True:
            raw = down.recv_bytes()
            if not raw:   # after the last batch: the final advance, numbered as in the parent
                up.send_bytes(pickle.dumps(("ok", [(seq, P_CLUSTER_ADVANCE, a) for a in hydra.advance()])))
                return
            seq, batch = marshal.loads(raw)
            out = []
            for record in batch:
                out.extend((seq, P_CLUSTER, a) for a in hydra.process_record(record))
                ts = record[1]
                if _advance_due(ts, last_advance):
                    last_advance = ts
                    out.extend((seq, P_CLUSTER_ADVANCE, a) for a in hydra.advance())
                seq += 1
            up.send_bytes(pickle.dumps(("ok", out)))
    except EOFError:   # the parent stopped early (an error of its own, ^C): nothing to report
        pass
    except Exception as err:  # reported to the parent, which raises it
        where = traceback.extract_tb(err.__traceback__)[-1]
        up.send_bytes(pickle.dumps(("error", f"{type(err).__name__}: {err} "
                                             f"({Path(where.filename).name}:{where.lineno})")))
    finally:
        down.close()
        up.close()


def print_progress(stats: ReplayStats) -> None:
    print(f"\rreplay: {stats.events:,} events, {stats.alerts} alert events, {stats.eps:,.0f} events/s",
          end="", file=sys.stderr, flush=True)
