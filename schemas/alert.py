"""Alert, contract v1: the record enforcement and analysts receive.

>>> a = Alert(alert_id="x", activity="create", detector="rule", severity="high", score=0.9,
...           account_ids=["acct"], window_start_ms=0, window_end_ms=60000, raised_at_ms=60000,
...           event_count=10, reasons=[{"feature": "reasoning_share", "value": 0.9, "baseline": 0.05}],
...           sample_event_ids=["e1"], recommended_action="throttle")
>>> validate_alert(a.to_dict())
[]
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

SCHEMA_VERSION = "1"
ACTIVITIES = ("create", "update", "close")
SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = ("monitor", "throttle", "step_up_verification", "block")
PROTECTIONS = ("summarize_reasoning", "disable_logprobs", "cap_output_tokens", "per_end_user")  # v1.1


def make_alert_id(detector: str, scope: str, first_window_ms: int) -> str:
    """Stable id of a finding: the same detector, scope and first window give
    the same id in the stream and in replay, so consumers can dedupe on it."""
    digest = hashlib.sha256(f"{detector}|{scope}|{first_window_ms}".encode()).hexdigest()
    return f"dg-{digest[:24]}"


@dataclass(slots=True)
class Alert:
    alert_id: str
    activity: str
    detector: str
    severity: str
    score: float
    account_ids: list[str]
    window_start_ms: int
    window_end_ms: int
    raised_at_ms: int
    event_count: int
    reasons: list[dict[str, Any]]
    sample_event_ids: list[str]
    recommended_action: str
    cluster_id: str | None = None
    model: str | None = None
    schema_version: str = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # added fields, e.g. cohort
    end_user_ids: list[str] | None = None   # v1.1: end users the finding is about (omitted when None)
    protections: list[str] | None = None    # v1.1: targeted mitigations (omitted when None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("extra"))
        for name in ("end_user_ids", "protections"):   # optional v1.1 fields: absent rather than null
            if out[name] is None:
                del out[name]
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def validate_alert(doc: Any) -> list[str]:
    """Return the ways ``doc`` breaks alert contract v1 (empty list: valid)."""
    if type(doc) is not dict:
        return ["an alert must be a JSON object"]
    errors = []

    def check(name: str, ok: bool, what: str) -> None:
        if name not in doc:
            errors.append(f"missing {name}")
        elif not ok:
            errors.append(f"{name} must be {what}")

    check("schema_version", doc.get("schema_version") == SCHEMA_VERSION, '"1"')
    check("alert_id", type(doc.get("alert_id")) is str and bool(doc.get("alert_id")), "a non-empty string")
    check("activity", doc.get("activity") in ACTIVITIES, f"one of {ACTIVITIES}")
    check("detector", type(doc.get("detector")) is str, "a string")
    check("severity", doc.get("severity") in SEVERITIES, f"one of {SEVERITIES}")
    score = doc.get("score")
    check("score", _is_number(score) and 0 <= score <= 1, "a number in 0..1")
    ids = doc.get("account_ids")
    check("account_ids", type(ids) is list and len(ids) > 0 and all(type(i) is str for i in ids),
          "a non-empty array of strings")
    check("cluster_id", doc.get("cluster_id") is None or type(doc.get("cluster_id")) is str, "a string or null")
    for name in ("window_start_ms", "window_end_ms", "raised_at_ms", "event_count"):
        check(name, type(doc.get(name)) is int, "an integer")
    reasons = doc.get("reasons")
    check("reasons", type(reasons) is list and all(
        type(r) is dict and type(r.get("feature")) is str and _is_number(r.get("value"))
        and (r.get("baseline") is None or _is_number(r.get("baseline"))) for r in reasons or []),
        'an array of {"feature": str, "value": number, "baseline": number|null}')
    samples = doc.get("sample_event_ids")
    check("sample_event_ids", type(samples) is list and all(type(s) is str for s in samples), "an array of strings")
    check("recommended_action", doc.get("recommended_action") in ACTIONS, f"one of {ACTIONS}")
    check("model", doc.get("model") is None or type(doc.get("model")) is str, "a string or null")
    # v1.1 optional fields
    users = doc.get("end_user_ids")
    if users is not None and not (type(users) is list and all(type(u) is str for u in users)):
        errors.append("end_user_ids must be an array of strings")
    prot = doc.get("protections")
    if prot is not None and not (type(prot) is list and all(p in PROTECTIONS for p in prot)):
        errors.append(f"protections must be an array of {PROTECTIONS}")
    return errors
