"""Alert events (contract v1) as OCSF Detection Findings, for SIEMs and data lakes.

A pure mapping, plain Python: ``to_ocsf(alert_dict) -> dict``.

OCSF (Open Cybersecurity Schema Framework, https://schema.ocsf.io) class
*Detection Finding*: ``class_uid`` 2004 in category 2 (*Findings*),
``type_uid = class_uid * 100 + activity_id``. We emit schema version
``OCSF_VERSION``; the field choices were checked against ocsf/ocsf-schema
(``events/findings/detection_finding.json``, ``finding.json``,
``base_event.json``, ``objects/finding_info.json``, ``attack.json``,
``metadata.json``, ``observable.json``, ``evidences.json``).

Mapping:

===========================  ==============================================================
alert (contract v1)          OCSF
===========================  ==============================================================
``activity``                 ``activity_id`` 1 Create / 2 Update / 3 Close; ``status_id``
                             1 New / 2 In Progress / 4 Resolved; ``is_alert`` on create
``alert_id``                 ``finding_info.uid`` (stable across updates), ``metadata.correlation_uid``
``detector``                 ``finding_info.analytic`` (type Behavioral), ``finding_info.title``
``severity``                 ``severity_id`` 2 Low / 3 Medium / 4 High / 5 Critical
``score`` (0..1)             ``confidence_score`` (0..100, integer) and ``confidence_id``
``account_ids``              ``resources[]`` (type ``llm_api_account``), ``observables[]``
                             (type_id 10 Resource UID)
``cluster_id``               ``finding_info.uid_alt``
``window_*_ms``              ``start_time`` / ``end_time`` (epoch ms), ``finding_info.first_seen_time`` / ``last_seen_time``
``raised_at_ms``             ``time`` (event time of the threshold crossing) and ``finding_info.created_time``
``reasons``                  ``evidences[]`` (``data``: feature, value, baseline; no text)
``sample_event_ids``         ``finding_info.related_events[]`` (``uid`` only)
``recommended_action``       ``remediation.desc``
``model``                    ``resources[]`` (type ``ai_model``)
===========================  ==============================================================

MITRE ATLAS technique (``finding_info.attacks``; OCSF says a detection
finding carries its ATT&CK/ATLAS mapping in ``finding_info``):
AML.T0024.002 *Extract AI Model* (named *Extract ML Model* before ATLAS
renamed "ML" to "AI" in 2025), sub-technique of AML.T0024 *Exfiltration via
AI Inference API*, tactic AML.TA0010 *Exfiltration* -- as in the public
mitre-atlas data (atlas.mitre.org/techniques/AML.T0024.002).

No prompt text exists in an alert, and none is added here: evidences carry
feature names and numbers, related events carry event ids only.
"""
from __future__ import annotations

from typing import Any

OCSF_VERSION = "1.3.0"
PRODUCT = {"name": "distillguard", "vendor_name": "distillguard", "uid": "distillguard"}

CLASS_UID = 2004          # Detection Finding
CATEGORY_UID = 2          # Findings
ACTIVITY = {"create": (1, "Create"), "update": (2, "Update"), "close": (3, "Close")}
STATUS = {"create": (1, "New"), "update": (2, "In Progress"), "close": (4, "Resolved")}
SEVERITY = {"low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High"), "critical": (5, "Critical")}

ATLAS_ATTACK = {
    "tactic": {"uid": "AML.TA0010", "name": "Exfiltration",
               "src_url": "https://atlas.mitre.org/tactics/AML.TA0010"},
    "technique": {"uid": "AML.T0024", "name": "Exfiltration via AI Inference API",
                  "src_url": "https://atlas.mitre.org/techniques/AML.T0024"},
    "sub_technique": {"uid": "AML.T0024.002", "name": "Extract AI Model",
                      "src_url": "https://atlas.mitre.org/techniques/AML.T0024.002"},
}

_ACTION_TEXT = {
    "monitor": "Monitor the account(s); no action yet.",
    "throttle": "Throttle the account(s): lower rate and token limits.",
    "step_up_verification": "Require step-up verification (identity, payment, use case) of the account(s).",
    "block": "Block the account(s) pending review.",
}


def _confidence_id(score_pct: int) -> tuple[int, str]:
    if score_pct >= 80:
        return 3, "High"
    if score_pct >= 50:
        return 2, "Medium"
    return 1, "Low"


def to_ocsf(alert: dict[str, Any]) -> dict[str, Any]:
    """Map one contract-v1 alert (a dict) to an OCSF 1.3 Detection Finding (a dict).

    Raises ``ValueError`` on an activity or severity outside contract v1.
    """
    activity = alert["activity"]
    if activity not in ACTIVITY:
        raise ValueError(f"alert activity {activity!r} is not create, update or close")
    severity = alert["severity"]
    if severity not in SEVERITY:
        raise ValueError(f"alert severity {severity!r} is not low, medium, high or critical")
    activity_id, activity_name = ACTIVITY[activity]
    status_id, status_name = STATUS[activity]
    severity_id, severity_name = SEVERITY[severity]
    score_pct = max(0, min(100, round(float(alert.get("score") or 0.0) * 100)))
    confidence_id, confidence_name = _confidence_id(score_pct)
    accounts = list(alert.get("account_ids") or [])
    detector = alert.get("detector") or "distillguard"
    raised = int(alert["raised_at_ms"])
    start, end = int(alert.get("window_start_ms", raised)), int(alert.get("window_end_ms", raised))
    cluster = alert.get("cluster_id")
    model = alert.get("model")
    who = f"cluster {cluster} ({len(accounts)} accounts)" if cluster else f"account {accounts[0] if accounts else '?'}"
    title = f"Possible model extraction (distillation) by {who}"

    finding_info: dict[str, Any] = {
        "uid": alert["alert_id"],
        "title": title,
        "desc": (f"{detector} scored {score_pct}/100 over {alert.get('event_count', 0)} requests"
                 + (f" to model {model}" if model else "") + "."),
        "analytic": {"name": detector, "type_id": 2, "type": "Behavioral", "uid": detector},
        "attacks": [dict(ATLAS_ATTACK)],
        "types": ["Model Extraction"],
        "created_time": raised,
        "first_seen_time": start,
        "last_seen_time": end,
        "related_events": [{"uid": e} for e in alert.get("sample_event_ids") or []],
        "related_events_count": int(alert.get("event_count", 0)),
        "product": dict(PRODUCT),
    }
    if cluster:
        finding_info["uid_alt"] = cluster

    resources: list[dict[str, Any]] = [{"uid": a, "name": a, "type": "llm_api_account"} for a in accounts]
    if model:
        resources.append({"uid": model, "name": model, "type": "ai_model"})
    observables = [{"name": f"resources[{i}].uid", "type_id": 10, "type": "Resource UID", "value": a}
                   for i, a in enumerate(accounts)]
    evidences = [{"name": str(r.get("feature")),
                  "data": {"feature": r.get("feature"), "value": r.get("value"), "baseline": r.get("baseline")}}
                 for r in alert.get("reasons") or []]

    out: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity_name}",
        "time": raised,
        "start_time": start,
        "end_time": end,
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": status_id,
        "status": status_name,
        "confidence_score": score_pct,
        "confidence_id": confidence_id,
        "confidence": confidence_name,
        "is_alert": activity != "close",
        "message": title,
        "metadata": {
            "version": OCSF_VERSION,
            "product": dict(PRODUCT),
            "uid": f"{alert['alert_id']}:{activity}:{end}",
            "correlation_uid": alert["alert_id"],
            "log_name": "llm.alerts",
        },
        "finding_info": finding_info,
        "resources": resources,
        "observables": observables,
        "evidences": evidences,
        "remediation": {"desc": _ACTION_TEXT.get(alert.get("recommended_action"), str(alert.get("recommended_action")))},
        "unmapped": {"recommended_action": alert.get("recommended_action"),
                     "alert_schema_version": alert.get("schema_version")},
    }
    return out
