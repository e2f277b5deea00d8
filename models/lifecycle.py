"""Alert lifecycle per scope: ``create`` once, ``update`` when evidence grows,
``close`` after a quiet spell, all in event time.

The open alert lives inside the scope's state as a small list so that it is
persisted with it (Faust changelog) and a restarted worker neither forgets an
alert nor creates it twice.
"""
from __future__ import annotations

from distillguard.schemas import Alert, make_alert_id

from .config import DetectorConfig
from .response import Context, respond

SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = {"low": "monitor", "medium": "step_up_verification", "high": "throttle", "critical": "block"}
WINDOW_MS = 3_600_000  # alert ids are keyed by the hour the finding first crossed a threshold

# open-alert record fields
A_ID, A_START, A_SEVERITY, A_SCORE, A_EVENTS, A_LAST_STRONG, A_EMITTED_EVENTS = range(7)


def severity_of(score: float, cfg: DetectorConfig) -> str | None:
    if score >= cfg.critical:
        return "critical"
    if score >= cfg.high:
        return "high"
    if score >= cfg.medium:
        return "medium"
    if score >= cfg.low:
        return "low"
    return None


class Lifecycle:
    """Turns a stream of (score, reasons) for one scope into alert events.

    >>> from distillguard.models.config import DetectorConfig
    >>> lc = Lifecycle("rule", DetectorConfig())
    >>> rec = None
    >>> rec, a = lc.observe(rec, "acct", ["acct"], 0.8, [], 1000, 0, 40, ["e1"], "m")
    >>> a.activity, a.severity
    ('create', 'high')
    >>> rec, a = lc.observe(rec, "acct", ["acct"], 0.8, [], 2000, 0, 41, ["e1"], "m")
    >>> a is None
    True
    >>> rec, a = lc.expire(rec, "acct", ["acct"], 1000 + 3 * 3_600_000)
    >>> a.activity
    'close'
    """

    def __init__(self, detector: str, cfg: DetectorConfig):
        self.detector = detector
        self.cfg = cfg

    def _alert(self, rec: list, activity: str, accounts: list[str], score: float, reasons: list[dict],
               ts: int, samples: list[str], model: str | None, cluster_id: str | None,
               findings: dict[str, float] | None = None, context: Context | None = None,
               end_user_ids: list[str] | None = None) -> Alert:
        sev = rec[A_SEVERITY]
        action, protections = ACTIONS[sev], None
        if findings and context is not None:       # v1.1: context-aware action, targeted protections
            action, protections = respond(sev, findings, context)
        return Alert(alert_id=rec[A_ID], activity=activity, detector=self.detector, severity=sev,
                     score=min(max(score, 0.0), 1.0), account_ids=accounts, cluster_id=cluster_id,
                     window_start_ms=rec[A_START], window_end_ms=ts, raised_at_ms=ts,
                     event_count=int(rec[A_EVENTS]), reasons=reasons, sample_event_ids=list(samples),
                     recommended_action=action, model=model, end_user_ids=end_user_ids or None,
                     protections=protections)

    def observe(self, rec: list | None, scope: str, accounts: list[str], score: float, reasons: list[dict],
                ts: int, window_start: int, events: int, samples: list[str], model: str | None,
                cluster_id: str | None = None, findings: dict[str, float] | None = None,
                context: Context | None = None, end_user_ids: list[str] | None = None
                ) -> tuple[list | None, Alert | None]:
        """Fold a new score for ``scope``; return the new open-alert record and an alert event, if any
        (``findings``/``context``/``end_user_ids``: see :func:`.response.respond`, contract v1.1)."""
        extra = {"findings": findings, "context": context, "end_user_ids": end_user_ids}
        sev = severity_of(score, self.cfg)
        if rec is None:
            if sev is None:
                return None, None
            # Keyed by the hour of the crossing: a later finding on the same scope (after a close,
            # which takes hours of quiet) gets a new id; re-processing the same events does not.
            rec = [make_alert_id(self.detector, scope, ts // WINDOW_MS * WINDOW_MS),
                   window_start, sev, score, events, ts, events]
            return rec, self._alert(rec, "create", accounts, score, reasons, ts, samples, model, cluster_id, **extra)
        if sev is None:
            return rec, None
        rec[A_LAST_STRONG] = ts
        rec[A_EVENTS] = events
        grew = SEVERITIES.index(sev) > SEVERITIES.index(rec[A_SEVERITY]) or \
            events >= rec[A_EMITTED_EVENTS] * self.cfg.update_growth
        if not grew:
            return rec, None
        if SEVERITIES.index(sev) > SEVERITIES.index(rec[A_SEVERITY]):
            rec[A_SEVERITY] = sev
        rec[A_SCORE] = max(rec[A_SCORE], score)
        rec[A_EMITTED_EVENTS] = events
        return rec, self._alert(rec, "update", accounts, rec[A_SCORE], reasons, ts, samples, model, cluster_id,
                                **extra)

    def expire(self, rec: list | None, scope: str, accounts: list[str], now_ms: int,
               model: str | None = None, cluster_id: str | None = None) -> tuple[list | None, Alert | None]:
        """Close the open alert if its scope has been quiet for ``close_after_ms`` of event time."""
        if rec is None or now_ms - rec[A_LAST_STRONG] < self.cfg.close_after_ms:
            return rec, None
        alert = self._alert(rec, "close", accounts, rec[A_SCORE],
                            [{"feature": "quiet_ms", "value": now_ms - rec[A_LAST_STRONG], "baseline": None}],
                            now_ms, [], model, cluster_id)
        alert.raised_at_ms = rec[A_LAST_STRONG]
        return None, alert
