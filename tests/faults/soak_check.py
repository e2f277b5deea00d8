"""The soak's memory verdicts over sampled curves (issue #18), pure functions so that a unit
test (tests/test_soak_check.py) can show them a synthetic leak and a flat noisy curve.

A curve is ``[(events processed, value), ...]`` for a stream of ``n`` events. Single samples
are noisy (chDB keeps merged-away parts for minutes, malloc holds freed pages, file-backed
pages fault in late), so the verdicts compare medians of windows and a robust slope, never one
sample against a maximum:

* :func:`growth_after_warmup`: median of the last 10% of the stream over the median of the
  window around 30% (25-35%), minus one;
* :func:`trend_rise`: the Theil-Sen slope (median of pairwise slopes) over the second half of
  the stream, times that half's length: how much the component rose over it, a lone spike or
  dip moving it little, a steady climb all of it.
"""
from __future__ import annotations

import statistics
from itertools import combinations

WARM_WINDOW = (0.25, 0.35)   # "at 30% of the stream"
END_WINDOW = (0.90, 1.01)    # the last 10%
TREND_FROM = 0.5             # the trend is fitted over the second half
TREND_SLACK = 0.03           # a component may rise this fraction of its level over the second half
TREND_ABS = 8.0              # ... plus this much in its own unit (MB or a count), for small counts
MAX_PAIRS_POINTS = 600       # points the Theil-Sen fit uses at most (evenly thinned; 180k pairs)
Z_95 = 1.96                  # the slope's two-sided 95% interval (its lower bound: one-sided 97.5%)

Curve = list[tuple[int, float]]


def window(curve: Curve, n: int, lo: float, hi: float) -> list[float]:
    return [v for e, v in curve if lo * n <= e < hi * n]


def growth_after_warmup(curve: Curve, n: int) -> float | None:
    """Relative growth, median of the last 10% over the median around 30%; None if either
    window has no sample."""
    warm, end = window(curve, n, *WARM_WINDOW), window(curve, n, *END_WINDOW)
    if not warm or not end:
        return None
    base = statistics.median(warm)
    return statistics.median(end) / base - 1 if base else None


def _thinned(points: Curve) -> Curve:
    if len(points) > MAX_PAIRS_POINTS:
        step = len(points) / MAX_PAIRS_POINTS
        points = [points[int(i * step)] for i in range(MAX_PAIRS_POINTS)]
    return points


def _pair_slopes(points: Curve) -> list[float]:
    """Sorted slopes between every pair of points with distinct x (``points`` already thinned)."""
    return sorted((b[1] - a[1]) / (b[0] - a[0]) for a, b in combinations(points, 2) if b[0] != a[0])


def theil_sen_slope(points: Curve) -> float:
    """Median of the slopes between every pair of points (x distinct); 0 for fewer than two."""
    slopes = _pair_slopes(_thinned(points))
    return statistics.median(slopes) if slopes else 0.0


def theil_sen_lower(points: Curve) -> float:
    """The lower bound of the slope's 95% confidence interval (Sen 1968; the Mann-Kendall
    variance of S, ties ignored): the slope the points rise at, at least, allowing for their
    noise. 0 for fewer than three points."""
    points = _thinned(points)
    slopes = _pair_slopes(points)
    m = len(points)
    if m < 3 or not slopes:
        return 0.0
    spread = Z_95 * (m * (m - 1) * (2 * m + 5) / 18) ** 0.5
    return slopes[max(0, int((len(slopes) - spread) / 2))]


def _second_half(curve: Curve, n: int) -> Curve:
    return [(e, v) for e, v in curve if e >= TREND_FROM * n]


def trend_rise(curve: Curve, n: int, slope=theil_sen_slope) -> float:
    """How much the component rose over the second half of the stream (robust fit; ``slope``
    picks the point estimate or :func:`theil_sen_lower`)."""
    half = _second_half(curve, n)
    if len(half) < 3:
        return 0.0
    return slope(half) * (half[-1][0] - half[0][0])


def trending_up(curve: Curve, n: int) -> bool:
    """Still growing at the end: over the second half, risen -- at the lower confidence bound
    of its slope -- by more than TREND_SLACK of its level there plus TREND_ABS, *and* at its
    highest at the end: the median of the last 10% above the median of every earlier tenth of
    the second half. Samples of a structure that swings with the simulated days are correlated,
    so the slope's interval is too narrow for them (a 5M soak put `observer.sent`'s lower bound
    at +47 against an allowance of 39 while its medians per tenth went 891, 949, 1,077, 1,344,
    1,064); a climb also ends at a new high."""
    half = _second_half(curve, n)
    if len(half) < 3:
        return False
    if trend_rise(curve, n, theil_sen_lower) <= TREND_SLACK * statistics.median(v for _, v in half) + TREND_ABS:
        return False
    end = window(curve, n, *END_WINDOW)
    blocks = [window(curve, n, lo / 10, (lo + 1) / 10) for lo in range(int(TREND_FROM * 10), int(END_WINDOW[0] * 10))]
    blocks = [b for b in blocks if b]
    return bool(end) and all(statistics.median(end) > statistics.median(b) for b in blocks)
