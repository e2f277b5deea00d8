"""Tests of the labelled traffic simulator (models/simulation) and its CLI."""
from __future__ import annotations

import argparse
import gzip
import hashlib
import ipaddress
import json
from collections import Counter, defaultdict

import orjson
import pytest

from distillguard.models.simulation import (
    ATTACK_KINDS, BENIGN_KINDS, CLASSIC_KINDS, KINDS, ScenarioError, available_scenarios, load_scenario,
    simulate, write_jsonl, write_labels,
)
from distillguard.models.simulation.evasive import HELDOUT_KINDS, VARIANT_KINDS

DAY = 86_400_000
ALL_KINDS = set(BENIGN_KINDS) | set(ATTACK_KINDS)


@pytest.fixture(scope="module")
def small():
    sim = simulate(load_scenario("small"), seed=1)
    return sim, list(sim.events())


def _digest(events) -> str:
    h = hashlib.sha256()
    for ev in events:
        h.update(orjson.dumps(ev))
        h.update(b"\n")
    return h.hexdigest()


def _by_kind(sim, events):
    out = defaultdict(list)
    for ev in events:
        out[sim.labels[ev["account_id"]]["kind"]].append(ev)
    return out


# ------------------------------------------------------------- scenarios

EVASIVE_SCENARIO_KINDS = ALL_KINDS - set(CLASSIC_KINDS) - set(VARIANT_KINDS) - set(HELDOUT_KINDS) | {"casual", "developer"}

def test_bundled_scenarios_load():
    names = available_scenarios()
    for n in ("default", "small", "alt-mix"):
        assert n in names
        assert load_scenario(n).cohorts


def test_every_kind_in_default_and_small():
    assert set(KINDS) == ALL_KINDS
    for n in ("default", "small", "alt-mix"):
        assert load_scenario(n).kinds() == set(CLASSIC_KINDS), n
    assert load_scenario("evasive").kinds() == EVASIVE_SCENARIO_KINDS
    assert load_scenario("variants").kinds() >= set(VARIANT_KINDS)
    assert load_scenario("heldout").kinds() >= set(HELDOUT_KINDS)


def test_default_size_and_span():
    scn = load_scenario("default")
    assert scn.duration_ms >= 2 * DAY
    assert sum(scn.expected_events().values()) >= 100_000


def test_unknown_scenario_and_path(tmp_path):
    with pytest.raises(ScenarioError):
        load_scenario("no-such-scenario")
    bad = tmp_path / "bad.toml"
    bad.write_text('start_ms = 1\nduration_h = 1\n[cohorts.x]\nkind = "nope"\n')
    with pytest.raises(ScenarioError):
        load_scenario(str(bad))
    good = tmp_path / "mini.toml"
    good.write_text('start_ms = 1793577600000\nduration_h = 2\n'
                    '[cohorts.c]\nkind = "casual"\naccounts = 3\nvolume = [5, 10]\n')
    sim = simulate(load_scenario(str(good)), seed=3)
    evs = list(sim.events())
    assert len(sim.labels) == 3 and evs


# ------------------------------------------------------------ determinism

def test_determinism(small):
    sim, events = small
    again = simulate(load_scenario("small"), seed=1)
    assert _digest(events) == _digest(again.events())
    assert again.labels == sim.labels
    assert _digest(sim.events()) == _digest(events)          # events() is replayable
    other = simulate(load_scenario("small"), seed=2)
    assert _digest(other.events()) != _digest(events)
    assert set(other.labels) != set(sim.labels)


# ------------------------------------------------------------ contract v1

REQ = {"schema_version": str, "event_id": str, "ts_ms": int, "account_id": str, "model": str,
       "operation": str, "messages": list, "params": dict}
OPT = {"api_key_id": str, "user_id": str, "client_ip": str, "user_agent": str, "session_id": str,
       "payment_fingerprint": str, "account_created_ms": int, "access_tier": str, "usage": dict,
       "status": str, "latency_ms": int, "finish_reason": str}
PARAMS = {"temperature": (int, float), "top_p": (int, float), "max_tokens": int, "n": int,
          "seed": int, "stream": bool, "logprobs": bool, "top_logprobs": int,
          "logit_bias": dict, "tools_count": int}


def test_events_are_contract_v1(small):
    sim, events = small
    assert 5_000 <= len(events) <= 12_000
    last = 0
    ids = set()
    for ev in events:
        for k, t in REQ.items():
            assert isinstance(ev[k], t) and not isinstance(ev[k], bool), (k, ev[k])
        for k, t in OPT.items():
            v = ev.get(k)
            assert v is None or (isinstance(v, t) and not isinstance(v, bool)), (k, v)
        assert ev["schema_version"] == "1"
        assert ev["operation"] in ("chat", "text_completion", "embeddings", "batch")
        assert ev["messages"]
        for m in ev["messages"]:
            assert m["role"] in ("system", "user", "assistant", "tool")
            assert isinstance(m["content"], str)
        for k, v in ev["params"].items():
            assert k in PARAMS and isinstance(v, PARAMS[k]), (k, v)
            if PARAMS[k] is int:
                assert not isinstance(v, bool)
        assert ev["status"] in ("ok", "error", "rate_limited", "blocked")
        assert set(ev["usage"]) == {"input_tokens", "output_tokens", "reasoning_tokens"}
        if ev["client_ip"]:
            ipaddress.ip_address(ev["client_ip"])
        assert ev["ts_ms"] >= last
        last = ev["ts_ms"]
        ids.add(ev["event_id"])
    assert len(ids) == len(events)
    scn = sim.scenario
    assert scn.start_ms <= events[0]["ts_ms"] and last < scn.end_ms


# ---------------------------------------------------------------- labels

def test_labels_cover_every_account(small):
    sim, events = small
    seen = {ev["account_id"] for ev in events}
    assert seen == set(sim.labels)
    for lab in sim.labels.values():
        assert lab["label"] in ("benign", "attack")
        assert lab["cohort"] in sim.scenario.cohorts


def test_attack_labels_have_first_attack_ts(small):
    sim, events = small
    ts_by_acc = defaultdict(list)
    for ev in events:
        ts_by_acc[ev["account_id"]].append(ev["ts_ms"])
    for acc, lab in sim.labels.items():
        if lab["kind"] in ATTACK_KINDS:
            assert lab["label"] == "attack"
            fa = lab["first_attack_ts_ms"]
            assert isinstance(fa, int) and fa in ts_by_acc[acc]
            assert fa >= ts_by_acc[acc][0]
        else:
            assert lab["label"] == "benign" and lab["first_attack_ts_ms"] is None


def test_every_cohort_emits(small):
    sim, events = small
    kinds = Counter(sim.labels[ev["account_id"]]["kind"] for ev in events)
    assert set(kinds) == set(CLASSIC_KINDS)


def test_evasive_scenario_kinds_and_shapes():
    """Every evasive and look-alike kind emits (scaled down); the rotating extractors are end users
    of a real product; the elicitation sits where each style puts it."""
    from distillguard.models.simulation.scenario import Simulation
    scn = load_scenario("evasive")
    for cfg in scn.cohorts.values():
        cfg["accounts"] = 1
        cfg["volume"] = [60, 80]
        cfg["students"] = [5, 5]
        cfg["items"] = [20, 20]
    sim = Simulation(scn, 2)
    events = list(sim.events())
    by_kind = defaultdict(list)
    for ev in events:
        by_kind[sim.labels[ev["account_id"]]["kind"]].append(ev)
    assert set(by_kind) == EVASIVE_SCENARIO_KINDS
    rot = [lab for lab in sim.labels.values() if lab["kind"] == "end_user_rotation"][0]
    users = {ev["user_id"] for ev in by_kind["end_user_rotation"]}
    assert set(rot["end_user_ids"]) & users and users - set(rot["end_user_ids"])   # extractors among real users
    assert all(ev["messages"][0]["role"] == "system" for ev in by_kind["system_elicitation"])
    assert any(len(ev["messages"]) > 2 for ev in by_kind["multi_turn_harvest"])
    assert all(ev["params"]["tools_count"] > 0 for ev in by_kind["agent_sweep"])
    assert all(not ev["messages"][-1]["content"].isascii() for ev in by_kind["foreign_elicitation"])
    assert all(ev["params"]["max_tokens"] <= 200 for ev in by_kind["llm_judge"])
    lab_models = {ev["model"] for ev in by_kind["benchmark_lab"]}
    assert len(lab_models) == 3 and all(ev["params"]["temperature"] == 0 for ev in by_kind["benchmark_lab"])
    nets = {ev["client_ip"].rsplit(".", 1)[0] for ev in by_kind["class_cluster"]}
    assert len(nets) == 1


# --------------------------------------------------------- cohort shapes

def test_hydra_accounts_new_low_volume_coordinated(small):
    sim, events = small
    hy = _by_kind(sim, events)["hydra"]
    per = Counter(ev["account_id"] for ev in hy)
    assert len(per) >= 12
    assert max(per.values()) <= 80
    first = {}
    for ev in hy:
        first.setdefault(ev["account_id"], ev)
    for ev in first.values():
        assert 0 <= ev["ts_ms"] - ev["account_created_ms"] <= 3 * DAY
        assert ev["access_tier"] in ("free", "startup")
    pfs = Counter(ev["payment_fingerprint"] for ev in first.values())
    assert len(pfs) < len(first) / 3             # a few shared fingerprints
    nets = {ev["client_ip"].rsplit(".", 1)[0] for ev in hy}
    assert 2 <= len(nets) <= 8                   # several proxy /24s
    # synchronized bursts: many accounts inside a 10 s span
    ts = sorted((ev["ts_ms"], ev["account_id"]) for ev in hy)
    best = max(len({a for t2, a in ts if t <= t2 < t + 10_000}) for t, _ in ts[:200])
    assert best >= 8


def test_enterprise_shares_payment_and_subnet(small):
    sim, events = small
    ent = _by_kind(sim, events)["enterprise_team"]
    by_pf = defaultdict(set)
    nets = defaultdict(set)
    for ev in ent:
        by_pf[ev["payment_fingerprint"]].add(ev["account_id"])
        nets[ev["payment_fingerprint"]].add(ev["client_ip"].rsplit(".", 1)[0])
        assert ev["access_tier"] == "enterprise"
        assert ev["ts_ms"] - ev["account_created_ms"] > 100 * DAY
    for pf, accs in by_pf.items():
        assert pf and len(accs) >= 10
        assert len(nets[pf]) == 1


def test_chat_sessions_are_multi_turn(small):
    sim, events = small
    k = _by_kind(sim, events)
    multi = [ev for ev in k["casual"] + k["power_user"]
             if sum(m["role"] == "user" for m in ev["messages"]) >= 2]
    assert multi
    ev = multi[0]
    assert any(m["role"] == "assistant" for m in ev["messages"])
    assert ev["messages"][-1]["role"] == "user" and ev["session_id"]


def test_batch_job_single_template(small):
    sim, events = small
    per = defaultdict(list)
    for ev in _by_kind(sim, events)["batch_job"]:
        per[ev["account_id"]].append(ev)
        assert ev["params"]["temperature"] == 0 and ev["params"]["max_tokens"] <= 64
    for evs in per.values():
        texts = {ev["messages"][0]["content"] for ev in evs}
        assert len(texts) > len(evs) / 2
        lasts = {ev["messages"][0]["content"][:8] for ev in evs}
        firsts = {ev["messages"][0]["content"][-8:] for ev in evs}
        assert len(lasts) == 1 or len(firsts) == 1


def test_logprob_probe_shape(small):
    sim, events = small
    evs = _by_kind(sim, events)["logprob_probe"]
    assert evs
    prompts = set()
    for ev in evs:
        p = ev["params"]
        assert p["max_tokens"] == 1 and p["logprobs"] is True
        assert 5 <= p["top_logprobs"] <= 20
        assert 50 <= len(p["logit_bias"]) <= 300
        assert set(p["logit_bias"].values()) <= {100, -100}
        prompts.add(ev["messages"][-1]["content"])
    assert len(prompts) <= 3


def test_attack_sweeps_are_broad(small):
    sim, events = small
    k = _by_kind(sim, events)
    for kind in ("capability_sweep", "templated_burst", "paraphrased_sweep", "hydra"):
        texts = [ev["messages"][-1]["content"] for ev in k[kind]
                 if ev["ts_ms"] >= sim.labels[ev["account_id"]]["first_attack_ts_ms"]]
        assert len(set(texts)) > 0.9 * len(texts), kind


def test_model_pivot(small):
    sim, events = small
    scn = sim.scenario
    for ev in _by_kind(sim, events)["model_pivot"]:
        fa = sim.labels[ev["account_id"]]["first_attack_ts_ms"]
        assert fa >= scn.release_ms
        if ev["ts_ms"] >= fa:
            assert ev["model"] == scn.new_model


# --------------------------------------------------------------- writers

def test_write_jsonl_and_labels(tmp_path, small):
    sim, events = small
    for name in ("e.jsonl", "e.jsonl.gz"):
        p = tmp_path / name
        assert write_jsonl(iter(events[:500]), p) == 500
        opener = gzip.open if name.endswith(".gz") else open
        with opener(p, "rb") as f:
            lines = f.read().splitlines()
        assert [orjson.loads(x) for x in lines] == events[:500]
    lp = tmp_path / "l.json"
    write_labels(sim.labels, lp)
    assert json.loads(lp.read_text()) == sim.labels


def test_cli(tmp_path, capsys):
    from distillguard.streams import simulate_cli
    parser = argparse.ArgumentParser()
    simulate_cli.add_arguments(parser)
    out = tmp_path / "sim.jsonl.gz"
    rc = simulate_cli.run(parser.parse_args(["--scenario", "small", "--seed", "4",
                                             "--out", str(out), "--limit", "1000"]))
    assert rc == 0
    with gzip.open(out, "rb") as f:
        assert len(f.read().splitlines()) == 1000
    labels = json.loads((tmp_path / "sim.labels.json").read_text())
    assert labels and all("label" in v for v in labels.values())
    err = capsys.readouterr().err
    assert "1,000 events" in err and "hydra" in err

    from distillguard.streams.cli import main
    rc = main(["simulate", "--scenario", "nope", "--out", str(out)])
    assert rc == 2
    (tmp_path / "a-file").write_text("")  # a folder that cannot be created
    rc = main(["simulate", "--scenario", "small", "--out", str(tmp_path / "a-file" / "dir" / "x.jsonl")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("distillguard simulate:") == 2


def test_evasions_knobs_narrow_areas_and_short_answers():
    """The evasions scenario's knobs: ``areas`` narrows a sweep, ``answer_tokens`` shortens answers."""
    from distillguard.models.simulation.scenario import Simulation
    scn = load_scenario("evasions")
    for cfg in scn.cohorts.values():
        cfg["accounts"] = 1
        cfg["volume"] = [60, 80]
    sim = Simulation(scn, 1)
    by_cohort = defaultdict(list)
    for ev in sim.events():
        by_cohort[sim.labels[ev["account_id"]]["cohort"]].append(ev)
    short = sorted(ev["usage"]["output_tokens"] for ev in by_cohort["short_answer_sweep"])
    assert short[len(short) // 2] < 600
    narrow = {ev["messages"][-1]["content"] for ev in by_cohort["narrow_harvest"]}
    assert narrow and len(narrow) == len(by_cohort["narrow_harvest"])


def test_transformation_variants_have_their_shape():
    """document_qa pastes long passages and gets bounded answers; padded_elicitation pastes long
    passages above sweep questions and still gets long answers (or short ones, knob answer_tokens)."""
    sim = simulate(load_scenario("variants"), seed=1)
    shape = defaultdict(lambda: [0, 0, 0])
    for ev in sim.events():
        s = shape[sim.labels[ev["account_id"]]["cohort"]]
        s[0] += 1
        s[1] += ev["usage"]["input_tokens"]
        s[2] += ev["usage"]["output_tokens"]
    n, tin, tout = shape["document_qa"]
    assert tin / n > 500 and tout / n < 400 and tout / tin < 0.6
    assert sim.labels and {lab["label"] for lab in sim.labels.values() if lab["kind"] == "document_qa"} == {"benign"}
    n, tin, tout = shape["padded_elicitation"]
    assert tin / n > 500 and tout / n > 600
    n, tin, tout = shape["padded_short_elicitation"]
    assert tin / n > 500 and tout / n < 400
    assert {lab["label"] for lab in sim.labels.values() if lab["kind"] == "padded_elicitation"} == {"attack"}
