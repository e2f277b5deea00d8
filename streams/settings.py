"""All runtime settings, from environment variables with documented defaults.

Each setting is declared ONCE, as a field of ``Settings``: its environment
name, default, parser, validation, doc line and secret flag live together in
``setting(...)``. Everything else is generated from that declaration: the
loader (``load_settings``), the start banner (``describe``, secrets masked),
``ENV_VARS`` (name -> (default, doc)) and the README table
(``python -m distillguard.streams.settings`` prints it; a test keeps README in step).

Imports only the standard library: the CLI reads settings before it knows
which command runs, and ``distillguard --help`` must stay fast.
"""
from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_FINGERPRINT_KEY = "distillguard-dev-key"


class SettingsError(UserError, ValueError):
    """A setting has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Setting:
    """How one environment variable becomes one ``Settings`` attribute."""
    env: str
    default: str                      # as it would be written in the environment; "" = unset
    doc: str
    parse: Callable[[str], Any] = str  # raises ValueError on bad input
    kind: str = "text"                # shown in errors: "a whole number", ...
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    secret: bool = False
    shown_default: str | None = None  # README text when the default is computed
    derive: Callable[[dict], Any] | None = None  # default computed from settings declared earlier


def setting(env: str, default: str, doc: str, **options) -> Any:
    """A ``Settings`` field read from ``env``; see ``Setting`` for the options."""
    return field(metadata={"setting": Setting(env, default, doc, **options)})


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(raw)


def _file(raw: str) -> str:
    if not Path(raw).is_file():
        raise ValueError(raw)
    return raw


def _dsn(raw: str) -> str:
    if not raw.startswith(("chdb:", "http://", "https://")):
        raise ValueError(raw)
    return raw


_SECRET = re.compile(r"(://[^:/@]+:)([^@]+)(@)")


def mask(text: str) -> str:
    """Hide the password part of a URL-like string."""
    return _SECRET.sub(r"\1***\3", text)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = setting(
        "DG_DATA_DIR", str(REPO_ROOT / "var"), "runtime state: broker data, embedded ClickHouse, demo and bench output",
        parse=lambda raw: Path(raw).resolve(), shown_default="`var/`")
    kafka_bootstrap: str = setting("DG_KAFKA_BOOTSTRAP", "127.0.0.1:19092", "Kafka bootstrap servers")
    topic_requests: str = setting("DG_TOPIC_REQUESTS", "llm.requests", "request events in")
    topic_dlq: str = setting("DG_TOPIC_DLQ", "llm.requests.dlq",
                             "bad events: original bytes, headers `dg-reason`, `dg-detail`, `dg-source`")
    topic_alerts: str = setting("DG_TOPIC_ALERTS", "llm.alerts", "alert events out")
    topic_sink: str = setting("DG_TOPIC_SINK", "distillguard.sink", "internal: rows on their way to ClickHouse")
    partitions: int = setting("DG_PARTITIONS", "4", "partitions of the request, sink and links topics",
                              parse=int, kind="whole number", minimum=1)
    replication_factor: int = setting(
        "DG_REPLICATION_FACTOR", "1", "replication factor of every topic distillguard creates, Faust's included "
        "(`doctor` expects it); managed clusters want 3", parse=int, kind="whole number", minimum=1)
    alerts_partitions: int = setting("DG_ALERTS_PARTITIONS", "1", "partitions of the alerts topic (and the OCSF copy)",
                                     parse=int, kind="whole number", minimum=1)
    dlq_partitions: int = setting("DG_DLQ_PARTITIONS", "1", "partitions of the dead-letter topic",
                                  parse=int, kind="whole number", minimum=1)
    app_id: str = setting("DG_APP_ID", "distillguard", "Faust app id (consumer group); the sink uses `<id>-sink`")
    clickhouse_dsn: str = setting(
        "DG_CLICKHOUSE_DSN", "", "embedded chDB (`chdb:///path`), or `http://user:pass@host:8123/db` for a server",
        parse=_dsn, kind="DSN starting with chdb://, http:// or https://", secret=True,
        shown_default="`chdb://$DG_DATA_DIR/clickhouse`", derive=lambda s: f"chdb://{s['data_dir'] / 'clickhouse'}")
    clickhouse_database: str = setting("DG_CLICKHOUSE_DATABASE", "distillguard", "database of all tables")
    sink: bool = setting("DG_SINK", "1", "1: this worker also runs the ClickHouse sink; 0: not",
                         parse=_bool, kind="1 or 0")
    sink_process: bool = setting(
        "DG_SINK_PROCESS", "1", "with the embedded store, 1: the worker runs the sink as a supervised child process "
        "(`distillguard sink`; chDB's memory apart from the worker's, restarted with backoff if it dies); 0: a "
        "thread in the worker. With a ClickHouse server the sink is always a thread", parse=_bool, kind="1 or 0")
    sink_batch_rows: int = setting("DG_SINK_BATCH_ROWS", "5000", "rows per insert at most",
                                   parse=int, kind="whole number", minimum=1)
    sink_flush_s: float = setting("DG_SINK_FLUSH_S", "1.0", "seconds between inserts at most",
                                  parse=float, kind="number", minimum=0)
    sink_stall_s: float = setting(
        "DG_SINK_STALL_S", "60", "seconds records may wait on the sink topic with none read and no offset committed "
        "before the sink closes its consumer and makes it again (a consumer that stopped fetching, e.g. after a "
        "broker restart); 0: never", parse=float, kind="number", minimum=0)
    batch_max: int = setting("DG_BATCH_MAX", "1000", "events per processing batch",
                             parse=int, kind="whole number", minimum=1)
    batch_backlog_max: int = setting(
        "DG_BATCH_BACKLOG_MAX", "4000", "events per processing batch at most when more wait: above DG_BATCH_MAX, a "
        "full batch also takes the events already queued, without waiting for more, up to this many (faster behind "
        "a backlog; a worker that keeps up sees batches of DG_BATCH_MAX); at or below DG_BATCH_MAX: off",
        parse=int, kind="whole number", minimum=1)
    batch_within_s: float = setting("DG_BATCH_WITHIN_S", "0.5", "seconds to wait for a batch to fill",
                                    parse=float, kind="number", minimum=0)
    max_event_bytes: int = setting("DG_MAX_EVENT_BYTES", "262144", "larger events go to the DLQ as `too_large`",
                                   parse=int, kind="whole number", minimum=1)
    worker_web_bind: str = setting("DG_WORKER_WEB_BIND", "127.0.0.1",
                                   "address the worker's web server listens on; `0.0.0.0` = every interface "
                                   "(a container that publishes the port)")
    worker_web_port: int = setting(
        "DG_WORKER_WEB_PORT", "6066", "worker web port: `/distillguard/` counters (JSON), `/metrics`, "
        "`/livez`, `/readyz`", parse=int, kind="whole number", minimum=1)
    log_level: str = setting("DG_LOG_LEVEL", "info", "`debug`, `info`, `warn`, `error`",
                             parse=str.lower, choices=("debug", "info", "warn", "error"))
    log_format: str = setting("DG_LOG_FORMAT", "text", "`text`, or `json`: one object per line with "
                              "`time`, `level`, `component`, `message` (and `counts` where a line has them)",
                              parse=str.lower, choices=("text", "json"))
    startup_timeout_s: float = setting(
        "DG_STARTUP_TIMEOUT_S", "300", "the worker waits this long for the broker (and a ClickHouse server), "
        "retrying with backoff, then exits 2 naming what is missing", parse=float, kind="number", minimum=0)
    shutdown_timeout_s: float = setting(
        "DG_SHUTDOWN_TIMEOUT_S", "30", "on SIGTERM the worker finishes its batch, flushes, commits and closes "
        "the store within this many seconds, else exits 1", parse=float, kind="number", minimum=1)
    fingerprint_key: str = setting("DG_FINGERPRINT_KEY", DEV_FINGERPRINT_KEY,
                                   "key of the prompt fingerprints; set a secret in production",
                                   secret=True, shown_default="development key")
    dev: bool = setting("DG_DEV", "0", "1: a development or demo run, the worker may start with the development "
                        "fingerprint key (same as `worker --dev`)", parse=_bool, kind="1 or 0")
    kafka_security_protocol: str = setting(
        "DG_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, for every "
        "Kafka client", parse=str.upper, choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    kafka_sasl_mechanism: str = setting("DG_KAFKA_SASL_MECHANISM", "PLAIN",
                                        "SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`",
                                        parse=str.upper, choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    kafka_sasl_username: str = setting("DG_KAFKA_SASL_USERNAME", "", "SASL user name")
    kafka_sasl_password: str = setting("DG_KAFKA_SASL_PASSWORD", "", "SASL password (masked when printed)",
                                       secret=True)
    kafka_ssl_ca_file: str = setting("DG_KAFKA_SSL_CA_FILE", "", "PEM file of the CA(s) that signed the brokers' "
                                     "certificates; empty = the system's CAs", parse=_file, kind="readable file")
    kafka_ssl_cert_file: str = setting("DG_KAFKA_SSL_CERT_FILE", "", "PEM client certificate, for brokers that "
                                       "require mutual TLS", parse=_file, kind="readable file")
    kafka_ssl_key_file: str = setting("DG_KAFKA_SSL_KEY_FILE", "", "PEM private key of `DG_KAFKA_SSL_CERT_FILE`",
                                      parse=_file, kind="readable file")
    kafka_ssl_key_password: str = setting("DG_KAFKA_SSL_KEY_PASSWORD", "", "password of an encrypted "
                                          "`DG_KAFKA_SSL_KEY_FILE` (masked when printed)", secret=True)
    enforce_throttle_per_minute: float = setting(
        "DG_ENFORCE_THROTTLE_PER_MINUTE", "6", "enforcement hook: requests per minute left to a throttled caller",
        parse=float, kind="number", minimum=0)
    enforce_output_token_cap: int = setting("DG_ENFORCE_OUTPUT_TOKEN_CAP", "256", "enforcement hook: `max_tokens` "
                                            "under the `cap_output_tokens` protection", parse=int,
                                            kind="whole number", minimum=1)
    enforce_verification_step: str = setting("DG_ENFORCE_VERIFICATION_STEP", "identity verification",
                                             "enforcement hook: the step `step_up_verification` asks for")
    adapter_dedupe_ids: int = setting("DG_ADAPTER_DEDUPE_IDS", "100000", "event ids the gateway adapters remember, "
                                      "to forward a repeated one once", parse=int, kind="whole number", minimum=0)
    otel_join_timeout_s: float = setting("DG_OTEL_JOIN_TIMEOUT_S", "5", "seconds an OpenTelemetry span without its "
                                         "prompt waits for its log records (then it goes on content-less)",
                                         parse=float, kind="number", minimum=0)
    content_less_warn_share: float = setting("DG_CONTENT_LESS_WARN_SHARE", "0.2", "warn when more than this share "
                                             "of the events read carries no prompt text", parse=float,
                                             kind="number", minimum=0)
    otlp_host: str = setting("DG_OTLP_HOST", "127.0.0.1", "`otlp-receiver`: address to listen on (`0.0.0.0` for "
                             "every interface)")
    otlp_port: int = setting("DG_OTLP_PORT", "4318", "`otlp-receiver`: OTLP/HTTP port", parse=int,
                             kind="whole number", minimum=1)
    clickhouse_max_memory_mb: int = setting(
        "DG_CLICKHOUSE_MAX_MEMORY_MB", "1024", "embedded ClickHouse: memory cap (`max_server_memory_usage`; 0 = "
        "chDB's default, 90% of RAM); inserts over it fail and the sink retries", parse=int, kind="whole number",
        minimum=0)
    clickhouse_cache_mb: int = setting("DG_CLICKHOUSE_CACHE_MB", "64", "embedded ClickHouse: size of each of its "
                                       "mark and primary-index caches (chDB's default: 5 GB each)", parse=int,
                                       kind="whole number", minimum=1)
    native_text: bool = setting("DG_NATIVE_TEXT", "1", "1: event parsing, feature extraction, state "
                                "updates and cross-account linking (observer and linker) use the compiled hot path (`schemas/_eventcheck.c`, "
                                "`models/_textscan.c`, `models/_statecore.c`, `models/_linkprofile.c`, `models/_eventfront.c`, built by the "
                                "install) when it is built; 0: pure Python (the same results, slower)", parse=_bool, kind="1 or 0")
    tracemalloc: bool = setting("DG_TRACEMALLOC", "0", "1: trace Python allocations, largest files on the status "
                                "page (slow; diagnosis only)", parse=_bool, kind="1 or 0")
    topic_feedback: str = setting("DG_TOPIC_FEEDBACK", "distillguard.feedback", "analysts' triage decisions "
                                  "(feedback v1): the console writes, every worker reads all")
    console_host: str = setting("DG_CONSOLE_HOST", "127.0.0.1", "address the console binds to (loopback: only "
                                "this machine)")
    console_port: int = setting("DG_CONSOLE_PORT", "8470", "port of the console", parse=int, kind="whole number",
                                minimum=1)
    console_token: str = setting("DG_CONSOLE_TOKEN", "", "the secret analysts sign in to the console with; the "
                                 "console refuses to start without it (`--dev` makes a one-off one)", secret=True)
    detector_config: str = setting("DG_DETECTOR_CONFIG", "", "TOML file overriding detector thresholds (see Tuning)")
    topic_ocsf: str = setting("DG_TOPIC_OCSF", "", "also publish every alert event as an OCSF Detection Finding here",
                              shown_default="— (off)")
    topic_litellm: str = setting("DG_TOPIC_LITELLM", "", "LiteLLM `StandardLoggingPayload` records in; mapped to "
                                 "`DG_TOPIC_REQUESTS`", shown_default="— (off)")
    topic_otel: str = setting("DG_TOPIC_OTEL", "", "OpenTelemetry GenAI spans and log records (OTLP/JSON exports) in; mapped to "
                              "`DG_TOPIC_REQUESTS`", shown_default="— (off)")
    # internal topics of one app (like Faust's changelogs): named after the app id by default
    topic_links: str = setting("DG_TOPIC_LINKS", "", "internal: link observations, batched per detect batch, "
                               "partitioned by murmur2(link key) (cross-account)",
                               shown_default="`<DG_APP_ID>.links`", derive=lambda s: f"{s['app_id']}.links")
    topic_cluster: str = setting("DG_TOPIC_CLUSTER", "", "internal: account-pair evidence, one partition "
                                 "(cross-account)", shown_default="`<DG_APP_ID>.cluster`",
                                 derive=lambda s: f"{s['app_id']}.cluster")
    cluster_wire: int = setting(
        "DG_CLUSTER_WIRE", "2", "wire version of the evidence messages the link agent writes (readers take both): "
        "2 names each account summary once per message; 1 is what workers before it read, for a rolling "
        "upgrade from them", parse=int, kind="1 or 2", choices=("1", "2"))

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb:")

    @property
    def dev_fingerprint_key(self) -> bool:
        return self.fingerprint_key == DEV_FINGERPRINT_KEY

    def chdb_options(self) -> dict[str, int]:
        """Server settings of the embedded engine (clickhouse-connect's ``chdb_options``): its
        memory capped and its caches bounded, since it shares the worker's process."""
        cache = self.clickhouse_cache_mb << 20
        out = {name: cache for name in ("mark_cache_size", "primary_index_cache_size", "index_mark_cache_size",
                                        "index_uncompressed_cache_size")}
        if self.clickhouse_max_memory_mb:
            out["max_server_memory_usage"] = self.clickhouse_max_memory_mb << 20
        return out


SETTINGS: tuple[Setting, ...] = tuple(f.metadata["setting"] for f in fields(Settings))
_ATTR = {f.metadata["setting"].env: f.name for f in fields(Settings)}
# name -> (default, meaning), generated from the declaration above
ENV_VARS: dict[str, tuple[str, str]] = {s.env: (s.default, s.doc) for s in SETTINGS}


def _parse(spec: Setting, raw: str) -> Any:
    shown = mask(raw) if spec.secret else raw
    if spec.choices and raw.lower() not in (c.lower() for c in spec.choices):
        raise SettingsError(f"{spec.env}={shown!r} must be one of: {', '.join(spec.choices)}")
    try:
        value = spec.parse(raw)
    except ValueError:
        raise SettingsError(f"{spec.env}={shown!r} is not a valid {spec.kind}") from None
    if spec.minimum is not None and value < spec.minimum:
        raise SettingsError(f"{spec.env} must be at least {spec.minimum:g} (got {shown})")
    return value


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        spec: Setting = f.metadata["setting"]
        raw = env.get(spec.env) or spec.default
        if raw:
            values[f.name] = _parse(spec, raw)
        else:
            values[f.name] = spec.derive(values) if spec.derive else ""
    return _checked(Settings(**values))


def _checked(s: Settings) -> Settings:
    """Rules that tie several settings together."""
    if s.kafka_security_protocol.startswith("SASL") and not s.kafka_sasl_username:
        raise SettingsError(f"DG_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs DG_KAFKA_SASL_USERNAME "
                            "and DG_KAFKA_SASL_PASSWORD")
    if bool(s.kafka_ssl_cert_file) != bool(s.kafka_ssl_key_file):
        raise SettingsError("DG_KAFKA_SSL_CERT_FILE and DG_KAFKA_SSL_KEY_FILE go together (mutual TLS)")
    if 0 < s.clickhouse_max_memory_mb < 256:
        raise SettingsError("DG_CLICKHOUSE_MAX_MEMORY_MB must be 0 (chDB's default) or at least 256")
    if (s.kafka_ssl_ca_file or s.kafka_ssl_cert_file) and not s.kafka_security_protocol.endswith("SSL"):
        raise SettingsError(f"DG_KAFKA_SSL_* files are set but DG_KAFKA_SECURITY_PROTOCOL="
                            f"{s.kafka_security_protocol}; use SSL or SASL_SSL")
    return s


def load_memory_settings(env: dict[str, str] | None = None) -> Settings:
    """The settings, for the memory code (``streams/memory.py``, the store) that reads only the
    ``DG_CLICKHOUSE_MAX_MEMORY_MB``, ``DG_CLICKHOUSE_CACHE_MB`` and ``DG_TRACEMALLOC`` ones."""
    return load_settings(env)


def describe(settings: Settings) -> str:
    """One line per setting, secrets masked, for the worker's start banner."""
    lines = []
    for f in fields(settings):
        spec: Setting = f.metadata["setting"]
        value = str(getattr(settings, f.name))
        if spec.env == "DG_FINGERPRINT_KEY":
            value = f"{value} (development default!)" if settings.dev_fingerprint_key else "***"
        elif spec.secret:
            value = mask(value) if "://" in value else ("***" if value else "")
        lines.append(f"  {f.name:<20} {value}")
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's settings table, generated from the declaration."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for spec in SETTINGS:
        default = spec.shown_default or (f"`{spec.default}`" if spec.default else "—")
        rows.append(f"| `{spec.env}` | {default} | {spec.doc} |")
    return "\n".join(rows)


def attribute_of(env_name: str) -> str:
    """The ``Settings`` attribute read from ``env_name`` (KeyError if none)."""
    return _ATTR[env_name]


def tune_gc() -> None:
    """Per-event objects here are short-lived and acyclic, so the cyclic collector mostly
    re-scans what start-up built (modules, River trees) and the batch in hand: leave the first
    out (``freeze``) and collect the young generation every 50,000 allocations instead of 700.
    A young collection traverses every container still alive, and a 1,000-event batch keeps
    ~6,000 alive until it is processed: at 10,000 nearly every collection walked a whole batch.
    The detector's loop over 50,000 default events (gc callbacks, same run): 7.6 µs per event
    in the collector at 10,000, 2.5 at 50,000 (and -5% of a replay's instructions at 10,000
    against 700, callgrind)."""
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


if __name__ == "__main__":   # python -m distillguard.streams.settings > table for README
    sys.stdout.write(markdown_table() + "\n")
