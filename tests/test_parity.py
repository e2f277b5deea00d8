"""The stream and `replay` are one program (issue #13): over 50 h of event time with idle gaps
longer than the idle expiry and alerts that open, close and reopen, a real worker on the real
broker and `replay` of the same events give the same alert events; and the pipeline's results
do not depend on how its driver cuts batches."""
from __future__ import annotations

import itertools
import random

import orjson
import pytest

from distillguard.models import Pipeline, load_config
from distillguard.models.simulation.corpus import load_corpus
from distillguard.streams.kafka_io import consume, ensure_topics, produce_events
from distillguard.streams.replay import replay
from distillguard.streams.settings import load_settings

from .workers import WorkerProcess

HOUR = 3_600_000
T0 = 1_793_613_600_000            # an hour boundary
IDLE_EXPIRY_MS = 3 * HOUR         # shorter than the gaps below; close_after_ms stays 2 h
PROMPTS = [
    "How many apples does Sam have if he buys 3 bags of 12 and eats 5?",
    "Write a python function that returns the nth prime number.",
    "Summarize the following article in one sentence: the council met on Tuesday.",
    "Is this movie review positive or negative? I loved every minute.",
    "Translate into French: the weather is nice today.",
    "Which category does this belong to: company, artist, or village? Acme Corp.",
    "Why do plants need light and water to grow? Describe the chemical process.",
    "Who was the first president of the country and when was he born?",
    "Our company wants to improve customer sales; suggest a business plan.",
    "Given the premise, does the hypothesis follow? Premise: all men are mortal.",
]
WRAPPER = "Explain your reasoning step by step and show all intermediate work before the final answer.\n\n"
# attacker -> (start hour, requests) of its bursts: quiet spells of 2.5 h (the alert closes, the
# state stays) and of 5-20 h (longer than the idle expiry: it comes back as a new account)
BURSTS = {
    "atk-a": [(0, 90), (9, 60), (30, 120)],
    "atk-b": [(2, 70), (5, 50), (26, 90), (47, 80)],
    "atk-c": [(12, 40), (20, 100), (44, 60)],
}


def scenario(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    ids = itertools.count()
    out = []

    def ev(account, ts, prompt, **params):
        return {"schema_version": "1", "event_id": f"p{next(ids)}", "ts_ms": ts, "account_id": account,
                "model": "atlas-2", "operation": "chat", "messages": [{"role": "user", "content": prompt}],
                "params": params, "usage": {"input_tokens": 50, "output_tokens": 400}, "access_tier": "free"}

    # attackers sweep the corpus (a different question each time, every area) for long answers
    corpus = load_corpus()
    areas = corpus.areas
    for account, bursts in BURSTS.items():
        for hour, n in bursts:
            t = T0 + hour * HOUR + rng.randint(0, 600_000)
            for i in range(n):
                t += rng.randint(1_500, 6_000)
                question = rng.choice(corpus.by_area[areas[i % len(areas)]])
                e = ev(account, t, WRAPPER + question, max_tokens=4096)
                e["usage"]["output_tokens"] = 1_500
                out.append(e)
    for b in range(12):             # people, a few requests an hour over 50 h, some with long gaps
        t = T0 + rng.randint(0, HOUR)
        while t < T0 + 50 * HOUR:
            out.append(ev(f"user-{b}", t, PROMPTS[b % 3] + f" v{rng.randint(0, 9)}", max_tokens=300))
            t += rng.randint(5 * 60_000, 40 * 60_000) if rng.random() > 0.05 else rng.randint(4 * HOUR, 8 * HOUR)
    out.sort(key=lambda e: (e["ts_ms"], e["event_id"]))
    return out


def _replay(events, config, key=b"distillguard-dev-key", **kwargs):
    alerts = []
    pipeline = Pipeline(config, key)
    replay([orjson.dumps(e) for e in events], pipeline, alerts.append, **kwargs)
    return alerts, pipeline


def _identity(alerts) -> list[tuple]:
    return sorted((a["alert_id"], a["activity"], a["severity"], a["detector"]) for a in alerts)


def _docs(alerts) -> list[dict]:
    return [orjson.loads(a.to_json()) for a in alerts]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("parity") / "detector.toml"
    path.write_text(f"[detector]\nidle_expiry_ms = {IDLE_EXPIRY_MS}\n")
    return path


def test_the_scenario_covers_closes_reopens_and_idle_returns(config_file):
    events = scenario()
    assert events[-1]["ts_ms"] - events[0]["ts_ms"] >= 48 * HOUR
    alerts, pipeline = _replay(events, load_config(config_file))
    by = _docs(alerts)
    assert sum(a["activity"] == "close" for a in by) >= 6
    # every attacker raises an alert more than once (after a close), all ids distinct per create
    creates = [a for a in by if a["activity"] == "create"]
    assert {a["account_ids"][0] for a in creates} == set(BURSTS)
    assert len(creates) >= 7 and len({a["alert_id"] for a in creates}) == len(creates)
    assert pipeline.accounts.expired_total > 0


def test_results_do_not_depend_on_the_batch_size(config_file, monkeypatch):
    """Closes and idle resets are dated in event time, so cutting the same events into batches of
    1 or of 1,000 gives the same alert events (only their emission order may differ)."""
    from distillguard.streams import replay as replay_module
    events = scenario(seed=11)
    config = load_config(config_file)
    runs = []
    for batch in (1, 37, 1000):
        monkeypatch.setattr(replay_module, "BATCH", batch)
        runs.append(sorted(a.to_json() for a in _replay(events, config)[0]))
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.integration
def test_stream_and_replay_give_the_same_alert_events(tmp_path, isolated_env, config_file):
    """One request partition: the worker reads the events in the order they were produced (event
    time), as replay does, so even the cohort-wide models learn in the same order (README,
    "Stream and replay")."""
    env = {**isolated_env, "DG_PARTITIONS": "1", "DG_DETECTOR_CONFIG": str(config_file), "DG_SINK": "0"}
    settings = load_settings(env)
    events = scenario()
    replayed, _ = _replay(events, load_config(config_file), settings.fingerprint_key.encode())
    ensure_topics(settings)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        sent = produce_events(settings, events, progress=False)
        worker.wait_for(lambda s: s and s["events"] >= sent, 240, f"{sent} events processed")
        status = worker.wait_settled()
        streamed = [orjson.loads(v) for _k, v, _h in consume(settings, settings.topic_alerts, timeout=60, idle=5)]
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert status["accounts_expired"] > 0
    assert len(streamed) == sum(status["alerts"].values())
    assert _identity(streamed) == _identity(_docs(replayed))
    # not only the ids: every field of every alert event (closes are dated when they fell due)
    assert sorted(orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in streamed) == \
        sorted(orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in _docs(replayed))
