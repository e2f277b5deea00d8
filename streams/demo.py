"""``distillguard demo``: the whole pipeline on the local broker, end to end.

Starts a worker (Faust + ClickHouse sink) as a child process, streams a
simulated mix of benign traffic and attacks through Kafka, prints alerts as
they arrive on ``llm.alerts``, then stops the worker and prints a summary
read back from ClickHouse. Exits 1 if no alert arrived.

Each run shifts the simulated traffic to the present and tags account ids
with a run id, so repeated demos never collide with earlier ones' state.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import Counter

import orjson

from .clickhouse import open_store
from .errors import UserError
from .kafka_io import KafkaUnavailable, check_broker, consume, ensure_topics, produce_events
from .processes import WorkerProcess
from .settings import Settings

SEV_MARK = {"low": ".", "medium": "!", "high": "!!", "critical": "!!!"}
MALFORMED = [b"{not json", b'{"schema_version":"1","event_id":"bad","account_id":"x"}',
             b'{"schema_version":"1","event_id":"bad2","ts_ms":"today","account_id":"x","model":"m",'
             b'"operation":"chat","messages":[],"params":{}}']


def add_arguments(p) -> None:
    p.add_argument("--scenario", default="small", help="simulator scenario (default: small)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")


def run(args) -> int:
    from .settings import load_settings
    return run_demo(load_settings(), args)


def _shifted(events, run_tag: str, shift_ms: int):
    for ev in events:
        ev["account_id"] = f"{ev['account_id']}-{run_tag}"
        ev["event_id"] = f"{ev['event_id']}-{run_tag}"
        ev["ts_ms"] += shift_ms
        yield ev


def run_demo(settings: Settings, args) -> int:
    from distillguard.models.simulation import load_scenario, simulate

    try:
        check_broker(settings)
    except KafkaUnavailable as err:
        raise UserError(f"{err}. `make demo` starts it for you.") from None
    ensure_topics(settings)
    demo_dir = settings.data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    log_path = demo_dir / "worker.log"
    started = time.monotonic()

    scenario = load_scenario(args.scenario)
    sim = simulate(scenario, seed=args.seed)
    run_tag = time.strftime("%H%M%S")
    print(f"demo run {run_tag}: scenario {args.scenario!r}, seed {args.seed}; worker log: {log_path}")

    # DG_DEV=1: a demo may run with the development fingerprint key (a real worker refuses it)
    worker = WorkerProcess({"DG_WORKER_WEB_PORT": str(settings.worker_web_port), "DG_DEV": "1"},
                           log_path).start(ready_timeout=None)
    alerts: list[dict] = []
    stop_reading = threading.Event()

    def read_alerts():
        for _key, value, _h in consume(settings, settings.topic_alerts, timeout=args.timeout + 120,
                                       from_beginning=False):
            a = orjson.loads(value)
            if not a["account_ids"][0].endswith(run_tag):
                continue
            alerts.append(a)
            top = a["reasons"][0] if a["reasons"] else {}
            print(f"  ALERT {a['activity']:<6} {a['severity']:<8}{SEV_MARK[a['severity']]:<3} "
                  f"score={a['score']:.2f} account={a['account_ids'][0]} "
                  f"{top.get('feature', '')}={top.get('value', '')} action={a['recommended_action']}",
                  flush=True)
            if stop_reading.is_set():
                break

    try:
        worker.wait_ready(120)
        reader = threading.Thread(target=read_alerts, daemon=True)
        reader.start()
        time.sleep(2.0)  # let the alert reader join at the log end
        events = list(sim.events())
        shift = int(time.time() * 1000) - events[-1]["ts_ms"]
        print(f"streaming {len(events):,} simulated events through {settings.topic_requests} ...", flush=True)
        # a few malformed messages too: they must land in the DLQ, not stop the worker
        stream = [*_shifted(events, run_tag, shift), *MALFORMED]
        sent = produce_events(settings, stream, progress=True)
        worker.wait_for(lambda s: (s or {}).get("events", 0) >= sent, args.timeout,
                        f"the worker to process {sent} events")
        worker.wait_settled(quiet_s=6.0, timeout=90.0)
        stop_reading.set()
    finally:
        code = worker.stop()
    if code != 0:
        print(f"warning: worker exited with code {code}; see {log_path}", file=sys.stderr)

    labels = {f"{a}-{run_tag}": v for a, v in sim.labels.items()}
    return _summary(settings, alerts, labels, run_tag, sent, time.monotonic() - started)


def counts(counter: Counter, order=()) -> str:
    """``create 10, update 27`` (in ``order`` first, then by count), or ``none``."""
    keys = [k for k in order if counter.get(k)] + [k for k, _ in counter.most_common() if k not in order]
    return ", ".join(f"{k} {counter[k]:,}" for k in keys) or "none"


def _summary(settings, alerts, labels, run_tag, sent, elapsed) -> int:
    created = [a for a in alerts if a["activity"] == "create"]
    alerted = {acct for a in alerts if a["severity"] in ("medium", "high", "critical") for acct in a["account_ids"]}
    attacks = {a for a, v in labels.items() if v["label"] == "attack"}
    benign = set(labels) - attacks
    severities = ("low", "medium", "high", "critical")
    print("\nsummary")
    print(f"  events streamed        {sent:,}")
    print(f"  alert events           {len(alerts)} "
          f"({counts(Counter(a['activity'] for a in alerts), ('create', 'update', 'close'))})")
    print(f"  alerts created         {len(created)} by severity: "
          f"{counts(Counter(a['severity'] for a in created), severities)}")
    print(f"  attack accounts caught {len(alerted & attacks)}/{len(attacks)} at medium+")
    print(f"  benign accounts hit    {len(alerted & benign)}/{len(benign)} at medium+")
    print(f"  alerted by cohort      {counts(Counter(labels[a]['cohort'] for a in alerted if a in labels))}")
    db = settings.clickhouse_database
    with open_store(settings) as store:
        n_alerts = store.query(f"SELECT count() FROM {db}.alert_events WHERE account_id LIKE '%-{run_tag}'").result_rows[0][0]
        n_req = store.query(f"SELECT sum(requests) FROM {db}.account_minute WHERE account_id LIKE '%-{run_tag}'").result_rows[0][0]
        tables = store.query(f"SELECT name, total_rows FROM system.tables WHERE database = '{db}' "
                             "AND total_rows IS NOT NULL ORDER BY name").result_rows
    print(f"  in ClickHouse          {n_alerts} alert events, {n_req:,} requests in account_minute")
    print("  rows per table         " + ", ".join(f"{name} {rows:,}" for name, rows in tables))
    print(f"  took                   {elapsed:.0f}s")
    print("\nlook at them in the analysts' console (alert queue, evidence, triage):\n"
          "  DG_CONSOLE_TOKEN=<a secret of your choice> .venv/bin/distillguard console\n"
          f"  then open http://{settings.console_host}:{settings.console_port}/ and sign in with that token\n"
          "  (or `.venv/bin/distillguard console --dev` for a one-off token, printed at start)\n"
          "or with SQL:\n  .venv/bin/distillguard sql \"SELECT alert_id, severity, score, account_id, "
          f"recommended_action FROM {db}.alerts_latest FINAL ORDER BY score DESC LIMIT 20\"")
    if not created:
        print("demo FAILED: no alert arrived", file=sys.stderr)
        return 1
    return 0
