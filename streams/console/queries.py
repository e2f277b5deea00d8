"""What the console reads from and writes to ClickHouse, as plain rows.

Every query is parameterised (``{name:Type}``); filter values typed in by an
analyst never become SQL text. An alert's triage state is its latest decision
in ``alert_feedback`` (notes aside), else ``closed`` or ``open`` from its
lifecycle: the audit table is only ever appended to.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from distillguard.models.rows import AlertFeedbackRow
from distillguard.schemas import Feedback

from ..clickhouse import Store

STATES = ("open", "closed", "confirmed", "false_positive", "known_workload")
SEVERITIES = ("low", "medium", "high", "critical")
SINCE_HOURS = {"1h": 1, "6h": 6, "24h": 24, "7d": 168, "30d": 720}
QUEUE_LIMIT = 200


@dataclass(frozen=True)
class QueueFilter:
    state: str = "open"
    detector: str = ""
    severity: str = ""
    account: str = ""
    cluster: str = ""
    since: str = ""        # one of SINCE_HOURS, "" = all time

    @classmethod
    def from_query(cls, q) -> QueueFilter:
        def pick(name: str, allowed=None, default: str = "") -> str:
            v = (q.get(name) or default).strip()[:200]
            return v if allowed is None or v in allowed else default
        return cls(state=pick("state", (*STATES, "all"), "open"), detector=pick("detector"),
                   severity=pick("severity", SEVERITIES), account=pick("account"), cluster=pick("cluster"),
                   since=pick("since", SINCE_HOURS))


class ConsoleData:
    def __init__(self, store: Store):
        self.store = store
        self.db = store.db
        cols = store.query("SELECT name FROM system.columns WHERE database = {db:String} AND table = 'alerts_latest'",
                           {"db": self.db}).result_rows
        # alert v1.1 fields, stored by versions of the sink that have them
        self.has_end_users = ("end_user_ids",) in cols
        self.has_protections = ("protections",) in cols

    def _rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        return self.store.query(sql.replace("{db}", self.db), params or {}).result_rows

    def _triaged(self) -> str:
        return ("(SELECT alert_id, argMax(decision, decided_at) AS last_decision, "
                "argMax(analyst, decided_at) AS last_analyst "
                "FROM {db}.alert_feedback WHERE decision != 'note' GROUP BY alert_id)")

    # filter field -> its condition on the alert (a parameter of the same name)
    _CONDITIONS = {"detector": "a.detector = {detector:String}", "severity": "a.severity = {severity:String}",
                   "account": "has(a.account_ids, {account:String})", "cluster": "a.cluster_id = {cluster:String}"}

    def _where(self, f: QueueFilter) -> tuple[str, dict]:
        params = {name: getattr(f, name) for name in self._CONDITIONS if getattr(f, name)}
        conds = [self._CONDITIONS[name] for name in params]
        if f.since:
            conds.append("a.raised_at >= now64(3) - toIntervalHour({hours:UInt32})")
            params["hours"] = SINCE_HOURS[f.since]
        return (" AND ".join(conds) or "1"), params

    def _base(self) -> str:
        return ("SELECT a.*, ifNull(t.last_decision, '') AS decision, "
                "ifNull(t.last_analyst, '') AS analyst, multiIf(decision != '', decision, a.activity = 'close', 'closed', 'open') AS state "
                "FROM {db}.alerts_latest AS a FINAL LEFT JOIN " + self._triaged() + " AS t ON a.alert_id = t.alert_id")

    def queue(self, f: QueueFilter) -> list[dict]:
        where, params = self._where(f)
        state = "" if f.state == "all" else " AND state = {state:String}"
        params["state"] = f.state
        sql = (f"SELECT alert_id, detector, severity, score, account_ids, cluster_id, raised_at, window_end, "
               f"event_count, recommended_action, reasons, state, analyst FROM ({self._base()}) AS a "
               f"WHERE {where}{state} ORDER BY indexOf(['low','medium','high','critical'], severity) DESC, "
               f"score DESC, raised_at DESC LIMIT {QUEUE_LIMIT}")
        keys = ("alert_id", "detector", "severity", "score", "account_ids", "cluster_id", "raised_at", "window_end",
                "event_count", "recommended_action", "reasons", "state", "analyst")
        out = [dict(zip(keys, row)) for row in self._rows(sql, params)]
        # a closed alert's latest event says only how long it was quiet: show its last evidence
        closed = [d["alert_id"] for d in out if d["state"] == "closed" or d["reasons"].startswith('[{"feature":"quiet')]
        evidence = dict(self._rows(
            "SELECT alert_id, argMax(reasons, version) FROM {db}.alert_events WHERE alert_id IN {ids:Array(String)} "
            "AND activity != 'close' GROUP BY alert_id", {"ids": closed})) if closed else {}
        for d in out:
            d["reasons"] = orjson.loads(evidence.get(d["alert_id"]) or d["reasons"] or "[]")
        return out

    def state_counts(self, f: QueueFilter) -> dict[str, int]:
        where, params = self._where(f)
        rows = self._rows(f"SELECT state, count() FROM ({self._base()}) AS a WHERE {where} GROUP BY state", params)
        counts = {s: 0 for s in STATES}
        counts.update({s: n for s, n in rows})
        return counts

    def detectors(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT detector FROM {db}.alerts_latest ORDER BY detector")]

    def alert(self, alert_id: str) -> dict | None:
        rows = self.store.query(
            f"SELECT * FROM ({self._base()}) AS a WHERE alert_id = {{id:String}} LIMIT 1".replace("{db}", self.db),
            {"id": alert_id})
        if not rows.result_rows:
            return None
        d = dict(zip(rows.column_names, rows.result_rows[0]))
        # the evidence of the latest create/update: a close carries only how long it was quiet. Up to
        # the version read above: an event stored between the two queries would otherwise give the
        # page a newer event's reasons (a tempering, say) beside the older event's severity
        ev = self._rows("SELECT reasons, sample_event_ids FROM {db}.alert_events WHERE alert_id = {id:String} "
                        "AND activity != 'close' AND version <= {version:UInt64} ORDER BY version DESC LIMIT 1",
                        {"id": alert_id, "version": d["version"]})
        d["reasons"] = orjson.loads(ev[0][0] if ev else d["reasons"] or "[]")
        if ev and not d["sample_event_ids"]:
            d["sample_event_ids"] = ev[0][1]
        return d

    def lifecycle(self, alert_id: str) -> list[dict]:
        rows = self._rows("SELECT DISTINCT activity, severity, score, raised_at, window_end, event_count, "
                          "recommended_action, reasons, version FROM {db}.alert_events WHERE alert_id = {id:String} "
                          "ORDER BY version", {"id": alert_id})
        keys = ("activity", "severity", "score", "raised_at", "window_end", "event_count", "recommended_action",
                "reasons", "version")
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            d["reasons"] = orjson.loads(d["reasons"] or "[]")
            out.append(d)
        return out

    def feedback(self, alert_id: str) -> list[dict]:
        rows = self.store.query(
            "SELECT decision, reason, note, analyst, decided_at, expires_at, feedback_id "
            f"FROM {self.db}.alert_feedback WHERE alert_id = {{id:String}} ORDER BY decided_at, feedback_id",
            {"id": alert_id})
        return [dict(zip(rows.column_names, r)) for r in rows.result_rows]

    def requests_per_minute(self, accounts: list[str], start_ms: int, end_ms: int) -> dict[str, tuple[list, list]]:
        rows = self._rows(
            "SELECT account_id, minute, sum(requests) FROM {db}.account_minute WHERE account_id IN {a:Array(String)} "
            "AND minute BETWEEN toDateTime({s:UInt64} / 1000) AND toDateTime({e:UInt64} / 1000) "
            "GROUP BY account_id, minute ORDER BY account_id, minute", {"a": accounts, "s": start_ms, "e": end_ms})
        out: dict[str, tuple[list, list]] = {a: ([], []) for a in accounts}
        for account, minute, n in rows:
            out[account][0].append(minute)
            out[account][1].append(n)
        return out

    def feature_history(self, account: str, start_ms: int, end_ms: int) -> list[tuple]:
        return self._rows("SELECT ts, score, features FROM {db}.account_features WHERE account_id = {a:String} "
                          "AND ts BETWEEN fromUnixTimestamp64Milli({s:Int64}) AND fromUnixTimestamp64Milli({e:Int64}) "
                          "ORDER BY ts", {"a": account, "s": start_ms, "e": end_ms})

    def cluster(self, cluster_id: str) -> list[dict]:
        rows = self._rows("SELECT account_id, updated_at, score, evidence FROM {db}.cluster_members FINAL "
                          "WHERE cluster_id = {c:String} ORDER BY account_id", {"c": cluster_id})
        return [{"account_id": a, "updated_at": u, "score": s, "evidence": orjson.loads(e or "{}")}
                for a, u, s, e in rows]

    def cluster_alerts(self, cluster_id: str) -> list[tuple]:
        return self._rows("SELECT alert_id, severity, score, activity, raised_at FROM {db}.alerts_latest FINAL "
                          "WHERE cluster_id = {c:String} ORDER BY raised_at", {"c": cluster_id})

    def decisions(self) -> list[tuple[str, str, str, int]]:
        """(detector, alert_id, decision, decided_at_ms) of every decision, for precision."""
        return self._rows("SELECT detector, alert_id, decision, toUnixTimestamp64Milli(decided_at) "
                          "FROM {db}.alert_feedback ORDER BY decided_at")

    def insert_feedback(self, fb: Feedback) -> None:
        self.store.insert_rows([AlertFeedbackRow.of(fb)])
