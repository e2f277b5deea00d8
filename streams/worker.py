"""``distillguard worker``: the Faust worker, plus the ClickHouse sink thread when ``DG_SINK=1``."""
from __future__ import annotations

import logging
import sys

from .clickhouse import Store
from .kafka_io import KafkaUnavailable, TopicMismatch, check_topics, ensure_topics
from .settings import ENV_VARS, Settings, SettingsError, describe
from .sink import Sink

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


class WorkerStartError(RuntimeError):
    """The worker cannot start; one line that says why."""


def refuse_development_key(settings: Settings) -> None:
    """Fingerprints made with the published development key can be recomputed by anyone who
    sees a prompt, so a real deployment must set its own; demos and tests say DG_DEV=1."""
    if settings.fingerprint_key == ENV_VARS["DG_FINGERPRINT_KEY"][0] and not settings.dev:
        raise SettingsError(
            "DG_FINGERPRINT_KEY is the development key; set a secret one "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), "
            "or DG_DEV=1 / `worker --dev` for a development or demo run")


def run_worker(settings: Settings) -> int:
    from .app import create_app, run_faust_worker

    refuse_development_key(settings)
    print("distillguard worker settings:\n" + describe(settings), file=sys.stderr, flush=True)
    try:
        created = ensure_topics(settings)
        warnings = check_topics(settings)
    except (KafkaUnavailable, TopicMismatch) as err:
        raise WorkerStartError(str(err)) from None
    if created:
        print(f"created topics: {', '.join(created)}", file=sys.stderr)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    sink = None
    if settings.sink:
        store = Store(settings)           # fails fast, with a clear message, if the store is busy
        applied = store.migrate()
        if applied:
            print(f"applied ClickHouse migrations {applied}", file=sys.stderr)
        sink = Sink(settings, store)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust's datadir lives here, sink or not
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
