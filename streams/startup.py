"""Start-up that waits: the worker retries what it needs instead of dying with a traceback.

A platform starts pods in any order. ``wait_for_dependencies`` retries the Kafka
broker (and a ClickHouse server, when ``DG_CLICKHOUSE_DSN`` names one) with
capped exponential backoff, one log line per attempt, until
``DG_STARTUP_TIMEOUT_S``; then it raises ``StartupTimeout``, a ``UserError``
whose one line names what is missing and how to fix it (the CLI exits 2).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .errors import UserError
from .settings import Settings, mask

log = logging.getLogger("distillguard.startup")
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 15.0


class StartupTimeout(UserError):
    """A dependency did not answer within DG_STARTUP_TIMEOUT_S."""


def backoff_delays(first: float = FIRST_DELAY_S, cap: float = MAX_DELAY_S):
    """0.5, 1, 2, 4, 8, 15, 15, ... seconds."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def wait_until_up(what: str, probe: Callable[[float], None], fix: str, deadline: float,
                  on_wait: Callable[[str], None] = lambda what: None,
                  clock=time.monotonic, sleep=time.sleep) -> int:
    """Call ``probe(timeout)`` until it returns without raising; return the attempts used.
    Raises ``StartupTimeout`` naming ``what`` and ``fix`` once ``deadline`` (a ``clock`` time) passes."""
    delays = backoff_delays()
    attempt = 0
    on_wait(what)
    while True:
        attempt += 1
        try:
            probe(max(1.0, min(5.0, deadline - clock())))
        except Exception as err:  # noqa: BLE001 - any failure to answer is "not up yet"...
            if getattr(err, "fatal", False):   # ...except one that waiting cannot mend (bad credentials)
                raise
            reason = str(getattr(err, "reason", err)).split("\n")[0][:200]
            left = deadline - clock()
            if left <= 0:
                raise StartupTimeout(f"gave up waiting for {what} after {attempt} attempts: {reason}. {fix}") from None
            delay = min(next(delays), left)
            log.warning("waiting for %s (attempt %d: %s); retrying in %.1fs, giving up in %.0fs",
                        what, attempt, reason, delay, left, extra={"counts": {"attempt": attempt}})
            sleep(delay)
            continue
        if attempt > 1:
            log.info("%s is up after %d attempts", what, attempt)
        return attempt


def wait_for_dependencies(settings: Settings, on_wait: Callable[[str], None] = lambda what: None) -> None:
    """The broker, then (if configured) the ClickHouse server, within DG_STARTUP_TIMEOUT_S in total."""
    from .kafka_io import check_broker

    deadline = time.monotonic() + settings.startup_timeout_s
    wait_until_up(f"the Kafka broker at {settings.kafka_bootstrap}",
                  lambda timeout: check_broker(settings, timeout=timeout),
                  "Start the broker, or point DG_KAFKA_BOOTSTRAP at it (DG_STARTUP_TIMEOUT_S sets how long "
                  "the worker waits)", deadline, on_wait)
    if not settings.embedded_clickhouse:
        wait_until_up(f"ClickHouse at {mask(settings.clickhouse_dsn)}", lambda timeout: _ping_clickhouse(settings),
                      "Start the ClickHouse server, or fix DG_CLICKHOUSE_DSN (unset it for the embedded store)",
                      deadline, on_wait)


def _ping_clickhouse(settings: Settings) -> None:
    from .clickhouse import Store

    with Store(settings) as store:
        store.query("SELECT 1")
