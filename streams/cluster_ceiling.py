"""The cluster stage's ceiling: at what request rate one core stops keeping up with it.

``python -m distillguard.streams.cluster_ceiling --accounts 100000 --hours 2``

The cross-account stages before it scale out (the observer runs next to each worker's
per-account detector, the linkers per links partition); the cluster engine
(``ClusterStage``) is the one stage whose input is every worker's evidence. This
measures, on a simulated population (the bundled default scenario with every cohort
scaled to ``--accounts`` accounts, its first ``--hours`` of event time):

1. its input rate: pair-evidence items (and their partners) per request, the way
   the stream produces them (one ``LinkObserver``, ``DG_PARTITIONS`` linkers routed
   by ``link_partition``, one evidence message per links partition per batch);
2. its CPU per evidence item, shell included (``read_evidence``: ``orjson`` and
   ``PairEvidence.from_wire``, as the cluster agent reads it, then ``ClusterStage.process``), in CPU seconds
   (``time.process_time``: the machine is shared, so wall time says little);
3. the request rate at which that saturates one core: requests / CPU seconds;
4. the same with the pair state split over S ``PairShard``s (``--shards 1,4,8``), as
   if each ran on its own core: the engine alone, fed each item's header (decoded
   from JSON) and the shards' hot pairs as copies (``replay_core``), and each
   shard's updates, sweeps and partner decoding; the busiest of them sets the
   ceiling. Splitting partners by shard (``router``) is the link agents' work then,
   reported, not counted. Every shard count must decide as one shard does, or the
   run fails.

Generating the population (simulator, feature extraction, observer, linkers) is not
timed; only the cluster stage's replay of the evidence is. ``--json`` prints the
figures as one JSON object (for ``make bench``); ``--save``/``--load`` keep a
population's evidence to replay it again.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import time
from dataclasses import dataclass, field

import orjson

from distillguard.models.config import DetectorConfig
from distillguard.models.detector import DEV_KEY
from distillguard.models.features import extract
from distillguard.models.linking import Linker, LinkObserver, link_record
from distillguard.models.pipeline import ClusterOutput, ClusterStage
from distillguard.models.pair_shards import pair_key, shard_of
from distillguard.models.records import PairEvidence, Partner
from distillguard.models.simulation import scenario as sim_scenario
from distillguard.schemas import event_from_dict

from .cluster_agents import evidence_messages, link_partition, read_evidence
from .settings import tune_gc

SCALED = ("accounts", "teams", "campaigns")   # cohort knobs that set how many accounts it has


def population(accounts: int, seed: int = 1) -> sim_scenario.Simulation:
    """The default scenario with every cohort scaled so the population has about ``accounts``."""
    sc = sim_scenario.load_scenario("default")
    base = sim_scenario.Simulation(sc, seed)
    factor = accounts / max(1, len(base.labels))
    for cfg in sc.cohorts.values():
        for knob in SCALED:
            if knob in cfg:
                cfg[knob] = max(1, round(cfg[knob] * factor))
    return sim_scenario.Simulation(sc, seed)


@dataclass
class EvidenceRun:
    """The cluster stage's input for one population: evidence messages as the links agents send them."""
    accounts: int
    hours: float
    requests: int = 0
    observations: int = 0
    evidence: int = 0
    partners: int = 0
    messages: list[bytes] = field(default_factory=list)
    generate_s: float = 0.0


def evidence_of(sim: sim_scenario.Simulation, hours: float, partitions: int, batch: int = 1000,
                key: bytes = DEV_KEY, progress=None, wire: int = 2) -> EvidenceRun:
    """Run the simulation's first ``hours`` through observer and linkers; keep the evidence messages
    (of wire version ``wire``). One batch = ``batch`` requests: each links partition sends at most one
    evidence message per batch."""
    config = DetectorConfig()
    observer = LinkObserver(key, config.clusters)
    linkers = [Linker(config.clusters) for _ in range(partitions)]
    end = sim.scenario.start_ms + int(hours * 3_600_000)
    run = EvidenceRun(len(sim.labels), hours)
    pending: dict[int, list[PairEvidence]] = {}
    t0 = time.process_time()

    def flush() -> None:
        for part in sorted(pending):
            run.messages.extend(evidence_messages(pending[part], wire))
        pending.clear()

    for doc in sim.events():
        if doc["ts_ms"] >= end:
            break
        event = event_from_dict(doc)
        run.requests += 1
        for obs in observer.observe(link_record(event, extract(event, key))):
            run.observations += 1
            part = link_partition(obs.key, partitions)
            found = linkers[part].process(obs)
            if found is not None:
                run.evidence += 1
                run.partners += len(found.partners)
                pending.setdefault(part, []).append(found)
        if run.requests % batch == 0:
            flush()
            if progress and run.requests % (100 * batch) == 0:
                progress(f"{run.requests:,} requests, {run.evidence:,} evidence items, "
                         f"{(doc['ts_ms'] - sim.scenario.start_ms) / 3_600_000:.2f} h of event time")
    flush()
    run.generate_s = time.process_time() - t0
    return run


def replay(messages: list[bytes], shards: int = 1, config: DetectorConfig | None = None) -> dict:
    """Read the messages as the cluster agent does and run one ``ClusterStage`` with ``shards`` pair
    shards, in one process; CPU seconds per part: ``total``, ``decode`` (orjson + ``from_wire``),
    ``shards`` (each ``PairShard``'s updates and sweeps), ``router`` (splitting each item's partners
    by shard: the link agents' work once shards are processes) and ``core`` (the rest; the timers
    themselves land here too, so ``replay_core`` measures the engine alone)."""
    stage = ClusterStage(config, shards=shards)
    engine = stage.engine
    updates, sweeps, routed = [0.0] * shards, [0.0] * shards, [0.0]
    for i, shard in enumerate(engine.shards):
        _time_calls(shard, "update", updates, i)
        _time_calls(shard, "sweep", sweeps, i)
    _time_calls(engine, "_hot_pairs", routed, 0)
    out = ClusterOutput()
    clock = time.process_time
    decode = 0.0
    t0 = clock()
    for raw in messages:
        t = clock()
        batch, _bad = read_evidence(raw)
        decode += clock() - t
        for evidence in batch:
            out.extend(stage.process(evidence))
    out.extend(stage.finish())
    total = clock() - t0
    router = routed[0] - sum(updates)
    return {"total": total, "decode": decode, "router": router, "shards": [u + s for u, s in zip(updates, sweeps)],
            "core": total - decode - routed[0] - sum(sweeps), "output": out, "stats": stage.stats()}


def replay_core(messages: list[bytes], shards: int, config: DetectorConfig | None = None) -> dict:
    """CPU seconds of the engine alone, as it would run with its pair shards in other processes:
    it reads each evidence item's header (``PairEvidence`` without partners) and the hot pairs the
    shards found, as copies of their state. The shards' output is computed first, untimed."""
    stage = ClusterStage(config, shards=shards)
    engine = stage.engine
    found: list[list] = []
    heads: list[bytes] = []
    route = engine._hot_pairs

    def record(msg):
        hot = route(msg)
        found.append([(b, sb, None if p is None else p.snapshot(), key) for b, sb, p, key in hot])
        return hot
    engine._hot_pairs = record
    for raw in messages:
        for evidence in read_evidence(raw)[0]:
            stage.process(evidence)
            heads.append(orjson.dumps({k: v for k, v in evidence.to_wire().items() if k != "p"}))
    stage.finish()
    core = ClusterStage(config)
    given = iter(found)
    core.engine._hot_pairs = lambda msg: next(given)
    out = ClusterOutput()
    clock = time.process_time
    t0 = clock()
    for raw in heads:
        head = orjson.loads(raw)
        head["p"] = ()
        out.extend(core.process(PairEvidence.from_wire(head)))
    out.extend(core.finish())
    return {"core": clock() - t0, "output": out, "hot_pairs": sum(len(h) for h in found)}


def _time_calls(obj, name: str, into: list[float], slot: int) -> None:
    """Wrap ``obj``'s method ``name`` (as an instance attribute) to add its CPU time to ``into[slot]``."""
    clock = time.process_time
    method = getattr(obj, name)

    def timed(*args, **kw):
        t = clock()
        try:
            return method(*args, **kw)
        finally:
            into[slot] += clock() - t
    setattr(obj, name, timed)


def decode_split(messages: list[bytes], shards: int) -> list[float]:
    """CPU seconds each shard would spend decoding its partners if the link agents sent every
    evidence item's partners, grouped by ``shard_of``, to their pairs' shards."""
    pieces: list[list[bytes]] = [[] for _ in range(shards)]
    for raw in messages:
        for evidence in read_evidence(raw)[0]:
            routed: dict[int, list] = {}
            for partner in evidence.partners:   # as the link agents would send it: [account, sync, summary]
                shard = shard_of(pair_key(evidence.account, partner.account), shards)
                routed.setdefault(shard, []).append(list(partner))
            for i, partners in routed.items():
                pieces[i].append(orjson.dumps(partners))
    clock = time.process_time
    out = []
    for shard in pieces:
        t = clock()
        for raw in shard:
            [Partner(a, int(s), sb) for a, s, sb in orjson.loads(raw)]
        out.append(clock() - t)
    return out


def measure(accounts: int, hours: float, partitions: int, shards: tuple[int, ...] = (1, 4), seed: int = 1,
            progress=None, evidence: EvidenceRun | None = None) -> dict:
    """The figures of one population (``evidence``: one generated before, e.g. ``load``-ed)."""
    run = evidence
    if run is None:
        sim = population(accounts, seed)
        if progress:
            progress(f"population: {len(sim.labels):,} accounts; generating {hours} h of events")
        run = evidence_of(sim, hours, partitions, progress=progress)
    if progress:
        progress(f"{run.requests:,} requests -> {run.evidence:,} evidence items in {len(run.messages):,} "
                 f"messages (generated in {run.generate_s:.0f} s CPU); replaying the cluster stage")
    res = {
        "accounts": run.accounts, "hours": run.hours, "requests": run.requests, "observations": run.observations,
        "evidence": run.evidence, "evidence_messages": len(run.messages),
        "evidence_per_request": round(run.evidence / max(1, run.requests), 4),
        "partners_per_evidence": round(run.partners / max(1, run.evidence), 2),
        "bytes_per_evidence": round(sum(map(len, run.messages)) / max(1, run.evidence)),
    }
    per_request = lambda cpu: round(cpu / max(1, run.requests) * 1e6, 3)  # noqa: E731
    first = None
    for n in shards:
        r = replay(run.messages, n)
        if first is None:
            first = r["output"]
        elif _decisions(r["output"]) != _decisions(first):
            raise AssertionError(f"{n} shards decided differently from {shards[0]}")
        if n == 1:
            busiest = r["total"]
            res.update({"single_cpu_s": round(r["total"], 3), "single_decode_cpu_s": round(r["decode"], 3),
                        "single_cpu_us_per_evidence": round(r["total"] / max(1, run.evidence) * 1e6, 2),
                        "single_cpu_us_per_request": per_request(r["total"])})
        else:
            shard_decode = decode_split(run.messages, n)
            alone = replay_core(run.messages, n)
            if _decisions(alone["output"]) != _decisions(first):
                raise AssertionError(f"the engine fed {n} shards' hot pairs decided differently")
            core = alone["core"]
            per_shard = [c + d for c, d in zip(r["shards"], shard_decode)]
            busiest = max(core, *per_shard)
            res.update({f"shards{n}_core_cpu_us_per_request": per_request(core),
                        f"shards{n}_router_cpu_us_per_request": per_request(r["router"]),
                        f"shards{n}_core_cpu_us_per_evidence": round(core / max(1, run.evidence) * 1e6, 2),
                        f"shards{n}_busiest_shard_cpu_us_per_request": per_request(max(per_shard)),
                        f"shards{n}_hot_pairs": r["stats"]["hot_pairs"],
                        f"shards{n}_hot_entries_per_evidence": round(alone["hot_pairs"] / max(1, run.evidence), 3)})
        res[f"shards{n}_saturation_requests_per_s"] = round(run.requests / busiest) if busiest else None
        if progress:
            progress(f"{n} shard(s): saturates one core at {res[f'shards{n}_saturation_requests_per_s']:,} requests/s")
    res.update({"alerts": len(first.alerts), "member_rows": len(first.members),
                **{f"engine_{k}": v for k, v in r["stats"].items()}})
    return res


def save(run: EvidenceRun, path: str) -> None:
    """The evidence of a population, to replay again (``--load``) without simulating it again."""
    head = {k: v for k, v in vars(run).items() if k != "messages"}
    with gzip.open(path, "wb") as f:
        f.write(orjson.dumps(head) + b"\n")
        for raw in run.messages:
            f.write(raw + b"\n")


def load(path: str) -> EvidenceRun:
    with gzip.open(path, "rb") as f:
        run = EvidenceRun(**orjson.loads(f.readline()))
        run.messages = [line.rstrip(b"\n") for line in f]
    return run


def rewire(messages: list[bytes], version: int) -> list[bytes]:
    """The same evidence in messages of wire ``version``, one (or its split) per message."""
    return [out for raw in messages for out in evidence_messages(read_evidence(raw)[0], version)]


def _decisions(out: ClusterOutput) -> tuple:
    return ([a.to_json() for a in out.alerts], [(m.cluster_id, m.account_id, m.updated_at, m.score) for m in out.members])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m distillguard.streams.cluster_ceiling", description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=100_000, help="population size (default 100000)")
    p.add_argument("--hours", type=float, default=2.0, help="hours of event time to run (default 2)")
    p.add_argument("--partitions", type=int, default=4, help="links partitions (linkers), as DG_PARTITIONS (default 4)")
    p.add_argument("--shards", default="1,4", help="pair shard counts to compare, comma-separated (default 1,4)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--save", metavar="FILE", help="also write the population's evidence here (gzip)")
    p.add_argument("--load", metavar="FILE", help="replay evidence written by --save instead of simulating")
    p.add_argument("--wire", type=int, choices=(1, 2), default=2,
                   help="evidence wire version to replay (DG_CLUSTER_WIRE; default 2); with --load, the saved "
                        "messages are rewritten in it (version 1 → 2 loses the summaries' sharing: generate in 2)")
    a = p.parse_args(argv)
    tune_gc()   # the worker's collector settings (streams/settings.py), or the figures are not its own
    say = lambda msg: print(f"cluster-ceiling: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    shards = tuple(int(n) for n in a.shards.split(","))
    evidence = None
    if a.load or a.save:
        evidence = load(a.load) if a.load else evidence_of(population(a.accounts, a.seed), a.hours, a.partitions,
                                                           progress=say)
        if a.save:
            save(evidence, a.save)
        evidence.messages = rewire(evidence.messages, a.wire)
    elif a.wire != 2:
        evidence = evidence_of(population(a.accounts, a.seed), a.hours, a.partitions, progress=say, wire=a.wire)
    res = measure(a.accounts, a.hours, a.partitions, shards, a.seed, progress=say, evidence=evidence)
    if a.json:
        print(orjson.dumps(res).decode())
    else:
        for k, v in res.items():
            print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
