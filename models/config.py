"""Detector thresholds: defaults tuned on the simulator, overridable by a TOML file.

An operator tunes by copying ``[detector]`` (per-account) and ``[clusters]``
(cross-account) keys into a file named by ``DG_DETECTOR_CONFIG`` (see README,
"Tuning"); unknown keys are an error, so a typo never silently falls back to
a default.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


def _kinds(**weights: float):
    """A per-link-kind default (a plain dict, so configs pickle for ``replay --jobs 2``)."""
    return field(default_factory=lambda: dict(weights))


@dataclass(frozen=True)
class ClusterConfig:
    """Cross-account (hydra) tunables, the ``[clusters]`` table (``models/linking.py``,
    ``models/clusters.py``; README, "Cross-account detection"). Memory bounds stay constants
    of those modules."""
    # linking: evidence weight of sharing a key of each kind, and the number of accounts on a
    # key at which its weight starts to fall (many accounts on one key say little about two)
    base_weight: Mapping[str, float] = _kinds(pay=0.6, net=0.35, wrap=0.35, sys=0.25, ua=0.15)
    ref_card: Mapping[str, float] = _kinds(pay=float("inf"), net=256.0, wrap=150.0, sys=40.0, ua=15.0)
    min_weight: float = 0.05              # keys weaker than this emit no pairs (they still count accounts)
    novel_wrap_budget: int = 2            # new wrapper keys an account sends per dedupe_ms
    dedupe_ms: int = 180_000              # an account sends each key at most once per 3 minutes...
    slow_dedupe_ms: int = 1_800_000       # ...and a key that rarely changes (pay, sys, ua) once per 30
    profile_idle_ms: int = 7 * 86_400_000     # an observer profile idle this long is dropped
    net_window_ms: int = 3_600_000        # networks used within this window count for IP rotation
    sync_ms: int = 8_000                  # two accounts on one key within this are synchronised
    pair_window_ms: int = 2 * 3_600_000   # a key's anchors idle longer than this are not paired with
    key_ttl_ms: int = 6 * 3_600_000       # keys idle longer than this are forgotten
    # clusters
    link_threshold: float = 0.7           # pair strength that joins two accounts' clusters
    pair_hold_ms: int = 6 * 3_600_000     # pair evidence counts fully this long after it was seen,
    pair_ttl_ms: int = 12 * 3_600_000     # then fades linearly to nothing here (the pair is forgotten)
    account_ttl_ms: int = 24 * 3_600_000
    sweep_ms: int = 30 * 60_000           # evict idle pairs and rebuild the union-find this often
    pair_seed_weight: float = 0.2         # weaker evidence reinforces existing pairs but starts none
    score_every_ms: int = 60_000          # re-score a cluster at most once a minute (or on growth)
    min_members: int = 3
    sync_keep: int = 4                    # distinct sync minutes kept per pair
    young_ms: int = 30 * 86_400_000       # accounts younger than this at their first request are young
    low_tiers: tuple = (None, "free", "trial", "startup", "education")   # a tuple: eval.json records it
    settle_ms: int = 5 * 60_000           # score evidence of time t once everything up to t + this is in
    stream_settle: int = 256              # stream clock: the oldest event time of the last this-many messages


@dataclass(frozen=True)
class DetectorConfig:
    # severity bands of the combined score
    low: float = 0.35
    medium: float = 0.5
    high: float = 0.75
    critical: float = 0.9
    # alert lifecycle (event time)
    close_after_ms: int = 2 * 3_600_000      # quiet this long -> close
    update_growth: float = 2.0               # re-emit when supporting events grew this much
    # scoring cadence: score an account at these event counts, then every `score_every`
    score_every: int = 16
    # evidence
    min_events: int = 20                     # below this an account is never scored (hydra is #5's job)
    broad_areas: int = 22                    # effective capability areas (of 64) of a full-strength sweep;
                                             # breadth starts 10 areas below
    broad_tasks: float = 7.0                 # effective task groups (of 16) of a full-strength sweep;
                                             # starts 3 below (a product over two tasks stays at 0)
    reasoning_share: float = 0.4
    long_answer_share: float = 0.35          # share of answers >= 600 tokens of a full-strength harvest
    transformation_relief: float = 0.6       # breadth findings x (1 - this) at a full transformation shape
                                             # (long pasted input, bounded answers: models/workload_shape.py)
    padded_share: float = 0.22               # share of requests asking a new question unrelated to the text
                                             # pasted beside it (models/paste.py) at which that relief is gone
                                             # (starts at half); products <= 0.05, padded sweeps ~0.3
    narrow_harvest_cap: float = 0.6          # strength of long answers (share >= 0.5) at >= 5x the question's
                                             # tokens, >= 160 a day, whatever the areas: medium at most (a
                                             # content-generation product looks the same); 0 turns it off
    template_share: float = 0.5              # unused (sweeps need no template since #12); configs still load
    logprob_share: float = 0.5
    grader_share: float = 0.5
    # per-cohort River Half-Space Trees on account vectors; the anomaly term alone stays below medium
    hst_height: int = 8
    seed: int = 42
    anomaly_weight: float = 0.4
    anomaly_lo: float = 0.7
    anomaly_hi: float = 0.95
    max_reasons: int = 6
    # an account idle this long (event time) starts over from empty state (AccountDetector)
    idle_expiry_ms: int = 48 * 3_600_000
    # the cross-account stage's tunables: the [clusters] table
    clusters: ClusterConfig = ClusterConfig()
    # ...and beyond this many accounts, the longest idle ones too (without an open alert), at the
    # same expiry pass: ~2 KB of state each in a worker, so 500,000 accounts are ~1 GB
    max_accounts: int = 500_000


def load_config(path: str | Path | None = None) -> DetectorConfig:
    """Defaults, overridden by the ``[detector]`` and ``[clusters]`` tables of a TOML file if given."""
    config = DetectorConfig()
    if not path:
        return config
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    unknown_tables = sorted(set(doc) - {"detector", "clusters"})
    if unknown_tables:
        raise ValueError(f"{path}: unknown table(s) {unknown_tables}; known: ['clusters', 'detector']")
    table = doc.get("detector", {})
    _check_keys(path, "detector", table, [f.name for f in fields(DetectorConfig) if f.name != "clusters"])
    clusters = dict(doc.get("clusters", {}))
    _check_keys(path, "clusters", clusters, [f.name for f in fields(ClusterConfig)])
    for name in ("base_weight", "ref_card"):   # per link kind: give some kinds, keep the others
        if name in clusters:
            default = getattr(config.clusters, name)
            _check_keys(path, f"clusters.{name}", clusters[name], list(default))
            clusters[name] = {**default, **clusters[name]}
    if "low_tiers" in clusters:
        clusters["low_tiers"] = tuple(None if t == "" else t for t in clusters["low_tiers"])   # "": no tier
    return replace(config, **table, clusters=replace(config.clusters, **clusters))


def _check_keys(path, table_name: str, table: Mapping, known: list[str]) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown {table_name} setting(s) {unknown}; known: {sorted(known)}")
