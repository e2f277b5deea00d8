"""Request timing models: human diurnal sessions and scripted schedules.

Every generator yields integer epoch-ms timestamps in non-decreasing order
and never yields a timestamp at or beyond ``t_end``.
"""
from __future__ import annotations

import math
import random
from typing import Iterator

from statistics import NormalDist

HOUR = 3_600_000
DAY = 24 * HOUR

# relative activity by local hour of day
PROFILES = {
    "home": [0.06, 0.03, 0.02, 0.02, 0.02, 0.04, 0.10, 0.25, 0.45, 0.65, 0.8, 0.85,
             0.8, 0.8, 0.85, 0.85, 0.8, 0.75, 0.8, 0.9, 1.0, 0.9, 0.55, 0.2],
    "office": [0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.2, 0.6, 0.95, 1.0, 0.95,
               0.6, 0.85, 1.0, 0.95, 0.85, 0.55, 0.3, 0.2, 0.15, 0.12, 0.08, 0.04],
    "flat": [1.0] * 24,
}
_AVG = {k: sum(v) / 24.0 for k, v in PROFILES.items()}

# standard-normal quantiles: a fast, deterministic stand-in for rng.gauss()
_NQ = 4096
NORM = tuple(NormalDist().inv_cdf((i + 0.5) / _NQ) for i in range(_NQ))
_exp = math.exp


def lognorm(rng: random.Random, mu: float, sigma: float) -> float:
    """exp(N(mu, sigma)) drawn with one rng.random() call."""
    return _exp(mu + sigma * NORM[int(rng.random() * _NQ)])


def diurnal_weight(profile: list[float], ts_ms: int, tz_h: float) -> float:
    """Linearly interpolated activity weight at local time."""
    h = ((ts_ms / HOUR) + tz_h) % 24.0
    i = int(h)
    f = h - i
    return profile[i] * (1.0 - f) + profile[(i + 1) % 24] * f


def human_sessions(rng: random.Random, t0: int, t_end: int, n: int, *, tz_h: float,
                   profile: str = "home", turns: tuple[int, int] = (1, 6),
                   think_s: float = 60.0, fill: float = 0.85
                   ) -> Iterator[tuple[int, int, int]]:
    """Yield ``(ts_ms, session_no, turn_no)`` for about ``n`` requests.

    Session starts follow a Poisson process thinned by the diurnal profile,
    paced so the ``n`` requests end around ``fill`` of the window; within a
    session turns are separated by log-normal think times.
    """
    if n <= 0 or t0 >= t_end:
        return
    prof = PROFILES[profile]
    avg_w = _AVG[profile]
    mean_turns = (turns[0] + turns[1]) / 2.0
    sessions = max(1.0, n / mean_turns)
    gap = (t_end - t0) * fill / sessions           # mean ms between accepted session starts
    cand_mean = gap * avg_w                          # wmax == 1
    mu = math.log(max(think_s, 1.0) * 1000.0)
    emitted = 0
    session = 0
    t = t0
    last = t0
    while emitted < n:
        # next session start (thinned Poisson)
        while True:
            t += int(rng.expovariate(1.0 / cand_mean)) + 1
            if t >= t_end:
                return
            if rng.random() < diurnal_weight(prof, t, tz_h):
                break
        if t < last:
            t = last + 1000
        k = rng.randint(turns[0], turns[1])
        ts = t
        for turn in range(k):
            if ts >= t_end or emitted >= n:
                break
            yield ts, session, turn
            emitted += 1
            last = ts
            ts += max(2000, int(lognorm(rng, mu, 0.8)))
        t = last
        session += 1


def steady(rng: random.Random, t0: int, t_end: int, n: int, *, interval_s: float,
           jitter: float = 0.3) -> Iterator[int]:
    """A scripted loop: one request every ``interval_s`` (+- jitter fraction)."""
    iv = interval_s * 1000.0
    t = float(t0)
    for _ in range(n):
        if t >= t_end:
            return
        yield int(t)
        t += max(1.0, iv * (1.0 + jitter * (2.0 * rng.random() - 1.0)))


def bursty(rng: random.Random, t0: int, t_end: int, n: int, *, burst: tuple[int, int],
           intra_s: float, pause_s: tuple[float, float]) -> Iterator[int]:
    """Bursts of back-to-back requests separated by pauses."""
    t = float(t0)
    left = n
    while left > 0:
        b = min(left, rng.randint(burst[0], burst[1]))
        for _ in range(b):
            if t >= t_end:
                return
            yield int(t)
            t += max(1.0, rng.expovariate(1.0 / (intra_s * 1000.0)))
        left -= b
        t += rng.uniform(pause_s[0], pause_s[1]) * 1000.0


def cron_runs(rng: random.Random, t0: int, t_end: int, n: int, *, tz_h: float,
              run_hours: list[float], interval_s: float, jitter: float = 0.1
              ) -> Iterator[int]:
    """A scheduled job: runs start at fixed local hours each day (and once at
    ``t0``), each processing a chunk of items at a fixed pace."""
    starts = [t0]
    day0 = ((t0 + int(tz_h * HOUR)) // DAY) * DAY - int(tz_h * HOUR)
    d = day0
    while d < t_end:
        for h in run_hours:
            s = d + int(h * HOUR)
            if t0 < s < t_end:
                starts.append(s)
        d += DAY
    starts.sort()
    per_run = max(1, -(-n // len(starts)))
    iv = interval_s * 1000.0
    emitted = 0
    t_prev = t0
    for s in starts:
        t = float(max(s, t_prev))
        for _ in range(per_run):
            if emitted >= n or t >= t_end:
                break
            yield int(t)
            t_prev = int(t)
            emitted += 1
            t += max(1.0, iv * (1.0 + jitter * (2.0 * rng.random() - 1.0)))
        if emitted >= n:
            return
