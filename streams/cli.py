"""The ``distillguard`` command line."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from .settings import SettingsError, load_settings, tune_gc


def _settings():
    return load_settings()


def cmd_worker(args) -> int:
    from .worker import run_worker
    return run_worker(_settings())


def default_replay_jobs() -> int:
    """2 where this process may use 2+ CPUs (the cross-account stage then gets its own), else 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 if cpus >= 2 else 1


def cmd_replay(args) -> int:
    from distillguard.models import Detector, load_config

    from .replay import ReplayError, open_lines, print_progress, replay

    settings = _settings()
    src = Path(args.input)
    if not src.is_file():
        raise UserError(f"input file {src} does not exist")
    detector = Detector(load_config(args.detector_config or settings.detector_config or None),
                        settings.fingerprint_key.encode())
    if args.feedback:  # analysts' decisions (feedback v1 JSONL), as the stream learns them from the topic
        from .feedback_agent import FeedbackFileError, book_from_file
        try:
            detector.lifecycle.feedback = book_from_file(args.feedback)
        except FeedbackFileError as err:
            raise UserError(str(err)) from None
    shown = 0

    def on_bad(line_no, err):
        nonlocal shown
        if shown < 5:
            print(f"\nline {line_no}: {err.reason}: {err.detail}", file=sys.stderr)
            shown += 1

    out_path = Path(args.alerts)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(out_path, "wb") as out:
            stats = replay(open_lines(src), detector, lambda a: out.write(a.to_json() + b"\n"),
                           progress=None if args.quiet else print_progress, on_bad=on_bad, jobs=args.jobs)
    except ReplayError as err:
        raise UserError(str(err)) from None
    print(("\r" if not args.quiet else "") + stats.summary(), file=sys.stderr)
    return 0


def cmd_sql(args) -> int:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from .clickhouse import Store, StoreBusy

    settings = _settings()
    try:
        store = Store(settings)
    except StoreBusy as err:
        raise UserError(str(err)) from None
    try:
        store.migrate()
        result = store.query(args.query)
    except ClickHouseError as err:
        raise UserError(f"ClickHouse rejected the query: {str(err).strip().splitlines()[0][:500]}") from None
    finally:
        store.close()
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


def cmd_migrate(args) -> int:
    from .clickhouse import Store, StoreBusy

    try:
        store = Store(_settings())
    except StoreBusy as err:
        raise UserError(str(err)) from None
    applied = store.migrate()
    print(f"applied migrations {applied}" if applied else "schema is up to date")
    store.close()
    return 0


def cmd_topics(args) -> int:
    from .kafka_io import KafkaUnavailable, ensure_topics

    try:
        created = ensure_topics(_settings())
    except KafkaUnavailable as err:
        raise UserError(str(err)) from None
    print(f"created topics: {', '.join(created)}" if created else "all topics exist")
    return 0


def cmd_demo(args) -> int:
    from .demo import DemoError, run_demo
    try:
        return run_demo(_settings(), args)
    except DemoError as err:
        raise UserError(str(err)) from None


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def _module_command(sub, name: str, module: str, help_text: str) -> None:
    """A subcommand whose module brings its own ``add_arguments(parser)`` and ``run(args)``."""
    mod = importlib.import_module(f"{__package__}.{module}")
    p = sub.add_parser(name, help=help_text)
    mod.add_arguments(p)
    p.set_defaults(func=mod.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillguard", description=(
        "Real-time detector of model-extraction (distillation) attacks against an LLM API. "
        "Settings come from DG_* environment variables (see README)."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("worker", help="run a stream worker (Faust) against Kafka")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="run the detector over a JSONL(.gz) file of request events")
    p.add_argument("input", help="request events, JSONL or JSONL.gz (by file name)")
    p.add_argument("--alerts", required=True, metavar="OUTPUT", help="write alert events here (JSONL)")
    p.add_argument("--detector-config", metavar="TOML", help="detector thresholds (default: DG_DETECTOR_CONFIG)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=default_replay_jobs(),
                   help="processes: 2 runs the cross-account stage beside the per-account one, same output "
                        "(default: 2 on a machine with 2+ CPUs)")
    p.add_argument("--feedback", metavar="FILE",
                   help="analysts' triage decisions (feedback v1 JSONL) the detector learns from, as in the stream")
    p.set_defaults(func=cmd_replay)

    _module_command(sub, "simulate", "simulate_cli", "generate labelled request traffic to a file or to Kafka")

    _module_command(sub, "eval", "eval_cli", "measure detection on labelled traffic, with literature baselines")

    p = sub.add_parser("demo", help="end-to-end demo on the local broker: simulate, detect, print alerts")
    p.add_argument("--scenario", default="small", help="simulator scenario (default: small)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    p.set_defaults(func=cmd_demo)

    _module_command(sub, "report", "report_ch", "write a self-contained HTML report from ClickHouse")

    _module_command(sub, "console", "console.command", "the analysts' web console: alert queue, evidence, triage")

    p = sub.add_parser("sql", help="run SQL against the configured ClickHouse and print a table")
    p.add_argument("query", help='e.g. "SELECT * FROM distillguard.alerts_latest FINAL"')
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("migrate", help="apply ClickHouse schema migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("topics", help="create the Kafka topics distillguard uses (idempotent)")
    p.set_defaults(func=cmd_topics)

    _module_command(sub, "export-ocsf", "export_ocsf_cli",
                    "alert events as OCSF Detection Findings (JSONL), from a file or the topic")
    _module_command(sub, "ingest", "ingest_cli", "map gateway logs (LiteLLM, OpenTelemetry GenAI spans) to request events")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_gc()
    try:
        return args.func(args)
    except (UserError, SettingsError) as err:
        print(f"distillguard {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
