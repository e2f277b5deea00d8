"""``distillguard eval``: replay labelled events once through distillguard's
detector and the literature baselines side by side, then measure them.

    distillguard eval var/sim/default.jsonl.gz [--labels default.labels.json] [--out var/eval]
    distillguard eval --scenario evasive --seeds 1,2,3 [--lofo] [--out var/eval]

Writes ``OUT/eval.json`` (run info, and per detector: per-cohort and overall
metrics, threshold sweep, AUC, per-account outcomes; definitions in
:mod:`distillguard.models.evaluation.metrics`) and ``OUT/report.html``
(self-contained), and prints a compact table. Exit 0 when the run completed
(whatever the scores), 2 on a usage error (missing input, missing or bad
labels file, bad detector config).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

# The baselines multiply small matrices; a multi-threaded BLAS only adds
# contention there (measured ~2x slower on 2 cores). Effective when this module
# is imported before numpy is.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import time
from pathlib import Path
from typing import Any

import orjson

from distillguard.models import Detector, load_config
from distillguard.models.clusters import HydraPipeline
from distillguard.models.evaluation import DISTILLGUARD, Harness, default_baselines
from distillguard.streams.replay import open_lines, print_progress, replay
from distillguard.streams.report_html import render_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", nargs="?", help="request events, JSONL or JSONL.gz")
    parser.add_argument("--scenario", metavar="NAME", default=None,
                        help="instead of INPUT: simulate this scenario per seed and report per family and seed")
    parser.add_argument("--seeds", metavar="LIST", default="1,2,3", help="seeds for --scenario (default 1,2,3)")
    parser.add_argument("--lofo", action="store_true",
                        help="with --scenario: leave-one-family-out results for every attack family")
    parser.add_argument("--labels", metavar="PATH", default=None,
                        help="labels JSON (account -> {label, cohort, first_attack_ts_ms}); "
                             "default: <input stem>.labels.json next to INPUT")
    parser.add_argument("--out", metavar="DIR", default="var/eval", help="output directory (default var/eval)")
    parser.add_argument("--no-baselines", action="store_true", help="measure distillguard only")
    parser.add_argument("--detector-config", metavar="TOML", default=None,
                        help="detector settings ([detector] table), as for DG_DETECTOR_CONFIG")


def default_labels_path(input_path: str | Path) -> Path:
    """``x/small.jsonl.gz`` → ``x/small.labels.json``.

    >>> str(default_labels_path("var/sim/small.jsonl.gz"))
    'var/sim/small.labels.json'
    """
    p = Path(input_path)
    name = p.name
    for suffix in (".gz", ".jsonl", ".json", ".ndjson"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return p.with_name(f"{name}.labels.json")


class UsageError(Exception):
    pass


def load_labels(path: str | Path) -> dict[str, dict]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"labels file not found: {p} (pass --labels PATH; the simulator writes "
                         f"<name>.labels.json next to the events)")
    try:
        doc = orjson.loads(p.read_bytes())
    except orjson.JSONDecodeError as err:
        raise UsageError(f"labels file {p} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) and v.get("label") in ("attack", "benign")
                                            for v in doc.values()):
        raise UsageError(f"labels file {p} must map account_id -> {{\"label\": \"attack\"|\"benign\", "
                         f"\"cohort\": str, \"first_attack_ts_ms\": int|null}}")
    return doc


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "__float__"):
        return float(obj)
    raise TypeError(type(obj).__name__)


def _fmt_rate(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.2f}"


def _fmt_min(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}m" if x >= 10 else f"{x:.1f}m"


def format_table(result: dict) -> str:
    """Per cohort: accounts, then per detector recall (attack) or FPR (benign), alerted, median TTD."""
    dets = list(result["detectors"])
    first = result["detectors"][dets[0]]
    rows = sorted(first["cohorts"].values(), key=lambda c: (c["label"] != "attack", c["cohort"]))
    rows += [first["overall"]["attack"], first["overall"]["benign"]]
    cw = max([len(r["cohort"]) for r in rows] + [6])
    colw = 20
    head = f"{'cohort':<{cw}} {'kind':<3} {'n':>4}  " + "".join(f"{d[:colw - 1]:<{colw}}" for d in dets)
    sub = f"{'':<{cw}} {'':<3} {'':>4}  " + "".join(f"{'rate  alrt   TTD':<{colw}}" for _ in dets)
    lines = [head, sub, "-" * len(head)]
    for r in rows:
        name = r["cohort"]
        kind = "atk" if r["label"] == "attack" else "ben" if r["label"] == "benign" else "mix"
        cells = []
        for d in dets:
            dm = result["detectors"][d]
            m = dm["overall"]["attack"] if name == "all attack" else dm["overall"]["benign"] \
                if name == "all benign" else dm["cohorts"][name]
            rate = m["recall"] if kind == "atk" else m["fpr"]
            ttd = _fmt_min(m["ttd_median_min"]) if kind == "atk" else ""
            cells.append(f"{_fmt_rate(rate):>4} {m['alerted']:>5} {ttd:>6}".ljust(colw))
        if name == "all attack":
            lines.append("-" * len(head))
        lines.append(f"{name:<{cw}} {kind:<3} {r['accounts']:>4}  " + "".join(cells))
    lines.append("rate = recall (atk) or benign FPR (ben) at medium+; TTD = median minutes to first alert")
    lines.append("AUC: " + ", ".join(f"{d} {result['detectors'][d]['auc']}" for d in dets))
    return "\n".join(lines)


def evaluate_file(input_path: str | Path, labels: dict[str, dict], config_path: str | None = None,
                  baselines: bool = True, progress=None) -> dict:
    """Replay ``input_path`` once through distillguard and the baselines; the eval.json document."""
    config = load_config(config_path)
    detector = Detector(config)
    bls = default_baselines() if baselines else []
    harness = Harness(detector, bls, labels)
    started = time.time()
    # the cross-account (hydra) stage runs as in `distillguard replay`; its cluster alerts count too
    hydra = HydraPipeline(detector.key, detector.config)
    stats = replay(open_lines(input_path), harness, harness.on_alert, progress=progress, hydra=hydra)
    t0 = time.perf_counter()
    detectors = harness.evaluate()
    metrics_s = time.perf_counter() - t0
    descriptions = {DISTILLGUARD: "distillguard account_extraction detector"}
    descriptions.update({b.name: b.citation for b in bls})
    for name, doc in detectors.items():
        doc["description"] = descriptions.get(name, "")
    run = {
        "input": str(input_path),
        "started_at_ms": int(started * 1000),
        "events": stats.events,
        "lines": stats.lines,
        "bad_lines": dict(stats.bad),
        "late_events": stats.late,
        "alert_events": harness.alert_events,
        "replay_seconds": round(stats.seconds, 3),
        "replay_events_per_s": round(stats.eps, 1),
        "metrics_seconds": round(metrics_s, 3),
        "distillguard_seconds": round(harness.detector_seconds, 3),
        "distillguard_events_per_s": round(stats.events / harness.detector_seconds, 1)
        if harness.detector_seconds > 0 else None,
        "baselines": {b.name: {"seconds": round(harness.baseline_seconds[b.name], 3), "params": b.params(),
                               "citation": b.citation} for b in bls},
        "accounts_labelled": len(labels),
        "accounts_labelled_attack": sum(1 for v in labels.values() if v.get("label") == "attack"),
        "accounts_seen": len(harness.seen),
        "accounts_seen_unlabelled": len(harness.seen - set(labels)),
        "accounts_labelled_unseen": len(set(labels) - harness.seen),
        "detector_config": dataclasses.asdict(config),
        "detector_config_path": config_path,
    }
    return {"run": run, "detectors": detectors}


def run_scenario(args: argparse.Namespace) -> int:
    """``--scenario``: the per-family, per-seed table (``OUT/families.json``)."""
    from distillguard.models.simulation import ScenarioError, load_scenario
    from distillguard.streams.eval_suite import format_suite, run_suite
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        load_scenario(args.scenario)
        load_config(args.detector_config)
    except (ValueError, TypeError, OSError, ScenarioError) as err:
        print(f"distillguard eval: error: {err}", file=sys.stderr)
        return 2
    doc = run_suite(args.scenario, seeds, args.detector_config, lofo=args.lofo)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "families.json").write_bytes(orjson.dumps(doc, default=_json_default,
                                                     option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(format_suite(doc))
    print(f"wrote {out / 'families.json'} ({doc['seconds']:.0f}s)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.scenario:
        return run_scenario(args)
    try:
        if not args.input:
            raise UsageError("give INPUT (request events) or --scenario NAME")
        src = Path(args.input)
        if not src.is_file():
            raise UsageError(f"input not found: {src}")
        labels_path = Path(args.labels) if args.labels else default_labels_path(src)
        labels = load_labels(labels_path)
        if args.detector_config and not Path(args.detector_config).is_file():
            raise UsageError(f"detector config not found: {args.detector_config}")
        try:
            load_config(args.detector_config)
        except (ValueError, TypeError, OSError) as err:
            raise UsageError(f"bad detector config: {err}") from None
    except UsageError as err:
        print(f"distillguard eval: error: {err}", file=sys.stderr)
        return 2
    progress = print_progress if sys.stderr.isatty() else None
    t0 = time.perf_counter()
    result = evaluate_file(src, labels, args.detector_config, baselines=not args.no_baselines, progress=progress)
    if progress:
        print(file=sys.stderr)
    result["run"]["labels"] = str(labels_path)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    html = render_report(result)
    result["run"]["total_seconds"] = round(time.perf_counter() - t0, 3)
    (out / "eval.json").write_bytes(orjson.dumps(result, default=_json_default,
                                                 option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    (out / "report.html").write_text(html, encoding="utf-8")
    r = result["run"]
    print(format_table(result))
    print(f"eval: {r['events']:,} events, {r['accounts_labelled']} labelled accounts, "
          f"{r['total_seconds']:.1f}s total; distillguard {r['distillguard_events_per_s'] or 0:,.0f} events/s "
          f"({r['distillguard_seconds']:.1f}s)"
          + "".join(f"; {n} {b['seconds']:.1f}s" for n, b in r["baselines"].items()))
    print(f"wrote {out / 'eval.json'} and {out / 'report.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="distillguard eval", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
