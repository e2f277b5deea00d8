"""``distillguard replay``: request events from a file through the same
detection program the stream workers run (``models.pipeline``), in event-time
order, no Kafka needed.

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

from distillguard.models.pipeline import AccountOutput, CrossAccountPipeline, Pipeline
from distillguard.models.records import LinkRecord
from distillguard.schemas import Alert, BadEvent, RequestEvent, parse_event

from .dlq import PROCESSING_ERROR, ProcessingFailure, process_guarded

PROGRESS_EVERY_S = 1.0


class ReplayError(RuntimeError):
    """The cross-account process of ``jobs=2`` failed or exited; says where."""


@dataclass
class ReplayStats:
    lines: int = 0
    events: int = 0
    bad: Counter = field(default_factory=Counter)
    late: int = 0
    duplicates: int = 0     # re-delivered event ids, counted once (AccountDetector.dedupe)
    alerts: int = 0
    seconds: float = 0.0

    @property
    def eps(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        bad = sum(self.bad.values())
        by_reason = ", ".join(f"{r}={n}" for r, n in self.bad.most_common())
        return (f"replay: {self.events} events, {bad} bad lines{f' ({by_reason})' if bad else ''}, "
                f"{self.late} late, {self.duplicates} duplicate, {self.alerts} alert events in {self.seconds:.1f}s "
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


BATCH = 1000                # events per batch: a replay is the stream with batches of this many
                            # events from one partition (DG_BATCH_MAX's default); also the batch
                            # of link records sent to the cross-account process (~250 KB)
PIPE_BYTES = 1 << 20
# Alert events are emitted in the order one process would emit them: by event number, then phase.
P_ACCOUNT, P_CLUSTER, P_END_BATCH, P_FINISH = range(4)
Tagged = tuple[int, int, Alert]


def replay(lines: Iterable[bytes], pipeline: Pipeline, on_alert: Callable[[Alert], None],
           progress: Callable[[ReplayStats], None] | None = None, reorder: int = 50_000,
           on_bad: Callable[[int, BadEvent], None] | None = None, jobs: int = 1,
           on_event: Callable[[RequestEvent, AccountOutput], None] | None = None) -> ReplayStats:
    """Drive ``pipeline`` (``models.pipeline.Pipeline``) over ``lines``; call ``on_alert`` for every
    alert event and ``on_event`` (if given) after each request's per-account stage.

    Like a stream worker that reads one partition: ``process`` per event, ``end_batch`` after
    every ``BATCH`` events at the highest event time so far (the low watermark of one ordered
    source), ``finish`` at the end. ``jobs=2`` runs the cross-account part in a second process,
    fed batches of ``LinkRecord``s: the same alert events in the same order (``on_alert`` gets
    an event's alerts a batch or two later than with one process)."""
    stats = ReplayStats()
    start = time.perf_counter()
    events = ordered_events(lines, stats, reorder, on_bad=on_bad)
    if pipeline.cross is not None and jobs > 1:
        with _CrossAccountProcess(pipeline.cross) as cross:
            _drive(events, pipeline, cross, on_alert, on_event, stats, progress)
    else:
        cross = None if pipeline.cross is None else _InlineCross(pipeline.cross)
        _drive(events, pipeline, cross, on_alert, on_event, stats, progress)
    stats.seconds = time.perf_counter() - start
    return stats


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


class _Merge:
    """Emits the per-account alerts (made here) and the cross-account ones (made in-process or
    in the child, ``done`` up to some event number) in (event number, phase) order."""

    def __init__(self, on_alert: Callable[[Alert], None], stats: ReplayStats):
        self.on_alert, self.stats = on_alert, stats
        self.own: deque[Tagged] = deque()
        self.theirs: deque[Tagged] = deque()

    def add(self, seq: int, phase: int, alerts: Iterable[Alert]) -> None:
        self.own.extend((seq, phase, a) for a in alerts)

    def emit(self, done: int) -> None:
        """Emit everything that no cross-account result for events ``>= done`` can precede."""
        own, theirs = self.own, self.theirs
        while own or theirs:
            if theirs and (not own or theirs[0][:2] < own[0][:2]):
                alert = theirs.popleft()[2]
            elif own[0][:2] < (done, P_CLUSTER):
                alert = own.popleft()[2]
            else:
                return
            self.stats.alerts += 1
            self.on_alert(alert)


def _drive(events: Iterable[RequestEvent], pipeline: Pipeline, cross: _InlineCross | _CrossAccountProcess | None,
           on_alert: Callable[[Alert], None], on_event: Callable[[RequestEvent, AccountOutput], None] | None,
           stats: ReplayStats, progress: Callable[[ReplayStats], None] | None) -> None:
    """The one replay loop, whether the cross-account part runs here, elsewhere or not at all."""
    ticker = _Progress(stats, progress)
    accounts = pipeline.accounts
    merge = _Merge(on_alert, stats)
    watermark = 0
    seq = -1     # number of the request among those processed (re-deliveries are not)
    for ev in events:
        stats.events += 1
        out = process_guarded(accounts, ev, (0, stats.events))   # its number in the input: a position, as the stream's offset
        if type(out) is ProcessingFailure:   # counted and reported, as the stream dead-letters it
            stats.bad[PROCESSING_ERROR] += 1
            print(f"replay: the detector failed on event {ev.event_id} ({out.detail}); counted as "
                  f"{PROCESSING_ERROR}", file=sys.stderr)
            continue
        if out is None:   # a re-delivered event id: counted once
            stats.duplicates += 1
            continue
        seq += 1
        if on_event is not None:
            on_event(ev, out)
        merge.add(seq, P_ACCOUNT, out.alerts)
        if ev.ts_ms > watermark:
            watermark = ev.ts_ms
        if cross is not None:
            merge.theirs.extend(cross.submit(seq, out.record))
        if (seq + 1) % BATCH == 0:
            merge.add(seq, P_END_BATCH, accounts.end_batch(watermark).alerts)
        merge.emit(cross.done if cross is not None else seq + 1)
        ticker.tick()
    if (seq + 1) % BATCH:
        merge.add(seq, P_END_BATCH, accounts.end_batch(watermark).alerts)
    if cross is not None:
        merge.theirs.extend(cross.finish(seq + 1))
    merge.emit(1 << 62)


class _InlineCross:
    """The cross-account pipeline in this process: results right away."""

    def __init__(self, cross: CrossAccountPipeline):
        self.cross = cross
        self.done = 0     # cross-account results of events < done are out

    def submit(self, seq: int, record: LinkRecord) -> list[Tagged]:
        self.done = seq + 1
        return [(seq, P_CLUSTER, a) for a in self.cross.process(record).alerts]

    def finish(self, seq: int) -> list[Tagged]:
        return [(seq, P_FINISH, a) for a in self.cross.finish().alerts]


def start_method() -> str:
    """``fork`` (no start-up cost) from a single-threaded process, else ``spawn``: forking a
    process with other threads running can copy a lock one of them holds."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


class _CrossAccountProcess:
    """``CrossAccountPipeline`` in a child process. Batches of ``BATCH`` link records go down a
    pipe (marshal, as plain tuples); tagged alert events come back per batch, two batches in
    flight so both processes stay busy. A failure in the child is raised here as
    :class:`ReplayError`."""

    def __init__(self, cross: CrossAccountPipeline):
        self.cross = cross
        self.records: list[tuple] = []
        self.first = 0                       # event number of the first buffered record
        self.in_flight: deque[int] = deque()  # event number of the first record of each batch sent
        self.next = 0                        # event number after the last record submitted

    def __enter__(self) -> _CrossAccountProcess:
        ctx = multiprocessing.get_context(start_method())
        down_r, self.down = ctx.Pipe(duplex=False)
        self.up, up_w = ctx.Pipe(duplex=False)
        try:   # room for a few batches (the default 64 KB holds none): the parent never waits to write
            fcntl.fcntl(self.down.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        except OSError:   # not Linux, or above /proc/sys/fs/pipe-max-size: slower, not wrong
            pass
        self.proc = ctx.Process(target=_cross_child, args=(down_r, up_w, self.cross), daemon=True,
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

    @property
    def done(self) -> int:
        """Cross-account results of events before this number are all back."""
        if self.in_flight:
            return self.in_flight[0]
        return self.first if self.records else self.next

    def submit(self, seq: int, record: LinkRecord) -> list[Tagged]:
        if not self.records:
            self.first = seq
        self.next = seq + 1
        self.records.append(tuple(record))
        if len(self.records) < BATCH:
            return []
        self._send()
        return self._receive() if len(self.in_flight) > 2 else []

    def _send(self) -> None:
        self._write(marshal.dumps((self.first, self.records)))
        self.in_flight.append(self.first)
        self.first += len(self.records)
        self.records = []

    def finish(self, seq: int) -> list[Tagged]:
        """Send what is buffered, ask for the final step, and collect every reply."""
        if self.records:
            self._send()
        self._write(b"")
        self.in_flight.append(seq)
        out: list[Tagged] = []
        while self.in_flight:
            out.extend(self._receive())
        return out

    def _write(self, data: bytes) -> None:
        try:
            self.down.send_bytes(data)
        except OSError:   # the child is gone: its replies say why (receive raises)
            while True:
                self._receive()

    def _receive(self) -> list[Tagged]:
        try:
            kind, payload = pickle.loads(self.up.recv_bytes())
        except EOFError:
            self.proc.join(timeout=5)
            raise ReplayError(f"the cross-account process exited (exit code {self.proc.exitcode})") from None
        if kind == "error":
            raise ReplayError(f"the cross-account process failed: {payload}")
        self.in_flight.popleft()
        return payload


def _cross_child(down, up, cross: CrossAccountPipeline) -> None:
    """The child's loop: one reply per batch; an empty message asks for ``finish``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # ^C is the parent's to handle: it closes the pipe
    seq = 0
    try:
        while True:
            raw = down.recv_bytes()
            if not raw:   # after the last batch: the final step, numbered as in the parent
                up.send_bytes(pickle.dumps(("ok", [(seq, P_FINISH, a) for a in cross.finish().alerts])))
                return
            seq, batch = marshal.loads(raw)
            out = []
            for record in batch:
                out.extend((seq, P_CLUSTER, a) for a in cross.process(LinkRecord._make(record)).alerts)
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
