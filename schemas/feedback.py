"""Feedback v1: one analyst triage decision on one alert, as data.

Published to the feedback topic (``DG_TOPIC_FEEDBACK``, key = first account),
stored append-only in ClickHouse (``alert_feedback``), read back by the
detector (:mod:`distillguard.models.feedback`) in the stream and in replay.
``feedback.v1.json`` is the machine-readable form; README "Feedback" the
prose. Like the alert, it never carries prompt text: a reason and a note are
the analyst's own words, capped in length.

>>> fb = parse_feedback(b'{"schema_version":"1","feedback_id":"f1","alert_id":"dg-1",'
...     b'"detector":"account_extraction","account_ids":["acct-7"],"end_user_ids":[],'
...     b'"decision":"known_workload","reason":"LLM-as-judge pipeline","note":"",'
...     b'"analyst":"ana","decided_at_ms":5,"applies_from_ms":0,"expires_at_ms":100}')
>>> fb.decision, fb.expires_at_ms
('known_workload', 100)
>>> parse_feedback(b'{"schema_version":"1"}')
Traceback (most recent call last):
...
distillguard.schemas.feedback.BadFeedback: missing feedback_id
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

SCHEMA_VERSION = "1"
# confirmed: a true finding (kept as a label); false_positive / known_workload: temper the same
# finding for the same account (and end users) until expires_at_ms; note: a comment, no effect
DECISIONS = ("confirmed", "false_positive", "known_workload", "note")
TEMPERING = ("false_positive", "known_workload")
MAX_REASON = 500
MAX_NOTE = 2000
MAX_BYTES = 16_384


class BadFeedback(ValueError):
    """A feedback record that breaks feedback v1; the message says how."""


@dataclass(frozen=True, slots=True)
class Feedback:
    feedback_id: str
    alert_id: str
    detector: str
    account_ids: list[str]
    decision: str
    analyst: str
    decided_at_ms: int
    applies_from_ms: int
    expires_at_ms: int | None = None
    end_user_ids: list[str] = field(default_factory=list)
    reason: str = ""
    note: str = ""
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def make_feedback_id(alert_id: str, analyst: str, decided_at_ms: int, decision: str) -> str:
    """Stable id of one decision, so a re-sent record is stored and learned once."""
    digest = hashlib.sha256(f"{alert_id}|{analyst}|{decided_at_ms}|{decision}".encode()).hexdigest()
    return f"fb-{digest[:24]}"


def _strings(doc: dict, name: str, non_empty: bool) -> list[str]:
    value = doc.get(name)
    if type(value) is not list or not all(type(v) is str and v for v in value) or (non_empty and not value):
        raise BadFeedback(f"{name} must be {'a non-empty' if non_empty else 'an'} array of non-empty strings")
    return list(value)


def feedback_from_dict(doc: Any) -> Feedback:
    """Validate a decoded record; raise :class:`BadFeedback` naming the first problem."""
    if type(doc) is not dict:
        raise BadFeedback("feedback must be a JSON object")
    for name in ("schema_version", "feedback_id", "alert_id", "detector", "account_ids", "end_user_ids",
                 "decision", "reason", "note", "analyst", "decided_at_ms", "applies_from_ms", "expires_at_ms"):
        if name not in doc:
            raise BadFeedback(f"missing {name}")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise BadFeedback('schema_version must be "1"')
    for name in ("feedback_id", "alert_id", "detector", "analyst"):
        if type(doc[name]) is not str or not doc[name]:
            raise BadFeedback(f"{name} must be a non-empty string")
    if doc["decision"] not in DECISIONS:
        raise BadFeedback(f"decision must be one of {', '.join(DECISIONS)}")
    for name, cap in (("reason", MAX_REASON), ("note", MAX_NOTE)):
        if type(doc[name]) is not str or len(doc[name]) > cap:
            raise BadFeedback(f"{name} must be a string of at most {cap} characters")
    for name in ("decided_at_ms", "applies_from_ms"):
        if type(doc[name]) is not int or doc[name] < 0:
            raise BadFeedback(f"{name} must be a non-negative integer (epoch ms)")
    expires = doc["expires_at_ms"]
    if expires is not None and (type(expires) is not int or expires < doc["applies_from_ms"]):
        raise BadFeedback("expires_at_ms must be null or an integer not before applies_from_ms")
    if doc["decision"] == "known_workload" and (expires is None or not doc["reason"]):
        raise BadFeedback("known_workload needs a reason and an expiry")
    return Feedback(feedback_id=doc["feedback_id"], alert_id=doc["alert_id"], detector=doc["detector"],
                    account_ids=_strings(doc, "account_ids", True), decision=doc["decision"],
                    analyst=doc["analyst"], decided_at_ms=doc["decided_at_ms"],
                    applies_from_ms=doc["applies_from_ms"], expires_at_ms=expires,
                    end_user_ids=_strings(doc, "end_user_ids", False), reason=doc["reason"], note=doc["note"])


def parse_feedback(raw: bytes) -> Feedback:
    """Bytes of one record (a Kafka value or a JSONL line) → :class:`Feedback`."""
    if len(raw) > MAX_BYTES:
        raise BadFeedback(f"record is {len(raw)} bytes, more than {MAX_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadFeedback(f"not JSON: {err}") from None
    return feedback_from_dict(doc)
