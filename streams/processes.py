"""Start, watch and stop worker processes: one helper for ``demo``, ``bench`` and the tests.

A worker (or the bench's bare Faust agent) runs as a child in its own session
with its log in a file; its web port answers a JSON status page, ``/livez`` and
``/readyz``. ``stop()`` sends SIGTERM (the worker's graceful stop) and kills
only if that does not end it in time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from .errors import UserError

WORKER_ARGV = ["-m", "distillguard.streams.cli", "worker"]


class WorkerError(UserError):
    """The child exited or did not reach a state in time; the message carries its log's tail."""


def http_json(port: int, path: str, timeout: float = 2.0) -> dict | None:
    """GET a JSON page on 127.0.0.1 (its body also for a 503: not ready); None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return orjson.loads(r.read())
    except urllib.error.HTTPError as err:
        if err.code != 503:
            return None
        try:
            return orjson.loads(err.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


class WorkerProcess:
    """A worker-like child process with a JSON status page on ``DG_WORKER_WEB_PORT``."""

    def __init__(self, env: dict[str, str], log_path: Path, argv: list[str] | None = None,
                 status_path: str = "/distillguard/", **extra_env: str):
        self.env = {**os.environ, **env, **extra_env}
        self.port = int(self.env.get("DG_WORKER_WEB_PORT") or 6066)
        self.log_path = Path(log_path)
        self.argv = argv or WORKER_ARGV
        self.status_path = status_path
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float | None = 90.0, wait: str = "status") -> WorkerProcess:
        """Start the child; wait until its status page answers (``wait="ready"``: until ``/readyz``
        says ready; ``ready_timeout=None``: do not wait)."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, *self.argv], stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)
        try:
            if ready_timeout is not None:
                if wait == "ready":
                    self.wait_ready(ready_timeout)
                else:
                    self.wait_for(lambda s: s is not None, ready_timeout, "worker start")
        except BaseException:
            self.stop(timeout=30)   # a child that never came up is not left running (nor its sink child)
            raise
        return self

    def status(self) -> dict | None:
        return http_json(self.port, self.status_path)

    def readiness(self) -> dict | None:
        return http_json(self.port, "/readyz")

    def wait_ready(self, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.readiness()
            if r and r.get("ready"):
                return r
            self.check_alive("readiness")
            time.sleep(0.3)
        raise WorkerError(f"not ready within {timeout:.0f}s; last /readyz {self.readiness()}\n{self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def check_alive(self, what: str) -> None:
        """Raise :class:`WorkerError` (with the log's tail) if the process has exited."""
        if self.proc.poll() is not None:
            raise WorkerError(f"the worker exited (code {self.proc.returncode}) while waiting for {what}; "
                              f"log {self.log_path}:\n{self.log_tail()}")

    def wait_for(self, predicate, timeout: float, what: str) -> dict:
        """Poll the status page until ``predicate(status)`` holds; return that status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if predicate(s):
                return s
            self.check_alive(what)
            time.sleep(0.5)
        raise WorkerError(f"timed out after {timeout:.0f}s waiting for {what}; last status {self.status()}\n"
                          f"{self.log_tail()}")

    def wait_settled(self, quiet_s: float = 8.0, timeout: float = 120.0) -> dict:
        """Wait until the alert count stops moving for ``quiet_s`` (cluster alerts settle a
        little after the last event) and the sink, if any, has nothing pending."""
        seen = {"n": None, "since": time.monotonic()}

        def quiet(s):
            if not s:
                return False
            n = sum(s["alerts"].values())
            if n != seen["n"]:
                seen.update(n=n, since=time.monotonic())
            sink_idle = "sink" not in s or s["sink"]["pending_rows"] == 0
            return sink_idle and time.monotonic() - seen["since"] >= quiet_s

        return self.wait_for(quiet, timeout, "alerts to settle")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def wait_all(workers: list[WorkerProcess], predicate, timeout: float, what: str) -> list[dict | None]:
    """Poll every worker's status page until ``predicate(statuses)`` holds (one status per worker,
    None where the page did not answer); return them. A timeout names each worker's last status
    and log tail: a group that stops making progress is usually one member's story, and the
    other's page alone does not tell which."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [w.status() for w in workers]
        if predicate(statuses):
            return statuses
        for w in workers:
            w.check_alive(what)
        time.sleep(0.5)
    report = "\n".join(f"--- worker {i + 1} (log {w.log_path}): last status {w.status()}\n{w.log_tail()}"
                       for i, w in enumerate(workers))
    raise WorkerError(f"timed out after {timeout:.0f}s waiting for {what}\n{report}")
