"""What the detector learns from analysts' triage decisions (feedback v1).

A :class:`FeedbackBook` keeps, per (detector, account), the latest decision
an analyst took on that detector's findings for that account. When the alert
lifecycle is about to raise or update a finding it asks :func:`temper_finding`:

- ``false_positive`` or ``known_workload`` in force at the finding's event
  time (``applies_from_ms <= ts < expires_at_ms``) caps the severity at
  ``low`` (recommended action ``monitor``) and puts a first reason
  ``{"feature": "feedback_tempered", "value": <score>, "baseline": null,
  "decision": ..., "feedback_id": ..., "expires_at_ms": ...}`` on the alert,
  so enforcement and analysts see why it was tempered;
- ``confirmed`` never tempers; it is kept as a label (:meth:`FeedbackBook.label`)
  and, being later, lifts an earlier false-positive decision;
- ``note`` changes nothing.

A decision scoped to end users tempers only findings whose end users are all
among them (a finding about someone else in the account is not excused).
The book is plain data in, plain answers out: the stream feeds it from the
feedback topic, ``replay`` and ``eval`` from a file, with the same results.

>>> from distillguard.schemas import Feedback
>>> book = FeedbackBook()
>>> book.learn(Feedback("f1", "dg-1", "account_extraction", ["a"], "false_positive", "ana",
...                     decided_at_ms=50, applies_from_ms=10, expires_at_ms=1000, reason="batch job"))
True
>>> sev, reasons, t = temper_finding(book, "account_extraction", ["a"], 20, "high", 0.8, [])
>>> sev, reasons[0]["feature"], reasons[0]["decision"]
('low', 'feedback_tempered', 'false_positive')
>>> temper_finding(book, "account_extraction", ["a"], 2000, "high", 0.8, [])[0]   # expired
'high'
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from distillguard.schemas.feedback import TEMPERING, Feedback

SEVERITIES = ("low", "medium", "high", "critical")
TEMPERED_CAP = "low"            # a tempered finding is watched (monitor), never acted on
TEMPERED_FEATURE = "feedback_tempered"


@dataclass(frozen=True, slots=True)
class Tempering:
    """Why and until when a finding is tempered."""
    feedback_id: str
    alert_id: str
    decision: str
    reason: str
    analyst: str
    expires_at_ms: int | None

    def reason_entry(self, score: float, severity: str) -> dict:
        return {"feature": TEMPERED_FEATURE, "value": round(score, 4), "baseline": None,
                "decision": self.decision, "feedback_id": self.feedback_id, "alert_id": self.alert_id,
                "why": self.reason, "severity_before": severity, "expires_at_ms": self.expires_at_ms}


class FeedbackBook:
    """Latest analyst decision per (detector, account); see the module docstring."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], Feedback] = {}
        self._seen: set[str] = set()
        self.decisions: list[Feedback] = []      # every decision learned, in arrival order (for eval)

    def __len__(self) -> int:
        return len(self._seen)

    def learn(self, fb: Feedback) -> bool:
        """Take one decision; False if this ``feedback_id`` was learned already (a re-sent record)."""
        if fb.feedback_id in self._seen:
            return False
        self._seen.add(fb.feedback_id)
        self.decisions.append(fb)
        if fb.decision == "note":
            return True
        for account in fb.account_ids:
            key = (fb.detector, account)
            old = self._latest.get(key)
            if old is None or (fb.decided_at_ms, fb.feedback_id) >= (old.decided_at_ms, old.feedback_id):
                self._latest[key] = fb
        return True

    def learn_all(self, decisions: Iterable[Feedback]) -> int:
        return sum(self.learn(fb) for fb in decisions)

    def label(self, detector: str, account: str) -> str | None:
        """The latest decision on this detector's findings for ``account`` (``confirmed``, ...)."""
        fb = self._latest.get((detector, account))
        return fb.decision if fb else None

    def temper(self, detector: str, accounts: Sequence[str], ts: int,
               end_users: Sequence[str] = ()) -> Tempering | None:
        """The tempering in force for a finding of ``detector`` on ``accounts`` at event time ``ts``.

        A finding on several accounts (a cluster) is tempered only if every account is excused:
        one analyst's verdict on one member says nothing about the others."""
        found: Tempering | None = None
        for account in accounts:
            fb = self._latest.get((detector, account))
            if fb is None or fb.decision not in TEMPERING or ts < fb.applies_from_ms:
                return None
            if fb.expires_at_ms is not None and ts >= fb.expires_at_ms:
                return None
            if fb.end_user_ids and not (end_users and set(end_users) <= set(fb.end_user_ids)):
                return None
            found = found or Tempering(fb.feedback_id, fb.alert_id, fb.decision, fb.reason, fb.analyst,
                                       fb.expires_at_ms)
        return found


def temper_finding(book: FeedbackBook | None, detector: str, accounts: Sequence[str], ts: int,
                   severity: str | None, score: float, reasons: list[dict],
                   end_users: Sequence[str] = ()) -> tuple[str | None, list[dict], Tempering | None]:
    """The lifecycle's one question: the severity and reasons to raise a finding with.

    Returns ``(severity, reasons, tempering)``, unchanged with ``tempering=None`` when no
    decision applies (or there is no finding, ``severity=None``)."""
    if book is None or severity is None:
        return severity, reasons, None
    t = book.temper(detector, accounts, ts, end_users)
    if t is None:
        return severity, reasons, None
    capped = min(severity, TEMPERED_CAP, key=SEVERITIES.index)
    return capped, [t.reason_entry(score, severity), *reasons], t


def precision_by_period(decisions: Iterable[tuple[str, str, str, int]], period_ms: int = 86_400_000
                        ) -> list[dict]:
    """Precision per detector and period from ``(detector, alert_id, decision, decided_at_ms)``.

    Each alert counts once, with its latest decision (``note`` ignored), in the period of that
    decision. precision = confirmed / (confirmed + false_positive + known_workload): a known
    workload is a real pattern but not an extraction, so it counts against the detector.

    >>> precision_by_period([("d", "a1", "confirmed", 5), ("d", "a2", "false_positive", 6),
    ...                      ("d", "a2", "confirmed", 7), ("d", "a3", "known_workload", 8)], 100)
    [{'detector': 'd', 'period_start_ms': 0, 'confirmed': 2, 'false_positive': 0, 'known_workload': 1, 'precision': 0.6667}]
    """
    latest: dict[str, tuple[int, str, str]] = {}
    for detector, alert_id, decision, at in decisions:
        if decision == "note":
            continue
        if alert_id not in latest or at >= latest[alert_id][0]:
            latest[alert_id] = (at, detector, decision)
    cells: dict[tuple[str, int], dict[str, int]] = {}
    for at, detector, decision in latest.values():
        c = cells.setdefault((detector, at // period_ms * period_ms),
                             {"confirmed": 0, "false_positive": 0, "known_workload": 0})
        c[decision] += 1
    out = []
    for (detector, start), c in sorted(cells.items()):
        total = sum(c.values())
        out.append({"detector": detector, "period_start_ms": start, **c,
                    "precision": round(c["confirmed"] / total, 4) if total else None})
    return out
