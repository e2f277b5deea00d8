"""``distillguard eval --scenario NAME --seeds 1,2,3 [--lofo]``: simulate each seed in memory,
replay it through distillguard (per-account and cross-account stages), and report per family
and seed; with ``--lofo``, leave-one-family-out results for every attack family (fitting rules in
:mod:`distillguard.models.evaluation.families`).

The table logic is in ``models/evaluation/families.py``; this module only drives simulation and
replays.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence

import orjson

from distillguard.models import Pipeline, load_config
from distillguard.models.evaluation import DISTILLGUARD, Harness
from distillguard.models.evaluation.families import (HELD_OUT_STYLES, family_table, fit_threshold,
                                                     format_family_table, high_lookalikes, lofo_recall)
from distillguard.models.simulation import simulate
from distillguard.models.simulation.evasive import LOOKALIKE_KINDS
from distillguard.streams.replay import replay


def _lines(sim, only_family: str | None = None) -> Iterator[bytes]:
    dumps = orjson.dumps
    keep = None if only_family is None else {a for a, lab in sim.labels.items() if lab["cohort"] == only_family}
    for ev in sim.events():
        if keep is None or ev["account_id"] in keep:
            yield dumps(ev)


def make_pipeline(config_path: str | None, held_out_styles: Sequence[str] = (), cross: bool = True) -> Pipeline:
    """The detection pipeline, its learned parts fitted without ``held_out_styles``."""
    config = load_config(config_path)
    if not held_out_styles:
        return Pipeline(config, cross=cross)
    from distillguard.models.elicitation import ElicitationModel
    return Pipeline(config, cross=cross, elicitation=ElicitationModel.trained(exclude_styles=held_out_styles))


def run_seed(scenario: str, seed: int, config_path: str | None, held_out_styles: Sequence[str] = (),
             only_family: str | None = None):
    """(labels, per-account results, events) of one simulated seed. ``only_family``: replay that
    family's accounts alone through the per-account detector (LOFO: the other families' scores
    come from the full run; the per-account detector scores each account on its own traffic)."""
    sim = simulate(scenario, seed)
    harness = Harness([], sim.labels)
    pipeline = make_pipeline(config_path, held_out_styles, cross=only_family is None)
    stats = replay(_lines(sim, only_family), pipeline, harness.on_alert, on_event=harness.on_event)
    return sim.labels, harness.results()[DISTILLGUARD], stats.events


def run_suite(scenario: str, seeds: Sequence[int], config_path: str | None = None, lofo: bool = False,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Per family and seed table (and LOFO) as a JSON-ready document."""
    t0 = time.perf_counter()
    runs = {}
    for seed in seeds:
        labels, results, n = run_seed(scenario, seed, config_path)
        runs[seed] = (labels, results)
        log(f"eval: {scenario} seed {seed}: {n:,} events replayed ({time.perf_counter() - t0:.0f}s)")
    table = family_table(runs)
    cfg = load_config(config_path)
    doc = {"scenario": scenario, "seeds": list(seeds), "families": table,
           "high_lookalikes": high_lookalikes(runs, tuple(LOOKALIKE_KINDS)), "lofo": {}}
    if lofo:
        for fam, fdoc in table.items():
            if fdoc["label"] != "attack":
                continue
            styles = HELD_OUT_STYLES.get(_kind_of(runs, fam), ())
            held = runs
            if styles:
                held = {}
                for seed in seeds:
                    labels, results, _ = run_seed(scenario, seed, config_path, styles, only_family=fam)
                    held[seed] = (labels, results)
                log(f"eval: LOFO {fam}: replayed {len(seeds)} seeds without styles {list(styles)}")
            cut = fit_threshold(list(runs.values()), exclude=fam, floor=cfg.medium)
            doc["lofo"][fam] = {"held_out_styles": list(styles), "cut": cut,
                                "recall": lofo_recall(list(held.values()), fam, cut)}
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    return doc


def _kind_of(runs, family: str) -> str:
    for labels, _ in runs.values():
        for lab in labels.values():
            if lab.get("cohort") == family:
                return lab.get("kind") or family
    return family


def format_suite(doc: dict) -> str:
    out = [f"scenario {doc['scenario']}, seeds {doc['seeds']}",
           format_family_table(doc["families"], doc["lofo"] or None)]
    hl = doc["high_lookalikes"]
    out.append(f"look-alike accounts at high/critical: {len(hl)}" +
               ("" if not hl else " (" + ", ".join(f"s{s} {f}" for s, f, _ in hl) + ")"))
    return "\n".join(out)
