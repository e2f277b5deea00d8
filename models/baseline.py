"""Cohort baselines: what a feature usually looks like for accounts like this one.

A running (exponentially weighted) mean and variance per cohort (the access
tier) and feature, learned from scored accounts that are *not* alerting, so a
campaign cannot drag its own baseline towards itself. Alert reasons compare an
account's value with its cohort's mean, strongest deviation first.

>>> b = CohortBaseline(alpha=0.5)
>>> for v in (0.1, 0.1, 0.1):
...     b.learn_one("pro", {"reasoning_share": v, "topic_areas": 2.0})
>>> round(b.mean("pro", "reasoning_share"), 3), b.mean("free", "reasoning_share")
(0.1, None)
>>> [r["feature"] for r in b.explain("pro", {"reasoning_share": 0.9, "topic_areas": 2.0})]
['reasoning_share', 'topic_areas']
"""
from __future__ import annotations

import math


class CohortBaseline:
    """Per-cohort running mean and variance of named features."""

    def __init__(self, alpha: float = 0.01):
        self.alpha = alpha
        self._stats: dict[str, dict[str, list[float]]] = {}   # cohort -> feature -> [mean, var, n]

    def learn_one(self, cohort: str, x: dict[str, float]) -> None:
        stats = self._stats.setdefault(cohort, {})
        for name, v in x.items():
            st = stats.get(name)
            if st is None:
                stats[name] = [v, 0.0, 1.0]
                continue
            # a plain mean while few samples are in, then exponentially weighted
            a = max(self.alpha, 1.0 / (st[2] + 1.0))
            d = v - st[0]
            st[0] += a * d
            st[1] = (1.0 - a) * (st[1] + a * d * d)
            st[2] += 1.0

    def mean(self, cohort: str, name: str) -> float | None:
        st = self._stats.get(cohort, {}).get(name)
        return st[0] if st else None

    def explain(self, cohort: str, x: dict[str, float], limit: int | None = None) -> list[dict]:
        """Reasons ``{"feature", "value", "baseline"}``, largest standardised excess over the
        cohort mean first (features without a baseline yet come last); the first ``limit``."""
        stats = self._stats.get(cohort, {})
        rows = []   # (-z, name, ...): ascending is largest excess first, ties by name (names are unique)
        for name, v in x.items():
            st = stats.get(name)
            if st is None:
                rows.append((math.inf, name, v, None))
                continue
            z = (v - st[0]) / (math.sqrt(st[1]) + 0.05 * abs(st[0]) + 1e-3)
            rows.append((-z, name, v, st[0]))
        rows.sort()   # no key function: a Python call per row cost more than the rest of the sort
        return [{"feature": name, "value": round(v, 4), "baseline": None if b is None else round(b, 4)}
                for _z, name, v, b in rows[:limit]]
