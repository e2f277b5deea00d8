"""The embedded ClickHouse store: migrations are idempotent, one process owns
it and a second one gets a clear error."""
import subprocess
import sys
import time

from distillguard.streams.clickhouse import MIGRATIONS, Store
from distillguard.streams.settings import load_settings

CLI = [sys.executable, "-m", "distillguard.streams.cli"]


def test_migrations_apply_once(tmp_path):
    store = Store(load_settings({"DG_DATA_DIR": str(tmp_path)}))
    try:
        assert store.migrate() == [v for v, _ in MIGRATIONS]
        assert store.migrate() == []
        tables = {r[0] for r in store.query("SHOW TABLES FROM distillguard").result_rows}
        assert {"alert_events", "alerts_latest", "account_minute", "dlq_minute", "cluster_members",
                "account_minute_states", "account_hour", "account_features"} <= tables
    finally:
        store.close()


def test_minute_rows_fan_out_to_sums_sketches_and_the_hourly_rollup(tmp_path):
    store = Store(load_settings({"DG_DATA_DIR": str(tmp_path)}))
    try:
        store.migrate()
        # two partial rows of one minute (two batches), and one of the next hour; recent
        # times, since rows older than a table's TTL are dropped
        h = int(time.time()) // 3600 * 3600 - 7200
        store.insert("account_minute_in", [["a", h, 2, 10, 20, 0, [1, 2], [3]],
                                           ["a", h, 1, 5, 5, 1, [2, 9], [4]],
                                           ["a", h + 3660, 4, 1, 1, 0, [1], [3]]])
        db = store.db
        q = lambda sql: store.query(sql).result_rows
        assert q(f"SELECT sum(requests), sum(errors) FROM {db}.account_minute") == [(7, 1)]
        assert q(f"SELECT uniqMerge(skeletons), uniqMerge(topics) FROM {db}.account_minute_states "
                 f"WHERE minute = toDateTime({h})") == [(3, 2)]
        assert q(f"SELECT toUnixTimestamp(hour), sum(requests), uniqMerge(skeletons) FROM {db}.account_hour "
                 "GROUP BY hour ORDER BY hour") == [(h, 3, 3), (h + 3600, 4, 1)]
    finally:
        store.close()


def test_second_process_gets_a_clear_error_while_the_store_is_held(tmp_path):
    env = {"DG_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    store = Store(load_settings(env))
    try:
        proc = subprocess.run([*CLI, "sql", "SELECT 1"], capture_output=True, text=True, timeout=120,
                              env={**env, "PYTHONHASHSEED": "0"})
    finally:
        store.close()
    assert proc.returncode == 2
    assert "in use by another process" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([*CLI, "sql", "SELECT 1 AS one"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "one" in proc.stdout and "(1 row)" in proc.stdout


def test_sql_error_is_reported_plainly(tmp_path):
    proc = subprocess.run([*CLI, "sql", "SELECT nope FROM nowhere"], capture_output=True, text=True,
                          timeout=120, env={"DG_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "error" in proc.stderr.lower() and "Traceback" not in proc.stderr


def test_the_embedded_engines_allocator_gives_free_pages_back(tmp_path):
    """chDB allocates with jemalloc (out of mallinfo's and malloc_trim's reach): the sink asks it
    to purge its free pages (memory.purge_clickhouse), and the store's memory figures are read."""
    from distillguard.streams.memory import clickhouse_memory, purge_clickhouse
    with Store(load_settings({"DG_DATA_DIR": str(tmp_path)})) as store:
        assert store.query("SELECT value FROM system.build_options WHERE name = 'USE_JEMALLOC'").result_rows == [("1",)]
        assert purge_clickhouse(store) >= 0.0
        assert "MemoryTracking" in clickhouse_memory(store)
