"""``distillguard eval``: metrics with known answers, baselines on tiny streams,
the HTML report, and the command end to end on a tiny labelled file."""
from __future__ import annotations

import argparse
import random
from html.parser import HTMLParser

import orjson
import pytest

from distillguard.models.evaluation import (AccountResult, Harness, MmdBaseline, PradaBaseline, VolumeBaseline,
                                            evaluate_detector, percentile, roc_auc, shapiro_w, threshold_sweep)
from distillguard.schemas import event_from_dict
from distillguard.streams import eval_cli
from distillguard.streams.eval_report import render_report

from .events import request_event

T0 = 1_793_613_600_000
MIN = 60_000


# ----------------------------------------------------------------- helpers

def ev(account: str, ts: int, text: str, i: int = 0) -> dict:
    return request_event(account, ts, text, event_id=f"{account}-{i}-{ts}", model="atlas-2",
                         params={"temperature": 0.7}, usage={"input_tokens": 20, "output_tokens": 80})


TOPIC_A = "cooking recipe pasta garlic onion tomato basil oven bake dinner sauce pan salt pepper".split()
TOPIC_B = "integral derivative matrix vector eigenvalue proof theorem lemma limit series calculus".split()


def sentence(rng: random.Random, vocab: list[str], n: int = 12) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


@pytest.fixture
def hand_labels():
    return {
        "a1": {"label": "attack", "cohort": "sweep", "first_attack_ts_ms": 0},
        "a2": {"label": "attack", "cohort": "sweep", "first_attack_ts_ms": MIN},
        "a3": {"label": "attack", "cohort": "slow", "first_attack_ts_ms": 0},
        "b1": {"label": "benign", "cohort": "casual", "first_attack_ts_ms": None},
        "b2": {"label": "benign", "cohort": "casual", "first_attack_ts_ms": None},
        "b3": {"label": "benign", "cohort": "casual", "first_attack_ts_ms": None},
    }


@pytest.fixture
def hand_results():
    return {
        "a1": AccountResult(0.9, 10 * MIN, 10, "high"),
        "a2": AccountResult(0.6, MIN + 20 * MIN, 30, "medium"),
        "a3": AccountResult(0.3, None, None, "low"),
        "b1": AccountResult(0.55, 5 * MIN, None, "medium"),
        "b2": AccountResult(0.2, None, None, None),
        # b3: never scored
        "zz": AccountResult(1.0, 0, 1, "critical"),  # unlabelled: ignored
    }


# ----------------------------------------------------------------- metrics

def test_metrics_known_answers(hand_labels, hand_results):
    m = evaluate_detector(hand_labels, hand_results)
    sweep = m["cohorts"]["sweep"]
    assert sweep["label"] == "attack" and sweep["accounts"] == 2
    assert sweep["recall"] == 1.0 and sweep["fpr"] is None
    assert sweep["alerted"] == 2 and sweep["alerted_high"] == 1
    assert sweep["ttd_median_min"] == 15.0 and sweep["ttd_p90_min"] == 19.0
    assert sweep["requests_before_alert_median"] == 20.0 and sweep["requests_before_alert_p90"] == 28.0
    slow = m["cohorts"]["slow"]
    assert slow["recall"] == 0.0 and slow["ttd_median_min"] is None and slow["requests_before_alert_median"] is None
    casual = m["cohorts"]["casual"]
    assert casual["label"] == "benign" and casual["accounts"] == 3
    assert casual["fpr"] == pytest.approx(1 / 3, abs=1e-4) and casual["recall"] is None
    assert m["overall"]["attack"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["overall"]["benign"]["fpr"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["overall"]["attack"]["ttd_median_min"] == 15.0
    assert m["auc"] == pytest.approx(8 / 9, abs=1e-4)
    by_t = {p["threshold"]: p for p in m["sweep"]}
    assert (by_t[0.0]["recall"], by_t[0.0]["fpr"]) == (1.0, 1.0)
    assert (by_t[0.5]["recall"], by_t[0.5]["fpr"]) == (pytest.approx(2 / 3, abs=1e-4), pytest.approx(1 / 3, abs=1e-4))
    assert (by_t[0.56]["tp"], by_t[0.56]["fp"]) == (2, 0)
    assert (by_t[0.95]["recall"], by_t[0.95]["fpr"]) == (0.0, 0.0)
    assert m["recall_at_fpr_1pct"] == pytest.approx(2 / 3, abs=1e-4)


def test_metrics_empty_and_edge_cases():
    m = evaluate_detector({}, {})
    assert m["cohorts"] == {} and m["auc"] is None
    assert m["overall"]["attack"]["recall"] is None and m["overall"]["benign"]["fpr"] is None
    assert all(p["recall"] is None for p in m["sweep"])
    # alert before the attack started counts as TTD 0; attack-only labels: no FPR, no AUC
    labels = {"p": {"label": "attack", "cohort": "pivot", "first_attack_ts_ms": 10 * MIN}}
    m = evaluate_detector(labels, {"p": AccountResult(0.7, 2 * MIN, 0, "medium")})
    assert m["cohorts"]["pivot"]["ttd_median_min"] == 0.0 and m["auc"] is None
    assert percentile([], 90) is None and percentile([3.0], 10) == 3.0
    assert threshold_sweep({}, {}, [0.5]) == [{"threshold": 0.5, "recall": None, "fpr": None, "tp": 0, "fp": 0}]
    assert roc_auc({"a": {"label": "attack"}, "b": {"label": "benign"}}, {}) == 0.5


# ----------------------------------------------------------------- baselines

def _events(rows):
    return [event_from_dict(d) for d in sorted(rows, key=lambda d: d["ts_ms"])]


def test_volume_baseline_alerts_heavy_account_only():
    rng = random.Random(1)
    rows = [ev("heavy", T0 + i * 6_000, sentence(rng, TOPIC_B), i) for i in range(400)]       # 600/h
    rows += [ev("light", T0 + i * 3 * MIN, sentence(rng, TOPIC_A), i) for i in range(20)]
    b = VolumeBaseline(n=200)
    hits = [h for e in _events(rows) if (h := b.learn_one(e))]
    assert hits == ["heavy"]
    assert b.first_alert_ms["heavy"] == T0 + 199 * 6_000     # the 200th request in the hour
    res = b.results()
    assert res["heavy"].max_score == 1.0 and res["heavy"].severity == "critical"
    assert res["light"].first_alert_ms is None and res["light"].max_score == pytest.approx(0.5 * 20 / 200)


def test_prada_computes_w_on_distances():
    rng = random.Random(2)
    rows = [ev("acct", T0 + i * 1000, sentence(rng, TOPIC_A + TOPIC_B, 10), i) for i in range(60)]
    p = PradaBaseline(min_d=20, every=10)
    for e in _events(rows):
        p.learn_one(e)
    d = p.distances("acct")
    assert len(d) == 59 and all(0.0 <= x <= 2.0 for x in d)
    assert 0.0 < p.last_w["acct"] <= 1.0
    assert p.last_w["acct"] == pytest.approx(shapiro_w(d), abs=1e-9) or len(d) % 10  # last test at 50 distances
    assert 0.0 <= p.max_scores["acct"] <= 1.0
    # degenerate input: identical values have no spread -> W = 1 (never an alert)
    assert shapiro_w([0.3] * 30) == 1.0 and shapiro_w([1.0, 2.0]) == 1.0


def test_prada_flags_non_normal_distances():
    # bimodal distances (exact repeats mixed with unrelated queries) give a low W
    import numpy as np
    x = np.concatenate([np.zeros(40), np.ones(40)]) + np.random.default_rng(0).normal(0, 0.01, 80)
    w = shapiro_w(x)
    assert w < 0.9
    p = PradaBaseline()
    assert 0.5 * (1 - w) / (1 - p.delta) >= 0.5


def test_mmd_higher_for_shifted_window():
    rng = random.Random(3)
    rows = [ev(f"bg{i % 20}", T0 + i * 1000, sentence(rng, TOPIC_A), i) for i in range(200)]
    t = T0 + 200_000
    rows += [ev("same", t + i * 1000, sentence(rng, TOPIC_A), i) for i in range(30)]
    rows += [ev("shift", t + i * 1000 + 500, sentence(rng, TOPIC_B), i) for i in range(30)]
    m = MmdBaseline(reference=100, window=20, min_window=20, every=5, refresh=10**9, null_draws=30, seed=1)
    for e in _events(rows):
        m.learn_one(e)
    assert m.snapshots == 1 and m.threshold > 0
    assert m.last_mmd2["shift"] > m.last_mmd2["same"] + 0.05
    assert m.max_scores["shift"] >= 0.5 and m.first_alert_ms.get("shift") is not None
    assert m.max_scores["shift"] > m.max_scores["same"]


# ----------------------------------------------------------------- report + CLI

class SvgCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.plots: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and "data-plot" in a:
            self.plots.append(a["data-plot"])
        if tag == "table":
            self.tables += 1


def _tiny_files(tmp_path):
    rng = random.Random(4)
    rows, labels = [], {}
    # a templated attacker: fast and uniform
    for i in range(400):
        rows.append(ev("attacker", T0 + 30 * MIN + i * 3_000,
                       f"Answer step by step and explain your reasoning: what is {i} times {i + 7}?", i))
    labels["attacker"] = {"label": "attack", "cohort": "templated_burst", "first_attack_ts_ms": T0 + 30 * MIN}
    labels["quiet_attacker"] = {"label": "attack", "cohort": "low_and_slow", "first_attack_ts_ms": T0}
    for i in range(30):
        rows.append(ev("quiet_attacker", T0 + i * 4 * MIN, sentence(rng, TOPIC_B), i))
    for a in range(6):
        acct = f"user{a}"
        labels[acct] = {"label": "benign", "cohort": "casual", "first_attack_ts_ms": None}
        for i in range(25):
            rows.append(ev(acct, T0 + rng.randrange(0, 120 * MIN), sentence(rng, TOPIC_A), i))
    rng.shuffle(rows)   # the CLI re-orders by event time
    src = tmp_path / "tiny.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\nnot json\n")
    (tmp_path / "tiny.labels.json").write_bytes(orjson.dumps(labels))
    return src, labels


def _args(*argv):
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_run_end_to_end(tmp_path, capsys):
    src, labels = _tiny_files(tmp_path)
    out = tmp_path / "out"
    assert eval_cli.run(_args(src, "--out", out)) == 0
    doc = orjson.loads((out / "eval.json").read_bytes())
    assert set(doc["detectors"]) == {"distillguard", "volume", "prada", "mmd"}
    run = doc["run"]
    assert run["events"] == 400 + 30 + 150 and run["bad_lines"] == {"invalid_json": 1}
    assert run["distillguard_events_per_s"] > 0 and run["accounts_labelled"] == 8
    assert run["labels"].endswith("tiny.labels.json")
    for det in doc["detectors"].values():
        assert set(det["cohorts"]) == {"templated_burst", "low_and_slow", "casual"}
        assert len(det["sweep"]) == 101 and set(det["accounts"]) == set(labels)
    # the attacker sends 400 requests in 20 minutes: the volume rule must catch it
    vol = doc["detectors"]["volume"]
    assert vol["cohorts"]["templated_burst"]["recall"] == 1.0
    assert vol["cohorts"]["templated_burst"]["requests_before_alert_median"] == 200
    assert vol["cohorts"]["casual"]["fpr"] == 0.0
    printed = capsys.readouterr().out
    assert "templated_burst" in printed and "distillguard" in printed and "all benign" in printed

    html = (out / "report.html").read_text(encoding="utf-8")
    parser = SvgCollector()
    parser.feed(html)
    parser.close()
    assert {"scores", "delay", "sweep", "sweep-zoom"} <= set(parser.plots)
    assert parser.plots.count("scores") == 4 and parser.tables >= 3
    # plotly figures, plotly.js inlined from the package: nothing is loaded from the network
    assert 'src="http' not in html and "plotly.js" in html and 'data-detector="prada"' in html


def test_run_without_baselines_and_report_from_json(tmp_path):
    src, _ = _tiny_files(tmp_path)
    out = tmp_path / "o2"
    assert eval_cli.run(_args(src, "--out", out, "--no-baselines")) == 0
    doc = orjson.loads((out / "eval.json").read_bytes())
    assert list(doc["detectors"]) == ["distillguard"]
    html = render_report(doc)   # the report renders from eval.json alone
    p = SvgCollector()
    p.feed(html)
    assert {"scores", "delay", "sweep", "sweep-zoom"} <= set(p.plots)


def test_missing_labels_or_input_is_exit_2(tmp_path, capsys):
    from distillguard.streams.cli import main

    def run(*argv):
        return main(["eval", *map(str, argv)])
    src, _ = _tiny_files(tmp_path)
    assert run(src, "--labels", tmp_path / "nope.json", "--out", tmp_path / "o") == 2
    assert "labels file not found" in capsys.readouterr().err
    assert run(tmp_path / "missing.jsonl", "--out", tmp_path / "o") == 2
    bad = tmp_path / "bad.labels.json"
    bad.write_text('{"a": {"label": "maybe"}}')
    assert run(src, "--labels", bad, "--out", tmp_path / "o") == 2
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[detector]\nno_such_knob = 1\n")
    assert run(src, "--detector-config", cfg, "--out", tmp_path / "o") == 2
    assert not (tmp_path / "o").exists()


def test_harness_counts_attack_requests_before_alert():
    """The harness learns from the pipeline's outputs only: a fake stage that alerts on the
    5th request of an account (score 0.6 from then on, 0.1 before)."""
    from distillguard.models.pipeline import AccountOutput
    from distillguard.models.rows import FeatureSnapshotRow
    from distillguard.schemas import Alert

    labels = {"a": {"label": "attack", "cohort": "c", "first_attack_ts_ms": T0 + 2_000}}
    h = Harness([], labels)
    for i in range(8):
        e = event_from_dict(ev("a", T0 + i * 1000, "hello", i))
        k = i + 1
        alerts = [Alert("x", "create", "fake", "medium", 0.6, ["a"], 0, e.ts_ms, e.ts_ms, k, [], [], "monitor")] \
            if k == 5 else []
        h.on_event(e, AccountOutput(alerts, FeatureSnapshotRow("a", e.ts_ms, 0.6 if k >= 5 else 0.1, {}), None))
        for alert in alerts:
            h.on_alert(alert)
    m = h.evaluate()["distillguard"]
    assert m["accounts"]["a"]["first_alert_ms"] == T0 + 4000
    assert m["accounts"]["a"]["attack_requests_before"] == 3   # requests at +2s, +3s, +4s
    assert m["cohorts"]["c"]["ttd_median_min"] == pytest.approx(2000 / 60_000, abs=0.01)
