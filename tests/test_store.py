"""The embedded ClickHouse store: migrations are idempotent, one process owns
it and a second one gets a clear error."""
import subprocess
import sys

from distillguard.streams.clickhouse import MIGRATIONS, Store
from distillguard.streams.settings import load_settings

CLI = [sys.executable, "-m", "distillguard.streams.cli"]


def test_migrations_apply_once(tmp_path):
    store = Store(load_settings({"DG_DATA_DIR": str(tmp_path)}))
    try:
        assert store.migrate() == [v for v, _ in MIGRATIONS]
        assert store.migrate() == []
        tables = {r[0] for r in store.query("SHOW TABLES FROM distillguard").result_rows}
        assert {"alert_events", "alerts_latest", "account_minute", "dlq_minute"} <= tables
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
