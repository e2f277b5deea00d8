"""``distillguard replay``: the detector over a JSONL(.gz) file of request events."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import UserError


def default_replay_jobs() -> int:
    """2 where this process may use 2+ CPUs (the cross-account stage then gets its own), else 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 if cpus >= 2 else 1


def add_arguments(p) -> None:
    p.add_argument("input", help="request events, JSONL or JSONL.gz (by file name)")
    p.add_argument("--alerts", required=True, metavar="OUTPUT", help="write alert events here (JSONL)")
    p.add_argument("--detector-config", metavar="TOML", help="detector thresholds (default: DG_DETECTOR_CONFIG)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=default_replay_jobs(),
                   help="processes: 2 runs the cross-account stage beside the per-account one, same output "
                        "(default: 2 on a machine with 2+ CPUs)")
    p.add_argument("--feedback", metavar="FILE",
                   help="analysts' triage decisions (feedback v1 JSONL) the detector learns from, as in the stream")


def run(args) -> int:
    from distillguard.models import Pipeline, load_config

    from .replay import ReplayError, open_lines, print_progress, replay
    from .settings import load_settings

    settings = load_settings()
    src = Path(args.input)
    if not src.is_file():
        raise UserError(f"input file {src} does not exist")
    book = None
    if args.feedback:  # analysts' decisions (feedback v1 JSONL), as the stream learns them from the topic
        from .feedback_agent import FeedbackFileError, book_from_file
        try:
            book = book_from_file(args.feedback)
        except FeedbackFileError as err:
            raise UserError(str(err)) from None
    pipeline = Pipeline(load_config(args.detector_config or settings.detector_config or None),
                        settings.fingerprint_key.encode(), feedback=book)
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
            stats = replay(open_lines(src), pipeline, lambda a: out.write(a.to_json() + b"\n"),
                           progress=None if args.quiet else print_progress, on_bad=on_bad, jobs=args.jobs)
    except ReplayError as err:
        raise UserError(str(err)) from None
    print(("\r" if not args.quiet else "") + stats.summary(), file=sys.stderr)
    return 0
