"""Unsupervised per-cohort anomaly scores of account feature vectors (River Half-Space Trees).

One ``river.anomaly.HalfSpaceTrees`` per cohort (access tier): what is
unusual for a free-tier hobbyist is routine for an enterprise, so each tier
is compared with itself. HST wants features in [0, 1]; ``scale`` squashes
unbounded counts with ``x / (x + half)``. Height 8 (cost and memory grow as
2**height per tree), 10 trees, a window of 250 vectors, a fixed seed:
deterministic. The models live in the Detector (one per worker process), not
in the per-account state; a restarted worker relearns them within a window.

>>> a = CohortAnomaly(window_size=20)
>>> for i in range(60):
...     a.learn_one("pro", {"x": 0.1 + 0.01 * (i % 5), "y": 0.2})
>>> a.score_one("pro", {"x": 0.95, "y": 0.9}) > a.score_one("pro", {"x": 0.12, "y": 0.2})
True
>>> a.score_one("free", {"x": 0.5, "y": 0.5})   # an unseen cohort has no opinion yet
0.0
"""
from __future__ import annotations

from river import anomaly


def scale(x: float, half: float) -> float:
    """Squash a non-negative count into [0, 1): ``half`` maps to 0.5."""
    return x / (x + half) if x > 0 else 0.0


class CohortAnomaly:
    """A Half-Space Trees model per cohort; scores only once a cohort has filled a window."""

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int = 42):
        self.n_trees, self.height, self.window_size, self.seed = n_trees, height, window_size, seed
        self._models: dict[str, anomaly.HalfSpaceTrees] = {}
        self._seen: dict[str, int] = {}

    def score_one(self, cohort: str, x: dict[str, float]) -> float:
        """Anomaly score in [0, 1] (higher: rarer for this cohort); 0 until the cohort has a reference."""
        model = self._models.get(cohort)
        if model is None or self._seen[cohort] < 2 * self.window_size:
            return 0.0
        return model.score_one(x)

    def learn_one(self, cohort: str, x: dict[str, float]) -> None:
        model = self._models.get(cohort)
        if model is None:
            model = self._models[cohort] = anomaly.HalfSpaceTrees(
                n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed)
            self._seen[cohort] = 0
        model.learn_one(x)
        self._seen[cohort] += 1
