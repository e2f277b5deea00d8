"""``distillguard sink``: the ClickHouse sink alone in its own process (streams/sink.py).

A worker with the embedded store starts this as its child by default (``DG_SINK_PROCESS=1``,
streams/sink_process.py), so chDB -- whose allocations neither glibc's ``mallinfo`` nor
Python see -- lives in a process apart from the detection state (issue #18). It can also run
on its own next to workers started with ``DG_SINK=0``.

It opens the store (an embedded one is locked: one process at a time), applies pending
migrations, then inserts rows from the sink topic until SIGTERM or SIGINT, when it inserts what
it holds, commits, closes the store and exits 0. A sink thread that ended, or whose loop has
not turned for ``WEDGED_S`` (stuck in a call), makes it exit 1. With ``--status-fd N`` (the worker's pipe)
it writes one JSON line every ``REPORT_EVERY_S``: its state, counters, the store's and its own
memory; a write that fails means the worker is gone, and the sink stops the same way.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time

import orjson

from .memory import TRIM_EVERY_S, process_memory, trim_malloc
from .settings import Settings, load_settings
from .sink import Sink, open_sink

log = logging.getLogger("distillguard.sink")
REPORT_EVERY_S = 0.5
WEDGED_S = 120.0   # a sink loop that has not turned this long is stuck in a call: exit 1, the worker restarts us


def add_arguments(p) -> None:
    p.add_argument("--status-fd", type=int, default=None, help=argparse.SUPPRESS)   # the worker's pipe


def run(args) -> int:
    return run_sink(load_settings(), args.status_fd)


def run_sink(settings: Settings, status_fd: int | None = None) -> int:
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    sink = open_sink(settings)       # an embedded store held elsewhere: StoreBusy, one line, exit 2
    try:
        sink.start()
        log.info("sink started (pid %d), %s", os.getpid(), sink.store.describe())
        trimmed_at = time.monotonic()
        while not stopping.wait(REPORT_EVERY_S):
            if not sink.is_alive():
                log.error("sink thread ended unexpectedly; exiting 1 (%s)", sink.last_error or "no error recorded")
                return 1
            if time.monotonic() - sink.beat > WEDGED_S:
                log.error("the sink's loop has not turned for %.0fs (stuck in a call); exiting 1", WEDGED_S)
                return 1
            if status_fd is not None and not _report(status_fd, sink):
                log.warning("the worker that started this sink is gone; stopping")
                break
            if time.monotonic() - trimmed_at >= TRIM_EVERY_S:   # as in the worker (memory.trim_malloc)
                trim_malloc()
                trimmed_at = time.monotonic()
        sink.stop(timeout=max(1.0, settings.shutdown_timeout_s / 2))   # inside the worker's wait (2/3)
    finally:
        sink.store.close()
    if status_fd is not None:
        _report(status_fd, sink)
    log.info("sink stopped, store closed", extra={"counts": {"inserted": sum(sink.inserted.values())}})
    return 0


def _report(fd: int, sink: Sink) -> bool:
    """One status line to the worker; False if the worker is gone (the pipe is closed)."""
    line = orjson.dumps({"pid": os.getpid(), "state": sink.state(), "stats": sink.stats(),
                         "clickhouse": sink.store_info, "clickhouse_memory": sink.clickhouse_memory,
                         "memory": process_memory()}) + b"\n"
    try:
        while line:
            line = line[os.write(fd, line):]   # a write to a pipe may be partial (a signal)
        return True
    except OSError:   # BrokenPipeError: no reader left
        return False
