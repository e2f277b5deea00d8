"""``distillguard worker``: the Faust worker, plus the ClickHouse sink when ``DG_SINK=1`` (with the
embedded store a supervised child process, ``DG_SINK_PROCESS=1``, streams/sink_process.py; else a thread).

Its life: log the settings (secrets masked); wait for the broker (and a
ClickHouse server) with backoff, answering ``/livez`` and ``/readyz`` (not
ready) meanwhile; create missing topics; open and migrate the store; run
Faust with ``/livez`` and ``/readyz`` (streams/health.py). SIGTERM stops it
gracefully: the batch in progress finishes (``stream_wait_empty``), offsets
are committed, producers flushed, the sink inserts what it holds and the store
is closed; if that takes longer than ``DG_SHUTDOWN_TIMEOUT_S`` the process
exits 1 with one line saying so.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading

import faust

from . import logs
from .health import Readiness, WaitingServer, register_health_pages
from .kafka_io import check_topics, ensure_topics
from .memory import TRIM_EVERY_S, start_tracing, trim_malloc
from .settings import Settings, SettingsError, describe, load_settings
from .sink import Sink, open_sink
from .sink_process import SinkProcess
from .startup import wait_for_dependencies

log = logging.getLogger("distillguard.worker")
_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


def add_arguments(p) -> None:
    p.add_argument("--dev", action="store_true",
                   help="development/demo run: allow the development fingerprint key (same as DG_DEV=1)")


def run(args) -> int:
    settings = load_settings()
    if args.dev:
        settings = dataclasses.replace(settings, dev=True)
    return run_worker(settings)


def refuse_development_key(settings: Settings) -> None:
    """Fingerprints made with the published development key can be recomputed by anyone who
    sees a prompt, so a real deployment must set its own; demos and tests say DG_DEV=1."""
    if settings.dev_fingerprint_key and not settings.dev:
        raise SettingsError(
            "DG_FINGERPRINT_KEY is the development key; set a secret one "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), "
            "or DG_DEV=1 / `worker --dev` for a development or demo run")


def run_worker(settings: Settings) -> int:
    from .app import create_app, run_faust_worker

    refuse_development_key(settings)
    log_config = logs.configure(settings.log_level, settings.log_format)
    _log_settings(settings)
    with WaitingServer(settings.worker_web_bind, settings.worker_web_port) as waiting:
        wait_for_dependencies(settings, on_wait=lambda what: setattr(waiting, "waiting_for", what))
        waiting.waiting_for = "topics"
        created = ensure_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
        for line in check_topics(settings):   # a fatal difference raises TopicMismatch (one line)
            log.warning("%s", line)
        sink = None
        if settings.sink and settings.embedded_clickhouse and settings.sink_process:
            # the child opens (locks) and migrates the store itself; started now, it does so
            # while Faust starts (/readyz waits for its first report)
            sink = SinkProcess(settings)
            sink.start()
        elif settings.sink:
            waiting.waiting_for = "ClickHouse migrations"
            sink = open_sink(settings)        # fails fast, with a clear message, if the store is busy
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust's datadir lives here, sink or not
    if start_tracing():
        log.info("DG_TRACEMALLOC=1: tracing Python allocations (slow; for diagnosis)")
    app = create_app(settings, sink)
    # SIGTERM and rebalances wait for the batch in progress to be processed and acked
    app.conf.stream_wait_empty = True
    register_health_pages(app, Readiness(app, sink))

    @app.timer(TRIM_EVERY_S)
    async def _trim_malloc() -> None:   # issue #18: freed memory back to the system (memory.trim_malloc)
        log.debug("malloc_trim gave back %.1f MB", trim_malloc())
    if isinstance(sink, Sink):
        @app.task
        async def _start_sink() -> None:
            sink.start()

        @app.on_before_shutdown.connect
        async def _stop_sink(app, **kwargs) -> None:
            sink.stop()
            sink.store.close()
            log.info("sink stopped, store closed", extra={"counts": {"inserted": sum(sink.inserted.values())}})
    elif sink is not None:
        @app.on_before_shutdown.connect
        async def _stop_sink_process(app, **kwargs) -> None:
            # within the worker's own bound (the watchdog), leaving time for Faust's stop
            sink.stop(timeout=max(1.0, settings.shutdown_timeout_s * 2 / 3))
    logging.getLogger("distillguard").setLevel(settings.log_level.upper().replace("WARN", "WARNING"))
    run_faust_worker(app, _FAUST_LEVELS[settings.log_level], logging_config=log_config,
                     worker_class=graceful_worker_class(settings.shutdown_timeout_s))
    return 0


def _log_settings(settings: Settings) -> None:
    if settings.log_format == "json":
        shown = dict((line.split(None, 1) + [""])[:2] for line in describe(settings).splitlines())
        log.info("distillguard worker settings", extra={"settings": shown})
    else:
        print("distillguard worker settings:\n" + describe(settings), file=sys.stderr, flush=True)


def graceful_worker_class(timeout_s: float) -> type[faust.Worker]:
    """A Faust worker whose stop (SIGTERM, SIGINT) is bounded: a watchdog armed when the stop
    begins ends the process (exit 1, one line) if the graceful stop is not done in ``timeout_s``."""

    class GracefulWorker(faust.Worker):
        async def on_startup_finished(self) -> None:   # Faust's "worker has started" signal
            await super().on_startup_finished()
            log.info("worker started; /readyz turns ready once partitions are assigned and state is restored")

        async def on_stop(self) -> None:   # mode's hook: runs first when the worker stops
            log.info("stopping: finishing the batch in progress, committing, flushing (at most %.0fs)", timeout_s)
            watchdog = threading.Timer(timeout_s, _overdue, args=(timeout_s,))
            watchdog.daemon = True
            watchdog.start()
            await super().on_stop()

    return GracefulWorker


def _overdue(timeout_s: float) -> None:
    log.error("graceful stop did not finish within %.0fs (DG_SHUTDOWN_TIMEOUT_S); exiting now; "
              "uncommitted events are processed again at the next start", timeout_s)
    logging.shutdown()
    os._exit(1)
