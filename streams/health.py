"""Liveness and readiness of a worker, on its web port (``DG_WORKER_WEB_PORT``).

``/livez``: 200 while the process serves requests and its sink thread (if any)
runs; 503 once something that never recovers by itself has died (restart me). A sink
child process that died is restarted by the worker (``restarting``: not ready, still alive).
``/readyz``: 200 once the worker can do its job: the consumer group assigned it
its partitions (no rebalance under way), table state is restored from the
changelogs, and the sink (when ``DG_SINK=1``) is connected to ClickHouse or
spooling in Kafka while ClickHouse is away; 503 with the failing checks before.

Before Faust starts (while the worker waits for its broker) ``WaitingServer``
answers the same two paths: alive, not ready, and what it is waiting for.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIVE_PATH = "/livez"
READY_PATH = "/readyz"
PROBE_PATHS = (LIVE_PATH, READY_PATH)


class Readiness:
    """What ``/readyz`` and ``/livez`` report for a running Faust worker."""

    def __init__(self, app, sink=None):
        self.app = app
        self.sink = sink                    # a Sink thread, a SinkProcess, or None
        self.assigned: int | None = None    # partitions in the last assignment; None before the first

        @app.on_partitions_assigned.connect
        async def _assigned(app, assigned, **kwargs) -> None:
            self.assigned = len(assigned)

        @app.on_partitions_revoked.connect
        async def _revoked(app, revoked, **kwargs) -> None:
            self.assigned = None

    def sink_state(self) -> str:
        return "off" if self.sink is None else self.sink.state()

    def checks(self) -> dict[str, bool]:
        app = self.app
        return {
            "partitions_assigned": self.assigned is not None and not app.rebalancing,
            "state_restored": app.tables.recovery.completed.is_set() and not app.in_recovery,
            "sink_connected_or_spooling": self.sink_state() in ("off", "connected", "spooling"),
        }

    def ready(self) -> tuple[bool, dict]:
        checks = self.checks()
        body = {"ready": all(checks.values()), "checks": checks, "partitions": self.assigned,
                "sink": self.sink_state(), "clickhouse": self.sink.store_info if self.sink else {}}
        return body["ready"], body

    def live(self) -> tuple[bool, dict]:
        alive = self.sink_state() != "stopped" or self.app.should_stop
        return alive, {"alive": alive, "sink": self.sink_state()}


def register_health_pages(app, readiness: Readiness) -> None:
    """``/livez`` and ``/readyz`` on the Faust app's web server."""

    @app.page(LIVE_PATH)
    async def livez(web, request):
        ok, body = readiness.live()
        return web.json(body, status=200 if ok else 503)

    @app.page(READY_PATH)
    async def readyz(web, request):
        ok, body = readiness.ready()
        return web.json(body, status=200 if ok else 503)


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True    # Faust's web server takes the port over right after
    daemon_threads = True


class WaitingServer:
    """``/livez`` (200) and ``/readyz`` (503, ``waiting_for``) while the worker waits to start."""

    def __init__(self, host: str, port: int):
        self.waiting_for = "start-up"
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.path.rstrip("/") == LIVE_PATH:
                    self._send(200, {"alive": True, "phase": "waiting", "waiting_for": state.waiting_for})
                elif self.path.rstrip("/") == READY_PATH:
                    self._send(503, {"ready": False, "phase": "waiting", "waiting_for": state.waiting_for})
                else:
                    self._send(404, {"error": "the worker is starting"})

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:   # probes every few seconds: not worth a log line
                pass

        self.server = _Server((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="waiting-health", daemon=True)

    def __enter__(self) -> WaitingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()   # the port is free for Faust's web server
