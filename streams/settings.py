"""All runtime settings, from environment variables with documented defaults.

One module so that the worker, the CLI, the tests and the docker-compose file
agree on names. ``describe()`` prints them at worker start with secrets masked.
"""
from __future__ import annotations

import gc
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# name -> (default, meaning). README's settings table mirrors this.
ENV_VARS: dict[str, tuple[str, str]] = {
    "DG_DATA_DIR": (str(REPO_ROOT / "var"), "runtime state: broker data, embedded ClickHouse, bench output"),
    "DG_KAFKA_BOOTSTRAP": ("127.0.0.1:19092", "Kafka bootstrap servers"),
    "DG_TOPIC_REQUESTS": ("llm.requests", "request events in (contract v1)"),
    "DG_TOPIC_DLQ": ("llm.requests.dlq", "bad request events, original bytes + reason headers"),
    "DG_TOPIC_ALERTS": ("llm.alerts", "alert events out (contract v1)"),
    "DG_TOPIC_SINK": ("distillguard.sink", "internal: rows on their way to ClickHouse"),
    "DG_PARTITIONS": ("4", "partitions of the request and sink topics"),
    "DG_APP_ID": ("distillguard", "Faust app id = Kafka consumer group"),
    "DG_CLICKHOUSE_DSN": ("", "ClickHouse: chdb:///path (embedded, default DG_DATA_DIR/clickhouse) or http://user:pass@host:8123/db"),
    "DG_CLICKHOUSE_DATABASE": ("distillguard", "database for all tables"),
    "DG_SINK": ("1", "1 = this worker also runs the ClickHouse sink, 0 = not"),
    "DG_SINK_BATCH_ROWS": ("5000", "rows per ClickHouse insert at most"),
    "DG_SINK_FLUSH_S": ("1.0", "seconds between inserts at most"),
    "DG_BATCH_MAX": ("1000", "events per processing batch in the worker"),
    "DG_BATCH_WITHIN_S": ("0.5", "seconds to wait for a batch to fill"),
    "DG_MAX_EVENT_BYTES": ("262144", "larger request events go to the DLQ"),
    "DG_WORKER_WEB_PORT": ("6066", "Faust web port of the worker"),
    "DG_LOG_LEVEL": ("info", "worker log level: debug, info, warn, error"),
    "DG_FINGERPRINT_KEY": ("distillguard-dev-key", "HMAC key for prompt fingerprints (set a secret in production)"),
    "DG_DETECTOR_CONFIG": ("", "optional TOML file overriding detector thresholds"),
    "DG_TOPIC_OCSF": ("", "if set, the worker also publishes every alert as an OCSF Detection Finding here"),
    "DG_TOPIC_LITELLM": ("", "if set, LiteLLM StandardLoggingPayload records in; mapped to DG_TOPIC_REQUESTS"),
    "DG_TOPIC_OTEL": ("", "if set, OpenTelemetry GenAI spans (OTLP/JSON) in; mapped to DG_TOPIC_REQUESTS"),
    "DG_TOPIC_LINKS": ("", "internal: link observations keyed by link key (cross-account); default <DG_APP_ID>.links"),
    "DG_TOPIC_CLUSTER": ("", "internal: account-pair evidence, one partition (cross-account); default <DG_APP_ID>.cluster"),
    # --- console settings ---
    "DG_TOPIC_FEEDBACK": ("distillguard.feedback", "analysts' triage decisions (feedback v1): the console writes, every worker reads all"),
    "DG_CONSOLE_HOST": ("127.0.0.1", "address the console binds to (loopback: only this machine)"),
    "DG_CONSOLE_PORT": ("8470", "port of the console"),
    "DG_CONSOLE_TOKEN": ("", "the secret analysts sign in to the console with; the console refuses to start without it (--dev makes a one-off one)"),
    # --- end console settings ---
}

_SECRET = re.compile(r"(://[^:/@]+:)([^@]+)(@)")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    kafka_bootstrap: str
    topic_requests: str
    topic_dlq: str
    topic_alerts: str
    topic_sink: str
    partitions: int
    app_id: str
    clickhouse_dsn: str
    clickhouse_database: str
    sink: bool
    sink_batch_rows: int
    sink_flush_s: float
    batch_max: int
    batch_within_s: float
    max_event_bytes: int
    worker_web_port: int
    log_level: str
    fingerprint_key: str
    detector_config: str
    topic_ocsf: str = ""
    topic_litellm: str = ""
    topic_otel: str = ""
    topic_links: str = "distillguard.links"
    topic_cluster: str = "distillguard.cluster"
    # --- console settings ---
    topic_feedback: str = "distillguard.feedback"
    console_host: str = "127.0.0.1"
    console_port: int = 8470
    console_token: str = ""
    # --- end console settings ---

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb:")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def _value(env: dict[str, str], name: str) -> str:
    return env.get(name) or ENV_VARS[name][0]


def _number(env: dict[str, str], name: str, kind: type):
    raw = _value(env, name)
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    data_dir = Path(_value(env, "DG_DATA_DIR")).resolve()
    dsn = _value(env, "DG_CLICKHOUSE_DSN") or f"chdb://{data_dir / 'clickhouse'}"
    if not dsn.startswith(("chdb:", "http://", "https://")):
        raise SettingsError(f"DG_CLICKHOUSE_DSN={mask(dsn)!r} must start with chdb://, http:// or https://")
    sink = _value(env, "DG_SINK").lower()
    if sink not in ("0", "1", "true", "false", "yes", "no"):
        raise SettingsError(f"DG_SINK={sink!r} must be 1 or 0")
    level = _value(env, "DG_LOG_LEVEL").lower()
    if level not in ("debug", "info", "warn", "error"):
        raise SettingsError(f"DG_LOG_LEVEL={level!r} must be debug, info, warn or error")
    settings = Settings(
        data_dir=data_dir,
        kafka_bootstrap=_value(env, "DG_KAFKA_BOOTSTRAP"),
        topic_requests=_value(env, "DG_TOPIC_REQUESTS"),
        topic_dlq=_value(env, "DG_TOPIC_DLQ"),
        topic_alerts=_value(env, "DG_TOPIC_ALERTS"),
        topic_sink=_value(env, "DG_TOPIC_SINK"),
        partitions=_number(env, "DG_PARTITIONS", int),
        app_id=_value(env, "DG_APP_ID"),
        clickhouse_dsn=dsn,
        clickhouse_database=_value(env, "DG_CLICKHOUSE_DATABASE"),
        sink=sink in ("1", "true", "yes"),
        sink_batch_rows=_number(env, "DG_SINK_BATCH_ROWS", int),
        sink_flush_s=_number(env, "DG_SINK_FLUSH_S", float),
        batch_max=_number(env, "DG_BATCH_MAX", int),
        batch_within_s=_number(env, "DG_BATCH_WITHIN_S", float),
        max_event_bytes=_number(env, "DG_MAX_EVENT_BYTES", int),
        worker_web_port=_number(env, "DG_WORKER_WEB_PORT", int),
        log_level=level,
        fingerprint_key=_value(env, "DG_FINGERPRINT_KEY"),
        detector_config=_value(env, "DG_DETECTOR_CONFIG"),
        topic_ocsf=_value(env, "DG_TOPIC_OCSF"),
        topic_litellm=_value(env, "DG_TOPIC_LITELLM"),
        topic_otel=_value(env, "DG_TOPIC_OTEL"),
        # internal topics of one app (like Faust's changelogs): named after the app id by default
        topic_links=_value(env, "DG_TOPIC_LINKS") or f"{_value(env, 'DG_APP_ID')}.links",
        topic_cluster=_value(env, "DG_TOPIC_CLUSTER") or f"{_value(env, 'DG_APP_ID')}.cluster",
        # --- console settings ---
        topic_feedback=_value(env, "DG_TOPIC_FEEDBACK"),
        console_host=_value(env, "DG_CONSOLE_HOST"),
        console_port=_number(env, "DG_CONSOLE_PORT", int),
        console_token=_value(env, "DG_CONSOLE_TOKEN"),
        # --- end console settings ---
    )
    if settings.partitions < 1:
        raise SettingsError("DG_PARTITIONS must be at least 1")
    return settings


def mask(text: str) -> str:
    """Hide the password part of a URL-like string."""
    return _SECRET.sub(r"\1***\3", text)


def describe(settings: Settings) -> str:
    """One line per setting, secrets masked, for the worker's start banner."""
    lines = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "console_token":
            value = "***" if value else "(not set)"
        elif f.name == "fingerprint_key":
            value = "***" if value != ENV_VARS["DG_FINGERPRINT_KEY"][0] else f"{value} (development default!)"
        lines.append(f"  {f.name:<20} {mask(str(value))}")
    return "\n".join(lines)


def tune_gc() -> None:
    """Per-event objects here are short-lived and acyclic, so the cyclic collector mostly
    re-scans what start-up built (modules, River trees): leave those out (``freeze``) and
    collect the young generation every 10,000 allocations instead of 700 (callgrind: -5% of
    the instructions of a replay)."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
