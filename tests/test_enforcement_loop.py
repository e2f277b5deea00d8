"""The loop closed in a real gateway: simulated extraction traffic -> real broker -> a real
distillguard worker -> alert on the alerts topic -> the real LiteLLM proxy (our pre-call hook,
``distillguard.streams.enforcement.proxy_handler``) refuses the attacking account's next
requests, driven by the real ``openai`` client; other accounts go through untouched.

The traffic is the simulator's ``small`` scenario (the session's ``small_sim``: ~6.5k events,
6 h of event time, several attack cohorts), so the worker alerts with its default thresholds.
The attacker is an account that the same detector, replayed offline on the same events,
blocks; the proxy's custom auth maps one API key to it and two to benign accounts.

The v1.1 protections are not raised by the detector yet, so the second test publishes
contract-valid alerts with them (and a throttle, a step-up) to the same topic and checks what
the proxy passes on to the model server.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from distillguard.models import Pipeline, load_config
from distillguard.schemas import validate_alert
from distillguard.streams.kafka_io import ensure_topics, produce_events, producer
from distillguard.streams.replay import open_lines, replay

from .conftest import REPO, free_port
from .workers import WorkerProcess

pytestmark = pytest.mark.integration
openai = pytest.importorskip("openai")
pytest.importorskip("litellm")

CUSTOM_AUTH = '''
from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth
KEYS = {keys}
async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key in KEYS:
        return UserAPIKeyAuth(api_key=api_key, org_id=KEYS[api_key])
    raise Exception("unknown key")
'''


class Gateway:
    """A stub model server and the LiteLLM proxy in front of it, with our hook."""

    def __init__(self, tmp: Path, env: dict[str, str], keys: dict[str, str]):
        self.tmp, self.keys = tmp, keys
        self.record = tmp / "upstream.jsonl"
        self.record.touch()
        self.stub_port, self.port = free_port(), free_port()
        (tmp / "custom_auth.py").write_text(CUSTOM_AUTH.format(keys=json.dumps(keys)))
        (tmp / "config.yaml").write_text(f"""
model_list:
  - model_name: stub-model
    litellm_params:
      model: openai/stub-model
      api_base: http://127.0.0.1:{self.stub_port}/v1
      api_key: sk-stub
litellm_settings:
  callbacks: ["distillguard.streams.enforcement.proxy_handler"]
general_settings:
  master_key: sk-master-test
  custom_auth: custom_auth.user_api_key_auth
""")
        self.env = {**os.environ, **env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 120.0) -> Gateway:
        litellm_cli = shutil.which("litellm", path=str(Path(sys.executable).parent))
        self.log = open(self.tmp / "proxy.log", "ab")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "tests.stub_model", str(self.stub_port), str(self.record)],
                                           cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT))
        self.procs.append(subprocess.Popen([litellm_cli, "--config", "config.yaml", "--host", "127.0.0.1",
                                            "--port", str(self.port)], cwd=self.tmp, env=self.env,
                                           stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/liveliness", timeout=2):
                    return self
            except OSError:
                if any(p.poll() is not None for p in self.procs):
                    break
                time.sleep(0.5)
        raise AssertionError("the LiteLLM proxy did not start:\n" + (self.tmp / "proxy.log").read_text()[-4000:])

    def client(self, key: str):
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=key, max_retries=0, timeout=30)

    def upstream(self) -> list[dict]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def ask(client, **extra):
    """One chat request; returns ("ok", response) or (status code, the error)."""
    try:
        return "ok", client.chat.completions.create(model="stub-model", messages=[{"role": "user", "content": "hi"}],
                                                    **extra)
    except openai.APIStatusError as err:
        return err.status_code, err


def pick_accounts(events_path: Path, labels: dict) -> tuple[str, list[str]]:
    """An attacker whose own alert is still open with ``block`` after the last event (offline
    replay of the same events, the worker's code), and two benign accounts it never alerts on."""
    alerts = []
    replay(open_lines(events_path), Pipeline(load_config(None)), alerts.append, jobs=1)
    last = {a.alert_id: a for a in alerts}      # each alert's final event
    blocked = sorted(a.account_ids[0] for a in last.values() if a.activity != "close" and a.cluster_id is None
                     and a.recommended_action == "block" and labels[a.account_ids[0]]["label"] == "attack")
    flagged = {acc for a in alerts for acc in a.account_ids}
    benign = sorted(acc for acc, lab in labels.items() if lab["label"] == "benign" and acc not in flagged)
    assert blocked and len(benign) >= 2
    return blocked[0], benign[:2]


@pytest.fixture
def report_figures(request):
    """The loop's figures, printed and written to var/enforcement/<test>.json."""
    figures: dict = {}
    yield figures
    out = REPO / "var" / "enforcement"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{request.node.name}.json").write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    print(f"\n[enforcement loop] {orjson.dumps(figures).decode()}")


@pytest.fixture
def gateway_env(isolated_env):
    return {**isolated_env, "DG_SINK": "0", "DG_ENFORCE_THROTTLE_PER_MINUTE": "2", "DG_ENFORCE_OUTPUT_TOKEN_CAP": "64"}


def test_alert_from_the_worker_blocks_the_attacker_in_the_proxy(tmp_path, gateway_env, isolated_settings, small_sim,
                                                                 report_figures):
    events_path, _labels_path, labels = small_sim
    attacker, benign = pick_accounts(events_path, labels)
    keys = {"sk-attacker": attacker, "sk-benign-1": benign[0], "sk-benign-2": benign[1]}
    settings = isolated_settings
    ensure_topics(settings)
    worker = WorkerProcess(gateway_env, tmp_path / "worker.log").start()
    gateway = Gateway(tmp_path, gateway_env, keys).start()
    try:
        clients = {key: gateway.client(key) for key in keys}
        before = [ask(clients["sk-attacker"])[0] for _ in range(3)]
        assert before == ["ok"] * 3, before          # no alert yet: the attacker is served
        lines = [line.rstrip(b"\n") for line in open_lines(events_path)]
        t0 = time.monotonic()
        produce_events(settings, lines, progress=False)
        attacker_ok = len(before)
        benign_results: list = []
        first_refusal = None
        while time.monotonic() - t0 < 120:
            status, result = ask(clients["sk-attacker"])
            benign_results += [ask(clients[k])[0] for k in ("sk-benign-1", "sk-benign-2")]
            if status == "ok":
                attacker_ok += 1
                time.sleep(0.5)
                continue
            first_refusal = (status, result)
            break
        assert first_refusal is not None, f"never enforced; worker {worker.status()}"
        seconds_to_enforce = time.monotonic() - t0
        status, err = first_refusal    # a step-up or throttle may come first, as the alert escalates
        assert status in (403, 429) and attacker in str(err), err
        deadline = time.monotonic() + 60
        while not (status == 403 and "is blocked" in str(err)):
            assert time.monotonic() < deadline, f"not blocked: {status} {err}"
            time.sleep(0.5)
            status, err = ask(clients["sk-attacker"])
        worker.wait_for(lambda s: s and s["events"] >= len(lines), 120, "every event processed")
        time.sleep(2)   # the hook reads the last alert events
        after = [ask(clients["sk-attacker"])[0] for _ in range(5)]
        benign_results += [ask(clients[k])[0] for k in ("sk-benign-1", "sk-benign-2") for _ in range(5)]
    finally:
        gateway.stop()
        worker.stop()
    assert after == [403] * 5
    assert benign_results and all(r == "ok" for r in benign_results), benign_results
    report_figures.update({"attacker": attacker, "first_refusal_status": first_refusal[0],
                           "attacker_requests_served_before_enforcement": attacker_ok,
                           "seconds_from_traffic_start_to_enforcement": round(seconds_to_enforce, 1),
                           "attacker_requests_refused_after": len(after),
                           "other_accounts_requests": len(benign_results),
                           "other_accounts_success_rate": sum(r == "ok" for r in benign_results) / len(benign_results)})


def _alert(alert_id: str, account: str, action: str, activity: str = "create", **extra) -> dict:
    now = int(time.time() * 1000)
    doc = {"schema_version": "1", "alert_id": alert_id, "activity": activity, "detector": "test", "severity": "high",
           "score": 0.9, "account_ids": [account], "cluster_id": None, "window_start_ms": now - 60_000,
           "window_end_ms": now, "raised_at_ms": now, "event_count": 50, "reasons": [], "sample_event_ids": [],
           "recommended_action": action, "model": None, **extra}
    assert validate_alert(doc) == [], validate_alert(doc)
    return doc


def test_throttle_step_up_and_protections_through_the_proxy(tmp_path, gateway_env, isolated_settings):
    settings = isolated_settings
    ensure_topics(settings)
    keys = {"sk-throttled": "acct-t", "sk-stepup": "acct-s", "sk-probe": "acct-p", "sk-fine": "acct-f"}
    gateway = Gateway(tmp_path, gateway_env, keys).start()
    p = producer(settings)
    alerts = [_alert("t1", "acct-t", "throttle"), _alert("s1", "acct-s", "step_up_verification"),
              _alert("p1", "acct-p", "monitor", end_user_ids=["eu-bad"],
                     protections=["disable_logprobs", "cap_output_tokens", "summarize_reasoning", "per_end_user"])]
    for a in alerts:
        p.produce(settings.topic_alerts, key=a["account_ids"][0].encode(), value=orjson.dumps(a))
    p.flush(10)
    try:
        c = {key: gateway.client(key) for key in keys}
        deadline = time.monotonic() + 60
        while ask(c["sk-stepup"])[0] == "ok":      # the hook has read the topic once this refuses
            assert time.monotonic() < deadline, "the hook never saw the alerts"
            time.sleep(0.5)
        status, err = ask(c["sk-stepup"])
        assert status == 403 and "identity verification" in str(err)
        throttled = [ask(c["sk-throttled"]) for _ in range(3)]       # budget 2 per minute
        assert [s for s, _ in throttled] == ["ok", "ok", 429]
        assert int(throttled[2][1].response.headers["retry-after"]) > 0
        probing = dict(logprobs=True, top_logprobs=5, logit_bias={"50256": -100}, max_tokens=4000)
        n_before = len(gateway.upstream())
        assert ask(c["sk-probe"], user="eu-bad", **probing)[0] == "ok"
        assert ask(c["sk-probe"], user="eu-good", **probing)[0] == "ok"
        assert ask(c["sk-fine"], **probing)[0] == "ok"
        bad, good, fine = gateway.upstream()[n_before:]
        assert not {"logprobs", "top_logprobs", "logit_bias"} & set(bad["body"]) and bad["body"]["max_tokens"] == 64
        assert bad["headers"].get("x-distillguard-summarize-reasoning") == "1"
        for untouched in (good, fine):
            assert untouched["body"]["logprobs"] is True and untouched["body"]["max_tokens"] == 4000
            assert not untouched["headers"]
        # close lifts it
        p.produce(settings.topic_alerts, key=b"acct-s", value=orjson.dumps(_alert("s1", "acct-s", "monitor", "close")))
        p.flush(10)
        deadline = time.monotonic() + 30
        while ask(c["sk-stepup"])[0] != "ok":
            assert time.monotonic() < deadline, "close did not lift the step-up"
            time.sleep(0.5)
    finally:
        gateway.stop()
