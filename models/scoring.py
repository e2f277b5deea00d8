"""Account state → one combined score in 0..1 with reasons, strongest first.

Each piece of evidence is a number in 0..1 that a distillation campaign
pushes up and ordinary use does not; they are combined by noisy-OR, so any
one crisp signal can carry an alert while weak signals add up.
"""
from __future__ import annotations

from .config import DetectorConfig
from .state import (C_BIAS, C_GRADER, C_LOGPROB, C_REASONING, C_REPEAT_SKELETON, C_REQUESTS,
                    H_DAY, H_HOUR, AccountState)


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below lo, 1 above hi, linear between."""
    if x <= lo:
        return 0.0
    if x >= hi:
        return 1.0
    return (x - lo) / (hi - lo)


def score_state(s: AccountState, cfg: DetectorConfig) -> tuple[float, list[dict]]:
    """Combined score of one account and the reasons behind it."""
    n_day = s.count(C_REQUESTS, H_DAY)
    areas, entropy = s.topic_spread()
    reasoning = s.share(C_REASONING, H_DAY)
    template = s.share(C_REPEAT_SKELETON, H_HOUR)
    logprob = s.share(C_LOGPROB, H_HOUR)
    bias = s.share(C_BIAS, H_HOUR)
    grader = s.share(C_GRADER, H_DAY)
    volume = _ramp(n_day, cfg.min_events, 4 * cfg.min_events)
    breadth = _ramp(areas, cfg.broad_areas - 3, cfg.broad_areas) * _ramp(entropy, 0.3, 0.6)
    evidence = {
        "capability_sweep": breadth * max(_ramp(reasoning, cfg.reasoning_share / 2, cfg.reasoning_share),
                                          _ramp(template, cfg.template_share / 2, cfg.template_share)) * volume,
        "logprob_probing": _ramp(max(logprob, bias), cfg.logprob_share / 2, cfg.logprob_share) * volume,
        "grader_abuse": _ramp(grader, cfg.grader_share / 2, cfg.grader_share) * volume * 0.8,
    }
    miss = 1.0
    for v in evidence.values():
        miss *= 1.0 - v
    score = 1.0 - miss
    reasons = [
        {"feature": "topic_areas", "value": areas, "baseline": 2.0},
        {"feature": "topic_entropy", "value": round(entropy, 3), "baseline": 0.25},
        {"feature": "reasoning_share", "value": round(reasoning, 3), "baseline": 0.05},
        {"feature": "template_share", "value": round(template, 3), "baseline": 0.1},
        {"feature": "logprob_share", "value": round(max(logprob, bias), 3), "baseline": 0.0},
        {"feature": "grader_share", "value": round(grader, 3), "baseline": 0.01},
        {"feature": "requests_day", "value": round(n_day, 1), "baseline": None},
    ]
    reasons.sort(key=lambda r: -(r["value"] - (r["baseline"] or 0)) / max(r["baseline"] or 1.0, 0.05))
    top = max(evidence, key=evidence.__getitem__)
    reasons.insert(0, {"feature": top, "value": round(evidence[top], 3), "baseline": 0.0})
    return round(score, 4), reasons
