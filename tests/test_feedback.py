"""Feedback v1 and what the detector learns from it (issue #16): the contract, the pure core
(models/feedback.py), the lifecycle's tempering, and `replay --feedback` on simulated traffic."""
import json
import subprocess
import sys

import orjson
import pytest
from jsonschema import Draft202012Validator

from distillguard.models import Pipeline
from distillguard.models.config import DetectorConfig
from distillguard.models.feedback import FeedbackBook, precision_by_period, temper_finding
from distillguard.models.lifecycle import Lifecycle, OpenAlert
from distillguard.schemas import BadFeedback, Feedback, feedback_from_dict, json_schema, parse_feedback
from distillguard.streams.feedback_agent import FeedbackFileError, read_feedback_file
from distillguard.streams.replay import open_lines, replay

SCHEMA = Draft202012Validator(json.loads(json_schema("feedback.v1")))
CLI = [sys.executable, "-m", "distillguard.streams.cli"]
DET = "account_extraction"


def record(**change) -> dict:
    doc = {"schema_version": "1", "feedback_id": "fb-1", "alert_id": "dg-1", "detector": DET,
           "account_ids": ["acct"], "end_user_ids": [], "decision": "false_positive", "reason": "batch job",
           "note": "", "analyst": "ana", "decided_at_ms": 1_000, "applies_from_ms": 0, "expires_at_ms": 10_000}
    doc.update(change)
    return doc


def fb(**change) -> Feedback:
    return feedback_from_dict(record(**change))


@pytest.mark.parametrize("change", [
    {}, {"decision": "confirmed", "expires_at_ms": None, "reason": ""}, {"end_user_ids": ["u1"]},
    {"decision": "note", "note": "looked at it", "expires_at_ms": None}, {"extra_field": 1},
])
def test_valid_records_pass_the_parser_and_the_json_schema(change):
    doc = record(**change)
    assert SCHEMA.is_valid(doc)
    assert parse_feedback(orjson.dumps(doc)).decision == doc["decision"]


@pytest.mark.parametrize("change, message", [
    ({"decision": "maybe"}, "decision must be one of"),
    ({"account_ids": []}, "account_ids must be a non-empty array"),
    ({"analyst": ""}, "analyst must be a non-empty string"),
    ({"reason": "x" * 501}, "reason must be a string of at most 500"),
    ({"expires_at_ms": -1}, "expires_at_ms must be null or an integer not before"),
    ({"decided_at_ms": "today"}, "decided_at_ms must be a non-negative integer"),
    ({"schema_version": "2"}, 'schema_version must be "1"'),
])
def test_bad_records_are_refused_by_both(change, message):
    doc = record(**change)
    assert not SCHEMA.is_valid(doc)
    with pytest.raises(BadFeedback, match=message):
        feedback_from_dict(doc)


def test_known_workload_needs_a_reason_and_an_expiry():
    with pytest.raises(BadFeedback, match="known_workload needs a reason and an expiry"):
        fb(decision="known_workload", expires_at_ms=None)
    with pytest.raises(BadFeedback, match="known_workload needs"):
        fb(decision="known_workload", reason="")
    with pytest.raises(BadFeedback, match="not JSON"):
        parse_feedback(b"{nope")


def test_tempering_holds_from_applies_from_until_expiry_for_that_detector_and_account():
    book = FeedbackBook()
    assert book.learn(fb(applies_from_ms=100, expires_at_ms=5_000))
    assert not book.learn(fb(applies_from_ms=100, expires_at_ms=5_000))   # the same record again
    assert book.temper(DET, ["acct"], 99) is None
    assert book.temper(DET, ["acct"], 100).decision == "false_positive"
    assert book.temper(DET, ["acct"], 5_000) is None                        # expired
    assert book.temper("hydra_cluster", ["acct"], 200) is None             # another detector's finding
    assert book.temper(DET, ["other"], 200) is None


def test_a_later_confirmation_lifts_a_false_positive_and_is_kept_as_a_label():
    book = FeedbackBook()
    book.learn(fb())
    book.learn(fb(feedback_id="fb-2", decision="confirmed", decided_at_ms=2_000, expires_at_ms=None))
    assert book.temper(DET, ["acct"], 500) is None
    assert book.label(DET, "acct") == "confirmed"
    book.learn(fb(feedback_id="fb-3", decision="note", decided_at_ms=3_000, expires_at_ms=None))
    assert book.label(DET, "acct") == "confirmed"                          # a note changes nothing


def test_end_user_scope_and_clusters_temper_only_what_the_decision_covers():
    book = FeedbackBook()
    book.learn(fb(end_user_ids=["u1", "u2"]))
    assert book.temper(DET, ["acct"], 500, end_users=["u1"]) is not None
    assert book.temper(DET, ["acct"], 500, end_users=["u1", "u3"]) is None  # someone else is in it too
    assert book.temper(DET, ["acct"], 500) is None                          # end users unknown
    book.learn(fb(feedback_id="fb-b", account_ids=["b"]))
    assert book.temper(DET, ["b", "c"], 500) is None                        # c was never excused


def test_temper_finding_caps_severity_and_says_why():
    book = FeedbackBook()
    book.learn(fb(decision="known_workload", reason="verified LLM-as-judge pipeline"))
    sev, reasons, t = temper_finding(book, DET, ["acct"], 500, "critical", 0.97, [{"feature": "x", "value": 1,
                                                                                   "baseline": 0.1}])
    assert sev == "low" and t.decision == "known_workload"
    assert reasons[0] == {"feature": "feedback_tempered", "value": 0.97, "baseline": None,
                          "decision": "known_workload", "feedback_id": "fb-1", "alert_id": "dg-1",
                          "why": "verified LLM-as-judge pipeline", "severity_before": "critical",
                          "expires_at_ms": 10_000}
    assert temper_finding(book, DET, ["acct"], 500, None, 0.1, []) == (None, [], None)   # no finding


def test_lifecycle_lowers_an_open_alert_once_a_decision_arrives_and_restores_it_at_expiry():
    cfg = DetectorConfig()
    lc = Lifecycle(DET, cfg)
    rec, a = lc.observe(None, "acct", ["acct"], 0.8, [], 1_000, 0, 40, ["e1"], "m")
    assert (a.activity, a.severity) == ("create", "high")
    lc.feedback = FeedbackBook()
    lc.feedback.learn(fb(applies_from_ms=0, expires_at_ms=50_000))
    rec, a = lc.observe(rec, "acct", ["acct"], 0.8, [], 2_000, 0, 41, ["e1"], "m")
    assert (a.activity, a.severity, a.recommended_action) == ("update", "low", "monitor")
    assert a.reasons[0]["feature"] == "feedback_tempered" and a.reasons[0]["severity_before"] == "high"
    rec, a = lc.observe(rec, "acct", ["acct"], 0.8, [], 3_000, 0, 42, ["e1"], "m")
    assert a is None                                                        # said once, not on every score
    rec, a = lc.observe(rec, "acct", ["acct"], 0.8, [], 60_000, 0, 200, ["e1"], "m")
    assert (a.activity, a.severity) == ("update", "high")                  # expired: back to what it is
    assert all(r["feature"] != "feedback_tempered" for r in a.reasons)
    # a record written with the tempering marker survives the state's persisted form
    assert OpenAlert.from_list(orjson.loads(orjson.dumps(rec.to_list()))) == rec


def test_precision_counts_each_alert_once_with_its_latest_decision():
    rows = precision_by_period([(DET, "a1", "false_positive", 10), (DET, "a1", "confirmed", 20),
                                (DET, "a2", "note", 30), ("hydra_cluster", "c1", "false_positive", 40)], 1_000)
    assert [(r["detector"], r["confirmed"], r["false_positive"], r["precision"]) for r in rows] == [
        (DET, 1, 0, 1.0), ("hydra_cluster", 0, 1, 0.0)]


def _alerts(path, book=None):
    out = []
    replay(open_lines(path), Pipeline(cross=None, feedback=book), out.append)
    return out


def test_replay_with_decisions_tempers_the_same_finding_and_nothing_else(small_sim, tmp_path):
    events, _labels_path, _labels = small_sim
    before = _alerts(events)
    strong = list({a.alert_id: a for a in before if a.severity in ("high", "critical") and not a.cluster_id}.values())
    assert len(strong) >= 2
    target, other = strong[0], strong[1]
    decision = fb(alert_id=target.alert_id, account_ids=target.account_ids, applies_from_ms=target.window_start_ms,
                  expires_at_ms=target.raised_at_ms + 86_400_000, decided_at_ms=target.raised_at_ms)
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(decision.to_json() + b"\n")
    after = _alerts(events, FeedbackBook())
    assert [a.to_dict() for a in after] == [a.to_dict() for a in before]   # an empty book changes nothing
    book = FeedbackBook()
    book.learn_all(read_feedback_file(path))
    after = _alerts(events, book)
    mine = [a for a in after if a.account_ids == target.account_ids and a.activity != "close"]
    assert mine and all(a.severity == "low" and a.recommended_action == "monitor" for a in mine)
    assert all(a.reasons[0]["feature"] == "feedback_tempered" for a in mine)
    theirs = lambda alerts: [a.to_dict() for a in alerts if a.account_ids == other.account_ids]  # noqa: E731
    assert theirs(after) == theirs(before)


def test_a_bad_decisions_file_is_a_one_line_error_naming_the_line(tmp_path, small_sim):
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(orjson.dumps(record()) + b"\n" + orjson.dumps(record(decision="maybe")) + b"\n")
    with pytest.raises(FeedbackFileError, match="line 2: decision must be one of"):
        read_feedback_file(path)
    events, _l, _ = small_sim
    r = subprocess.run([*CLI, "replay", str(events), "--alerts", str(tmp_path / "a.jsonl"), "--quiet",
                        "--feedback", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().endswith("line 2: decision must be one of confirmed, false_positive, known_workload, note")


def test_eval_shows_what_a_file_of_decisions_changes(small_sim, tmp_path):
    from distillguard.streams.eval_cli import evaluate_file, feedback_effect, format_feedback_table
    events, _labels_path, labels = small_sim
    before = evaluate_file(events, labels, baselines=False)
    outcomes = before["detectors"]["distillguard"]["accounts"]
    target = next(a for a, o in sorted(outcomes.items())
                  if o["label"] == "attack" and o["cohort"] != "hydra" and o["severity"] in ("high", "critical"))
    book = FeedbackBook()
    book.learn(fb(alert_id="dg-x", account_ids=[target], applies_from_ms=0, expires_at_ms=None,
                  decision="false_positive"))
    after = evaluate_file(events, labels, baselines=False, feedback=book)
    effect = feedback_effect(before, after, book, "decisions.jsonl")
    cohort = labels[target]["cohort"]
    assert effect["cohorts"][cohort]["after"]["alerted"] == effect["cohorts"][cohort]["before"]["alerted"] - 1
    assert effect["tempered_alert_events"][1] > 0
    table = format_feedback_table(effect)
    assert "decisions.jsonl (1 false positive)" in table
    changed = [line for line in table.splitlines() if line.endswith("*")]
    assert {line.split()[0] for line in changed} == {cohort, "all"}
    from distillguard.streams.eval_report import render_report
    html = render_report({**before, "feedback": effect})
    assert "Analysts' feedback replayed" in html and "1 false positive" in html
