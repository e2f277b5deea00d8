"""The analyst's console driven as a person would (issue #16): Debian's Chromium through
Playwright, a real worker on the shared broker, the real sink path into chDB.

Traffic of one simulated attacker (and a few benign accounts) goes through a worker
(``DG_SINK=0``) while the console owns the embedded store and runs the sink (``--sink``).
The analyst signs in, opens the alert, marks it a false positive; it leaves the open
queue, the decision reaches the worker over the feedback topic, and the attacker's next
scored traffic comes back tempered (severity low, reason ``feedback_tempered``), on the
alert page. Unauthenticated and cross-site requests are refused. Screenshots land in
``var/console/`` of the repository.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import orjson
import pytest

from distillguard.models import Pipeline
from distillguard.streams.kafka_io import ensure_topics, produce_events
from distillguard.streams.replay import open_lines, replay
from distillguard.streams.settings import load_settings

from .conftest import REPO, free_port
from .workers import WorkerProcess

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = REPO / "var" / "console"
TOKEN = "test-" + uuid.uuid4().hex


def _split(events_path):
    """The events of one single-account attacker and three benign accounts, cut where the
    attacker's finding is already high: (phase 1, phase 2, attacker)."""
    labels = orjson.loads(open(str(events_path).replace(".jsonl.gz", ".labels.json"), "rb").read())
    events = [orjson.loads(line) for line in open_lines(events_path)]
    by_account: dict[str, list] = {}
    for ev in events:
        by_account.setdefault(ev["account_id"], []).append(ev)
    benign = sorted(a for a, v in labels.items() if v["label"] == "benign" and len(by_account.get(a, ())) > 40)[:3]
    for attacker in sorted(a for a, v in labels.items() if v["cohort"] in ("capability_sweep", "paraphrased_sweep")):
        chosen = sorted((e for a in (attacker, *benign) for e in by_account.get(a, ())), key=lambda e: e["ts_ms"])
        alerts = []
        replay((orjson.dumps(e) for e in chosen), Pipeline(cross=None), alerts.append)
        high = [a for a in alerts if attacker in a.account_ids and a.severity in ("high", "critical")]
        mine = [e for e in chosen if e["account_id"] == attacker]
        if high:
            cut = high[0].raised_at_ms
            after = [e for e in mine if e["ts_ms"] > cut]
            if len(after) >= 64:       # enough of the attacker's traffic left to be scored again
                return [e for e in chosen if e["ts_ms"] <= cut], [e for e in chosen if e["ts_ms"] > cut], attacker
    raise AssertionError("no attacker in the small scenario reaches high with traffic to spare")


def _get_status(url: str) -> int:
    return _get_status_req(urllib.request.Request(url))


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (infra/system-deps.sh)")
def test_triage_a_false_positive_in_the_browser_and_the_detector_tempers_the_next_alert(
        isolated_env, small_sim, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    events_path, _labels_path, _labels = small_sim
    phase1, phase2, attacker = _split(events_path)
    port = free_port()
    env = {**isolated_env, "DG_CONSOLE_TOKEN": TOKEN, "DG_CONSOLE_PORT": str(port)}
    settings = load_settings(env)
    ensure_topics(settings)
    worker = WorkerProcess(env, tmp_path / "worker.log", DG_SINK="0").start()
    console_log = open(tmp_path / "console.log", "wb")
    console = subprocess.Popen([sys.executable, "-m", "distillguard.streams.cli", "console", "--sink"],
                               env={**os.environ, **env}, stdout=console_log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        deadline = time.monotonic() + 60
        while _get_status(base + "/healthz") != 200:
            assert console.poll() is None, (tmp_path / "console.log").read_text()
            assert time.monotonic() < deadline, "console did not start"
            time.sleep(0.3)
        # nobody walks in uninvited
        assert _get_status(base + "/") == 401
        assert _get_status(base + "/alerts/x") == 401
        req = urllib.request.Request(base + "/alerts/x/triage", data=b"decision=false_positive", method="POST",
                                     headers={"Origin": base})
        assert _get_status_req(req) == 401

        produce_events(settings, phase1, progress=False)
        worker.wait_for(lambda s: s and s["events"] >= len(phase1), 120, "phase 1 processed")

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            assert page.url.endswith("/login")
            page.fill("input[name=analyst]", "ana")
            page.fill("input[name=token]", "wrong")
            page.click("button[type=submit]")
            expect(page.locator("#error")).to_contain_text("wrong token")
            page.fill("input[name=analyst]", "ana")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            row = page.locator("tr.alert-row", has_text=attacker)
            deadline = time.monotonic() + 90
            while row.count() == 0:          # the sink stores the worker's rows within a few seconds
                assert time.monotonic() < deadline, f"no alert for {attacker} in the queue"
                time.sleep(1)
                page.goto(base + "/")
            alert_id = row.first.get_attribute("data-alert-id")
            assert page.locator('.counts a[data-state="open"] b').inner_text() != "0"
            page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)

            # a cross-site form post, even with the analyst's cookie, is refused
            forged = page.request.post(f"{base}/alerts/{alert_id}/triage", headers={"Origin": "http://evil.example"},
                                       form={"decision": "false_positive", "csrf": "x"})
            assert forged.status == 403
            no_csrf = page.request.post(f"{base}/alerts/{alert_id}/triage", headers={"Origin": base},
                                        form={"decision": "false_positive"})
            assert no_csrf.status == 403

            page.click(f'tr[data-alert-id="{alert_id}"] a[href="/alerts/{alert_id}"]')
            page.wait_for_selector("body[data-rendered]", state="attached")
            rendered = page.evaluate("document.body.dataset.rendered").split()
            assert {"reasons", "rate", "features"} <= set(rendered), rendered
            expect(page.locator("#reasons")).to_contain_text("cohort baseline")
            page.screenshot(path=str(SHOTS / "alert.png"), full_page=True)

            page.check('input[name=decision][value="false_positive"]')
            page.fill("input[name=reason]", "verified internal red-team sweep")
            page.click("#triage-submit")
            expect(page.locator("#flash")).to_contain_text("marked false positive")
            assert page.locator(f'tr[data-alert-id="{alert_id}"]').count() == 0      # left the open queue
            expect(page.locator('.counts a[data-state="false_positive"] b')).to_have_text("1")

            # the worker learns the decision from the topic, then the attacker goes on
            worker.wait_for(lambda s: s and s["feedback"]["learned"] >= 1, 60, "the worker to learn the decision")
            produce_events(settings, phase2, progress=False)
            worker.wait_for(lambda s: s and s["events"] >= len(phase1) + len(phase2), 120, "phase 2 processed")
            deadline = time.monotonic() + 60
            while True:
                page.goto(f"{base}/alerts/{alert_id}")
                if page.locator("#tempered").count():
                    break
                assert time.monotonic() < deadline, "the next alert event of the account was not tempered"
                time.sleep(1)
            expect(page.locator("#tempered")).to_contain_text("false_positive")
            expect(page.locator("#lifecycle")).to_contain_text("tempered")
            expect(page.locator("#decisions")).to_contain_text("ana")
            page.screenshot(path=str(SHOTS / "alert-tempered.png"), full_page=True)
            assert page.locator("h1 .sev").inner_text() == "low"
            page.goto(base + "/precision")
            expect(page.locator("#precision")).to_contain_text("account_extraction")
            assert not errors, errors
            browser.close()
    finally:
        console.terminate()
        console.wait(30)
        worker.stop()
    log = (tmp_path / "console.log").read_text()
    assert f"decision: analyst=ana alert={alert_id} decision=false_positive" in log   # who decided what
    assert TOKEN not in log


def _get_status_req(req) -> int:
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except urllib.error.URLError:
        return 0            # not listening (yet)
