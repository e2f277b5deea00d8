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

from distillguard.models import load_config
from distillguard.models.pipeline import Pipeline
from distillguard.models.evaluation import DISTILLGUARD, Harness, default_baselines
from distillguard.models.feedback import FeedbackBook
from distillguard.streams.replay import open_lines, print_progress, replay
from distillguard.streams.eval_report import render_report

from .errors import UserError


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
    parser.add_argument("--feedback", metavar="FILE", default=None,
                        help="analysts' decisions (feedback v1 JSONL): replay once more with the detector "
                             "learning them, and show what they change (before/after per cohort)")


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


def load_labels(path: str | Path) -> dict[str, dict]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"labels file not found: {p} (pass --labels PATH; the simulator writes "
                         f"<name>.labels.json next to the events)")
    try:
        doc = orjson.loads(p.read_bytes())
    except orjson.JSONDecodeError as err:
        raise UserError(f"labels file {p} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) and v.get("label") in ("attack", "benign")
                                            for v in doc.values()):
        raise UserError(f"labels file {p} must map account_id -> {{\"label\": \"attack\"|\"benign\", "
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


def feedback_effect(before: dict, after: dict, book: FeedbackBook, path) -> dict:
    """What replaying the analysts' decisions changed for distillguard, per cohort and overall."""
    def cells(doc: dict) -> dict:
        det = doc["detectors"][DISTILLGUARD]
        rows = {name: c for name, c in det["cohorts"].items()}
        rows["all attack"] = det["overall"]["attack"]
        rows["all benign"] = det["overall"]["benign"]
        return {name: {"label": c["label"], "accounts": c["accounts"], "alerted": c["alerted"],
                       "rate": c["recall"] if c["label"] == "attack" else c["fpr"]} for name, c in rows.items()}
    decided: dict[str, int] = {}
    for fb in book.decisions:
        decided[fb.decision] = decided.get(fb.decision, 0) + 1
    return {"file": str(path), "decisions": decided,
            "alert_events": [before["run"]["alert_events"], after["run"]["alert_events"]],
            "tempered_alert_events": [0, after["run"]["tempered_alert_events"]],
            "cohorts": {name: {"before": b, "after": cells(after)[name]} for name, b in cells(before).items()}}


def format_feedback_table(effect: dict) -> str:
    """Before/after table of one feedback replay (distillguard only; medium+ counts as alerted)."""
    rows = sorted(effect["cohorts"].items(), key=lambda kv: (kv[0].startswith("all "), kv[1]["before"]["label"]
                                                              != "attack", kv[0]))
    cw = max(len(name) for name, _ in rows)
    lines = [f"feedback replay: {effect['file']} ("
             + ", ".join(f"{n} {d.replace('_', ' ')}" for d, n in sorted(effect["decisions"].items())) + ")",
             f"{'cohort':<{cw}} kind    n   alerted before -> after   rate before -> after"]
    for name, c in rows:
        b, a = c["before"], c["after"]
        kind = "atk" if b["label"] == "attack" else "ben"
        mark = "" if (b["alerted"], b["rate"]) == (a["alerted"], a["rate"]) else "  *"
        lines.append(f"{name:<{cw}} {kind:<4} {b['accounts']:>4}   {b['alerted']:>6} -> {a['alerted']:<6}        "
                     f"{_fmt_rate(b['rate'])} -> {_fmt_rate(a['rate'])}{mark}")
    ev, te = effect["alert_events"], effect["tempered_alert_events"]
    lines.append(f"alert events {ev[0]} -> {ev[1]}; tempered by feedback {te[0]} -> {te[1]}; "
                 "rate = recall (atk) or benign FPR (ben) at medium+; * = changed")
    return "\n".join(lines)


def evaluate_file(input_path: str | Path, labels: dict[str, dict], config_path: str | None = None,
                  baselines: bool = True, progress=None, feedback: FeedbackBook | None = None) -> dict:
    """Replay ``input_path`` once through distillguard and the baselines; the eval.json document.
    ``feedback``: analysts' decisions the detector learns from, as in the stream."""
    config = load_config(config_path)
    bls = default_baselines() if baselines else []
    harness = Harness(bls, labels)
    tempered: list[int] = [0]
    on_alert = harness.on_alert
    if feedback is not None:
        def on_alert(alert, _record=harness.on_alert):
            tempered[0] += any(r.get("feature") == "feedback_tempered" for r in alert.reasons)
            _record(alert)
    started = time.time()
    # the whole pipeline, as `distillguard replay` runs it: cluster alerts count too
    stats = replay(open_lines(input_path), Pipeline(config, feedback=feedback), on_alert, progress=progress,
                   on_event=harness.on_event)
    distillguard_seconds = max(stats.seconds - sum(harness.baseline_seconds.values()), 0.0)
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
        # the replay's time less the baselines': parsing and both stages of distillguard
        "distillguard_seconds": round(distillguard_seconds, 3),
        "distillguard_events_per_s": round(stats.events / distillguard_seconds, 1)
        if distillguard_seconds > 0 else None,
        "baselines": {b.name: {"seconds": round(harness.baseline_seconds[b.name], 3), "params": b.params(),
                               "citation": b.citation} for b in bls},
        "accounts_labelled": len(labels),
        "accounts_labelled_attack": sum(1 for v in labels.values() if v.get("label") == "attack"),
        "accounts_seen": len(harness.seen),
        "accounts_seen_unlabelled": len(harness.seen - set(labels)),
        "accounts_labelled_unseen": len(set(labels) - harness.seen),
        "detector_config": dataclasses.asdict(config),
        "detector_config_path": config_path,
        "tempered_alert_events": tempered[0],
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
        raise UserError(str(err)) from None
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
    if not args.input:
        raise UserError("give INPUT (request events) or --scenario NAME")
    src = Path(args.input)
    if not src.is_file():
        raise UserError(f"input not found: {src}")
    labels_path = Path(args.labels) if args.labels else default_labels_path(src)
    labels = load_labels(labels_path)
    if args.detector_config and not Path(args.detector_config).is_file():
        raise UserError(f"detector config not found: {args.detector_config}")
    try:
        load_config(args.detector_config)
    except (ValueError, TypeError, OSError) as err:
        raise UserError(f"bad detector config: {err}") from None
    book = None
    if args.feedback:
        from .feedback_agent import FeedbackFileError, book_from_file
        try:
            book = book_from_file(args.feedback)
        except FeedbackFileError as err:
            raise UserError(str(err)) from None
    progress = print_progress if sys.stderr.isatty() else None
    t0 = time.perf_counter()
    result = evaluate_file(src, labels, args.detector_config, baselines=not args.no_baselines, progress=progress)
    if progress:
        print(file=sys.stderr)
    result["run"]["labels"] = str(labels_path)
    if book is not None:
        after = evaluate_file(src, labels, args.detector_config, baselines=False, progress=progress, feedback=book)
        if progress:
            print(file=sys.stderr)
        result["feedback"] = feedback_effect(result, after, book, args.feedback)
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
    if book is not None:
        print()
        print(format_feedback_table(result["feedback"]))
    print(f"wrote {out / 'eval.json'} and {out / 'report.html'}")
    return 0
