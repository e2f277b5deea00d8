"""Static checks of the deployment files in infra/ (no Docker needed)."""

from __future__ import annotations

import glob
import json
import re
import shlex
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
COMPOSE = INFRA / "docker-compose.yml"
DOCKERFILE = INFRA / "Dockerfile"
GRAFANA = INFRA / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "distillguard.json"
SQL_DIR = INFRA / "sql"
PLUGIN = "grafana-clickhouse-datasource"

# Subcommands of the `distillguard` console script (streams/cli.py).
SUBCOMMANDS = {"worker", "replay", "simulate", "demo", "sql", "migrate", "topics"}

from distillguard.streams.settings import ENV_VARS  # noqa: E402  (the one declaration of the settings)

MACRO_TIME_FILTER = re.compile(r"\$__timeFilter\((\w+)\)")
MACRO_TIME_INTERVAL = re.compile(r"\$__timeInterval\((\w+)\)")
SQL_REF = re.compile(r"infra/sql/([\w.-]+\.sql)")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels() -> list[dict]:
    out = []
    for p in _dashboard()["panels"]:
        out.extend(p.get("panels", []) if p.get("type") == "row" else [p])
    return out


def _argv(value) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _dockerfile_instr(name: str) -> list[str]:
    """Arguments of every ``name`` instruction, continuation lines (``\\``) joined, comments left out."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            instructions.append(" ".join(current.split()))
            current = ""
    return [i.split(None, 1)[1] for i in instructions if i.split(None, 1)[0].upper() == name]


def _distillguard_services() -> dict[str, dict]:
    """Services built from infra/Dockerfile (or running its image)."""
    services = _compose()["services"]
    built = {n: s for n, s in services.items()
             if isinstance(s.get("build"), dict) and s["build"].get("dockerfile") == "infra/Dockerfile"}
    images = {s.get("image") for s in built.values()} - {None}
    built.update({n: s for n, s in services.items() if s.get("image") in images})
    return built


def _strip_sql(text: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    return " ".join(" ".join(lines).split()).rstrip(";").strip()


def _grafana_to_plain(sql: str) -> str:
    sql = MACRO_TIME_FILTER.sub(r"\1 >= now() - INTERVAL 1 DAY", sql)
    return MACRO_TIME_INTERVAL.sub(r"toStartOfInterval(\1, INTERVAL 5 MINUTE)", sql)


# --- docker-compose.yml -----------------------------------------------------

def test_compose_has_required_services():
    services = _compose()["services"]
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    assert PLUGIN in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    kafka_env = services["kafka"]["environment"]
    assert "broker" in kafka_env["KAFKA_PROCESS_ROLES"] and "controller" in kafka_env["KAFKA_PROCESS_ROLES"]
    for name in ("kafka", "clickhouse", "grafana"):
        assert "healthcheck" in services[name], name


def test_compose_runs_two_workers_with_sink():
    svcs = _distillguard_services()
    workers = {n: s for n, s in svcs.items() if _argv(s.get("command"))[:1] == ["worker"]}
    assert len(workers) >= 2, sorted(svcs)
    sinks = {n: str(s["environment"]["DG_SINK"]) for n, s in workers.items()}
    assert "1" in sinks.values(), sinks
    for name, svc in workers.items():
        assert "healthcheck" in svc, name
        deps = svc["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["clickhouse"]["condition"] == "service_healthy"
        assert deps["topic-init"]["condition"] == "service_completed_successfully"
        assert svc["environment"]["DG_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert "@clickhouse:8123/distillguard" in svc["environment"]["DG_CLICKHOUSE_DSN"]


def test_compose_commands_are_real_subcommands():
    svcs = _distillguard_services()
    assert svcs
    for name, svc in svcs.items():
        entry = _argv(svc.get("entrypoint"))
        cmd = _argv(svc.get("command"))
        if entry:  # overriding the entrypoint must still run distillguard
            assert entry[0] == "distillguard", name
            argv = entry[1:] + cmd
        else:
            argv = cmd
        if argv:  # empty -> Dockerfile CMD, checked below
            assert argv[0] in SUBCOMMANDS, (name, argv)


def test_compose_topic_init_creates_app_topics():
    """topic-init runs `distillguard topics` with the workers' settings, so partition counts and
    replication factor agree with what the workers declare (they used to differ: 4 vs 1)."""
    services = _compose()["services"]
    svc = services["topic-init"]
    assert _argv(svc.get("command")) == ["topics"] and not svc.get("entrypoint")
    assert svc["environment"].items() <= services["worker-1"]["environment"].items()
    for var in ("DG_TOPIC_REQUESTS", "DG_TOPIC_DLQ", "DG_TOPIC_ALERTS", "DG_PARTITIONS",
                "DG_ALERTS_PARTITIONS", "DG_DLQ_PARTITIONS", "DG_REPLICATION_FACTOR"):
        assert var in svc["environment"], var


def test_compose_sets_a_fingerprint_key_and_web_bind():
    env = _compose()["services"]["worker-1"]["environment"]
    assert "DG_FINGERPRINT_KEY" in env and "distillguard-dev-key" not in env["DG_FINGERPRINT_KEY"]
    assert env["DG_WORKER_WEB_BIND"] == "0.0.0.0"   # the web port is published from the container


def test_compose_env_vars_are_documented_settings():
    text = COMPOSE.read_text()
    used = set(re.findall(r"\bDG_[A-Z0-9_]+", text))
    assert used, "compose should configure the workers through DG_ settings"
    assert used <= set(ENV_VARS), sorted(used - set(ENV_VARS))


def test_compose_local_paths_exist():
    compose = _compose()
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = (INFRA / build["context"]).resolve()
            assert ctx == REPO, name
            assert (ctx / build["dockerfile"]).is_file(), name
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (INFRA / src).exists(), (name, src)
            else:
                assert src in (compose.get("volumes") or {}), (name, src)


# --- Dockerfile ---------------------------------------------------------------

def test_dockerfile_base_user_entrypoint():
    assert _dockerfile_instr("FROM")[0].startswith("python:3.11-slim")
    users = _dockerfile_instr("USER")
    assert users and users[-1] not in ("root", "0")
    assert json.loads(_dockerfile_instr("ENTRYPOINT")[-1]) == ["distillguard"]
    cmd = json.loads(_dockerfile_instr("CMD")[-1])
    assert cmd[0] in SUBCOMMANDS and cmd == ["worker"]
    assert any("pip install ." in r for r in _dockerfile_instr("RUN"))
    # the image builds the hot path's C extensions, and fails if they did not build
    assert any("gcc" in r and "native.BUILT" in r for r in _dockerfile_instr("RUN"))


def test_dockerfile_copied_paths_exist():
    copies = _dockerfile_instr("COPY")
    assert copies
    sources = []
    for instr in copies:
        parts = [p for p in shlex.split(instr) if not p.startswith("--")]
        sources.extend(parts[:-1])
    assert "pyproject.toml" in sources and "setup.py" in sources   # setup.py: the C extensions
    for src in sources:
        if any(ch in src for ch in "*?["):
            continue  # optional globs (e.g. README.md*) may match nothing
        assert (REPO / src).exists(), src
    for pkg in ("schemas", "models", "streams"):  # mapped by pyproject.toml
        assert pkg in sources, pkg


# --- Grafana --------------------------------------------------------------------

def test_datasource_provisioning_uses_clickhouse_plugin():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == PLUGIN
    assert ds["jsonData"]["host"] == "clickhouse"
    assert ds["jsonData"]["defaultDatabase"] == "distillguard"
    dash_uids = {p["datasource"]["uid"] for p in _panels()}
    assert dash_uids == {ds["uid"]}


def test_dashboard_provider_points_at_mounted_dir():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml").read_text())
    path = doc["providers"][0]["options"]["path"]
    mounts = _compose()["services"]["grafana"]["volumes"]
    assert any(m.split(":")[0] == "./grafana/dashboards" and m.split(":")[1] == path for m in mounts)


def test_every_panel_has_sql_file_and_macros():
    panels = _panels()
    assert len(panels) >= 5
    seen = set()
    for p in panels:
        refs = SQL_REF.findall(p.get("description", ""))
        assert len(refs) == 1, p["title"]
        sql_file = SQL_DIR / refs[0]
        assert sql_file.is_file(), sql_file
        seen.add(sql_file.name)
        (target,) = p["targets"]
        assert target["datasource"]["type"] == PLUGIN
        raw = target["rawSql"]
        assert MACRO_TIME_FILTER.search(raw), p["title"]
        if p["type"] == "timeseries":
            assert MACRO_TIME_INTERVAL.search(raw), p["title"]
        plain = sql_file.read_text()
        assert "$__" not in _strip_sql(plain), sql_file.name
        assert _strip_sql(plain) == _strip_sql(_grafana_to_plain(raw)), sql_file.name
    assert seen == {Path(f).name for f in glob.glob(str(SQL_DIR / "*.sql"))}


def test_dashboard_covers_required_tables():
    sql = " ".join(p["targets"][0]["rawSql"] for p in _panels())
    for table in ("alerts_latest", "account_minute", "dlq_minute", "cluster_members"):
        assert f"distillguard.{table}" in sql, table


# --- Kubernetes (infra/k8s) ----------------------------------------------------------

K8S = INFRA / "k8s"


def _k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _of_kind(kind: str) -> list[dict]:
    return [d for d in _k8s_docs() if d["kind"] == kind]


def test_k8s_env_names_are_declared_settings():
    from distillguard.streams.settings import SETTINGS
    declared = {s.env for s in SETTINGS}
    (config,) = _of_kind("ConfigMap")
    used = set(config["data"])
    deployments = _of_kind("Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {"distillguard-worker", "distillguard-sink"}
    for dep in deployments:
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        for env in c["env"]:
            used.add(env["name"])
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used.add(ref["key"])
        assert c["args"][0] in SUBCOMMANDS | {"doctor", "topics"}
    assert used <= declared, sorted(used - declared)
    assert config["data"]["DG_WORKER_WEB_BIND"] == "0.0.0.0"   # probes come from outside the pod


def test_k8s_probes_hit_the_worker_health_paths():
    from distillguard.streams.health import LIVE_PATH, PROBE_PATHS, READY_PATH
    from distillguard.streams.settings import load_settings
    (config,) = _of_kind("ConfigMap")
    settings = load_settings(config["data"])
    for dep in _of_kind("Deployment"):
        spec = dep["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["web"] == settings.worker_web_port
        assert c["livenessProbe"]["httpGet"]["path"] == LIVE_PATH
        assert c["readinessProbe"]["httpGet"]["path"] == READY_PATH
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in c:
                assert c[probe]["httpGet"]["path"] in PROBE_PATHS and c[probe]["httpGet"]["port"] in ports
        # the kubelet's SIGKILL comes after the worker's own bounded graceful stop
        assert spec["terminationGracePeriodSeconds"] > settings.shutdown_timeout_s
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]


def test_k8s_every_deployment_has_a_disruption_budget():
    budgets = _of_kind("PodDisruptionBudget")
    for dep in _of_kind("Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
                    and b["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component")]
        assert len(matching) == 1, dep["metadata"]["name"]
