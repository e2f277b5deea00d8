"""The minimum of the last ``size`` values of a stream, in O(1) amortised per value.

``min(deque(maxlen=size))`` walks the whole window at every read; the cluster stage reads its
clock after every evidence message, with a window of 256 in a stream (``stream_settle``). This
keeps only the values that can still be a minimum: each later and smaller value retires the larger
ones before it, so the front is the window's minimum.

>>> w = WindowMin(3)
>>> [w.push(v) for v in (5, 3, 4, 6, 7, 1)]
[5, 3, 3, 3, 4, 1]
>>> len(w), w.min(empty=0), WindowMin(3).min(empty=0)
(3, 1, 0)
"""
from __future__ import annotations

from collections import deque


class WindowMin:
    """``push(value)`` → the minimum of the last ``size`` values pushed (this one included)."""

    __slots__ = ("size", "_count", "_candidates")

    def __init__(self, size: int):
        if size < 1:
            raise ValueError("the window holds at least one value")
        self.size = size
        self._count = 0
        self._candidates: deque[tuple[int, int]] = deque()   # (position, value), values increasing

    def push(self, value: int) -> int:
        candidates = self._candidates
        while candidates and candidates[-1][1] >= value:
            candidates.pop()
        candidates.append((self._count, value))
        self._count += 1
        if candidates[0][0] <= self._count - 1 - self.size:
            candidates.popleft()
        return candidates[0][1]

    def min(self, empty: int) -> int:
        """The window's minimum; ``empty`` before the first value."""
        candidates = self._candidates
        return candidates[0][1] if candidates else empty

    def __len__(self) -> int:
        """Values in the window (up to ``size``)."""
        return min(self._count, self.size)
