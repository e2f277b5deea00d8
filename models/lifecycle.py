"""Alert lifecycle per scope: ``create`` once, ``update`` when evidence grows,
``close`` after a quiet spell, all in event time.

The open alert (:class:`OpenAlert`) lives inside the scope's state so that it
is persisted with it (Faust changelog) and a restarted worker neither forgets
an alert nor creates it twice.

A close is a pure function of the open alert: it happens at
``last_strong + close_after_ms`` of event time, whoever notices it first (the
scope's own next score, or the periodic ``advance`` of quiet scopes, whenever
that runs), so its content does not depend on batch sizes or on how often the
driver advances.
"""
from __future__ import annotations

from dataclasses import dataclass

from distillguard.schemas import Alert, make_alert_id

from .config import DetectorConfig
from .feedback import FeedbackBook, temper_finding
from .response import Context, respond

SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = {"low": "monitor", "medium": "step_up_verification", "high": "throttle", "critical": "block"}
WINDOW_MS = 3_600_000  # alert ids are keyed by the hour the finding first crossed a threshold

_DEFAULT = DetectorConfig()


@dataclass(slots=True)
class OpenAlert:
    """The open alert of one scope (account or cluster)."""
    alert_id: str
    window_start_ms: int
    severity: str
    score: float            # highest score so far
    events: int             # supporting events at the last strong score
    last_strong_ms: int     # event time of the last score at or above ``low``
    emitted_events: int     # ``events`` when the last create/update was emitted
    model: str | None = None   # model of the last strong score's request (named in the close)
    tempered: str | None = None   # id of the analyst's decision the last event was emitted under

    def to_list(self) -> list:
        """Persisted form (``AccountState.to_bytes``)."""
        return [self.alert_id, self.window_start_ms, self.severity, self.score, self.events,
                self.last_strong_ms, self.emitted_events, self.model, self.tempered]

    @classmethod
    def from_list(cls, values: list | None) -> OpenAlert | None:
        """Inverse of :meth:`to_list`; also reads the shorter lists of earlier versions (7 fields:
        no model; 8: no tempering)."""
        return None if values is None else cls(*values)


def severity_of(score: float, cfg: DetectorConfig = _DEFAULT) -> str | None:
    """The severity band of ``score`` (None below ``low``); one definition for the per-account
    detector, the cluster engine and the evaluation baselines."""
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
        # analysts' decisions (models/feedback.py); the shell sets it, None = no feedback
        self.feedback: FeedbackBook | None = None

    def _alert(self, rec: OpenAlert, activity: str, accounts: list[str], score: float, reasons: list[dict],
               ts: int, samples: list[str], model: str | None, cluster_id: str | None,
               findings: dict[str, float] | None = None, context: Context | None = None,
               end_user_ids: list[str] | None = None) -> Alert:
        sev = rec.severity
        action, protections = ACTIONS[sev], None
        if findings and context is not None:       # v1.1: context-aware action, targeted protections
            action, protections = respond(sev, findings, context)
        return Alert(alert_id=rec.alert_id, activity=activity, detector=self.detector, severity=sev,
                     score=min(max(score, 0.0), 1.0), account_ids=accounts, cluster_id=cluster_id,
                     window_start_ms=rec.window_start_ms, window_end_ms=ts, raised_at_ms=ts,
                     event_count=int(rec.events), reasons=reasons, sample_event_ids=list(samples),
                     recommended_action=action, model=model, end_user_ids=end_user_ids or None,
                     protections=protections)

    def observe(self, rec: OpenAlert | None, scope: str, accounts: list[str], score: float, reasons: list[dict],
                ts: int, window_start: int, events: int, samples: list[str], model: str | None,
                cluster_id: str | None = None, findings: dict[str, float] | None = None,
                context: Context | None = None, end_user_ids: list[str] | None = None
                ) -> tuple[OpenAlert | None, Alert | None]:
        """Fold a new score for ``scope``; return the new open-alert record and an alert event, if any
        (``findings``/``context``/``end_user_ids``: see :func:`.response.respond`, contract v1.1).
        An analyst's decision in force (``feedback``) tempers the finding: severity at most
        ``low``, action ``monitor``, the decision named in the first reason."""
        sev, reasons, tempering = temper_finding(self.feedback, self.detector, accounts, ts,
                                                 severity_of(score, self.cfg), score, reasons,
                                                 end_user_ids or ())
        # a tempered finding is monitored, not acted on: no context-aware action or protections
        extra = {"findings": None if tempering is not None else findings, "context": context,
                 "end_user_ids": end_user_ids}
        if rec is not None and _tempered_now(rec, tempering):
            # an analyst's decision arrived while the alert is open: say so at once, lowered
            rec.severity = sev
            rec.last_strong_ms = ts
            rec.events = rec.emitted_events = events
            return rec, self._alert(rec, "update", accounts, score, reasons, ts, samples, model, cluster_id, **extra)
        if rec is None:
            if sev is None:
                return None, None
            # Keyed by the hour of the crossing: a later finding on the same scope (after a close,
            # which takes hours of quiet) gets a new id; re-processing the same events does not.
            rec = OpenAlert(make_alert_id(self.detector, scope, ts // WINDOW_MS * WINDOW_MS),
                            window_start, sev, score, events, ts, events, model,
                            tempering.feedback_id if tempering is not None else None)
            return rec, self._alert(rec, "create", accounts, score, reasons, ts, samples, model, cluster_id, **extra)
        if sev is None:
            return rec, None
        rec.last_strong_ms = ts
        rec.events = events
        rec.model = model
        grew = SEVERITIES.index(sev) > SEVERITIES.index(rec.severity) or \
            events >= rec.emitted_events * self.cfg.update_growth
        if not grew:
            return rec, None
        if SEVERITIES.index(sev) > SEVERITIES.index(rec.severity):
            rec.severity = sev
        rec.score = max(rec.score, score)
        rec.emitted_events = events
        return rec, self._alert(rec, "update", accounts, rec.score, reasons, ts, samples, model, cluster_id,
                                **extra)

    def expire(self, rec: OpenAlert | None, scope: str, accounts: list[str], now_ms: int,
               cluster_id: str | None = None) -> tuple[OpenAlert | None, Alert | None]:
        """Close the open alert if its scope has been quiet for ``close_after_ms`` at ``now_ms``.
        The close is dated when it became due (``last_strong_ms + close_after_ms``), not
        ``now_ms``: whichever call notices it, the close event is the same."""
        if rec is None or now_ms - rec.last_strong_ms < self.cfg.close_after_ms:
            return rec, None
        quiet = self.cfg.close_after_ms
        alert = self._alert(rec, "close", accounts, rec.score,
                            [{"feature": "quiet_ms", "value": quiet, "baseline": None}],
                            rec.last_strong_ms + quiet, [], rec.model, cluster_id)
        alert.raised_at_ms = rec.last_strong_ms
        return None, alert


def _tempered_now(rec: OpenAlert, tempering) -> bool:
    """Record on ``rec`` which tempering it was last emitted under; True when that changed to a
    new one (a decision that was not on the alert yet)."""
    current = tempering.feedback_id if tempering is not None else None
    if current == rec.tempered:
        return False
    rec.tempered = current
    return current is not None
