"""Linear ramps between two thresholds: how the scoring turns a measured value into a 0..1
strength, rising (``ramp``) or falling (``falling``). One module with no imports, so that any
model module can use them without an import cycle through ``scoring``.

>>> ramp(5.0, 0.0, 10.0), falling(5.0, 0.0, 10.0)
(0.5, 0.5)
>>> ramp(-1.0, 0.0, 10.0), falling(11.0, 0.0, 10.0)
(0.0, 0.0)
"""
from __future__ import annotations


def ramp(x: float, lo: float, hi: float) -> float:
    """0 below lo, 1 above hi, linear between."""
    if x <= lo:
        return 0.0
    if x >= hi:
        return 1.0
    return (x - lo) / (hi - lo)


def falling(x: float, lo: float, hi: float) -> float:
    """1 at or below lo, 0 at or above hi, linear between (computed directly, not as
    ``1 - ramp``, so values are exactly those of the formula the thresholds were set with)."""
    if x <= lo:
        return 1.0
    if x >= hi:
        return 0.0
    return (hi - x) / (hi - lo)
