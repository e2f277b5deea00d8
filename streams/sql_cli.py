"""``distillguard sql``: run SQL against the configured ClickHouse and print a table."""
from __future__ import annotations

from .errors import UserError


def add_arguments(p) -> None:
    p.add_argument("query", help='e.g. "SELECT * FROM distillguard.alerts_latest FINAL"')


def run(args) -> int:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from .clickhouse import open_store
    from .settings import load_settings

    with open_store(load_settings(), migrate=True) as store:
        try:
            result = store.query(args.query)
        except ClickHouseError as err:
            raise UserError(f"ClickHouse rejected the query: {str(err).strip().splitlines()[0][:500]}") from None
    print(format_table(result.column_names, result.result_rows))
    return 0


def format_table(columns, rows, max_width: int = 60) -> str:
    cells = [[str(c) for c in columns]] + [[_cell(v, max_width) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [" | ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(value, max_width: int) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
