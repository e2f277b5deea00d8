"""`distillguard report`: built from a real (embedded) ClickHouse holding the
rows a replay of simulated traffic produces, then opened in headless
Chromium, which must lay out every plot."""
import shutil
import subprocess
import sys

import pytest

from distillguard.models import Detector
from distillguard.models.aggregates import MinuteAggregates
from distillguard.streams.clickhouse import Store
from distillguard.streams.replay import open_lines, ordered_events, ReplayStats
from distillguard.streams.settings import load_settings
from distillguard.streams.sink import alert_row

CLI = [sys.executable, "-m", "distillguard.streams.cli"]
PLOTS = {"timeline", "top-accounts", "clusters", "account-history"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def filled_store_env(tmp_path, small_sim):
    env = {"DG_DATA_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"}
    detector, agg, alerts = Detector(), MinuteAggregates(), []
    for ev in ordered_events(open_lines(small_sim[0]), ReplayStats()):
        alerts.extend(detector.process_one(ev))
        f = detector.last_features
        agg.learn_one(ev.account_id, ev.ts_ms, f.input_tokens, f.output_tokens, f.error, f.skeleton_fp, f.area)
    store = Store(load_settings(env))
    try:
        store.migrate()
        store.insert("alert_events", [alert_row(a) for a in alerts])
        store.insert("account_minute_in", agg.rows())
    finally:
        store.close()
    return env, alerts


def test_report_renders_every_plot_in_headless_chromium(tmp_path, filled_store_env):
    env, alerts = filled_store_env
    out = tmp_path / "report.html"
    proc = subprocess.run([*CLI, "report", "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    for plot in PLOTS:
        assert f'data-plot="{plot}"' in html
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
