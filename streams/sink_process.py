"""The worker's ClickHouse sink as a supervised child process (``DG_SINK_PROCESS=1``, the default
with the embedded store).

Why (issue #18): in one process, the embedded ClickHouse's allocations grew the worker's
anonymous memory where neither glibc's ``mallinfo`` nor Python could see them. In its own
process (``distillguard sink``, streams/sink_cli.py) its memory is its own, measured apart,
and it cannot take the detection state down with it.

The worker's side, :class:`SinkProcess`, looks like the in-process :class:`~.sink.Sink` to the
status page and ``/readyz`` (``stats()``, ``state()``, ``clickhouse_memory``, ``store_info``):

* the child writes one JSON status line every half second to a pipe; the supervisor keeps
  the latest and adds up the counters of children that came before (``inserted`` counts since
  the worker started; rows a killed child had not committed are read again, at least once);
* a child that exits, or sends nothing for ``SILENT_KILL_S``, is started again after a backoff
  (1 s, doubling to 30 s, back to 1 s after a child that ran a minute), one log line each;
* ``stop()`` (the worker's SIGTERM) sends SIGTERM: the child inserts what it holds, commits,
  closes the store and exits; past the timeout it is killed (its uncommitted rows are re-read);
* if the worker dies, the child's next status write fails and it stops the same way, so it
  never holds the embedded store's lock for a restarted worker for more than a moment
  (meanwhile the new child finds the store busy, exits 2 and is retried).
"""
from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import orjson

from .settings import Settings

log = logging.getLogger("distillguard.sink")
SINK_ARGV = ["-m", "distillguard.streams.cli", "sink"]
SILENT_KILL_S = 60.0        # a child that reports nothing this long is wedged: killed and restarted
BACKOFF_S = (1.0, 30.0)     # first and largest wait before a restart
HEALTHY_RUN_S = 60.0        # a child that ran this long resets the backoff
_SUMMED = ("inserted", "dead_letter_rows")          # per-table counters
_ADDED = ("retries", "skipped_messages", "consumer_restarts")   # plain counters


class SinkProcess:
    """Starts ``distillguard sink`` and keeps it running until ``stop()``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.restarts = 0
        self.store_info: dict = {}             # the latest child's store and schema versions
        self._latest: dict | None = None       # the current child's latest status line
        self._before: dict = _empty_counts()   # counters of the children before it
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="sink-supervisor", daemon=True)

    # --- what the status page and /readyz read (the same as the Sink thread's) ---

    def stats(self) -> dict:
        current = (self._latest or {}).get("stats") or {}
        out = {"pending_rows": current.get("pending_rows", 0), "last_error": current.get("last_error", "")}
        for name in _SUMMED:
            out[name] = dict(Counter(self._before[name]) + Counter(current.get(name, {})))
        for name in _ADDED:
            out[name] = self._before[name] + current.get(name, 0)
        out["process"] = {"pid": self.pid, "restarts": self.restarts}
        return out

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def clickhouse_memory(self) -> dict | None:
        return (self._latest or {}).get("clickhouse_memory")

    @property
    def child_memory(self) -> dict | None:
        """The child's own process memory (``memory.process_memory``), reported by itself."""
        return (self._latest or {}).get("memory")

    def state(self) -> str:
        if self._stopping.is_set() and self.pid is None:
            return "stopped"
        if self._latest is None:
            return "starting" if self.restarts == 0 else "restarting"
        return self._latest.get("state", "starting")

    # --- life ---

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the child; killed if it has not exited within ``timeout``."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("sink process %d did not stop within %.0fs; killed (its uncommitted rows are read "
                          "again at the next start)", proc.pid, timeout)
                proc.kill()
                proc.wait()
        self._thread.join(5)
        if proc is not None:
            log.info("sink process %d stopped (exit %s)", proc.pid, proc.returncode,
                     extra={"counts": {"inserted": sum(self.stats()["inserted"].values())}})

    def _supervise(self) -> None:
        backoff = BACKOFF_S[0]
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                code = self._run_child()
            except OSError as err:   # could not start one (no memory, no processes left): try again
                code = f"not started: {err}"
            if self._stopping.is_set():
                return
            self._fold_counts()
            self.restarts += 1
            if time.monotonic() - started >= HEALTHY_RUN_S:
                backoff = BACKOFF_S[0]
            log.error("sink process exited (code %s); starting it again in %.0fs (restart %d)",
                      code, backoff, self.restarts)
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_S[1])

    def _run_child(self) -> int:
        """Start a child, read its status lines until it exits; its exit code."""
        read_fd, write_fd = os.pipe()
        try:
            # its own session: a terminal's Ctrl-C reaches the worker, which stops the child in order
            self._proc = subprocess.Popen([sys.executable, *SINK_ARGV, "--status-fd", str(write_fd)],
                                          pass_fds=(write_fd,), start_new_session=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        proc = self._proc
        if self._stopping.is_set():   # stop() came while it was being started: it may not have seen it
            proc.send_signal(signal.SIGTERM)
        try:
            self._read_status(read_fd, proc)
        finally:
            os.close(read_fd)
        return proc.wait()

    def _read_status(self, fd: int, proc: subprocess.Popen) -> None:
        """Keep the latest complete line until the pipe closes (the child exited); kill a silent child."""
        buffer = b""
        heard = time.monotonic()
        while True:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if time.monotonic() - heard > SILENT_KILL_S and proc.poll() is None and not self._stopping.is_set():
                    log.error("sink process %d sent no status for %.0fs; killing it", proc.pid, SILENT_KILL_S)
                    proc.kill()
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            heard = time.monotonic()
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in reversed(lines):
                try:
                    status = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                self._latest = status
                self.store_info = status.get("clickhouse") or self.store_info
                break

    def _fold_counts(self) -> None:
        """A child ended: its last reported counters join those of the ones before."""
        current = (self._latest or {}).get("stats") or {}
        for name in _SUMMED:
            self._before[name] = dict(Counter(self._before[name]) + Counter(current.get(name, {})))
        for name in _ADDED:
            self._before[name] += current.get(name, 0)
        self._latest = None


def _empty_counts() -> dict:
    return {**{name: {} for name in _SUMMED}, **{name: 0 for name in _ADDED}}
