"""The console's pieces that decide, without a browser: sign-in secrets, origin and CSRF checks,
the triage form → feedback v1, and the refusal to start without a token."""
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from distillguard.schemas import BadFeedback
from distillguard.streams.console.security import Sessions, csrf_ok, same_origin
from distillguard.streams.console.web import decision_from_form

CLI = [sys.executable, "-m", "distillguard.streams.cli"]
ALERT = {"alert_id": "dg-1", "detector": "account_extraction", "account_ids": ["acct"],
         "window_start": datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)}
NOW = 1_800_000_000_000


def test_sessions_need_the_token_and_carry_a_csrf_token():
    sessions = Sessions("s3cret")
    assert sessions.check_token("s3cret") and not sessions.check_token("s3cre") and not sessions.check_token("")
    sid, s = sessions.open("ana")
    assert sessions.get(sid) is s and sessions.get("forged") is None and sessions.get(None) is None
    assert csrf_ok(s, s.csrf) and not csrf_ok(s, "x") and not csrf_ok(s, None)
    sessions.close(sid)
    assert sessions.get(sid) is None
    with pytest.raises(ValueError):
        Sessions("")


@pytest.mark.parametrize("headers, ok", [
    ({"Origin": "http://127.0.0.1:8470"}, True),
    ({"Referer": "http://127.0.0.1:8470/alerts/x"}, True),
    ({"Origin": "http://evil.example"}, False),
    ({"Origin": "null"}, False),
    ({"Origin": "https://127.0.0.1:8470"}, False),
    ({}, False),
])
def test_only_the_consoles_own_origin_may_post(headers, ok):
    assert same_origin(headers, "127.0.0.1:8470", "http") is ok


def test_the_triage_form_becomes_a_feedback_record():
    fb = decision_from_form(ALERT, {"decision": "known_workload", "reason": "verified LLM-as-judge pipeline",
                                    "expiry_days": "90"}, "ana", NOW)
    assert (fb.decision, fb.analyst, fb.account_ids, fb.expires_at_ms) == ("known_workload", "ana", ["acct"],
                                                                           NOW + 90 * 86_400_000)
    assert fb.applies_from_ms == int(ALERT["window_start"].timestamp() * 1000)
    fp = decision_from_form(ALERT, {"decision": "false_positive"}, "ana", NOW)
    assert fp.expires_at_ms == NOW + 30 * 86_400_000
    assert decision_from_form(ALERT, {"decision": "confirmed"}, "ana", NOW).expires_at_ms is None


@pytest.mark.parametrize("form, message", [
    ({"decision": "known_workload", "expiry_days": "90"}, "needs a reason"),
    ({"decision": "false_positive", "expiry_days": "0"}, "1 to 365 days"),
    ({"decision": "false_positive", "expiry_days": "soon"}, "whole number"),
    ({"decision": "delete"}, "decision must be one of"),
])
def test_bad_triage_forms_are_refused_with_the_reason(form, message):
    with pytest.raises(BadFeedback, match=message):
        decision_from_form(ALERT, form, "ana", NOW)


def test_the_console_refuses_to_start_without_a_token(tmp_path):
    env = {**os.environ, "DG_DATA_DIR": str(tmp_path), "DG_CONSOLE_TOKEN": ""}
    r = subprocess.run([*CLI, "console"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("distillguard console: error: set DG_CONSOLE_TOKEN to the secret analysts sign in "
                                "with (or run with --dev for a one-off token on this machine)")


def test_the_alert_page_reads_reasons_of_the_event_whose_severity_it_shows(tmp_path):
    # an event stored between the page's two reads (the alert's latest row, then its evidence)
    # must not put a newer event's reasons beside the older event's severity
    from distillguard.models.rows import AlertEventRow
    from distillguard.schemas.alert import Alert
    from distillguard.streams.clickhouse import Store
    from distillguard.streams.console.queries import ConsoleData
    from distillguard.streams.settings import load_settings

    def event(version_ms: int, severity: str, feature: str) -> AlertEventRow:
        return AlertEventRow.of(Alert("dg-1", "update", "account_extraction", severity, 0.9, ["acct"], NOW,
                                      NOW + version_ms, NOW + version_ms, 10,
                                      [{"feature": feature, "value": 1, "baseline": None}], ["e1"], "block"))

    class StoredBetweenReads:   # the store, with an event inserted right after the alert's row is read
        def __init__(self, store, row):
            self.store, self.db, self.row = store, store.db, row

        def query(self, sql, params=None):
            out = self.store.query(sql, params)
            if "alerts_latest AS a FINAL" in sql and self.row is not None:   # the alert's row, read
                self.store.insert(self.row.TABLE, [self.row.values()])
                self.row = None
            return out

    store = Store(load_settings({"DG_DATA_DIR": str(tmp_path), "DG_DEV": "1"}))
    try:
        store.migrate()
        first = event(1_000, "critical", "breadth")
        store.insert(first.TABLE, [first.values()])
        page = ConsoleData(StoredBetweenReads(store, event(2_000, "low", "feedback_tempered"))).alert("dg-1")
        assert page["severity"] == "critical" and [r["feature"] for r in page["reasons"]] == ["breadth"]
        again = ConsoleData(store).alert("dg-1")   # the next read shows the newer event whole
        assert again["severity"] == "low" and [r["feature"] for r in again["reasons"]] == ["feedback_tempered"]
    finally:
        store.close()
