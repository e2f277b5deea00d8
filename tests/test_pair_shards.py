"""Pair shards (models/pair_shards.py): the cluster engine decides the same with its pair state
split over several shards, and keeps only the pairs that can ever link two accounts."""
import random

from distillguard.models.config import ClusterConfig
from distillguard.models.features import extract
from distillguard.models.linking import link_record
from distillguard.models.pair_shards import PairShard, pair_key, shard_of
from distillguard.models.pipeline import ClusterStage, CrossAccountPipeline
from distillguard.models.records import PairEvidence, Partner
from distillguard.schemas import event_from_dict
from distillguard.streams.replay import open_lines

import orjson

from .test_clusters import KEY, enterprise_events, hydra_events, record

CC = ClusterConfig()


def decisions(records, shards):
    h = CrossAccountPipeline(key=KEY, shards=shards)
    alerts, rows = [], []
    for r in records:
        out = h.process(r)
        alerts += out.alerts
        rows += out.members
    out = h.finish()
    alerts += out.alerts
    rows += out.members
    return [a.to_json() for a in alerts], [(m.cluster_id, m.account_id, m.updated_at, m.score) for m in rows], h


def test_sharded_engine_decides_as_one_on_the_simulators_small_scenario(small_sim):
    events_path, _labels, labels = small_sim
    records = []
    for line in open_lines(events_path):
        ev = event_from_dict(orjson.loads(line))
        records.append(link_record(ev, extract(ev, KEY)))
    one_alerts, one_rows, one = decisions(records, 1)
    hydra = {a for a, lab in labels.items() if lab["cohort"] == "hydra"}
    raised = {m for a in map(orjson.loads, one_alerts) if a["severity"] in ("medium", "high", "critical")
              for m in a["account_ids"]}
    assert len(raised & hydra) >= 0.8 * len(hydra)        # the scenario's hydra is found...
    for n in (4, 7):
        alerts, rows, many = decisions(records, n)
        assert (alerts, rows) == (one_alerts, one_rows)   # ...the same way with the pairs sharded
        assert all(s.pairs for s in many.clusters.engine.shards)
        assert sum(len(s.pairs) for s in many.clusters.engine.shards) == len(one.clusters.engine.shards[0].pairs)


def test_sharded_engine_decides_as_one_on_hydra_and_enterprise_traffic():
    hy, _ = hydra_events(seed=3)
    en, _ = enterprise_events(seed=4)
    records = [record(e) for e in sorted(hy + en, key=lambda e: e.ts_ms)]
    one = decisions(records, 1)
    assert one[0]
    assert decisions(records, 3)[:2] == one[:2]


def test_the_core_keeps_only_pairs_that_were_hot_and_no_other_pair_is_ever_strong():
    rng = random.Random(7)
    accounts = [f"a{i:03d}" for i in range(40)]
    summary = {"n": 1, "rd": 1.0, "t": {}}
    stage = ClusterStage(shards=3)
    engine = stage.engine
    ts = 1_793_577_600_000
    for step in range(600):
        ts += rng.randint(0, 120_000)
        a = rng.choice(accounts)
        partners = sorted(rng.sample([b for b in accounts if b != a], rng.randint(1, 4)))
        kind = rng.choice(["pay", "net", "wrap", "sys", "ua"])
        stage.process(PairEvidence(a, summary, kind, rng.choice([0.05, 0.15, 0.25, 0.35, 0.6]), ts, None, None,
                                   [Partner(b, rng.random() < 0.2, summary) for b in partners]))
        for key, p in (engine.pairs.items() if step % 20 == 0 else ()):
            assert key in engine.shards[shard_of(key, 3)].hot and engine.shards[shard_of(key, 3)].pairs[key] is p
    cold = [p for s in engine.shards for k, p in s.pairs.items() if k not in s.hot]
    assert cold and engine.pairs
    assert all(p.potential() < CC.link_threshold and p.strength(p.first_ts, CC) < CC.link_threshold for p in cold)
    index = {(a, b) for a, others in engine.partners.items() for b in others if a < b}
    assert index == set(engine.pairs)
    components: dict[str, set[str]] = {}
    for a in engine.parent:
        components.setdefault(engine.find(a), set()).add(a)
    assert engine.component == components          # scoring reads members from it, not a scan


def test_shard_of_is_symmetric_stable_and_spread():
    keys = [pair_key(f"acct_{i}", f"acct_{i * 7 + 1}") for i in range(2000)]
    assert [shard_of(k, 5) for k in keys] == [shard_of(pair_key(b, a), 5) for a, b in keys]
    assert shard_of(("acct_1", "acct_2"), 4) == 1      # CRC-32: the same in every process and version
    counts = [sum(shard_of(k, 4) == i for k in keys) for i in range(4)]
    assert min(counts) > 400


def test_a_shard_hands_over_linked_partners_summaries_without_their_pair():
    shard = PairShard(CC)
    weak = [Partner("b", 0, {"n": 5})]
    assert shard.update("a", "ua", 0.05, 1000, weak) == []             # below the seed weight: no pair
    assert shard.update("a", "ua", 0.05, 2000, weak, linked={"b"}) == [("b", {"n": 5}, None, None)]


def test_cluster_ceiling_reports_input_rate_cpu_and_saturation_per_shard_count():
    from distillguard.streams.cluster_ceiling import measure
    res = measure(accounts=600, hours=3, partitions=2, shards=(1, 3))   # raises if 3 shards decide otherwise
    assert res["requests"] > 500 and res["evidence"] > 0
    assert res["evidence_per_request"] == round(res["evidence"] / res["requests"], 4)
    assert res["single_cpu_us_per_evidence"] > 0 and res["shards1_saturation_requests_per_s"] > 0
    assert res["shards3_hot_pairs"] <= res["engine_pairs"]
    assert {"shards3_core_cpu_us_per_request", "shards3_busiest_shard_cpu_us_per_request",
            "shards3_saturation_requests_per_s"} <= set(res)


def test_a_shard_sweep_evicts_exactly_the_idle_pairs_and_files_every_pair_once():
    rng = random.Random(11)
    accounts = [f"a{i:02d}" for i in range(30)]
    shard = PairShard(CC)
    ts = 1_793_577_600_000
    evicted = 0
    for step in range(3000):
        ts += rng.randint(-120_000, 600_000)        # out of order now and then, as a stream delivers
        a = rng.choice(accounts)
        partners = [Partner(b, rng.random() < 0.2, {"n": 1}) for b in rng.sample([b for b in accounts if b != a], 3)]
        shard.update(a, rng.choice(["pay", "net", "wrap", "sys", "ua"]), rng.choice([0.15, 0.25, 0.35, 0.6]), ts,
                     partners)
        # a pair not hot is below link_threshold, whichever updates left its potential as it was
        assert all(p.potential() < CC.link_threshold for k, p in shard.pairs.items() if k not in shard.hot)
        if step % 50 == 0:
            now = ts + rng.choice([0, 3_600_000, CC.pair_ttl_ms // 2])
            idle = {k for k, p in shard.pairs.items() if now - p.last_ts > CC.pair_ttl_ms}
            before = set(shard.pairs)
            shard.sweep(now)
            assert set(shard.pairs) == before - idle and shard.hot <= set(shard.pairs)
            evicted += len(idle)
            filed = [k for keys in shard.filed.values() for k in keys]
            assert sorted(filed) == sorted(shard.pairs)
            assert all(period <= shard.pairs[k].last_ts // shard.period
                       for period, keys in shard.filed.items() for k in keys)
    assert evicted > 100 and shard.hot
