"""``distillguard console``: serve the analysts' console.

    DG_CONSOLE_TOKEN=... distillguard console            # http://127.0.0.1:8470/
    distillguard console --dev                           # a one-off token, printed

Binds to ``DG_CONSOLE_HOST`` (loopback by default). Refuses to start without
``DG_CONSOLE_TOKEN`` unless ``--dev``. With the embedded store, the console
needs the store to itself: stop the worker, or run it with ``DG_SINK=0`` and
give the console ``--sink`` so that the console stores the rows.
"""
from __future__ import annotations

import argparse
import logging
import secrets
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default DG_CONSOLE_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default DG_CONSOLE_PORT, 8470)")
    parser.add_argument("--dev", action="store_true",
                        help="development run: without DG_CONSOLE_TOKEN, make a one-off token and print it")
    parser.add_argument("--sink", action="store_true",
                        help="also run the ClickHouse sink here (embedded store, worker started with DG_SINK=0)")
    parser.add_argument("--no-kafka", action="store_true",
                        help="record decisions in ClickHouse only, without publishing them (workers will not learn)")


def run(args) -> int:
    from aiohttp import web

    from ..clickhouse import Store, StoreBusy
    from ..settings import load_settings
    from .web import Console, LockedStore, Publisher

    settings = load_settings()
    host = args.host or settings.console_host
    port = args.port or settings.console_port
    token = settings.console_token
    if not token:
        if not args.dev:
            print("distillguard console: error: set DG_CONSOLE_TOKEN to the secret analysts sign in with "
                  "(or run with --dev for a one-off token on this machine)", file=sys.stderr)
            return 2
        token = secrets.token_urlsafe(18)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(f"distillguard console: note: listening on {host}, beyond this machine; put it behind TLS",
              file=sys.stderr)
    try:
        store = Store(settings)
    except StoreBusy as err:
        print(f"distillguard console: error: {err} With the embedded store, run the worker with DG_SINK=0 and "
              "the console with --sink.", file=sys.stderr)
        return 2
    store.migrate()
    shared = LockedStore(store)
    sink = None
    if args.sink:
        from ..sink import Sink
        sink = Sink(settings, shared)
        sink.start()
    publisher = None if args.no_kafka else Publisher(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    console = Console(settings, shared, token, publisher)
    print(f"distillguard console on http://{host}:{port}/ (store {store.describe()}, decisions to "
          f"{'nowhere but ClickHouse' if publisher is None else settings.topic_feedback})", flush=True)
    if args.dev and not settings.console_token:
        print(f"development token (this run only): {token}", flush=True)
    try:
        web.run_app(console.app(), host=host, port=port, print=None, handle_signals=True)
    finally:
        if sink is not None:
            sink.stop()
        store.close()
    return 0
