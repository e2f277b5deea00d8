"""``distillguard doctor``: the command an operator runs first.

One line per check, ``✓`` or ``✗`` (``-`` when a check could not run because
an earlier one failed), and for a ``✗`` the fix. Exit 0 when nothing is wrong,
1 otherwise. Checks: the broker answers (with the client config every other
client uses, so authentication is checked too); each topic exists with the
expected partitions, replication and retention; the consumer groups' lag;
ClickHouse answers and is migrated; the fingerprint key is not the development
key; the detector config loads; the compiled hot path is built (or switched off on
purpose); the worker's ``/readyz`` answers ready.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings, load_settings, mask

# The topics that spool work must keep it longer than an outage lasts (Kafka's default is 7 days).
MIN_RETENTION_MS = 24 * 3600 * 1000
# Beyond this many unprocessed events a worker is not keeping up (or not running).
MAX_LAG = 100_000


@dataclass(frozen=True)
class Check:
    ok: bool | None          # None: not checked (an earlier check failed)
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "✓", False: "✗", None: "-"}[self.ok]
        return f"{mark} {self.name}: {self.detail}" + (f" — fix: {self.fix}" if self.fix and self.ok is False else "")


def add_arguments(p) -> None:
    p.add_argument("--worker", metavar="URL",
                   help="the worker's web address (default http://127.0.0.1:DG_WORKER_WEB_PORT)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")


def run(args) -> int:
    settings = load_settings()
    worker_url = (args.worker or f"http://127.0.0.1:{settings.worker_web_port}").rstrip("/")
    checks = diagnose(settings, worker_url, args.timeout)
    for check in checks:
        print(check.line(), flush=True)
    bad = [c for c in checks if c.ok is False]
    print(f"\n{len(bad)} problem{'s' if len(bad) != 1 else ''} found" if bad else "\nall checks passed")
    return 1 if bad else 0


def diagnose(settings: Settings, worker_url: str, timeout: float = 5.0) -> list[Check]:
    worker = _worker_readiness(worker_url, timeout)
    broker = check_broker(settings, timeout)
    out = [broker]
    if broker.ok:
        out += check_topics(settings, timeout)
        out.append(check_lag(settings, timeout))
    else:
        out += [Check(None, "topics", "not checked: no broker"), Check(None, "consumer lag", "not checked: no broker")]
    out += [check_clickhouse(settings, worker), check_fingerprint_key(settings), check_detector_config(settings),
            check_native(settings), check_worker(worker_url, worker)]
    return out


def check_broker(settings: Settings, timeout: float) -> Check:
    from .kafka_io import KafkaUnavailable, admin, check_broker as answers

    try:
        answers(settings, timeout=timeout)
        md = admin(settings).list_topics(timeout=timeout)
    except KafkaUnavailable as err:
        return Check(False, "broker", err.reason, "start the broker, or point DG_KAFKA_BOOTSTRAP at it "
                     "(and check the client's security settings if it needs authentication)")
    return Check(True, "broker", f"{settings.kafka_bootstrap} answers ({len(md.brokers)} broker"
                 f"{'s' if len(md.brokers) != 1 else ''}, cluster {md.cluster_id})")


def check_topics(settings: Settings, timeout: float) -> list[Check]:
    from confluent_kafka.admin import ConfigResource

    from .kafka_io import admin, topic_specs

    client = admin(settings)
    md = client.list_topics(timeout=timeout)
    specs = topic_specs(settings)
    spooling = {settings.topic_requests, settings.topic_sink}
    retention: dict[str, int] = {}
    present = [t for t in specs if t in md.topics]
    if present:
        futures = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in present])
        for resource, future in futures.items():
            try:
                retention[resource.name] = int(future.result(timeout)["retention.ms"].value)
            except Exception:  # noqa: BLE001 - not allowed to describe: reported as unknown below
                pass
    out = []
    for topic, partitions in specs.items():
        name = f"topic {topic}"
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            out.append(Check(False, name, "missing", "run `distillguard topics` (the worker also creates it)"))
            continue
        problems, fixes = [], []
        have = len(meta.partitions)
        if have != partitions:
            problems.append(f"{have} partitions, expected {partitions}")
            fixes.append(f"recreate it with {partitions} partitions, or set DG_PARTITIONS={have} everywhere "
                         "(keys move between partitions when the count changes)")
        replicas = min((len(p.replicas) for p in meta.partitions.values()), default=0)
        if replicas < settings.replication_factor:
            problems.append(f"replication {replicas}, expected {settings.replication_factor}")
            fixes.append("raise its replication (kafka-reassign-partitions.sh) or set DG_REPLICATION_FACTOR")
        kept = retention.get(topic)
        if topic in spooling and kept is not None and 0 <= kept < MIN_RETENTION_MS:
            problems.append(f"retention {kept / 3_600_000:.1f} h, under 24 h")
            fixes.append(f"kafka-configs.sh --alter --entity-type topics --entity-name {topic} "
                         f"--add-config retention.ms={7 * 24 * 3_600_000}")
        if problems:
            out.append(Check(False, name, "; ".join(problems), "; ".join(fixes)))
        else:
            shown = "unlimited" if kept is not None and kept < 0 else (
                f"{kept / 86_400_000:g} d" if kept is not None else "unknown")
            out.append(Check(True, name, f"{have} partition{'s' if have != 1 else ''}, replication {replicas}, "
                             f"retention {shown}"))
    return out


def group_lag(settings: Settings, group: str, topic: str, timeout: float) -> int | None:
    """Messages of ``topic`` that ``group`` has not committed yet; None if the group has no offsets."""
    from confluent_kafka import Consumer

    from .kafka_io import client_config, group_offsets

    c = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        found = group_offsets(c, topic, timeout)
        return None if found is None or not found[2] else found[0]
    finally:
        c.close()


def check_lag(settings: Settings, timeout: float) -> Check:
    groups = [(settings.app_id, settings.topic_requests, "detect")]
    if settings.sink:
        groups.append((f"{settings.app_id}-sink", settings.topic_sink, "sink"))
    parts, worst = [], 0
    try:
        for group, topic, role in groups:
            lag = group_lag(settings, group, topic, timeout)
            parts.append(f"{role} ({group}) {'no commits yet' if lag is None else f'{lag:,}'}")
            worst = max(worst, lag or 0)
    except Exception as err:  # noqa: BLE001 - e.g. not authorised to read the group
        return Check(False, "consumer lag", f"could not read offsets: {str(err)[:200]}",
                     "grant the client Describe on the consumer groups")
    if worst > MAX_LAG:
        return Check(False, "consumer lag", ", ".join(parts), "start workers (up to DG_PARTITIONS) or check "
                     "why they do not keep up (`/distillguard/` on each worker)")
    return Check(True, "consumer lag", ", ".join(parts))


def check_clickhouse(settings: Settings, worker: dict | None) -> Check:
    from .clickhouse import MIGRATIONS, Store, StoreBusy, StoreUnavailable, first_line

    latest = MIGRATIONS[-1][0]
    where = mask(settings.clickhouse_dsn)
    fix_migrate = "run `distillguard migrate` (a worker with DG_SINK=1 migrates at start)"
    if settings.embedded_clickhouse and not Path(settings.clickhouse_dsn.removeprefix("chdb://")).exists():
        return Check(False, "clickhouse", f"no embedded store at {where} yet", fix_migrate)
    try:
        with Store(settings) as store:
            try:
                version = store.schema_version()
            except Exception:  # noqa: BLE001 - no schema_migrations table yet
                version = 0
    except StoreBusy:
        seen = (worker or {}).get("clickhouse") or {}
        if "schema_version" not in seen:
            return Check(False, "clickhouse", f"the embedded store {where} is held by a process that is not this "
                         "worker", "stop that process, or point DG_CLICKHOUSE_DSN at a ClickHouse server")
        version = seen["schema_version"]
        where += " (held by the running worker; its report)"
    except StoreUnavailable as err:
        return Check(False, "clickhouse", str(err).split(";")[0],
                     "start the ClickHouse server, or fix DG_CLICKHOUSE_DSN (unset it for the embedded store)")
    except Exception as err:  # noqa: BLE001 - auth, bad database, ...: one line
        return Check(False, "clickhouse", f"{where}: {first_line(err, 200)}", "check DG_CLICKHOUSE_DSN")
    if version < latest:
        return Check(False, "clickhouse", f"{where} answers; schema version {version} of {latest}", fix_migrate)
    return Check(True, "clickhouse", f"{where} answers; schema version {version} of {latest}")


def check_fingerprint_key(settings: Settings) -> Check:
    if settings.dev_fingerprint_key:
        return Check(False, "fingerprint key", "DG_FINGERPRINT_KEY is the development key",
                     "set DG_FINGERPRINT_KEY to a secret (e.g. `openssl rand -hex 32`) from your secret store, "
                     "the same on every worker")
    if len(settings.fingerprint_key) < 16:
        return Check(False, "fingerprint key", "DG_FINGERPRINT_KEY is shorter than 16 characters",
                     "use a longer secret (e.g. `openssl rand -hex 32`)")
    return Check(True, "fingerprint key", "set (not the development key)")


def check_detector_config(settings: Settings) -> Check:
    from distillguard.models import load_config

    path = settings.detector_config
    try:
        load_config(path or None)
    except (OSError, ValueError, TypeError) as err:
        return Check(False, "detector config", f"{path}: {str(err)[:200]}",
                     "fix the file's [detector] table (see README, Tuning) or unset DG_DETECTOR_CONFIG")
    return Check(True, "detector config", f"{path} loads" if path else "defaults (DG_DETECTOR_CONFIG unset)")


def check_native(settings: Settings) -> Check:
    from distillguard.models import native

    if not settings.native_text:
        return Check(True, "compiled hot path", "pure Python (DG_NATIVE_TEXT=0)")
    if not native.BUILT:
        return Check(False, "compiled hot path", "the compiled hot path is not built: event parsing, feature "
                     "extraction, state updates and cross-account linking run pure Python (the same results, slower)",
                     "install a C compiler and Python's headers (Debian: gcc python3-dev), then reinstall "
                     "(`make venv` after `rm .venv/.installed`, or `pip install -e .`)")
    return Check(True, "compiled hot path", "compiled (schemas/_eventcheck.c, models/_textscan.c, models/_statecore.c, "
                 "models/_linkprofile.c, models/_eventfront.c)")


def _worker_readiness(url: str, timeout: float) -> dict | None:
    import urllib.error
    import urllib.request

    import orjson

    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout) as r:
            return orjson.loads(r.read())
    except urllib.error.HTTPError as err:
        try:
            return orjson.loads(err.read())
        except ValueError:
            return {"ready": False, "answer": f"HTTP {err.code}"}
    except (OSError, ValueError):
        return None


def check_worker(url: str, readiness: dict | None) -> Check:
    if readiness is None:
        return Check(False, "worker", f"nothing answers at {url}/readyz",
                     "start a worker (`distillguard worker`), or pass --worker URL / set DG_WORKER_WEB_PORT")
    if not readiness.get("ready"):
        failing = [k for k, ok in (readiness.get("checks") or {}).items() if not ok]
        why = readiness.get("waiting_for") or ", ".join(failing) or readiness.get("answer", "not ready")
        return Check(False, "worker", f"{url} answers but is not ready ({why})",
                     "see the worker's log; it says what it waits for")
    return Check(True, "worker", f"{url} ready ({readiness.get('partitions')} partitions, sink "
                 f"{readiness.get('sink')})")


if __name__ == "__main__":
    from .cli import main
    sys.exit(main(["doctor", *sys.argv[1:]]))
