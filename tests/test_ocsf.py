"""OCSF export: alert events (contract v1) as OCSF Detection Findings (class 2004)."""
import subprocess
import sys

import orjson
import pytest

from distillguard.schemas import Alert, validate_alert
from distillguard.streams.ocsf import OCSF_VERSION, to_ocsf

CLI = [sys.executable, "-m", "distillguard.streams.cli"]

# Required attributes, from the OCSF schema sources (github.com/ocsf/ocsf-schema, as of the
# 1.x releases; we emit OCSF_VERSION 1.3.0):
#  - events/base_event.json: activity_id, category_uid, class_uid, metadata, severity_id, time,
#    type_uid are "required" (status_id, message, observables "recommended");
#  - events/findings/finding.json: finding_info "required" (status_id, resources, confidence_id
#    "recommended"); detection_finding.json (uid 4 in category 2 -> class_uid 2004) adds
#    evidences, resources, is_alert as "recommended";
#  - objects/finding_info.json: uid "required"; title "required" up to 1.3, "recommended" since;
#  - objects/metadata.json: product and version "required";
#  - objects/product.json extends _entity.json: at least one of name, uid;
#  - objects/observable.json: type_id "required", name "required" in 1.3 (recommended later);
#  - objects/attack.json: at least one of tactic, technique, sub_technique;
#  - objects/evidences.json: at least one of actor, api, ..., data, ..., user.
REQUIRED = ("activity_id", "category_uid", "class_uid", "finding_info", "metadata", "severity_id", "time",
            "type_uid")
RECOMMENDED = ("status_id", "message", "observables", "resources", "evidences", "confidence_id", "is_alert")
REQUIRED_FINDING_INFO = ("uid", "title")
REQUIRED_METADATA = ("product", "version")
REQUIRED_OBSERVABLE = ("name", "type_id")
ATTACK_AT_LEAST_ONE = ("tactic", "technique", "sub_technique")
SEVERITY_IDS = {0, 1, 2, 3, 4, 5, 6, 99}
STATUS_IDS = {0, 1, 2, 3, 4, 5, 6, 99}


def check_detection_finding(rec: dict) -> list[str]:
    """The ways ``rec`` breaks the OCSF Detection Finding requirements listed above."""
    errors = [f"missing {k}" for k in REQUIRED if k not in rec]
    if errors:
        return errors
    if rec["class_uid"] != 2004 or rec["category_uid"] != 2:
        errors.append("not class 2004 in category 2")
    if rec["activity_id"] not in (1, 2, 3):
        errors.append(f"activity_id {rec['activity_id']}")
    if rec["type_uid"] != rec["class_uid"] * 100 + rec["activity_id"]:
        errors.append("type_uid != class_uid * 100 + activity_id")
    if rec["severity_id"] not in SEVERITY_IDS:
        errors.append("severity_id out of enum")
    if rec.get("status_id") not in STATUS_IDS:
        errors.append("status_id out of enum")
    if type(rec["time"]) is not int:
        errors.append("time must be epoch ms (int)")
    cs = rec.get("confidence_score")
    if cs is not None and (type(cs) is not int or not 0 <= cs <= 100):
        errors.append("confidence_score must be an int 0..100")
    fi = rec["finding_info"]
    errors += [f"missing finding_info.{k}" for k in REQUIRED_FINDING_INFO if not fi.get(k)]
    errors += [f"missing metadata.{k}" for k in REQUIRED_METADATA if not rec["metadata"].get(k)]
    product = rec["metadata"].get("product") or {}
    if not (product.get("name") or product.get("uid")):
        errors.append("metadata.product needs name or uid")
    for i, ob in enumerate(rec.get("observables", [])):
        errors += [f"missing observables[{i}].{k}" for k in REQUIRED_OBSERVABLE if k not in ob]
    for i, attack in enumerate(fi.get("attacks", [])):
        if not any(attack.get(k) for k in ATTACK_AT_LEAST_ONE):
            errors.append(f"finding_info.attacks[{i}] has no tactic/technique/sub_technique")
    for i, ev in enumerate(rec.get("evidences", [])):
        if "data" not in ev:
            errors.append(f"evidences[{i}] carries no evidence attribute")
    for i, r in enumerate(rec.get("resources", [])):
        if not (r.get("uid") or r.get("name")):
            errors.append(f"resources[{i}] needs uid or name")
    return errors


def make_alert(activity="create", severity="high", score=0.87, accounts=("acct_a",), cluster=None) -> dict:
    return Alert(alert_id="dg-0123456789abcdef01234567", activity=activity, detector="per_account",
                 severity=severity, score=score, account_ids=list(accounts), window_start_ms=1_700_000_000_000,
                 window_end_ms=1_700_000_600_000, raised_at_ms=1_700_000_300_000, event_count=412,
                 reasons=[{"feature": "template_share", "value": 0.93, "baseline": 0.12},
                          {"feature": "reasoning_share", "value": 0.71, "baseline": None}],
                 sample_event_ids=["req_1", "req_2"], recommended_action="throttle", cluster_id=cluster,
                 model="atlas-2-think").to_dict()


@pytest.mark.parametrize("activity,activity_id,status_id", [("create", 1, 1), ("update", 2, 2), ("close", 3, 4)])
def test_activity_and_status(activity, activity_id, status_id):
    rec = to_ocsf(make_alert(activity=activity))
    assert check_detection_finding(rec) == []
    assert (rec["activity_id"], rec["status_id"], rec["type_uid"]) == (activity_id, status_id, 200400 + activity_id)
    assert rec["is_alert"] is (activity != "close")


@pytest.mark.parametrize("severity,severity_id", [("low", 2), ("medium", 3), ("high", 4), ("critical", 5)])
def test_severity(severity, severity_id):
    rec = to_ocsf(make_alert(severity=severity))
    assert rec["severity_id"] == severity_id and check_detection_finding(rec) == []


def test_fields_mapped():
    alert = make_alert(score=0.876)
    rec = to_ocsf(alert)
    assert rec["metadata"]["version"] == OCSF_VERSION
    assert rec["confidence_score"] == 88
    fi = rec["finding_info"]
    assert fi["uid"] == alert["alert_id"] and fi["title"]
    assert fi["related_events"] == [{"uid": "req_1"}, {"uid": "req_2"}]
    assert fi["first_seen_time"] == alert["window_start_ms"] and fi["last_seen_time"] == alert["window_end_ms"]
    attack = fi["attacks"][0]
    assert attack["sub_technique"]["uid"] == "AML.T0024.002"
    assert attack["technique"]["uid"] == "AML.T0024" and attack["tactic"]["uid"] == "AML.TA0010"
    assert [r["uid"] for r in rec["resources"]] == ["acct_a", "atlas-2-think"]
    assert rec["observables"][0] == {"name": "resources[0].uid", "type_id": 10, "type": "Resource UID",
                                     "value": "acct_a"}
    assert [e["data"]["feature"] for e in rec["evidences"]] == ["template_share", "reasoning_share"]
    assert rec["time"] == alert["raised_at_ms"]


def test_cluster_alert_lists_every_account():
    rec = to_ocsf(make_alert(accounts=("a1", "a2", "a3"), cluster="cl-9"))
    assert check_detection_finding(rec) == []
    assert [o["value"] for o in rec["observables"]] == ["a1", "a2", "a3"]
    assert rec["finding_info"]["uid_alt"] == "cl-9"


def test_no_prompt_text_and_json_serialisable():
    alert = make_alert()
    alert["cohort"] = "attack"   # added fields of an alert are not copied blindly
    text = orjson.dumps(to_ocsf(alert)).decode()
    for forbidden in ('"messages"', '"content"', '"prompt"'):
        assert forbidden not in text


def test_rejects_non_contract_values():
    with pytest.raises(ValueError):
        to_ocsf(make_alert(activity="reopen"))


def test_export_cli_from_file(tmp_path):
    src = tmp_path / "alerts.jsonl"
    alerts = [make_alert(a) for a in ("create", "update", "close")]
    assert all(validate_alert(a) == [] for a in alerts)
    src.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts) + b"{not json\n")
    out = tmp_path / "ocsf.jsonl"
    proc = subprocess.run([*CLI, "export-ocsf", "--in", str(src), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3" in proc.stderr and "skipped 1" in proc.stderr
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["activity_id"] for r in records] == [1, 2, 3]
    assert all(check_detection_finding(r) == [] for r in records)
    # to stdout
    proc = subprocess.run([*CLI, "export-ocsf", "--in", str(src), "--out", "-"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3
