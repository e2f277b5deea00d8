"""Per-account state in event time: compact, bounded, serialisable.

Instead of windows of raw events we keep exponentially decayed counters over
three horizons (about 5 minutes, 1 hour and 1 day). A decayed counter is the
event-time analogue of a sliding window: it never needs a wall-clock purge
(the Faust windowed-table pitfall), costs a few floats whatever the traffic,
and takes a late (out-of-order) event by discounting it for its lateness
instead of dropping it. Sketches stand in for sets: rings of recent
fingerprints (repeats and template fills), a k-minimum-values distinct
counter, and a 4-slot Space-Saving heavy-hitter table of templates.
Everything lives in ``array`` objects, so an active account costs under
2 KB (``state_bytes``; tests/test_state.py checks a busy account); an account that sends
``user_id`` adds up to 64 end-user rows (``end_users.py``, ~8 KB at the cap with 40-char ids).

>>> s = AccountState()
>>> for i in range(10):
...     s.learn_one(EventFeatures(i * 1000, f"e{i}", 1, 2, 3, True, False, False, 0,
...                               False, False, 10, 20, False, "m", capability=i))
>>> round(s.count(C_REQUESTS, H_HOUR), 2), round(s.share(C_REASONING, H_HOUR), 2)
(9.99, 1.0)
>>> s.capability_spread()[0] > 9    # ten requests, ten areas
True
>>> state_bytes(s) < 2560
True
"""
from __future__ import annotations

import math
import sys
import zlib
from array import array

import orjson

from . import native
from .end_users import EndUsers
from .features import EventFeatures
from .capability_space import N_SLOTS as N_CAPS, N_TASKS, OTHER as CAP_OTHER, TASK_OF
from .lifecycle import OpenAlert

HORIZONS_MS = (5 * 60_000, 60 * 60_000, 24 * 3_600_000)
H_SHORT, H_HOUR, H_DAY = range(3)
(C_REQUESTS, C_REASONING, C_GRADER, C_LOGPROB, C_BIAS, C_LONG_OUT, C_TRUNCATED, C_REPEAT_SKELETON,
 C_TEMPLATE_FILL, C_IN_TOKENS, C_OUT_TOKENS, C_ERRORS, C_FRESH, C_BURST, C_NEW_MODEL, C_LONG_ANSWER,
 C_SHORT_ANSWER, C_PADDED) = range(18)
N_COUNTERS = 18
RING = 16           # recent skeleton / wrapper fingerprints kept for repeat detection
ASK_RING = 16       # recent unrelated asks (paste.py): one that repeats is a product's fixed instruction
KMV_K = 16          # k of the k-minimum-values distinct-skeleton sketch
TOP_K = 4           # heavy-hitter template slots
MAX_MODELS = 4
MAX_SAMPLES = 3
BURST_GAP_MS = 1000                 # a request within 1 s of the previous one is part of a burst
PIVOT_HISTORY_MS = 6 * 3_600_000    # a model adopted after this much history on others is "new"...
PIVOT_RECENT_MS = 24 * 3_600_000    # ...for this long after its first use
FORMAT = 4
# Layout of the two packed arrays (one array object each: ~64 bytes of overhead per array saved).
# ``num`` (float32; shares need no more precision): counters per horizon, day-decayed capability
# mix, gap EWMA.
CAP0 = N_COUNTERS * len(HORIZONS_MS)
GAP_MEAN = CAP0 + N_CAPS
GAP_VAR = GAP_MEAN + 1
N_NUM = GAP_VAR + 1
# ``sketch`` (int64): skeleton ring, wrapper ring, Space-Saving fps and counts, KMV, then
# (model id, first use ms) pairs, then the ring of unrelated asks; 0 marks an empty slot.
SKEL0, WRAP0, TOPFP0, TOPN0, KMV0 = 0, RING, 2 * RING, 2 * RING + TOP_K, 2 * RING + 2 * TOP_K
MODEL0 = KMV0 + KMV_K
ASK0 = MODEL0 + 2 * MAX_MODELS
N_SKETCH = ASK0 + ASK_RING
_HASH_SPACE = float(2**63)
_ORDER = sys.byteorder   # array('q') stores native-order int64s
_REBASE_AFTER_MS = 20 * HORIZONS_MS[H_SHORT]  # keeps exp() of the scaled counters below e^20
_TAUS = tuple(enumerate(HORIZONS_MS))
_TAU_SHORT, _TAU_HOUR, _TAU_DAY = HORIZONS_MS
_HOUR0, _DAY0 = H_HOUR * N_COUNTERS, H_DAY * N_COUNTERS   # offsets of the hour and day counters


# where everything sits in the arrays, for the compiled update (native.py, models/_statecore.c)
_CORE = native.StateCore({
    "n_num": N_NUM, "n_sketch": N_SKETCH, "n_counters": N_COUNTERS, "hour0": _HOUR0, "day0": _DAY0,
    "gap_mean": GAP_MEAN, "gap_var": GAP_VAR, "cap0": CAP0, "n_caps": N_CAPS, "tau_short": _TAU_SHORT,
    "tau_hour": _TAU_HOUR, "tau_day": _TAU_DAY, "burst_gap_ms": BURST_GAP_MS, "rebase_after_ms": _REBASE_AFTER_MS,
    "pivot_history_ms": PIVOT_HISTORY_MS, "pivot_recent_ms": PIVOT_RECENT_MS, "skel0": SKEL0, "wrap0": WRAP0,
    "ring": RING, "kmv0": KMV0, "kmv_k": KMV_K, "topfp0": TOPFP0, "topn0": TOPN0, "top_k": TOP_K,
    "model0": MODEL0, "max_models": MAX_MODELS, "ask0": ASK0, "ask_ring": ASK_RING,
    "c_requests": C_REQUESTS, "c_reasoning": C_REASONING, "c_grader": C_GRADER, "c_logprob": C_LOGPROB,
    "c_bias": C_BIAS, "c_long_out": C_LONG_OUT, "c_truncated": C_TRUNCATED,
    "c_repeat_skeleton": C_REPEAT_SKELETON, "c_template_fill": C_TEMPLATE_FILL, "c_errors": C_ERRORS,
    "c_fresh": C_FRESH, "c_burst": C_BURST, "c_new_model": C_NEW_MODEL, "c_long_answer": C_LONG_ANSWER,
    "c_short_answer": C_SHORT_ANSWER, "c_padded": C_PADDED, "c_in_tokens": C_IN_TOKENS,
    "c_out_tokens": C_OUT_TOKENS}) if native.StateCore is not None else None
_core_learn = None   # _CORE.learn while the compiled route is on (native.on_switch)


def _set_compiled(on: bool) -> None:
    global _core_learn
    _core_learn = _CORE.learn if on and _CORE is not None else None


native.on_switch(_set_compiled)


def _model_id(model: str) -> int:
    """A model's id in the sketch: deterministic, never 0; a CRC of a short name costs less than a
    memo lookup would."""
    return zlib.crc32(model.encode()) | 1 << 32


def _holds(raw: bytes, start: int, n: int, value: int) -> bool:
    """Is ``value`` among the ``n`` int64 slots from ``start`` of a sketch's bytes? One C search
    instead of boxing each slot into a Python int to compare it (``in`` on an array slice)."""
    needle = value.to_bytes(8, _ORDER, signed=True)
    start *= 8
    stop = start + 8 * n
    at = raw.find(needle, start, stop)
    while at >= 0 and (at - start) & 7:     # a match must sit on a slot boundary
        at = raw.find(needle, at + 1, stop)
    return at >= 0


class AccountState:
    """Everything distillguard remembers about one account."""

    __slots__ = ("first_ms", "last_ms", "base_ms", "events", "num", "sketch", "tier", "created_ms", "samples",
                 "alert", "users", "source", "offset")

    def __init__(self) -> None:
        self.first_ms = 0
        self.last_ms = 0
        self.base_ms = 0                                  # time the stored counters are scaled to
        self.events = 0
        self.num = array("f", [0.0]) * N_NUM              # (repetition allocates exactly, bytes() does not)
        self.sketch = array("q", [0]) * N_SKETCH
        self.tier: str | None = None
        self.created_ms: int | None = None
        self.samples: list[str] = []                      # a few suspicious event ids
        self.alert: OpenAlert | None = None               # open alert, see lifecycle.py
        self.users: EndUsers | None = None                # per-end-user rows, once a user_id is seen
        # Input position (source, offset) of the last event folded in: the stream's (partition,
        # offset). A worker that takes over a partition reads again from the committed offset,
        # which may lie behind states already in the changelog; ``holds`` lets it skip those.
        self.source = -1
        self.offset = -1

    # -- updates ---------------------------------------------------------
    # Counters are stored scaled by exp((t - base_ms) / tau) so an update only
    # touches the counters it adds to (no decay pass over all of them); reads
    # scale back to ``last_ms``. ``_rebase`` keeps the exponents small.
    def _rebase(self, ts: int) -> None:
        dt = ts - self.base_ms
        c = memoryview(self.num)
        for h, tau in _TAUS:
            f = math.exp(-dt / tau)
            base = h * N_COUNTERS
            for i in range(base, base + N_COUNTERS):
                c[i] *= f
        f = math.exp(-dt / HORIZONS_MS[H_DAY])
        for i in range(CAP0, CAP0 + N_CAPS):
            c[i] *= f
        self.base_ms = ts

    def learn_one(self, f: EventFeatures) -> None:
        """Fold one event's features into the state (event time; late events are discounted)."""
        if _core_learn is not None:
            # the same arithmetic, compiled (``_counters_and_sketches`` is its definition)
            _core_learn(self, f, _model_id(f.model))
        else:
            self._counters_and_sketches(f)
        if f.tier is not None:
            self.tier = f.tier
        if f.created_ms is not None:
            self.created_ms = f.created_ms
        if f.end_user is not None:
            if self.users is None:
                self.users = EndUsers()
            self.users.learn(f.end_user, f.ts_ms, f.capability, f.reasoning, f.long_answer)

    def _counters_and_sketches(self, f: EventFeatures) -> None:
        """``learn_one``'s update of the times, counters and sketches (pure Python)."""
        ts = f.ts_ms
        # item assignment through a memoryview skips the array's per-item argument parsing
        c = memoryview(self.num)
        burst = False
        if self.events == 0:
            self.first_ms = self.last_ms = self.base_ms = ts
        elif ts >= self.last_ms:
            gap = ts - self.last_ms
            burst = gap < BURST_GAP_MS
            d = math.log10(gap / 1000.0 + 1e-3) - c[GAP_MEAN]
            c[GAP_MEAN] += 0.1 * d
            c[GAP_VAR] = 0.9 * (c[GAP_VAR] + 0.1 * d * d)
            self.last_ms = ts
            if ts - self.base_ms > _REBASE_AFTER_MS:
                self._rebase(ts)
        self.events += 1
        sk, wr = f.skeleton_fp, f.wrapper_fp
        sketch = self.sketch
        raw = sketch.tobytes()
        repeat_skeleton = _holds(raw, SKEL0, RING, sk)
        # a template fill: the wrapper seen recently around a payload not seen recently
        template_fill = not repeat_skeleton and sk != wr and _holds(raw, WRAP0, RING, wr)
        slot = self.events % RING
        sketch[SKEL0 + slot] = sk
        sketch[WRAP0 + slot] = wr
        if not repeat_skeleton:
            self._kmv_add(sk)
        self._top_add(wr)
        new_model = self._model_is_new(_model_id(f.model), ts)
        padded = f.unrelated_ask != 0 and self._ask_is_new(f.unrelated_ask)
        # counters this event adds one to (token counts are added below with their values)
        ones = [C_REQUESTS]
        add = ones.append
        if f.reasoning:
            add(C_REASONING)
        if f.grader:
            add(C_GRADER)
        if f.logprob_probe:
            add(C_LOGPROB)
        if f.logit_bias_size:
            add(C_BIAS)
        if f.long_output:
            add(C_LONG_OUT)
        if f.truncated:
            add(C_TRUNCATED)
        if repeat_skeleton:
            add(C_REPEAT_SKELETON)
        if template_fill:
            add(C_TEMPLATE_FILL)
        if f.error:
            add(C_ERRORS)
        if f.fresh:
            add(C_FRESH)
        if burst:
            add(C_BURST)
        if new_model:
            add(C_NEW_MODEL)
        if f.long_answer:
            add(C_LONG_ANSWER)
        if f.short_answer:
            add(C_SHORT_ANSWER)
        if padded:
            add(C_PADDED)
        dt = ts - self.base_ms
        w0, w1, w2 = math.exp(dt / _TAU_SHORT), math.exp(dt / _TAU_HOUR), math.exp(dt / _TAU_DAY)
        for i in ones:
            c[i] += w0
            c[i + _HOUR0] += w1
            c[i + _DAY0] += w2
        for i, v in ((C_IN_TOKENS, f.input_tokens), (C_OUT_TOKENS, f.output_tokens)):
            if v:
                c[i] += w0 * v
                c[i + _HOUR0] += w1 * v
                c[i + _DAY0] += w2 * v
        c[CAP0 + f.capability] += w2

    def _model_is_new(self, mid: int, ts: int) -> bool:
        """Is model ``mid`` (``_model_id``) one the account moved to recently, after hours of
        history on others?"""
        sketch = self.sketch
        first_use = ts
        for i in range(MODEL0, MODEL0 + 2 * MAX_MODELS, 2):
            if sketch[i] == mid:
                first_use = sketch[i + 1]
                break
            if sketch[i] == 0:
                sketch[i], sketch[i + 1] = mid, ts
                break
        return first_use - self.first_ms >= PIVOT_HISTORY_MS and ts - first_use <= PIVOT_RECENT_MS

    def _ask_is_new(self, fp: int) -> bool:
        """Remember an unrelated ask (``paste.py``); True if it is not among the last ``ASK_RING``:
        a product's fixed instruction beside pasted text repeats, a padded sweep's questions do not."""
        sketch = self.sketch
        if _holds(sketch.tobytes(), ASK0, ASK_RING, fp):
            return False
        # the slots shift by one (oldest out): asks are a minority of requests, so no cursor is kept
        sketch[ASK0:ASK0 + ASK_RING - 1] = sketch[ASK0 + 1:ASK0 + ASK_RING]
        sketch[ASK0 + ASK_RING - 1] = fp
        return True

    def _kmv_add(self, h: int) -> None:
        """Keep the KMV_K smallest distinct hashes, sorted, empty (0) slots last; once full, almost
        every hash is rejected by one comparison with the largest kept."""
        sketch = self.sketch
        last = sketch[KMV0 + KMV_K - 1]
        if (last and h >= last) or h == 0:
            return
        kept = [v for v in sketch[KMV0:KMV0 + KMV_K] if v]
        if h in kept:
            return
        kept.append(h)
        kept.sort()
        del kept[KMV_K:]
        sketch[KMV0:KMV0 + len(kept)] = array("q", kept)

    def _top_add(self, fp: int) -> None:
        """Space-Saving: count ``fp`` exactly if tracked, else evict the smallest count."""
        sketch = self.sketch
        fps = sketch[TOPFP0:TOPFP0 + TOP_K]
        if fp in fps:
            sketch[TOPN0 + fps.index(fp)] += 1
            return
        ns = sketch[TOPN0:TOPN0 + TOP_K]
        i = ns.index(min(ns))
        sketch[TOPFP0 + i] = fp
        sketch[TOPN0 + i] += 1

    def remember_sample(self, event_id: str) -> None:
        if event_id not in self.samples:
            self.samples.append(event_id)
            del self.samples[:-MAX_SAMPLES]

    # -- reads -----------------------------------------------------------
    def count(self, counter: int, horizon: int) -> float:
        """Decayed count at ``last_ms`` over ``horizon``."""
        scale = math.exp(-(self.last_ms - self.base_ms) / HORIZONS_MS[horizon])
        return self.num[horizon * N_COUNTERS + counter] * scale

    def share(self, counter: int, horizon: int) -> float:
        return self.ratio(counter, C_REQUESTS, horizon)

    def ratio(self, num: int, den: int, horizon: int) -> float:
        d = self.num[horizon * N_COUNTERS + den]
        return min(self.num[horizon * N_COUNTERS + num] / d, 1e6) if d > 0 else 0.0

    def distinct_skeletons(self) -> float:
        """Estimated distinct prompt skeletons ever seen (KMV estimator)."""
        last = self.sketch[KMV0 + KMV_K - 1]
        if not last:
            return float(sum(1 for h in self.sketch[KMV0:KMV0 + KMV_K] if h))
        return (KMV_K - 1) * _HASH_SPACE / (last + 1)

    def top_template_share(self) -> float:
        """Share of all requests that used the most frequent wrapper (Space-Saving upper bound)."""
        return max(self.sketch[TOPN0:TOPN0 + TOP_K]) / self.events if self.events else 0.0

    def capability_spread(self) -> tuple[float, float]:
        """(effective number of capability areas of the day's traffic, exp of the mix's entropy;
        share of the day's traffic in no area). A product lives in a few areas, a sweep in dozens."""
        caps = self.num[CAP0:CAP0 + N_CAPS]
        total = sum(caps)
        if total <= 0:
            return 0.0, 0.0
        named = total - caps[CAP_OTHER]
        entropy = 0.0
        if named > 0:
            for i, v in enumerate(caps):
                if v > 0 and i != CAP_OTHER:
                    p = v / named
                    entropy -= p * math.log(p)
        return math.exp(entropy) if named > 0 else 0.0, caps[CAP_OTHER] / total

    def task_breadth(self) -> float:
        """Effective number of task groups (``capability_space.TASK_OF``) of the day's traffic: a
        product doing one or two tasks over diverse topics spans many areas but few tasks."""
        caps = self.num
        mass = [0.0] * N_TASKS
        for i, g in enumerate(TASK_OF):
            mass[g] += caps[CAP0 + i]
        total = sum(mass)
        if total <= 0:
            return 0.0
        return math.exp(-sum(v / total * math.log(v / total) for v in mass if v > 0))

    def models_used(self) -> int:
        """Distinct models used (up to MAX_MODELS)."""
        return sum(1 for i in range(MODEL0, MODEL0 + 2 * MAX_MODELS, 2) if self.sketch[i])

    def gap_spread(self) -> float:
        """Spread (std) of log10 inter-arrival gaps: scripts are regular (small), people are not."""
        return math.sqrt(max(self.num[GAP_VAR], 0.0))

    def holds(self, source: int, offset: int, ts_ms: int) -> bool:
        """Was the event at input position ``(source, offset)``, of event time ``ts_ms``, folded
        into this state already? True for the last event's position and earlier offsets of the
        same source (a source's offsets only grow) if the state has seen event time ``ts_ms``.
        Never for another source; nor for an event newer than the state, so a topic made anew
        (offsets from 0 again) under kept states has its events learned, not skipped.

        >>> s = AccountState()
        >>> s.source, s.offset, s.last_ms = 3, 1_000, 60_000
        >>> s.holds(3, 999, 59_000), s.holds(3, 1_000, 60_000), s.holds(3, 1_001, 60_000)
        (True, True, False)
        >>> s.holds(4, 10, 59_000), s.holds(3, 10, 61_000)   # another source; newer than the state
        (False, False)
        """
        return source == self.source and offset <= self.offset and ts_ms <= self.last_ms

    # -- persistence -----------------------------------------------------
    def to_bytes(self) -> bytes:
        return orjson.dumps([FORMAT, self.first_ms, self.last_ms, self.base_ms, self.events, self.num.tolist(),
                             self.sketch.tolist(), self.tier, self.created_ms, self.samples,
                             None if self.alert is None else self.alert.to_list(),
                             self.users.to_list() if self.users is not None else None,
                             self.source, self.offset])

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountState:
        """Inverse of :meth:`to_bytes`. A state of an older layout is dropped and relearned
        (a fresh state), so a worker never crashes on its own changelog after an upgrade."""
        doc = orjson.loads(raw)
        s = cls()
        if doc[0] != FORMAT:
            return s
        (_v, s.first_ms, s.last_ms, s.base_ms, s.events, num, sketch, s.tier, s.created_ms, s.samples,
         alert, users) = doc[:12]
        if len(doc) > 12:   # states written before the input position was kept have none
            s.source, s.offset = doc[12:14]
        s.alert = OpenAlert.from_list(alert)
        s.users = EndUsers.from_list(users) if users is not None else None
        s.num = array("f", num)
        s.sketch = array("q", sketch)
        return s


def state_bytes(state: AccountState) -> int:
    """Deep in-memory size of one state: the object, its slots, and the contents of its
    containers (strings included, as if none were shared)."""
    total = sys.getsizeof(state)
    for name in AccountState.__slots__:
        value = getattr(state, name)
        if value is None:        # the None singleton is shared, not this state's memory
            continue
        if isinstance(value, EndUsers):
            total += sys.getsizeof(value) + sys.getsizeof(value.rows) + sys.getsizeof(value.ids) + \
                sum(sys.getsizeof(u) for u in value.ids)
            continue
        total += sys.getsizeof(value)
        if isinstance(value, dict):
            total += sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in value.items())
        elif isinstance(value, list):
            total += sum(sys.getsizeof(v) for v in value)
    return total
