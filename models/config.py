"""Detector thresholds: defaults tuned on the simulator, overridable by a TOML file.

An operator tunes by copying ``[detector]`` keys into a file named by
``DG_DETECTOR_CONFIG`` (see README, "Tuning"); unknown keys are an error, so
a typo never silently falls back to a default.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path


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
    reasoning_share: float = 0.4
    long_answer_share: float = 0.35          # share of answers >= 600 tokens of a full-strength harvest
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
    # per-account state of accounts idle this long (event time) is deleted by Detector.expire_idle
    idle_expiry_ms: int = 48 * 3_600_000


def load_config(path: str | Path | None = None) -> DetectorConfig:
    """Defaults, overridden by the ``[detector]`` table of a TOML file if given."""
    config = DetectorConfig()
    if not path:
        return config
    with open(path, "rb") as fh:
        table = tomllib.load(fh).get("detector", {})
    known = {f.name: f.type for f in fields(DetectorConfig)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown detector setting(s) {unknown}; known: {sorted(known)}")
    return replace(config, **table)
