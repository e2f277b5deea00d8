"""``distillguard worker``: the Faust worker, plus the ClickHouse sink thread when ``DG_SINK=1``."""
from __future__ import annotations

import logging
import sys

from .clickhouse import Store
from .kafka_io import ensure_topics
from .memory import start_tracing
from .settings import Settings, describe
from .sink import Sink

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


def run_worker(settings: Settings) -> int:
    from .app import create_app, run_faust_worker

    print("distillguard worker settings:\n" + describe(settings), file=sys.stderr, flush=True)
    created = ensure_topics(settings)
    if created:
        print(f"created topics: {', '.join(created)}", file=sys.stderr)
    sink = None
    if settings.sink:
        store = Store(settings)           # fails fast, with a clear message, if the store is busy
        applied = store.migrate()
        if applied:
            print(f"applied ClickHouse migrations {applied}", file=sys.stderr)
        sink = Sink(settings, store)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust's datadir lives here, sink or not
    if start_tracing():
        print("DG_TRACEMALLOC=1: tracing Python allocations (slow; for diagnosis)", file=sys.stderr)
    app = create_app(settings)
    if sink is not None:
        @app.task
        async def _start_sink() -> None:
            sink.start()

        @app.on_before_shutdown.connect
        async def _stop_sink(app, **kwargs) -> None:
            sink.stop()
            sink.store.close()
        app.distillguard["sink"] = sink
    logging.getLogger("distillguard").setLevel(settings.log_level.upper().replace("WARN", "WARNING"))
    run_faust_worker(app, _FAUST_LEVELS[settings.log_level])
    return 0
