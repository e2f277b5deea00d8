"""Breadth of a capability-area mix, one definition for an account and for a cluster."""
from __future__ import annotations

import math
from collections.abc import Iterable

from .capability_areas import AREAS

AREA_MIN_SHARE = 0.03          # an area counts when it holds at least this share of the traffic
_MAX_ENTROPY = math.log(len(AREAS))


def area_spread(weights: Iterable[float]) -> tuple[int, float]:
    """(areas holding ≥ 3% of the total weight, entropy of the mix normalised to 0..1).

    >>> area_spread([1.0, 1.0, 0.0])[0], area_spread([])
    (2, (0, 0.0))
    """
    weights = list(weights)
    total = sum(weights)
    if total <= 0:
        return 0, 0.0
    areas = 0
    entropy = 0.0
    for v in weights:
        if v > 0:
            p = v / total
            entropy -= p * math.log(p)
            areas += p >= AREA_MIN_SHARE
    return areas, entropy / _MAX_ENTROPY
