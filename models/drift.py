"""Distribution distance between an account's recent requests and its own earlier traffic, or its
cohort: a streaming MMD over task groups, in a fixed 2 x 16 float32 sketch (128 bytes of counts an account).

The idea is the MMD two-sample test's (Gretton et al.): a product's requests are draws from one
stable distribution; an account that starts extracting moves to a different one. With the kernel
``k(a, b) = [task(a) == task(b)]`` on capability areas (``capability_space.TASK_OF``), the squared
MMD between two samples is the squared L2 distance between their task-group histograms, so the
sketch is two exponentially decayed histograms (about 1 hour and 1 day) and one read is 16
subtractions. Counts are stored scaled by ``exp(t / tau)`` from a base time, as ``state.py`` does,
so an update touches two cells.

Measured (evasive and default scenarios, seeds 1-3, the largest value at any scoring point; for
attacks within their first 64 attack requests): a sweep's mix is broad and steady, so it sits
*close* to both references; narrow products and people drift. Own history: attacks 0.00-0.13
(evasive), up to 0.56 (default hydra members); benign casual users up to 1.1-1.5, developers
1.0-1.2, launch-day 0.5-0.9, agent platforms 0.5-0.8. Against the tier's mix: attacks 0.08-0.65
(evasive; logprob probes up to 1.1), benign medians 0.4-0.9 with maxima up to 1.7. A large
distance flags benign accounts long before attacks, and a small one says what breadth already
says; so it is not wired into the score (no recall to add without benign cost). Kept as the
measured instrument for a pivot-style attack (a product account that turns into a sweep).

>>> d = Drift()
>>> for i in range(40):
...     d.learn(i * 60_000, 0)                 # 40 minutes of one task
>>> round(d.distance(), 3)
0.0
>>> for i in range(40, 70):
...     d.learn(i * 60_000, i % 16)            # then half an hour over every task
>>> d.distance() > 0.01
True
"""
from __future__ import annotations

import math
from array import array

from .capability_space import N_TASKS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_REBASE_AFTER_MS = 20 * HOUR_MS   # keeps exp() of the scaled counts below e^20


class Drift:
    """Recent (1 h) and day (24 h) task-group histograms of one account."""

    __slots__ = ("base_ms", "last_ms", "counts")

    def __init__(self) -> None:
        self.base_ms = -1
        self.last_ms = 0
        self.counts = array("f", [0.0]) * (2 * N_TASKS)

    def learn(self, ts_ms: int, task: int) -> None:
        """One request of task group ``task`` (an area's ``TASK_OF``) at event time ``ts_ms``."""
        if self.base_ms < 0:
            self.base_ms = ts_ms
        if ts_ms - self.base_ms > _REBASE_AFTER_MS:
            self._rebase(ts_ms)
        self.last_ms = max(self.last_ms, ts_ms)
        dt = ts_ms - self.base_ms
        self.counts[task] += math.exp(dt / HOUR_MS)
        self.counts[N_TASKS + task] += math.exp(dt / DAY_MS)

    def _rebase(self, ts: int) -> None:
        dt = ts - self.base_ms
        fh, fd = math.exp(-dt / HOUR_MS), math.exp(-dt / DAY_MS)
        c = self.counts
        for i in range(N_TASKS):
            c[i] *= fh
            c[N_TASKS + i] *= fd
        self.base_ms = ts

    def recent(self) -> list[float]:
        """The last hour's task-group mix (shares)."""
        return _shares(self.counts[:N_TASKS])

    def day(self) -> list[float]:
        """The day's task-group mix (shares)."""
        return _shares(self.counts[N_TASKS:])

    def distance(self, reference: list[float] | None = None) -> float:
        """Squared MMD (task-group kernel) between the last hour and ``reference`` (default: the
        account's own day), in 0..2."""
        ref = self.day() if reference is None else reference
        return sum((a - b) ** 2 for a, b in zip(self.recent(), ref))


def _shares(v) -> list[float]:
    total = sum(v)
    return [x / total for x in v] if total > 0 else [0.0] * len(v)


class CohortMix:
    """The decayed mean task-group mix of a cohort's accounts (one per cohort, updated at scoring
    time with accounts that are not alerting), the reference for ``Drift.distance``."""

    __slots__ = ("mix", "rate")

    def __init__(self, rate: float = 0.01) -> None:
        self.mix = [1.0 / N_TASKS] * N_TASKS
        self.rate = rate

    def learn(self, day: list[float]) -> None:
        r = self.rate
        self.mix = [(1 - r) * m + r * d for m, d in zip(self.mix, day)]
