"""Start and stop real worker processes for integration tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, **extra_env: str):
        # DG_DEV=1: a test worker may run with the development fingerprint key, unless the test says otherwise
        self.env = {**os.environ, "DG_DEV": "1", **env, **extra_env}
        self.port = int(self.env["DG_WORKER_WEB_PORT"])
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 90.0) -> WorkerProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "distillguard.streams.cli", "worker"],
                                     stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.wait_for(lambda s: s is not None, ready_timeout, "worker start")
        return self

    def status(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/distillguard/", timeout=2) as r:
                return orjson.loads(r.read())
        except (OSError, ValueError):
            return None

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def wait_for(self, predicate, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if predicate(s):
                return s
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}) waiting for {what}:\n{self.log_tail()}")
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last status {self.status()}\n{self.log_tail()}")

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
