"""The ``distillguard`` command line.

One pattern for every command: a module with ``add_arguments(parser)`` and
``run(args) -> int``, listed in ``COMMANDS``. Only the chosen command's module
is imported (``distillguard --help`` imports none of them, so no River or
Faust), and anything a user can fix is raised as ``UserError``
(streams/errors.py), printed here as one line on stderr with exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

# command -> (module in this package, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "worker": ("worker", "run a stream worker (Faust) against Kafka"),
    "sink": ("sink_cli", "run the ClickHouse sink alone: rows from the sink topic into ClickHouse"),
    "replay": ("replay_cli", "run the detector over a JSONL(.gz) file of request events"),
    "simulate": ("simulate_cli", "generate labelled request traffic to a file or to Kafka"),
    "eval": ("eval_cli", "measure detection on labelled traffic, with literature baselines"),
    "demo": ("demo", "end-to-end demo on the local broker: simulate, detect, print alerts"),
    "report": ("report_cli", "write a self-contained HTML report from ClickHouse"),
    "console": ("console.command", "the analysts' web console: alert queue, evidence, triage"),
    "sql": ("sql_cli", "run SQL against the configured ClickHouse and print a table"),
    "migrate": ("migrate_cli", "apply ClickHouse schema migrations"),
    "topics": ("topics_cli", "create the Kafka topics distillguard uses (idempotent)"),
    "doctor": ("doctor", "check broker, topics, lag, ClickHouse, key, config and worker; one line each"),
    "export-ocsf": ("export_ocsf_cli", "alert events as OCSF Detection Findings (JSONL), from a file or the topic"),
    "ingest": ("ingest_cli", "map gateway logs (LiteLLM, OpenTelemetry GenAI spans) to request events"),
    "otlp-receiver": ("otlp_receiver", "OTLP/HTTP endpoint (/v1/traces, /v1/logs): GenAI spans and logs to the "
                                      "requests topic"),
}

__all__ = ["COMMANDS", "UserError", "build_parser", "main"]


def _chosen(argv: list[str]) -> str | None:
    """The command named on the line (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` gets its module imported and its arguments."""
    chosen = _chosen(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="distillguard", description=(
        "Real-time detector of model-extraction (distillation) attacks against an LLM API. "
        "Settings come from DG_* environment variables (see README)."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(f"{__package__}.{module}")
            mod.add_arguments(p)
            p.set_defaults(func=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    from . import logs
    from .settings import load_settings, tune_gc
    tune_gc()
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)   # library lines in our format
        if not settings.native_text:
            from distillguard.models import native
            native.set_enabled(False)
        return args.func(args)
    except UserError as err:
        print(f"distillguard {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
