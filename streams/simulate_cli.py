"""`distillguard simulate`: write labelled simulated traffic to JSONL and/or Kafka.

A command module (streams/cli.py): ``add_arguments(parser)`` and ``run(args)``; errors raise ``UserError``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="default",
                        help="bundled scenario name (default, small, alt-mix) or path to a .toml file")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", default=None,
                        help="output JSONL file (.jsonl.gz for gzip); required unless --kafka")
    parser.add_argument("--labels", default=None,
                        help="labels JSON (default: <out stem>.labels.json next to --out)")
    parser.add_argument("--kafka", action="store_true",
                        help="also produce the events to Kafka (topic from settings)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events per second of wall time, 0 = as fast as possible")
    parser.add_argument("--limit", type=int, default=0, help="stop after N events (0 = all)")


def _labels_path(out: str) -> Path:
    p = Path(out)
    name = p.name
    for suf in (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".gz"):
        if name.endswith(suf):
            name = name[: -len(suf)]
            break
    return p.with_name(name + ".labels.json")


class _Progress:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.next = self.t0 + 1.0
        self.n = 0

    def tick(self, n: int) -> None:
        self.n = n
        if self.enabled and (n & 1023) == 0:
            now = time.monotonic()
            if now >= self.next:
                self.next = now + 1.0
                print(f"  {n:,} events  {n / (now - self.t0):,.0f} ev/s", file=sys.stderr)

    def rate(self) -> float:
        dt = time.monotonic() - self.t0
        return self.n / dt if dt > 0 else 0.0


def _paced(events: Iterable[dict], rate: float) -> Iterator[dict]:
    """Throttle to ``rate`` events per second of wall time."""
    t0 = time.monotonic()
    for i, ev in enumerate(events):
        due = t0 + i / rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        yield ev


def run(args: argparse.Namespace) -> int:
    from distillguard.models.simulation import ScenarioError, load_scenario, simulate, write_labels
    from distillguard.models.simulation.io import JsonlWriter, gc_paused

    if not args.out and not args.kafka:
        raise UserError("give --out PATH and/or --kafka")
    if args.rate < 0 or args.limit < 0:
        raise UserError("--rate and --limit must be >= 0")
    try:
        scn = load_scenario(args.scenario)
        sim = simulate(scn, seed=args.seed)
    except ScenarioError as e:
        raise UserError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - one-line message, no traceback
        raise UserError(f"cannot build scenario {args.scenario!r}: {e}")

    labels_path = Path(args.labels) if args.labels else (_labels_path(args.out) if args.out else None)
    writer = None
    try:
        for path in (labels_path, Path(args.out) if args.out else None):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        if labels_path is not None:
            write_labels(sim.labels, labels_path)
        if args.out:
            writer = JsonlWriter(args.out)
    except OSError as e:
        raise UserError(f"cannot write {e.filename or ''}: {e.strerror or e}")

    events: Iterable[dict] = sim.events()
    if args.limit:
        import itertools
        events = itertools.islice(events, args.limit)
    if args.rate > 0 and not args.kafka:
        events = _paced(events, args.rate)

    prog = _Progress(enabled=True)
    per_cohort: dict[str, int] = {}
    cohort_of = {a: lab["cohort"] for a, lab in sim.labels.items()}

    def tap(evs: Iterable[dict]) -> Iterator[dict]:
        n = 0
        for ev in evs:
            if writer is not None:
                writer.write(ev)
            c = cohort_of[ev["account_id"]]
            per_cohort[c] = per_cohort.get(c, 0) + 1
            n += 1
            prog.tick(n)
            yield ev

    print(f"simulating scenario {scn.name!r} seed={args.seed}: {len(sim.labels)} accounts"
          + (f" -> {args.out}" if args.out else "") + (" -> kafka" if args.kafka else ""),
          file=sys.stderr)
    try:
        if args.kafka:
            try:
                from distillguard.streams.kafka_io import produce_events
                from distillguard.streams.settings import load_settings
            except ImportError as e:
                raise UserError(f"Kafka support unavailable: {e}")
            try:
                produce_events(load_settings(), tap(events), rate=args.rate, progress=False)
            except Exception as e:  # noqa: BLE001
                raise UserError(f"Kafka produce failed: {e}")
        else:
            with gc_paused():
                for _ in tap(events):
                    pass
        if writer is not None:
            writer.close()
            writer = None
    except OSError as e:
        raise UserError(f"cannot write {args.out}: {e.strerror or e}")
    finally:
        if writer is not None:
            try:
                writer.close()
            except OSError:
                pass

    total = prog.n
    print(f"done: {total:,} events at {prog.rate():,.0f} ev/s"
          + (f"; events {args.out}" if args.out else "")
          + (f"; labels {labels_path}" if labels_path else ""), file=sys.stderr)
    accounts = sim.accounts_per_cohort()
    print(f"  {'cohort':20s} {'label':7s} {'accounts':>8s} {'events':>8s}", file=sys.stderr)
    label_of = {lab["cohort"]: lab["label"] for lab in sim.labels.values()}
    for c in scn.cohorts:
        print(f"  {c:20s} {label_of.get(c, '?'):7s} {accounts.get(c, 0):8d} {per_cohort.get(c, 0):8d}",
              file=sys.stderr)
    return 0
