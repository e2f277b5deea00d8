"""``distillguard migrate``: apply ClickHouse schema migrations."""
from __future__ import annotations


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from .clickhouse import open_store
    from .settings import load_settings

    with open_store(load_settings()) as store:
        applied = store.migrate()
    print(f"applied migrations {applied}" if applied else "schema is up to date")
    return 0
