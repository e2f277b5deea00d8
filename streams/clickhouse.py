"""ClickHouse through clickhouse-connect, embedded (chDB) or server, one DSN.

``DG_CLICKHOUSE_DSN=chdb:///path`` opens the embedded engine in this process;
``http://user:pass@host:8123/db`` talks to a server. The code above this
module is the same for both.

An embedded chDB store can be opened by one process only. We take an
exclusive ``flock`` on ``<path>.lock`` before opening it, so a second process
gets a clear error naming the holder instead of chDB's opaque one.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from distillguard.models.rows import ROW_TYPES, Row, columns

from .errors import UserError
from .settings import Settings, mask

# Versioned, idempotent migrations: (version, statements). Never edit a
# shipped version; add a new one.
# Columns shared by the alert log and its latest-state table.
_ALERT_COLUMNS = """
            alert_id String,
            activity LowCardinality(String),
            detector LowCardinality(String),
            severity LowCardinality(String),
            score Float64,
            account_id String,
            account_ids Array(String),
            cluster_id Nullable(String),
            window_start DateTime64(3, 'UTC'),
            window_end DateTime64(3, 'UTC'),
            raised_at DateTime64(3, 'UTC'),
            event_count UInt64,
            reasons String,
            sample_event_ids Array(String),
            recommended_action LowCardinality(String),
            model Nullable(String),
            version UInt64"""

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE IF NOT EXISTS {db}.alert_events (""" + _ALERT_COLUMNS + """,
            inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
        ) ENGINE = MergeTree
        ORDER BY (account_id, raised_at, alert_id)
        TTL toDateTime(raised_at) + INTERVAL 400 DAY""",
        """CREATE TABLE IF NOT EXISTS {db}.alerts_latest (""" + _ALERT_COLUMNS + """
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY alert_id""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_latest_mv TO {db}.alerts_latest AS
        SELECT * EXCEPT inserted_at FROM {db}.alert_events""",
        """CREATE TABLE IF NOT EXISTS {db}.account_minute (
            account_id String,
            minute DateTime('UTC'),
            requests UInt64,
            input_tokens UInt64,
            output_tokens UInt64,
            errors UInt64
        ) ENGINE = SummingMergeTree
        ORDER BY (account_id, minute)
        TTL minute + INTERVAL 90 DAY""",
        """CREATE TABLE IF NOT EXISTS {db}.dlq_minute (
            minute DateTime('UTC'),
            reason LowCardinality(String),
            count UInt64
        ) ENGINE = SummingMergeTree
        ORDER BY (minute, reason)
        TTL minute + INTERVAL 90 DAY""",
    ]),
    (2, [
        # cross-account (hydra) clusters: a row per member whenever a cluster is scored with a new
        # membership or raises an alert event; the latest row per (cluster_id, account_id) is current
        """CREATE TABLE IF NOT EXISTS {db}.cluster_members (
            cluster_id String,
            account_id String,
            updated_at DateTime64(3, 'UTC'),
            score Float64,
            evidence String
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (cluster_id, account_id)
        TTL toDateTime(updated_at) + INTERVAL 400 DAY""",
    ]),
    (3, [
        # The sink inserts per-minute partial aggregates here; materialized views fan them out
        # into the minute sums (account_minute), minute sketches and the hourly rollup.
        """CREATE TABLE IF NOT EXISTS {db}.account_minute_in (
            account_id String,
            minute DateTime('UTC'),
            requests UInt64,
            input_tokens UInt64,
            output_tokens UInt64,
            errors UInt64,
            skeletons Array(UInt64),
            topics Array(UInt8)
        ) ENGINE = Null""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_minute_mv TO {db}.account_minute AS
        SELECT account_id, minute, requests, input_tokens, output_tokens, errors FROM {db}.account_minute_in""",
        """CREATE TABLE IF NOT EXISTS {db}.account_minute_states (
            account_id String,
            minute DateTime('UTC'),
            skeletons AggregateFunction(uniq, UInt64),
            topics AggregateFunction(uniq, UInt8)
        ) ENGINE = AggregatingMergeTree
        ORDER BY (account_id, minute)
        TTL minute + INTERVAL 90 DAY""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_minute_states_mv TO {db}.account_minute_states AS
        SELECT account_id, minute, uniqArrayState(skeletons) AS skeletons, uniqArrayState(topics) AS topics
        FROM {db}.account_minute_in GROUP BY account_id, minute""",
        """CREATE TABLE IF NOT EXISTS {db}.account_hour (
            account_id String,
            hour DateTime('UTC'),
            requests SimpleAggregateFunction(sum, UInt64),
            input_tokens SimpleAggregateFunction(sum, UInt64),
            output_tokens SimpleAggregateFunction(sum, UInt64),
            errors SimpleAggregateFunction(sum, UInt64),
            skeletons AggregateFunction(uniq, UInt64),
            topics AggregateFunction(uniq, UInt8)
        ) ENGINE = AggregatingMergeTree
        ORDER BY (account_id, hour)
        TTL hour + INTERVAL 400 DAY""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_hour_mv TO {db}.account_hour AS
        SELECT account_id, toStartOfHour(minute) AS hour, sum(requests) AS requests,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(errors) AS errors,
               uniqArrayState(skeletons) AS skeletons, uniqArrayState(topics) AS topics
        FROM {db}.account_minute_in GROUP BY account_id, hour""",
        # what the detector saw when it scored an account: feature value per name
        """CREATE TABLE IF NOT EXISTS {db}.account_features (
            account_id String,
            ts DateTime64(3, 'UTC'),
            score Float64,
            features Map(LowCardinality(String), Float64)
        ) ENGINE = MergeTree
        ORDER BY (account_id, ts)
        TTL toDateTime(ts) + INTERVAL 90 DAY""",
    ]),
    (4, [
        # --- integration (issue #14): the detector's blind spot per minute of worker time, for the report
        """CREATE TABLE IF NOT EXISTS {db}.content_minute (
            minute DateTime('UTC'),
            events UInt64,
            content_less UInt64
        ) ENGINE = SummingMergeTree
        ORDER BY minute
        TTL minute + INTERVAL 400 DAY""",
    ]),
    (5, [
        # analysts' triage decisions (feedback v1): the audit trail, append-only. Nothing updates or
        # deletes a row; a later decision on the same alert is a new row (latest by decided_at wins).
        """CREATE TABLE IF NOT EXISTS {db}.alert_feedback (
            feedback_id String,
            alert_id String,
            detector LowCardinality(String),
            account_ids Array(String),
            end_user_ids Array(String),
            decision LowCardinality(String),
            reason String,
            note String,
            analyst String,
            decided_at DateTime64(3, 'UTC'),
            applies_from DateTime64(3, 'UTC'),
            expires_at Nullable(DateTime64(3, 'UTC')),
            inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
        ) ENGINE = MergeTree
        ORDER BY (alert_id, decided_at, feedback_id)""",
    ]),
    (6, [
        # alert contract v1.1: the end users a finding names and the targeted protections. The
        # view is made again so that alerts_latest gets the new columns too (a view's SELECT *
        # is expanded when it is created).
        "DROP VIEW IF EXISTS {db}.alerts_latest_mv",
        "ALTER TABLE {db}.alert_events ADD COLUMN IF NOT EXISTS end_user_ids Array(String) AFTER version",
        "ALTER TABLE {db}.alert_events ADD COLUMN IF NOT EXISTS protections Array(LowCardinality(String)) "
        "AFTER end_user_ids",
        "ALTER TABLE {db}.alerts_latest ADD COLUMN IF NOT EXISTS end_user_ids Array(String) AFTER version",
        "ALTER TABLE {db}.alerts_latest ADD COLUMN IF NOT EXISTS protections Array(LowCardinality(String)) "
        "AFTER end_user_ids",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_latest_mv TO {db}.alerts_latest AS
        SELECT * EXCEPT inserted_at FROM {db}.alert_events""",
    ]),
]

# Column list of every table the sink inserts into: the fields of its row class (models/rows.py).
COLUMNS: dict[str, list[str]] = {t.TABLE: columns(t) for t in ROW_TYPES}


class StoreBusy(UserError):
    """The embedded store is held by another process."""


class StoreUnavailable(UserError):
    """The ClickHouse server did not answer or refused us; the message says which and how to fix it."""


_CAUSES = ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
           "timed out", "Authentication failed", "AUTHENTICATION_FAILED", "UNKNOWN_DATABASE", "certificate verify failed")


def connect_reason(err: BaseException) -> str:
    """A short cause of a failed connection (the driver's text carries whole retry chains)."""
    text = str(err)
    return next((cause for cause in _CAUSES if cause in text), first_line(err, 160))


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's text (ClickHouse errors carry the whole server trace)."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]


@contextmanager
def open_store(settings: Settings, migrate: bool = False) -> Iterator["Store"]:
    """The store for one command: opened (and migrated, if asked), always closed.
    A busy embedded store, an unreachable server or a failed migration is a ``UserError``."""
    store = Store(settings)
    try:
        if migrate:
            try:
                store.migrate()
            except ClickHouseError as err:
                raise UserError(f"ClickHouse migration failed at {store.describe()}: {first_line(err)}") from None
        yield store
    finally:
        store.close()


class Store:
    """A clickhouse-connect client plus, in embedded mode, the process lock."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.db = settings.clickhouse_database
        self._lock_fh = None
        dsn = settings.clickhouse_dsn
        if settings.embedded_clickhouse:
            path = Path(dsn.removeprefix("chdb://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock(path)
            # capped and with bounded caches: it shares the worker's process (DG_CLICKHOUSE_MAX_MEMORY_MB)
            self.client = clickhouse_connect.get_client(dsn=f"chdb://{path}",
                                                        chdb_options=self.settings.chdb_options())
        else:
            try:
                self.client = clickhouse_connect.get_client(dsn=dsn)
            except Exception as err:  # noqa: BLE001 - connection refused, DNS, auth: one line each
                raise StoreUnavailable(
                    f"ClickHouse at {mask(dsn)} did not answer ({connect_reason(err)}); start it, or fix "
                    "DG_CLICKHOUSE_DSN (unset it for the embedded store)") from None

    def _lock(self, path: Path) -> None:
        lock_path = path.with_name(path.name + ".lock")
        fh = open(lock_path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise StoreBusy(
                f"the embedded ClickHouse at {path} is in use by another process (pid {holder}, "
                "probably a running distillguard worker). Stop it first, or point DG_CLICKHOUSE_DSN "
                "at a ClickHouse server (http://user:pass@host:8123/db) to share the store.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied now."""
        c, db = self.client, self.db
        c.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        c.command(f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, "
                  "applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version")
        done = {r[0] for r in c.query(f"SELECT version FROM {db}.schema_migrations").result_rows}
        applied = []
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            for sql in statements:
                c.command(sql.format(db=db))
            c.insert(f"{db}.schema_migrations", [[version]], column_names=["version"])
            applied.append(version)
        return applied

    def insert(self, table: str, rows: list[list]) -> None:
        """Insert value lists (``Row.values()``, the sink topic's form) into ``table``."""
        if rows:
            self.client.insert(f"{self.db}.{table}", rows, column_names=COLUMNS[table])

    def insert_rows(self, rows: list[Row]) -> None:
        """Insert typed rows, one insert per table."""
        by_table: dict[str, list[list]] = {}
        for row in rows:
            by_table.setdefault(row.TABLE, []).append(row.values())
        for table, values in by_table.items():
            self.insert(table, values)

    def query(self, sql: str, parameters: dict | None = None):
        return self.client.query(sql, parameters=parameters)

    def describe(self) -> str:
        return mask(self.settings.clickhouse_dsn)

    def schema_version(self) -> int:
        """Highest migration applied (0: none); the code's is ``MIGRATIONS[-1][0]``."""
        rows = self.client.query(f"SELECT max(version) FROM {self.db}.schema_migrations").result_rows
        return int(rows[0][0] or 0)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        if self._lock_fh:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None
