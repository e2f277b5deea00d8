"""Per-account state in event time: compact, bounded, serialisable.

Instead of windows of raw events we keep exponentially decayed counters over
three horizons (about 5 minutes, 1 hour and 1 day). A decayed counter is the
event-time analogue of a sliding window: it never needs a wall-clock purge
(the Faust windowed-table pitfall), costs a few floats whatever the traffic,
and takes a late event by discounting it for its lateness instead of dropping
it. Sketches (small rings, a k-minimum-values distinct counter) stand in for
sets. Everything lives in ``array`` objects so an active account costs well
under 2 KB (measured by ``make bench``).

>>> s = AccountState()
>>> for i in range(10):
...     s.learn_one(EventFeatures(i * 1000, f"e{i}", 1, 2, 0, 3, True, False, False, 0,
...                               False, False, 10, 20, False, "m"))
>>> round(s.count(C_REQUESTS, H_HOUR), 2), round(s.share(C_REASONING, H_HOUR), 2)
(9.99, 1.0)
"""
from __future__ import annotations

import math
from array import array

import orjson

from .features import EventFeatures
from .topics import TOPICS

HORIZONS_MS = (5 * 60_000, 60 * 60_000, 24 * 3_600_000)
H_SHORT, H_HOUR, H_DAY = range(3)
(C_REQUESTS, C_REASONING, C_GRADER, C_LOGPROB, C_BIAS, C_LONG_OUT, C_TRUNCATED,
 C_REPEAT_SKELETON, C_REPEAT_WRAPPER, C_IN_TOKENS, C_OUT_TOKENS, C_ERRORS, C_BIAS_SIZE) = range(13)
N_COUNTERS = 13
RING = 32           # recent skeleton / wrapper fingerprints kept for repeat detection
KMV_K = 16          # k of the k-minimum-values distinct-skeleton sketch
MAX_MODELS = 6
_HASH_SPACE = float(2**63)
_REBASE_AFTER_MS = 20 * HORIZONS_MS[H_SHORT]  # keeps exp() of the scaled counters below e^20


class AccountState:
    """Everything distillguard remembers about one account."""

    __slots__ = ("first_ms", "last_ms", "base_ms", "events", "counters", "topics", "skeletons", "wrappers",
                 "kmv", "gap_mean", "gap_var", "models", "samples", "alert")

    def __init__(self) -> None:
        self.first_ms = 0
        self.last_ms = 0
        self.base_ms = 0                                         # time the stored counters are scaled to
        self.events = 0
        self.counters = array("d", bytes(8 * N_COUNTERS * len(HORIZONS_MS)))
        self.topics = array("d", bytes(8 * len(TOPICS)))        # decayed at the day horizon
        self.skeletons = array("q", bytes(8 * RING))
        self.wrappers = array("q", bytes(8 * RING))
        self.kmv = array("q")                                    # smallest KMV_K skeleton hashes
        self.gap_mean = 0.0                                      # EWMA of log10 inter-arrival gap (s)
        self.gap_var = 0.0
        self.models: dict[str, int] = {}                         # model -> first use (ms)
        self.samples: list[str] = []                             # a few suspicious event ids
        self.alert: list | None = None                           # open alert, see lifecycle.py

    # -- updates ---------------------------------------------------------
    # Counters are stored scaled by exp((t - base_ms) / tau) so an update only
    # touches the counters it adds to (no decay pass over all of them); reads
    # scale back to ``last_ms``. ``_rebase`` keeps the exponents small.
    def _rebase(self, ts: int) -> None:
        dt = ts - self.base_ms
        c = self.counters
        for h, tau in enumerate(HORIZONS_MS):
            f = math.exp(-dt / tau)
            base = h * N_COUNTERS
            for i in range(base, base + N_COUNTERS):
                c[i] *= f
        f = math.exp(-dt / HORIZONS_MS[H_DAY])
        t = self.topics
        for i in range(len(t)):
            t[i] *= f
        self.base_ms = ts

    def learn_one(self, f: EventFeatures) -> None:
        """Fold one event's features into the state (event time; late events are discounted)."""
        ts = f.ts_ms
        if self.events == 0:
            self.first_ms = self.last_ms = self.base_ms = ts
        elif ts > self.last_ms:
            lg = math.log10((ts - self.last_ms) / 1000.0 + 1e-3)
            d = lg - self.gap_mean
            self.gap_mean += 0.1 * d
            self.gap_var = 0.9 * (self.gap_var + 0.1 * d * d)
            self.last_ms = ts
            if ts - self.base_ms > _REBASE_AFTER_MS:
                self._rebase(ts)
        self.events += 1
        repeat_skeleton = f.skeleton_fp in self.skeletons
        repeat_wrapper = f.wrapper_fp in self.wrappers
        slot = self.events % RING
        self.skeletons[slot] = f.skeleton_fp
        self.wrappers[slot] = f.wrapper_fp
        if not repeat_skeleton:
            self._kmv_add(f.skeleton_fp)
        values = ((C_REQUESTS, 1.0), (C_REASONING, f.reasoning), (C_GRADER, f.grader),
                  (C_LOGPROB, f.logprob_probe), (C_BIAS, f.logit_bias_size > 0), (C_LONG_OUT, f.long_output),
                  (C_TRUNCATED, f.truncated), (C_REPEAT_SKELETON, repeat_skeleton),
                  (C_REPEAT_WRAPPER, repeat_wrapper), (C_IN_TOKENS, f.input_tokens),
                  (C_OUT_TOKENS, f.output_tokens), (C_ERRORS, f.error), (C_BIAS_SIZE, f.logit_bias_size))
        values = [(i, v) for i, v in values if v]
        c = self.counters
        dt = ts - self.base_ms
        for h, tau in enumerate(HORIZONS_MS):
            w = math.exp(dt / tau)
            base = h * N_COUNTERS
            for i, v in values:
                c[base + i] += w * v
        self.topics[f.topic] += math.exp(dt / HORIZONS_MS[H_DAY])
        if f.model not in self.models and len(self.models) < MAX_MODELS:
            self.models[f.model] = ts

    def _kmv_add(self, h: int) -> None:
        kmv = self.kmv
        if len(kmv) < KMV_K:
            if h not in kmv:
                kmv.append(h)
            return
        top = max(kmv)
        if h < top and h not in kmv:
            kmv[kmv.index(top)] = h

    def remember_sample(self, event_id: str) -> None:
        if event_id not in self.samples:
            self.samples.append(event_id)
            del self.samples[:-5]

    # -- reads -----------------------------------------------------------
    def count(self, counter: int, horizon: int) -> float:
        """Decayed count at ``last_ms`` over ``horizon``."""
        scale = math.exp(-(self.last_ms - self.base_ms) / HORIZONS_MS[horizon])
        return self.counters[horizon * N_COUNTERS + counter] * scale

    def share(self, counter: int, horizon: int) -> float:
        n = self.counters[horizon * N_COUNTERS]
        return self.counters[horizon * N_COUNTERS + counter] / n if n > 0 else 0.0

    def distinct_skeletons(self) -> float:
        """Estimated distinct prompt skeletons ever seen (KMV estimator)."""
        if len(self.kmv) < KMV_K:
            return float(len(self.kmv))
        return (KMV_K - 1) * _HASH_SPACE / (max(self.kmv) + 1)

    def topic_spread(self) -> tuple[int, float]:
        """(areas holding ≥ 3% of the day's traffic, normalised entropy of the area mix)."""
        total = sum(self.topics)
        if total <= 0:
            return 0, 0.0
        entropy = 0.0
        areas = 0
        for v in self.topics:
            if v > 0:
                p = v / total
                entropy -= p * math.log(p)
                areas += p >= 0.03
        return areas, entropy / math.log(len(self.topics))

    def gap_cv(self) -> float:
        """Spread of log inter-arrival gaps: scripts are regular (small), people are not."""
        return math.sqrt(max(self.gap_var, 0.0))

    # -- persistence -----------------------------------------------------
    def to_bytes(self) -> bytes:
        return orjson.dumps([1, self.first_ms, self.last_ms, self.base_ms, self.events, self.counters.tolist(),
                             self.topics.tolist(), self.skeletons.tolist(), self.wrappers.tolist(),
                             self.kmv.tolist(), self.gap_mean, self.gap_var, self.models, self.samples,
                             self.alert])

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountState:
        (_v, first, last, base, events, counters, topics, skeletons, wrappers, kmv, gap_mean, gap_var,
         models, samples, alert) = orjson.loads(raw)
        s = cls()
        s.first_ms, s.last_ms, s.base_ms, s.events = first, last, base, events
        s.counters = array("d", counters)
        s.topics = array("d", topics)
        s.skeletons = array("q", skeletons)
        s.wrappers = array("q", wrappers)
        s.kmv = array("q", kmv)
        s.gap_mean, s.gap_var, s.models, s.samples, s.alert = gap_mean, gap_var, models, samples, alert
        return s
