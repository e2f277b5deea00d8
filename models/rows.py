"""Typed rows for the analysts' tables, one class per ClickHouse table.

A row class's fields, in order, ARE the table's column list: the store inserts
with ``columns(cls)`` (``streams/clickhouse.py``), the sink topic carries
``values()`` lists, and nothing else matches values to columns by position.
The table definitions (DDL) live with the migrations; ``tests/test_store.py``
checks each class against them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import orjson

from distillguard.schemas import Alert, Feedback

_ACTIVITY_RANK = {"create": 0, "update": 1, "close": 2}


class Row:
    """Base of the row classes: ``TABLE`` names the table the fields are the columns of."""
    __slots__ = ()
    TABLE: ClassVar[str]

    def values(self) -> list:
        """The row as a list in column order (the sink topic's wire form)."""
        return [getattr(self, name) for name in self.__slots__]


def columns(row_type: type[Row]) -> list[str]:
    """The column list of ``row_type``'s table."""
    return [f.name for f in fields(row_type)]


@dataclass(slots=True)
class AlertEventRow(Row):
    TABLE: ClassVar[str] = "alert_events"
    alert_id: str
    activity: str
    detector: str
    severity: str
    score: float
    account_id: str
    account_ids: list[str]
    cluster_id: str | None
    window_start: int          # ms since the epoch, as DateTime64(3)
    window_end: int
    raised_at: int
    event_count: int
    reasons: str               # JSON
    sample_event_ids: list[str]
    recommended_action: str
    model: str | None
    version: int               # alerts_latest keeps the highest: later window, then close > update > create
    end_user_ids: list[str]    # contract v1.1 (migration 6); empty when the alert names none
    protections: list[str]

    @classmethod
    def of(cls, alert: Alert) -> AlertEventRow:
        return cls(alert.alert_id, alert.activity, alert.detector, alert.severity, alert.score,
                   alert.account_ids[0], alert.account_ids, alert.cluster_id, alert.window_start_ms,
                   alert.window_end_ms, alert.raised_at_ms, alert.event_count,
                   orjson.dumps(alert.reasons).decode(), alert.sample_event_ids, alert.recommended_action,
                   alert.model, alert.window_end_ms * 4 + _ACTIVITY_RANK[alert.activity],
                   list(alert.end_user_ids or ()), list(alert.protections or ()))


@dataclass(slots=True)
class AccountMinuteRow(Row):
    """Per-minute partial sums of one account (several per minute add up downstream)."""
    TABLE: ClassVar[str] = "account_minute_in"
    account_id: str
    minute: int                # epoch seconds of the minute
    requests: int
    input_tokens: int
    output_tokens: int
    errors: int
    skeletons: list[int]       # distinct skeleton fingerprints seen (a uniq sketch downstream)
    topics: list[int]


@dataclass(slots=True)
class FeatureSnapshotRow(Row):
    """What the per-account detector saw when it scored an account."""
    TABLE: ClassVar[str] = "account_features"
    account_id: str
    ts: int                    # ms
    score: float
    features: dict[str, float]


@dataclass(slots=True)
class ClusterMemberRow(Row):
    TABLE: ClassVar[str] = "cluster_members"
    cluster_id: str
    account_id: str
    updated_at: int            # ms
    score: float
    evidence: dict[str, Any]   # JSON text in the table (``values``)

    def values(self) -> list:
        return [self.cluster_id, self.account_id, self.updated_at, self.score, orjson.dumps(self.evidence).decode()]


@dataclass(slots=True)
class DlqMinuteRow(Row):
    TABLE: ClassVar[str] = "dlq_minute"
    minute: int                # epoch seconds
    reason: str
    count: int


@dataclass(slots=True)
class ContentMinuteRow(Row):
    """The detector's blind spot: events read, and those without prompt text, per minute of worker time."""
    TABLE: ClassVar[str] = "content_minute"
    minute: int                # epoch seconds
    events: int
    content_less: int


@dataclass(slots=True)
class AlertFeedbackRow(Row):
    """An analyst's triage decision (feedback v1), appended to the audit trail."""
    TABLE: ClassVar[str] = "alert_feedback"
    feedback_id: str
    alert_id: str
    detector: str
    account_ids: list[str]
    end_user_ids: list[str]
    decision: str
    reason: str
    note: str
    analyst: str
    decided_at: int            # ms
    applies_from: int          # ms
    expires_at: int | None     # ms; None: no expiry

    @classmethod
    def of(cls, fb: Feedback) -> AlertFeedbackRow:
        return cls(fb.feedback_id, fb.alert_id, fb.detector, fb.account_ids, fb.end_user_ids, fb.decision,
                   fb.reason, fb.note, fb.analyst, fb.decided_at_ms, fb.applies_from_ms, fb.expires_at_ms)


ROW_TYPES: tuple[type[Row], ...] = (AlertEventRow, AccountMinuteRow, FeatureSnapshotRow, ClusterMemberRow,
                                    DlqMinuteRow, ContentMinuteRow, AlertFeedbackRow)
