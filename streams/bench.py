"""``python -m distillguard.streams.bench``: throughput, latency and memory, measured.

One run, one pre-produced topic (the ``default`` simulator scenario, seeds
concatenated with shifted timestamps and account suffixes up to ``--events``),
read by five consumers in turn, each in its own process and consumer group (the
worker runs on a fresh copy of it, see below):

1. ``raw``: a confluent-kafka consumer that parses every value with orjson, nothing else;
2. ``faust_stock``: a bare Faust agent that only iterates ``take_events`` batches, with
   Faust's own consumer, monitor and fetch size (before issue #15);
3. ``faust``: the same agent as the worker runs Faust (``app.faust_options``: the consumer of
   ``streams/faust_transport.py``, its quiet monitor, 4 MiB fetches);
4. ``pipeline``: ``distillguard worker`` (all detectors, alerts, the ClickHouse sink);
5. ``pipeline_2workers``: two workers in one group (the second with ``DG_SINK=0``).

The stock/product Faust pair runs back to back in the same run, so their ratio holds on a
shared machine where absolute figures move with the neighbours' load.

Events/s is measured from the first processed event to the last (start-up and
group joins excluded; for two workers, from the moment both process). The worker
runs start on an empty topic and the events are copied into it once the workers
hold every partition (``copy_topic``: 50,000 events in ~0.3 s): a second worker
that joins while the first is mid-backlog causes rebalances that can outlast a
50,000-event run, so the figure measured the join rather than the workers. Latency
(Kafka produce timestamp → end of processing) is measured in separate paced
runs at ``--rate`` events/s offered, where a backlog does not distort it; the
worker reports it from a histogram on its status page. Peak RSS is VmHWM from
/proc. Memory per account is ``models.state.state_bytes`` over the accounts of
an in-process replay. Micro-benchmarks run in this process, among them the detector's
µs per event by stage (parse, ``AccountStage``, the cross-account stages) over the same events,
on the compiled route and again on the pure-Python route (the compiled parts' same-run ratio).

The default run (50,000 events, one run each) takes a few minutes; ``--long`` is the
500,000-event form with three runs of everything and paced runs of every consumer.

Writes ``$DG_DATA_DIR/bench/bench.json`` and ``bench.md`` (also printed).
Needs the broker (``make bench`` starts it). Never prints prompt text.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson

from .processes import WorkerProcess, wait_all
from .settings import tune_gc

TARGETS = {
    "pipeline_eps": 8_000,             # issue #15: events/s per worker
    "faust_eps": 14_000,               # issue #15: bare Faust agent with the product's consumer
    "detector_us": 60,                 # issue #15: parse + all stages, in process, per event
    "pipeline_p99_ms": 1000,           # issue #15: at 5k events/s offered to one worker
    "bytes_per_account": 2048,
    "two_workers_speedup": 1.7,        # 2 workers / 1
    "features_state_us": 60,           # issue #12: feature extraction + state update, median per event
    "replay_eps": 20_000,              # issue #4: replay of the default benchmark
}
DETECTOR_RUNS = 3   # fresh runs of the in-process detector per route, whatever --runs says (their median)


# -- events -------------------------------------------------------------------
def bench_events(n: int, new_accounts: bool = True, first_seed: int = 1, churn: int = 0) -> Iterator[dict]:
    """``n`` events of the default scenario, copies one after the other, each shifted past the
    previous one in event time. With ``new_accounts`` copy k is seed ``first_seed + k`` and its
    accounts get the suffix ``.k`` (more active accounts); without, every copy is seed
    ``first_seed`` again, so the same accounts continue (a steady population, for soaks).
    ``churn`` = P > 0 (with a steady population) renames every account once per P copies, a
    different 1/P of them each copy (suffix ``.gN``): new accounts arrive and the old ids go
    idle past the detector's expiry (copies are 49 h apart), the population stays the same size."""
    from distillguard.models.simulation import load_scenario, simulate
    scenario = load_scenario("default")
    sent, copy, shift = 0, 0, 0
    while sent < n:
        sim = simulate(scenario, seed=first_seed + copy if new_accounts else first_seed)
        last = 0
        for ev in sim.events():
            if sent >= n:
                return
            if copy:
                ev["ts_ms"] += shift
                ev["event_id"] = f"{ev['event_id']}.{copy}"
                if new_accounts:
                    ev["account_id"] = f"{ev['account_id']}.{copy}"
                elif churn:
                    account = ev["account_id"]
                    generation = (copy + zlib.crc32(account.encode()) % churn) // churn
                    if generation:
                        ev["account_id"] = f"{account}.g{generation}"
            last = max(last, ev["ts_ms"])
            sent += 1
            yield ev
        shift = last + 3_600_000 - scenario.start_ms if hasattr(scenario, "start_ms") else last + 3_600_000
        copy += 1


def produce(settings, topic: str, events, rate: float = 0.0) -> int:
    """Produce dict events keyed by account; ``rate`` > 0 paces them. Returns the count."""
    from .kafka_io import produce_waiting, producer
    p = producer(settings, **{"linger.ms": 5})
    start = time.perf_counter()
    sent = 0
    for ev in events:
        produce_waiting(p, topic, value=orjson.dumps(ev), key=str(ev.get("account_id", "")).encode())
        sent += 1
        if sent % 256 == 0:
            p.poll(0)
            if rate > 0:
                ahead = sent / rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
    if p.flush(120):
        raise RuntimeError("not every event was delivered")
    return sent


def create_topic(settings, name: str, partitions: int) -> None:
    from confluent_kafka.admin import NewTopic

    from .kafka_io import admin
    client = admin(settings)  # keep a reference: the futures die with the client
    for _t, fut in client.create_topics([NewTopic(name, partitions, settings.replication_factor)], operation_timeout=30).items():
        fut.result()


def copy_topic(settings, source: str, dest: str, n: int, timeout: float = 300) -> None:
    """Copy the first ``n`` messages of ``source`` into ``dest``, each with its key and value into
    the same partition: a pipeline run gets the benchmark's events at full speed (50,000 in
    ~0.3 s here) without simulating them again or holding them in memory."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from .kafka_config import client_config
    from .kafka_io import produce_waiting, producer
    c = Consumer(client_config(settings, **{"group.id": f"bench-copy-{uuid.uuid4().hex[:8]}",
                                            "enable.auto.commit": False}))
    p = producer(settings, **{"linger.ms": 5})
    copied = 0
    deadline = time.monotonic() + timeout
    try:
        partitions = c.list_topics(source, timeout=30).topics[source].partitions
        c.assign([TopicPartition(source, i, OFFSET_BEGINNING) for i in partitions])
        while copied < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"copied {copied:,}/{n:,} messages of {source} in {timeout:.0f}s")
            for m in c.consume(num_messages=min(1000, n - copied), timeout=0.5):
                if m.error():
                    raise RuntimeError(f"reading {source}: {m.error()}")
                produce_waiting(p, dest, value=m.value(), key=m.key(), partition=m.partition())
                copied += 1
            p.poll(0)
    finally:
        c.close()
    if p.flush(120):
        raise RuntimeError(f"not every message copied to {dest} was delivered")


def delete_topics(settings, prefix: str) -> int:
    """Delete every topic whose name starts with ``prefix`` (a run's topics, internal Faust ones
    included): leftovers make every client's metadata refresh slower in the next run."""
    from .kafka_io import admin
    client = admin(settings)
    names = [t for t in client.list_topics(timeout=30).topics if t.startswith(prefix)]
    for _t, fut in (client.delete_topics(names, operation_timeout=60).items() if names else ()):
        fut.result()
    return len(names)


# -- process helpers ------------------------------------------------------------
def vm_kb(pid: int, field: str = "VmHWM") -> int:
    """A Vm* field of /proc/<pid>/status in kB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child(args: list[str], env: dict, log: Path, path: str) -> WorkerProcess:
    """A worker-like child process with a JSON status page at ``path``, started."""
    return WorkerProcess(env, log, argv=args, status_path=path).start(ready_timeout=None)


def started(c: WorkerProcess, timeout: float = 120) -> None:
    c.wait_for(lambda s: s is not None, timeout, "the child's status page")


def stop_child(c: WorkerProcess) -> int:
    """Peak RSS (kB), then SIGTERM (SIGKILL after 30 s)."""
    hwm = vm_kb(c.proc.pid)
    c.stop(30)
    return hwm


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def holds_every_partition(assigned: list[list[int] | None], partitions: int) -> bool:
    """True when each worker holds at least one partition and together they hold each of
    ``partitions`` once: their group has joined. ``assigned``: each status page's list."""
    held = sorted(p for ps in assigned for p in ps or ())
    return all(assigned) and held == list(range(partitions))


def follow(children: list[WorkerProcess], n: int, timeout: float,
           all_active: bool = False) -> tuple[float, float, dict]:
    """Poll until the children's events sum to ``n``; return (events/s, CPU µs per event of the
    children together, last status of the first). The clock starts at the first poll where some
    child (``all_active``: every child) has events. CPU per event holds on a shared machine where
    events/s follows the neighbours' load."""
    t0 = e0 = None
    cpu0 = 0.0
    deadline = time.monotonic() + timeout
    last: list[dict] = []
    while time.monotonic() < deadline:
        now = time.perf_counter()
        last = [c.status() or {} for c in children]
        counts = [s.get("events", 0) for s in last]
        total = sum(counts)
        if t0 is None and (all(counts) if all_active else total > 0):
            t0, e0 = now, total
            cpu0 = sum(cpu_s(c.proc.pid) for c in children)
        if total >= n:
            if t0 is None or now - t0 <= 0 or total - e0 <= 0:
                return float("nan"), float("nan"), last[0]
            cpu = sum(cpu_s(c.proc.pid) for c in children) - cpu0
            return (total - e0) / (now - t0), cpu * 1e6 / (total - e0), last[0]
        for c in children:
            c.check_alive(f"{n:,} events")
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout}s with {sum(s.get('events', 0) for s in last)}/{n} events")


# -- the detector, stage by stage, in process ------------------------------------------
def detector_stages(lines: list[bytes], key: bytes, runs: int, batch: int = 1000) -> dict:
    """µs per event of parse, the per-account stage (``AccountStage.process`` and its
    ``end_batch``) and the cross-account stages (``CrossAccountPipeline.process`` of each link
    record), timed separately over the same events in batches as the worker runs them; the
    median of ``runs`` fresh runs, and their sum (the detector in process); ``runs_us``: every
    run's sum, in order (on this shared machine the same code's CPU time moves by up to a
    fifth between runs). Timed in this process's CPU time, so that time the process waits for
    a core on a shared machine does not count."""
    from distillguard.models.pipeline import AccountStage, CrossAccountPipeline
    from distillguard.schemas import BadEvent, parse_event

    totals: dict[str, list[float]] = {"parse_us": [], "account_stage_us": [], "cross_account_us": []}
    for _ in range(runs):
        # the previous run's stages are garbage in reference cycles (a compiled stage's loop holds
        # the stage's bound methods): collected here, untimed, not by whichever run comes next
        gc.collect()
        accounts = AccountStage(key=key)
        cross = CrossAccountPipeline(accounts.config, key)
        spent = dict.fromkeys(totals, 0.0)
        clock = time.process_time
        for i in range(0, len(lines), batch):
            t0 = clock()
            events = []
            for raw in lines[i:i + batch]:
                try:
                    events.append(parse_event(raw))
                except BadEvent:
                    pass
            t1 = clock()
            records, watermark = [], 0
            for offset, ev in enumerate(events, i):
                out = accounts.process(ev, (0, offset))   # with an input position, as the worker
                if out is not None:
                    records.append(out.record)
                watermark = max(watermark, ev.ts_ms)
            accounts.end_batch(watermark)
            t2 = clock()
            for record in records:
                cross.process(record)
            t3 = clock()
            spent["parse_us"] += t1 - t0
            spent["account_stage_us"] += t2 - t1
            spent["cross_account_us"] += t3 - t2
        for name, seconds in spent.items():
            totals[name].append(seconds * 1e6 / len(lines))
    out = {name: statistics.median(v) for name, v in totals.items()}
    out["total_us"] = sum(out.values())
    out["runs_us"] = [round(sum(run), 1) for run in zip(*totals.values())]
    out["events"] = len(lines)
    return out


# -- the consumers under test -----------------------------------------------------
def child_raw(topic: str, n: int) -> None:
    """Child: confluent-kafka + orjson until ``n`` messages; prints one JSON line.
    Connects like every client of the product (``kafka_config.client_config``: bootstrap,
    SASL, TLS from the DG_KAFKA_* settings); nothing else of distillguard is imported."""
    from confluent_kafka import Consumer

    from .kafka_config import client_config
    from .settings import load_settings
    c = Consumer(client_config(load_settings(), **{"group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                                                   "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe([topic])
    lat = []
    count, t0 = 0, None
    deadline = time.monotonic() + 600
    while count < n and time.monotonic() < deadline:
        msgs = c.consume(num_messages=1000, timeout=0.5)
        if not msgs:
            continue
        if t0 is None:
            t0, cpu0 = time.perf_counter(), cpu_s(os.getpid())
        for m in msgs:
            if m.error():
                continue
            orjson.loads(m.value())
            count += 1
        now_ms = time.time() * 1000.0
        lat.extend(now_ms - m.timestamp()[1] for m in msgs if not m.error())
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    cpu_us = (cpu_s(os.getpid()) - cpu0) * 1e6 / count if t0 is not None and count else None
    c.close()
    lat.sort()
    pct = {"n": len(lat)}
    if lat:
        pct.update({k: round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)
                    for k, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))})
        pct["max"] = round(lat[-1], 1)
    print(orjson.dumps({"events": count, "eps": count / elapsed if elapsed > 0 else None, "cpu_us": cpu_us,
                        "latency_ms": pct, "vmhwm_kb": vm_kb(os.getpid())}).decode(), flush=True)


def child_faust(stock: bool = False) -> None:
    """Child: a bare Faust agent over take_events batches, status page /bench/; with the
    product's Faust settings (``app.faust_options``), or Faust's own consumer, monitor and fetch
    size (``stock``)."""
    import faust

    from .app import LatencyHistogram, faust_options, run_faust_worker
    from .faust_stream import RawSchema
    from .settings import load_settings
    s = load_settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(s.app_id, **faust_options(s, stock))   # the worker's Faust settings
    # the worker's request topic (streams/app.py), or Faust's own raw serializers for the "before"
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    topic = app.topic(s.topic_requests, **(raw if stock else {"schema": RawSchema()}))
    state = {"events": 0}
    hist = LatencyHistogram()

    @app.agent(topic)
    async def bare(stream):
        take = stream.take_events if stock else stream.take_batches   # as the worker's agent takes them
        async for events in take(s.batch_max, within=s.batch_within_s):
            state["events"] += len(events)
            hist.add_batch(events)

    @app.page("/bench/")
    async def status(web, request):
        return web.json({**state, "latency_ms": hist.summary()})

    run_faust_worker(app, "warn")   # as the worker runs it


class Bench:
    def __init__(self, args):
        from .settings import load_settings
        self.args = args
        self.settings = load_settings()
        self.run_id = uuid.uuid4().hex[:8]
        self.out = Path(args.out or self.settings.data_dir / "bench")
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = self.out / f"run-{self.run_id}"
        self.work.mkdir()
        self.notes: list[str] = []

    def env(self, name: str, topic: str, **extra) -> dict:
        run = f"{self.run_id}-{name}-{uuid.uuid4().hex[:4]}"
        return {"DG_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap, "DG_DATA_DIR": str(self.work / run),
                "DG_APP_ID": f"bench-{run}", "DG_TOPIC_REQUESTS": topic,
                "DG_TOPIC_DLQ": f"bench-{run}.dlq", "DG_TOPIC_ALERTS": f"bench-{run}.alerts",
                "DG_TOPIC_SINK": f"bench-{run}.sink", "DG_PARTITIONS": str(self.settings.partitions),
                "DG_WORKER_WEB_PORT": str(free_port()), "DG_LOG_LEVEL": "warn",
                "DG_DEV": "1", **extra}   # a benchmark run: the development fingerprint key is fine

    # one measurement per kind; returns {"eps", "latency_ms", "rss_kb"}
    def run_raw(self, topic: str, n: int) -> dict:
        out = subprocess.run([sys.executable, "-m", "distillguard.streams.bench", "_raw", topic, str(n)],
                             capture_output=True, timeout=900, check=True)
        doc = orjson.loads(out.stdout.strip().splitlines()[-1])
        if doc["events"] < n:
            raise RuntimeError(f"raw consumer saw {doc['events']}/{n}")
        return {"eps": doc["eps"], "cpu_us": doc["cpu_us"], "latency_ms": doc["latency_ms"], "rss_kb": doc["vmhwm_kb"]}

    def run_faust(self, topic: str, n: int, stock: bool = False) -> dict:
        name = "faust_stock" if stock else "faust"
        c = child(["-m", "distillguard.streams.bench", "_" + name], self.env(name.replace("_", ""), topic),
                  self.work / f"{name}.log", "/bench/")
        try:
            started(c)
            eps, cpu_us, st = follow([c], n, timeout=1800)
        finally:
            rss = stop_child(c)
        return {"eps": eps, "cpu_us": cpu_us, "latency_ms": st.get("latency_ms", {}), "rss_kb": rss}

    def run_pipeline(self, topic: str, n: int, workers: int = 1) -> dict:
        """``workers`` workers in one group on a fresh topic; once they hold every partition
        between them, the benchmark's events are copied in from ``topic``. So a run measures
        the workers, not their group's joins: over the pre-produced topic, the second worker
        joined while the first was mid-backlog, and the two rebalances that followed (2-5 s where
        neither processed) lasted about as long as the whole 50,000-event run."""
        live = f"{topic}.live-{uuid.uuid4().hex[:4]}"
        create_topic(self.settings, live, self.settings.partitions)
        kids = []
        try:
            for i in range(workers):
                env = self.env(f"pipe{workers}", live, **({"DG_SINK": "0"} if i else {}))
                if i:  # same group, topics and store as the first worker
                    env.update({k: v for k, v in kids[0].env.items() if k not in ("DG_WORKER_WEB_PORT", "DG_DATA_DIR",
                                                                                    "DG_SINK")})
                c = child(["-m", "distillguard.streams.cli", "worker"], env,
                          self.work / f"pipeline{workers}-{i}.log", "/distillguard/")
                kids.append(c)
            for c in kids:
                started(c)
            parts = self.settings.partitions
            wait_all(kids, lambda ss: holds_every_partition([(s or {}).get("partitions") for s in ss], parts),
                     120, f"the workers to hold all {parts} partitions")
            copy_topic(self.settings, topic, live, n)
            eps, cpu_us, st = follow(kids, n, timeout=3600, all_active=workers > 1)
        finally:
            rss = [stop_child(c) for c in kids]
        # one copy on the broker's disk at a time (the long form's are 500,000 events each); after
        # a failure the run's end deletes it with the rest
        delete_topics(self.settings, live)
        return {"eps": eps, "cpu_us": cpu_us, "latency_ms": st.get("latency_ms", {}), "rss_kb": max(rss),
                "rss_kb_each": rss}

    def paced(self, kind: str, n: int) -> dict:
        """A fresh topic, the consumer up first, then ``n`` events at ``--rate``/s."""
        topic = f"bench-{self.run_id}.paced-{kind}"
        create_topic(self.settings, topic, self.settings.partitions)
        events = list(bench_events(n, first_seed=self.args.seed))
        if kind == "raw":
            proc = subprocess.Popen([sys.executable, "-m", "distillguard.streams.bench", "_raw", topic, str(n)],
                                    stdout=subprocess.PIPE)
            time.sleep(3)  # let it join its group
            produce(self.settings, topic, events, rate=self.args.rate)
            out, _ = proc.communicate(timeout=600)
            return orjson.loads(out.strip().splitlines()[-1])["latency_ms"]
        if kind == "faust":
            c = child(["-m", "distillguard.streams.bench", "_faust"], self.env("pfaust", topic),
                      self.work / "paced-faust.log", "/bench/")
        else:
            c = child(["-m", "distillguard.streams.cli", "worker"], self.env("ppipe", topic),
                      self.work / "paced-pipeline.log", "/distillguard/")
        try:
            started(c)
            time.sleep(3)  # partitions assigned
            produce(self.settings, topic, events, rate=self.args.rate)
            _eps, _cpu, st = follow([c], n, timeout=900)
        finally:
            stop_child(c)
        return st.get("latency_ms", {})

    # -- in-process --------------------------------------------------------------
    def micro(self, n: int) -> dict:
        from distillguard.models import Pipeline, native
        from distillguard.models.features import extract
        from distillguard.models.state import AccountState
        from distillguard.schemas import parse_event

        from .replay import replay
        from distillguard.models.simulation import load_scenario, simulate
        # one copy of the default benchmark, simulated once: the replay figure's input, and (it is
        # bench_events' first copy) the micro-benchmarks' n events when it holds that many
        full = [orjson.dumps(ev) for ev in simulate(load_scenario("default"), seed=self.args.seed).events()]
        lines = full[:n] if n <= len(full) else [orjson.dumps(ev) for ev in bench_events(n, first_seed=self.args.seed)]
        parsed = [parse_event(x) for x in lines]
        key = self.settings.fingerprint_key.encode()
        out: dict = {}
        # the worker's and replay's collector settings (streams/settings.py), or the figures are not
        # theirs: the default collector costs the detector ~30% more here. Freezing after the inputs
        # leaves them out of collections, as the worker's start-up objects are.
        tune_gc()

        # CPU time of this process, like the detector's stages: time spent waiting for a core
        # on a shared machine is not the code's cost
        clock = time.process_time

        def features_state(key: bytes) -> float:
            per_event = []
            for _ in range(self.args.runs):
                states: dict[str, AccountState] = {}
                batch_us = []
                for i in range(0, len(parsed), 1000):
                    chunk = parsed[i:i + 1000]
                    t = clock()
                    for ev in chunk:
                        s = states.get(ev.account_id)
                        if s is None:
                            s = states[ev.account_id] = AccountState()
                        s.learn_one(extract(ev, key))
                    batch_us.append((clock() - t) * 1e6 / len(chunk))
                per_event.append(statistics.median(batch_us))
            return statistics.median(per_event)

        out["features_state_us"] = features_state(key)
        out["hot_path"] = native.route_name()
        if native.enabled():   # the same on the pure-Python route, in this run (another key: cold memos)
            with native.python_route():
                out["features_state_python_us"] = features_state(key + b"/pure-python")

        t = time.perf_counter()
        for x in lines[:20000]:
            parse_event(x)
        out["parse_us"] = (time.perf_counter() - t) * 1e6 / min(len(lines), 20000)
        # at least DETECTOR_RUNS fresh runs (a few seconds each): one run's CPU time on this shared
        # machine is a draw, the stages' medians over three are the figure
        runs = max(DETECTOR_RUNS, self.args.runs)
        out["detector"] = detector_stages(lines, key, runs)
        if native.enabled():   # the whole detector on the pure-Python route, in this run (cold memos too)
            with native.python_route():
                out["detector_python"] = detector_stages(lines, key + b"/pure-python", runs)

        try:
            from distillguard.models.anomaly import CohortAnomaly
        except ImportError:
            out["river_score_us"] = None
            self.notes.append("models/anomaly.py is absent: no River figure.")
        else:
            import random
            rnd = random.Random(1)
            model = CohortAnomaly()
            vecs = [{f"f{j}": rnd.random() for j in range(10)} for _ in range(1000)]
            for v in vecs:
                model.learn_one("pro", v)
            runs = []
            for _ in range(self.args.runs):
                t = time.perf_counter()
                for v in vecs:
                    model.score_one("pro", v)
                runs.append((time.perf_counter() - t) * 1e6 / len(vecs))
            out["river_score_us"] = statistics.median(runs)
            t = time.perf_counter()
            for v in vecs:
                model.learn_one("pro", v)
            out["river_learn_us"] = (time.perf_counter() - t) * 1e6 / len(vecs)

        pipeline = None
        try:   # issue #4's figure: replay of the whole default benchmark (one seed), not of n events
            out["replay_events"] = len(full)
            for jobs, name in ((1, "replay_eps"), (2, "replay_2jobs_eps")):
                eps = []
                for _ in range(self.args.runs):
                    pipeline = Pipeline(key=key)
                    eps.append(replay(iter(full), pipeline, lambda a: None, jobs=jobs).eps)
                out[name] = statistics.median(eps)
                out[f"{name}_runs"] = [round(e) for e in eps]
            states = list(pipeline.accounts.detector.states.values())
        except Exception as err:  # noqa: BLE001 - report it, measure the rest
            out["replay_eps"] = None
            self.notes.append(f"replay benchmark FAILED: {type(err).__name__}: {str(err)[:200]}")
            states = []
            by_account: dict[str, AccountState] = {}
            for ev in parsed:
                st = by_account.get(ev.account_id) or by_account.setdefault(ev.account_id, AccountState())
                st.learn_one(extract(ev, key))
            states = list(by_account.values())

        from distillguard.models import state as state_mod
        if hasattr(state_mod, "state_bytes"):
            sizes = sorted(state_mod.state_bytes(s) for s in states)
            out["bytes_method"] = "models.state.state_bytes (deep in-memory size)"
        else:
            sizes = sorted(sys.getsizeof(s) + len(s.to_bytes()) for s in states)
            out["bytes_method"] = "sys.getsizeof + len(to_bytes()) (state_bytes absent)"
        out["accounts"] = len(sizes)
        out["bytes_per_account"] = round(statistics.mean(sizes))
        out["bytes_per_account_p99"] = sizes[min(len(sizes) - 1, int(len(sizes) * 0.99))]
        out["bytes_per_account_max"] = sizes[-1]
        out["serialized_bytes_per_account"] = round(statistics.mean(len(s.to_bytes()) for s in states))
        return out

    def run(self) -> dict:
        a = self.args
        n = a.events
        result: dict = {"events": n, "partitions": self.settings.partitions, "rate_offered": a.rate,
                        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                        "runs": {"micro": a.runs, "raw": a.kafka_runs, "faust": a.kafka_runs, "faust_stock": a.kafka_runs,
                                 "pipeline": a.pipeline_runs, "pipeline_2workers": a.pipeline_runs}}
        log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)  # noqa: E731
        log(f"micro-benchmarks over {min(n, a.micro_events):,} events, {a.runs} runs")
        result["micro"] = self.micro(min(n, a.micro_events))
        if a.skip_kafka:
            return result
        topic = f"bench-{self.run_id}.requests"
        create_topic(self.settings, topic, self.settings.partitions)
        log(f"producing {n:,} events to {topic}")
        t = time.perf_counter()
        produce(self.settings, topic, bench_events(n, first_seed=a.seed))
        log(f"produced in {time.perf_counter() - t:.0f}s")
        kinds = [("raw", self.run_raw, a.kafka_runs),
                 # before/after back to back: their ratio is the figure on a shared machine
                 ("faust_stock", lambda tp, k: self.run_faust(tp, k, stock=True), a.kafka_runs),
                 ("faust", self.run_faust, a.kafka_runs),
                 ("pipeline", self.run_pipeline, a.pipeline_runs),
                 ("pipeline_2workers", lambda tp, k: self.run_pipeline(tp, k, workers=2), a.pipeline_runs)]
        for name, fn, runs in kinds:
            got = []
            for i in range(runs):
                r = fn(topic, n)
                log(f"{name} run {i + 1}/{runs}: {r['eps']:,.0f} events/s, {r['cpu_us']:,.0f} CPU µs/event, "
                    f"peak RSS {r['rss_kb'] / 1024:.0f} MB")
                got.append(r)
            result[name] = {"eps": statistics.median(r["eps"] for r in got),
                            "eps_runs": [round(r["eps"]) for r in got],
                            "cpu_us": statistics.median(r["cpu_us"] for r in got),
                            "rss_mb": round(max(r["rss_kb"] for r in got) / 1024, 1)}
            if name == "pipeline_2workers":
                result[name]["rss_mb_each"] = [round(k / 1024, 1) for k in got[-1]["rss_kb_each"]]
        paced_n = int(a.rate * a.paced_s)
        for name in a.paced:
            log(f"paced latency run: {name}, {paced_n:,} events at {a.rate:,.0f}/s")
            result[name]["latency_ms"] = self.paced(name, paced_n)
        result["paced_events"] = paced_n
        return result


def summarize(r: dict) -> dict:
    m = r["micro"]
    out = {"bytes_per_account": m["bytes_per_account"], "features_state_us": m["features_state_us"],
           "features_state_python_us": m.get("features_state_python_us"), "hot_path": m.get("hot_path"),
           "detector_us": m["detector"]["total_us"],
           "detector_python_us": m["detector_python"]["total_us"] if "detector_python" in m else None,
           "river_score_us": m.get("river_score_us"), "replay_eps": m["replay_eps"],
           "replay_2jobs_eps": m.get("replay_2jobs_eps")}
    if "pipeline" in r:
        out.update({
            "raw_eps": r["raw"]["eps"], "faust_stock_eps": r["faust_stock"]["eps"], "faust_eps": r["faust"]["eps"],
            "pipeline_eps": r["pipeline"]["eps"],
            "pipeline_2workers_eps": r["pipeline_2workers"]["eps"],
            "pipeline_p50_ms": r["pipeline"]["latency_ms"].get("p50"),
            "pipeline_p99_ms": r["pipeline"]["latency_ms"].get("p99"),
        })
        out["ratio_pipeline_raw"] = out["pipeline_eps"] / out["raw_eps"]
        out["ratio_pipeline_faust"] = out["pipeline_eps"] / out["faust_eps"]
        out["ratio_faust_product_stock"] = out["faust_eps"] / out["faust_stock_eps"]
        out["faust_stock_cpu_us"], out["faust_cpu_us"] = r["faust_stock"]["cpu_us"], r["faust"]["cpu_us"]
        out["ratio_faust_cpu_stock_product"] = out["faust_stock_cpu_us"] / out["faust_cpu_us"]
        out["ratio_2workers_1"] = out["pipeline_2workers_eps"] / out["pipeline_eps"]
    return out


def targets(s: dict) -> list[tuple[str, str, bool | None]]:
    def chk(key, ok_fn, text):
        v = s.get(key)
        shown = ("n/a" if v is None else f"{v:,.2f}" if key.startswith("ratio") else f"{v:,.1f}" if key.endswith("_us")
                 else f"{v:,.0f}")
        return (text, shown, None if v is None else ok_fn(v))
    return [
        chk("pipeline_eps", lambda v: v >= TARGETS["pipeline_eps"], "pipeline ≥ 8,000 events/s per worker"),
        chk("faust_eps", lambda v: v >= TARGETS["faust_eps"], "bare Faust, product consumer ≥ 14,000 events/s"),
        chk("detector_us", lambda v: v <= TARGETS["detector_us"], "detector in process (parse + all stages) ≤ 60 µs/event"),
        chk("pipeline_p99_ms", lambda v: v <= TARGETS["pipeline_p99_ms"], "p99 ≤ 1,000 ms at 5k events/s offered"),
        chk("bytes_per_account", lambda v: v <= TARGETS["bytes_per_account"], "≤ 2,048 bytes per active account"),
        chk("ratio_2workers_1", lambda v: v >= TARGETS["two_workers_speedup"], "2 workers ≥ 1.7 × one"),
        chk("features_state_us", lambda v: v <= TARGETS["features_state_us"], "features + state ≤ 60 µs per event (#12)"),
        chk("replay_2jobs_eps", lambda v: v >= TARGETS["replay_eps"], "replay ≥ 20,000 events/s (`--jobs 2`)"),
    ]


def _fmt(v, d: int = 0) -> str:
    return "—" if v is None else f"{v:,.{d}f}"


def markdown(r: dict, s: dict, notes: list[str]) -> str:
    f = _fmt
    lines = [f"# distillguard bench ({r['events']:,} events, {r['partitions']} partitions, "
             f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']})", ""]
    if "pipeline" in r:
        lines += ["| consumer | events/s (median) | runs | CPU µs/event | p50 ms | p99 ms | peak RSS MB |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for name, label in (("raw", "1. confluent-kafka + orjson"),
                            ("faust_stock", "2a. bare Faust agent, stock Faust (before)"),
                            ("faust", "2b. bare Faust agent, product consumer"),
                            ("pipeline", "3. distillguard worker"), ("pipeline_2workers", "4. two workers")):
            x = r[name]
            lat = x.get("latency_ms", {})
            lines.append(f"| {label} | {f(x['eps'])} | {', '.join(f'{e:,}' for e in x['eps_runs'])} | "
                         f"{f(x.get('cpu_us'))} | {f(lat.get('p50'), 1)} | {f(lat.get('p99'), 1)} | {f(x['rss_mb'], 0)}"
                         + (f" ({' + '.join(f'{v:.0f}' for v in x.get('rss_mb_each', []))})" if 'rss_mb_each' in x else "")
                         + " |")
        lines += ["", f"Ratios: bare Faust product/stock events/s **{s['ratio_faust_product_stock']:.2f}**, "
                  f"CPU per event stock/product **{s['ratio_faust_cpu_stock_product']:.2f}**, "
                  f"pipeline/raw **{s['ratio_pipeline_raw']:.3f}**, pipeline/Faust "
                  f"**{s['ratio_pipeline_faust']:.3f}**, 2 workers/1 **{s['ratio_2workers_1']:.2f}**.", "",
                  f"Latency: paced runs of {r['paced_events']:,} events at {r['rate_offered']:,.0f} events/s "
                  "offered (Kafka produce timestamp → end of processing of the batch; 5% histogram buckets, "
                  "upper edges). Two-worker latency is not measured separately; consumers without a paced "
                  "run show —. CPU µs/event: user + system CPU of the consumer's process(es), all threads, "
                  "over the same window as events/s (steadier than events/s on a shared machine).", ""]
    m = r["micro"]
    d = m["detector"]
    lines += ["| in-process | value |", "|---|---:|",
              f"| parse (orjson + contract checks), µs/event | {f(m['parse_us'], 1)} |",
              f"| detector CPU µs/event over {d['events']:,} events: parse / account stage / cross-account stages "
              f"= total | {f(d['parse_us'], 1)} / {f(d['account_stage_us'], 1)} / {f(d['cross_account_us'], 1)} "
              f"= **{f(d['total_us'], 1)}**{_runs_of(d)} |",
              *_detector_python_line(m),
              f"| features + state update, CPU µs/event (median over 1,000-event batches; hot path: "
              f"{m.get('hot_path', '?')}) | {f(m['features_state_us'], 1)} |",
              f"| the same on the pure-Python route (`DG_NATIVE_TEXT=0`) | "
              f"{f(m.get('features_state_python_us'), 1)} |",
              f"| River HST score_one, µs/call | {f(m.get('river_score_us'), 1)} |",
              f"| replay of the default benchmark ({m.get('replay_events', 0):,} events; whole detector, parse "
              "included), events/s: 1 process / 2 (`--jobs 2`) | "
              f"{f(m.get('replay_eps'))} / {f(m.get('replay_2jobs_eps'))} |",
              f"| bytes per active account: mean / p99 / max ({m['accounts']} accounts) | "
              f"{m['bytes_per_account']:,} / {m['bytes_per_account_p99']:,} / {m['bytes_per_account_max']:,} |",
              f"| serialized state (changelog value), bytes, mean | {m['serialized_bytes_per_account']:,} |",
              "", f"Memory method: {m['bytes_method']}.", "", "| target | measured | |", "|---|---:|---|"]
    for text, value, ok in targets(s):
        lines.append(f"| {text} | {value} | {'n/a' if ok is None else 'met' if ok else 'MISSED'} |")
    rn = r["runs"]
    lines += ["", f"Runs per figure: micro-benchmarks {rn['micro']}, raw and Faust {rn['raw']}, "
              f"pipelines {rn['pipeline']} (each pipeline run starts fresh workers); latency 1 paced run each.",
              "Events/s counts from the first processed event to the last (start-up excluded; two workers: "
              "from when both process); the workers' events are copied into their topic once they hold "
              "every partition (their group joined). All consumers share the machine with the broker and this script: "
              "on a busy machine compare the ratios of one run, not absolute figures across runs."]
    lines += [f"Note: {x}" for x in notes]
    return "\n".join(lines) + "\n"


def _runs_of(d: dict) -> str:
    """The fresh runs behind the stages' medians, each run's total (a report written before they
    were kept has none). The figure sums the stages' medians, so it need not be one run's total."""
    runs = d.get("runs_us") or []
    return (f" (each stage the median of {len(runs)} fresh runs; their totals: "
            f"{', '.join(_fmt(x, 1) for x in runs)})") if len(runs) > 1 else ""


def _detector_python_line(m: dict) -> list[str]:
    """The detector's stages on the pure-Python route in the same run (the compiled parts'
    ratio), when the compiled route ran."""
    d, p, f = m["detector"], m.get("detector_python"), _fmt
    if p is None:
        return []
    return [f"| the same on the pure-Python route (`DG_NATIVE_TEXT=0`) | {f(p['parse_us'], 1)} / "
            f"{f(p['account_stage_us'], 1)} / {f(p['cross_account_us'], 1)} = {f(p['total_us'], 1)} "
            f"(compiled/Python x{d['total_us'] / p['total_us']:.2f}) |"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_raw"]:
        child_raw(argv[1], int(argv[2]))
        return 0
    if argv[:1] in (["_faust"], ["_faust_stock"]):
        sys.argv = [sys.argv[0], "worker"]
        child_faust(stock=argv[0] == "_faust_stock")
        return 0
    ap = argparse.ArgumentParser(prog="python -m distillguard.streams.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--long", action="store_true",
                    help="the long form: 500,000 events, 3 runs of everything, paced runs of every consumer "
                         "(the options below still override it)")
    ap.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS") or 0) or None,
                    help="events in the topic (env BENCH_EVENTS; default 50,000, --long 500,000)")
    ap.add_argument("--runs", type=int, help="runs of each in-process micro-benchmark (default 1, --long 3)")
    ap.add_argument("--kafka-runs", type=int, help="runs of the raw and bare-Faust consumers (default 1, --long 3)")
    ap.add_argument("--pipeline-runs", type=int, help="runs of each pipeline, 1 and 2 workers (default 1, --long 3)")
    ap.add_argument("--paced", type=lambda v: [x for x in v.split(",") if x],
                    help="consumers with a paced latency run: raw,faust,pipeline (default pipeline; --long all)")
    ap.add_argument("--rate", type=float, default=5_000, help="offered events/s of the paced latency runs")
    ap.add_argument("--paced-s", type=float, default=15, help="seconds of paced production per latency run")
    ap.add_argument("--micro-events", type=int, default=50_000, help="events of the in-process benchmarks")
    ap.add_argument("--seed", type=int, default=1, help="first simulator seed")
    ap.add_argument("--skip-kafka", action="store_true", help="in-process benchmarks only")
    ap.add_argument("--out", help="output folder (default $DG_DATA_DIR/bench)")
    args = ap.parse_args(argv)
    long = args.long
    for name, short, full in (("events", 50_000, 500_000), ("runs", 1, 3), ("kafka_runs", 1, 3),
                              ("pipeline_runs", 1, 3), ("paced", ["pipeline"], ["raw", "faust", "pipeline"])):
        if getattr(args, name) is None:
            setattr(args, name, full if long else short)
    bad = set(args.paced) - {"raw", "faust", "pipeline"}
    if bad:
        ap.error(f"--paced: unknown consumer(s) {', '.join(sorted(bad))}; choose from raw, faust, pipeline")
    bench = Bench(args)
    if not args.skip_kafka:
        from .kafka_io import check_broker
        check_broker(bench.settings)
    try:
        result = bench.run()
    finally:
        if not args.skip_kafka:
            deleted = delete_topics(bench.settings, f"bench-{bench.run_id}")
            print(f"[bench] deleted this run's {deleted} topics", file=sys.stderr)
    s = summarize(result)
    doc = {**s, "targets": {t: {"value": v, "met": ok} for t, v, ok in targets(s)}, "detail": result,
           "notes": bench.notes}
    (bench.out / "bench.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    md = markdown(result, s, bench.notes)
    (bench.out / "bench.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
