"""The console's aiohttp application: routes, sign-in, CSRF checks, triage.

ClickHouse (chDB or a server) is read and written through one worker thread
(clickhouse-connect is blocking; one thread also keeps chDB single-threaded).
A triage decision is published to the feedback topic first and stored in
``alert_feedback`` only once Kafka has it: the topic is what workers learn from,
so a decision the detector never saw is never shown as taken.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from distillguard.models.feedback import precision_by_period
from distillguard.schemas import BadFeedback, Feedback, feedback_from_dict
from distillguard.schemas.feedback import make_feedback_id

from .. import plots
from ..settings import Settings
from . import views
from .queries import ConsoleData, QueueFilter
from .security import COOKIE, SESSION_S, Sessions, csrf_ok, same_origin

log = logging.getLogger("distillguard.console")
DAY_MS = 86_400_000
HISTORY_MARGIN_MS = 2 * 3_600_000      # account history shown around the alert's window
DEFAULT_EXPIRY_DAYS = {"false_positive": 30, "known_workload": 90}
SECURITY_HEADERS = {
    # figures are JSON drawn by /static/console.js: no inline script is ever needed
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PUBLIC = ("/login", "/static/", "/healthz", "/favicon.ico")


class Publisher:
    """Sends feedback records to Kafka and waits for the broker's acknowledgement."""

    def __init__(self, settings: Settings):
        from ..kafka_io import producer
        self.topic = settings.topic_feedback
        self._producer = producer(settings, **{"linger.ms": 0})

    def send(self, fb: Feedback, timeout: float = 15.0) -> None:
        result: dict = {}
        self._producer.produce(self.topic, key=fb.account_ids[0].encode(), value=fb.to_json(),
                               on_delivery=lambda err, msg: result.setdefault("err", err))
        self._producer.flush(timeout)
        if "err" not in result:
            raise RuntimeError(f"Kafka did not acknowledge the decision within {timeout:.0f}s")
        if result["err"] is not None:
            raise RuntimeError(f"Kafka refused the decision: {result['err']}")


class Console:
    def __init__(self, settings: Settings, store, token: str, publisher=None):
        self.settings = settings
        self.store = store
        self.sessions = Sessions(token)
        self.publisher = publisher
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self.data: ConsoleData | None = None
        self._plotly_js = plots.plotly_js().encode()

    async def db(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- plumbing ------------------------------------------------------
    @web.middleware
    async def guard(self, request: web.Request, handler):
        request["session"] = self.sessions.get(request.cookies.get(COOKIE))
        public = request.path.startswith(PUBLIC)
        if not public and request["session"] is None:
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(text="sign in first\n")
        if request.method == "POST":
            if not same_origin(request.headers, request.host, request.scheme):
                log.warning("refused a cross-site POST to %s (Origin %r)", request.path, request.headers.get("Origin"))
                raise web.HTTPForbidden(text="cross-site request refused\n")
            if request.path != "/login":
                form = await request.post()
                if not csrf_ok(request["session"], form.get("csrf")):
                    raise web.HTTPForbidden(text="missing or wrong CSRF token\n")
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def _who(self, request) -> tuple[str, str]:
        s = request["session"]
        return s.analyst, s.csrf

    @staticmethod
    def _html(text: str, status: int = 200) -> web.Response:
        return web.Response(text=text, content_type="text/html", status=status)

    # -- sign in / out -------------------------------------------------
    async def login_form(self, request):
        return self._html(views.login_page())

    async def login(self, request):
        form = await request.post()
        analyst = (form.get("analyst") or "").strip()[:100]
        if not analyst or not self.sessions.check_token(form.get("token") or ""):
            log.warning("failed sign-in as %r from %s", analyst, request.remote)
            return self._html(views.login_page("wrong token (or no name)"), status=401)
        sid, _s = self.sessions.open(analyst)
        log.info("%s signed in from %s", analyst, request.remote)
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", max_age=SESSION_S, path="/",
                        secure=request.scheme == "https")
        raise resp

    async def logout(self, request):
        self.sessions.close(request.cookies.get(COOKIE))
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    # -- pages ---------------------------------------------------------
    async def queue(self, request):
        f = QueueFilter.from_query(request.query)
        rows, counts, detectors = await self.db(
            lambda: (self.data.queue(f), self.data.state_counts(f), self.data.detectors()))
        analyst, csrf = self._who(request)
        return self._html(views.queue_page(f, rows, counts, detectors, analyst, csrf, request.query.get("flash", "")))

    async def alert(self, request, error: str = "", status: int = 200):
        alert_id = request.match_info["alert_id"]
        data = await self.db(self._alert_data, alert_id)
        if data is None:
            raise web.HTTPNotFound(text=f"no alert {alert_id}\n")
        analyst, csrf = self._who(request)
        return self._html(views.alert_page(**data, analyst=analyst, csrf=csrf, flash=request.query.get("flash", ""),
                                           error=error), status=status)

    def _alert_data(self, alert_id: str) -> dict | None:
        d = self.data
        a = d.alert(alert_id)
        if a is None:
            return None
        start = int(a["window_start"].timestamp() * 1000) - HISTORY_MARGIN_MS
        end = int(a["window_end"].timestamp() * 1000) + HISTORY_MARGIN_MS
        lifecycle = d.lifecycle(alert_id)
        accounts = a["account_ids"][:8]    # a cluster: its first members, one line each
        rate = d.requests_per_minute(accounts, start, end)
        marks = [(e["raised_at"], e["activity"], e["severity"]) for e in lifecycle]
        history = d.feature_history(a["account_id"], start, end)
        shown = [r["feature"] for r in a["reasons"] if r.get("feature") != "feedback_tempered"][:5]
        y2 = {"score": ([h[0] for h in history], [h[1] for h in history])}
        lines = {}
        for name in shown:
            pts = [(h[0], h[2][name]) for h in history if name in h[2]]
            target = y2 if all(0 <= v <= 1 for _, v in pts) else lines
            target[name] = ([p[0] for p in pts], [p[1] for p in pts])
        members = d.cluster(a["cluster_id"]) if a.get("cluster_id") else []
        return {
            "a": a, "lifecycle": lifecycle, "feedback": d.feedback(alert_id), "members": members,
            "end_users": list(a.get("end_user_ids") or []) if d.has_end_users else None,
            "protections": list(a.get("protections") or []) if d.has_protections else None,
            "plots_html": {
                "reasons": plots.reasons_chart("reasons", a["reasons"]),
                "rate": plots.time_lines("rate", {f"{acct} requests/min": rate[acct] for acct in accounts}, marks,
                                         "requests per minute"),
                "features": plots.time_lines("features", lines, marks, "value", y2=y2),
            },
        }

    async def triage(self, request):
        alert_id = request.match_info["alert_id"]
        form = await request.post()
        analyst, _csrf = self._who(request)
        a = await self.db(self.data.alert, alert_id)
        if a is None:
            raise web.HTTPNotFound(text=f"no alert {alert_id}\n")
        try:
            fb = decision_from_form(a, form, analyst, int(time.time() * 1000))
        except BadFeedback as err:
            return await self.alert(request, error=f"not recorded: {err}", status=400)
        try:
            if self.publisher is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.publisher.send, fb)
        except Exception as err:  # noqa: BLE001 - any Kafka failure: tell the analyst, record nothing
            log.error("decision by %s on %s not recorded: %s", analyst, alert_id, err)
            return await self.alert(request, error=f"not recorded: {err}", status=503)
        await self.db(self.data.insert_feedback, fb)
        log.info("decision: analyst=%s alert=%s decision=%s accounts=%s expires_at_ms=%s reason=%r",
                 analyst, alert_id, fb.decision, ",".join(fb.account_ids), fb.expires_at_ms, fb.reason)
        label = fb.decision.replace("_", " ")
        if fb.decision == "note":
            raise web.HTTPSeeOther(f"/alerts/{alert_id}?flash=note+recorded")
        raise web.HTTPSeeOther(f"/?flash=alert+{alert_id}+marked+{label.replace(' ', '+')}")

    async def cluster(self, request):
        cluster_id = request.match_info["cluster_id"]

        def load():
            members = self.data.cluster(cluster_id)
            if not members:
                return None
            first = min(m["updated_at"] for m in members)
            last = max(m["updated_at"] for m in members)
            accounts = [m["account_id"] for m in members][:12]
            rate = self.data.requests_per_minute(accounts, int(first.timestamp() * 1000) - 6 * 3_600_000,
                                                 int(last.timestamp() * 1000) + HISTORY_MARGIN_MS)
            return members, self.data.cluster_alerts(cluster_id), rate
        got = await self.db(load)
        if got is None:
            raise web.HTTPNotFound(text=f"no cluster {cluster_id}\n")
        members, alerts, rate = got
        kinds: dict[str, int] = {}
        linked = max((m["evidence"].get("linked_by") or {} for m in members), key=len, default={})
        kinds.update(linked)
        analyst, csrf = self._who(request)
        return self._html(views.cluster_page(cluster_id, members, alerts,
                                             plots.time_lines("cluster-activity", rate, (), "requests per minute"),
                                             kinds, analyst, csrf))

    async def precision(self, request):
        rows = precision_by_period(await self.db(self.data.decisions))
        analyst, csrf = self._who(request)
        return self._html(views.precision_page(rows, plots.precision_chart("precision", rows), analyst, csrf))

    # -- static --------------------------------------------------------
    async def plotly_js(self, request):
        return web.Response(body=self._plotly_js, content_type="application/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    async def console_js(self, request):
        return web.Response(text=plots.BOOT_JS, content_type="application/javascript")

    async def console_css(self, request):
        return web.Response(text=views.CSS, content_type="text/css")

    async def healthz(self, request):
        return web.json_response({"ok": True})

    async def _startup(self, app) -> None:
        self.data = await self.db(ConsoleData, self.store)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard], client_max_size=64 * 1024)
        app.add_routes([
            web.get("/login", self.login_form), web.post("/login", self.login), web.post("/logout", self.logout),
            web.get("/", self.queue), web.get("/alerts/{alert_id}", self.alert),
            web.post("/alerts/{alert_id}/triage", self.triage), web.get("/clusters/{cluster_id}", self.cluster),
            web.get("/precision", self.precision), web.get("/static/plotly.min.js", self.plotly_js),
            web.get("/static/console.js", self.console_js), web.get("/static/console.css", self.console_css),
            web.get("/healthz", self.healthz), web.get("/favicon.ico", lambda request: web.Response(status=204)),
        ])
        app.on_startup.append(self._startup)
        return app


def decision_from_form(alert: dict, form, analyst: str, now_ms: int) -> Feedback:
    """A triage form → a validated feedback v1 record.

    It applies from the start of the alert's evidence (so a replay tempers the same finding
    as the stream does from now on) until ``expiry_days`` from now."""
    decision = form.get("decision") or ""
    expires = None
    if decision in DEFAULT_EXPIRY_DAYS:
        try:
            days = int(form.get("expiry_days") or DEFAULT_EXPIRY_DAYS[decision])
        except ValueError:
            raise BadFeedback("expiry must be a whole number of days") from None
        if not 1 <= days <= 365:
            raise BadFeedback("expiry must be 1 to 365 days")
        expires = now_ms + days * DAY_MS
    applies_from = int(alert["window_start"].timestamp() * 1000)
    return feedback_from_dict({
        "schema_version": "1", "feedback_id": make_feedback_id(alert["alert_id"], analyst, now_ms, decision),
        "alert_id": alert["alert_id"], "detector": alert["detector"], "account_ids": list(alert["account_ids"]),
        "end_user_ids": list(alert.get("end_user_ids") or []), "decision": decision,
        "reason": (form.get("reason") or "").strip(), "note": (form.get("note") or "").strip(),
        "analyst": analyst, "decided_at_ms": now_ms, "applies_from_ms": applies_from,
        "expires_at_ms": None if expires is None else max(expires, applies_from)})


class LockedStore:
    """The store shared by the console's reader thread and, with ``--sink``, the sink thread."""

    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self.db = store.db

    def query(self, sql, parameters=None):
        with self._lock:
            return self._store.query(sql, parameters)

    def insert(self, table, rows):
        with self._lock:
            return self._store.insert(table, rows)

    def insert_rows(self, rows):
        with self._lock:
            return self._store.insert_rows(rows)

    def describe(self):
        return self._store.describe()

    def close(self):
        self._store.close()
