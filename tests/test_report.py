"""`distillguard report`: built from a real (embedded) ClickHouse holding the
rows a replay of simulated traffic produces, then opened in headless
Chromium, which must lay out every plot."""
import shutil
import subprocess
import sys

import orjson
import pytest

from distillguard.models import Pipeline
from distillguard.streams.clickhouse import Store
from distillguard.streams.replay import open_lines, ordered_events, ReplayStats
from distillguard.streams.settings import load_settings
from distillguard.models.rows import AlertFeedbackRow, ClusterMemberRow
from distillguard.schemas import feedback_from_dict
from distillguard.streams.report_cli import describe_reasons

CLI = [sys.executable, "-m", "distillguard.streams.cli"]
PLOTS = {"timeline", "top-accounts", "clusters", "account-history", "precision"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def filled_store_env(tmp_path, small_sim):
    env = {"DG_DATA_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"}
    pipeline, alerts, rows = Pipeline(cross=None), [], []
    for ev in ordered_events(open_lines(small_sim[0]), ReplayStats()):
        out = pipeline.process(ev)
        alerts.extend(out.alerts)
        rows.extend(out.table_rows())
    out = pipeline.end_batch(ev.ts_ms)   # one batch: every minute row at once
    alerts.extend(out.alerts)
    rows.extend(out.table_rows())
    store = Store(load_settings(env))
    try:
        store.migrate()
        store.insert_rows(rows)
        store.insert_rows([ClusterMemberRow("hc-1", a, alerts[0].raised_at_ms, 0.9, {}) for a in ("x", "y")])
        decided = [fb(alerts[0], "false_positive"), fb(alerts[-1], "confirmed")]
        store.insert_rows([AlertFeedbackRow.of(d) for d in decided])
    finally:
        store.close()
    return env, alerts


def fb(alert, decision):
    return feedback_from_dict({
        "schema_version": "1", "feedback_id": f"fb-{decision}", "alert_id": alert.alert_id,
        "detector": alert.detector, "account_ids": alert.account_ids, "end_user_ids": [], "decision": decision,
        "reason": "", "note": "", "analyst": "ana", "decided_at_ms": alert.raised_at_ms,
        "applies_from_ms": alert.window_start_ms, "expires_at_ms": None})


def test_reasons_read_as_finding_strength_then_value_against_the_cohort():
    text = describe_reasons([{"feature": "capability_sweep", "value": 1.0, "baseline": 0.0},
                             {"feature": "requests_day", "value": 250.0, "baseline": 40.0},
                             {"feature": "cluster_members", "value": 26, "baseline": None}])
    assert text == "capability_sweep 1 (finding strength); requests_day 250 vs cohort 40; cluster_members 26"
    assert "None" not in text


def test_report_renders_every_plot_in_headless_chromium(tmp_path, filled_store_env):
    env, alerts = filled_store_env
    out = tmp_path / "report.html"
    proc = subprocess.run([*CLI, "report", "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    for plot in PLOTS:
        assert f'data-plot="{plot}"' in html
    assert "baseline None" not in html
    assert 'src="http' not in html and "plotly.js" in html          # plotly.js inlined, no CDN
    # the top-accounts bars are the requests behind each account's finding (scores saturate at 1.0)
    top = orjson.loads(html.split('data-figure="plot-top-accounts">', 1)[1].split("</script>", 1)[0])
    bars = top["data"][0]["x"]
    assert len(set(bars)) > 1 and max(bars) > 1
    assert alerts[0].account_ids[0] in html or "account-history" in html
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it with apt-get as root)")
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          out.as_uri()], capture_output=True, text=True, timeout=120).stdout
    rendered = dom.split('data-rendered="', 1)[1].split('"', 1)[0].split()
    assert set(rendered) == PLOTS
    shot = tmp_path / "report.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=900,1800", out.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000


def test_report_for_a_chosen_account(tmp_path, filled_store_env):
    env, alerts = filled_store_env
    account = alerts[-1].account_ids[0]
    out = tmp_path / "r.html"
    proc = subprocess.run([*CLI, "report", "--out", str(out), "--account", account], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"Account history: {account}" in out.read_text()
