"""Literature baselines, measured on the same traffic as distillguard.

Every baseline consumes :class:`~distillguard.schemas.RequestEvent` objects in
event-time order through ``learn_one(event)`` and keeps, per account, a score
in 0..1 whose decision threshold is 0.5: score ≥ 0.5 is an alert at
``medium`` (≥ 0.75 ``high``, ≥ 0.9 ``critical``, the bands of
:class:`~distillguard.models.DetectorConfig`). ``learn_one`` returns the
account id when that event raised the account's *first* medium+ alert, else
``None``; ``results()`` gives the per-account outcome the metrics consume.

Text representation shared by PRADA and MMD (:class:`HashedText`): the last
user message (whole conversation text if there is none), lower-cased, first
2,000 characters, word unigrams and bigrams feature-hashed (CRC-32, signed)
into 256 dimensions, ``log1p`` term weights, L2-normalised. Cosine distance
between two queries is then ``1 - x·y``, and ``‖x-y‖² = 2 - 2 x·y``.
"""
from __future__ import annotations

import math
import random
import re
import warnings
import zlib
from collections import deque
from typing import Any

import numpy as np
from scipy.stats import shapiro

_shapiro = getattr(shapiro, "__wrapped__", shapiro)  # skip scipy's per-call axis/nan wrapper (~0.15 ms)

from distillguard.schemas import RequestEvent

from ..config import DetectorConfig
from ..lifecycle import severity_of   # the bands of distillguard's defaults: one definition
from ..memo import Memo
from .metrics import AccountResult

MEDIUM = DetectorConfig().medium


class Baseline:
    """Shared bookkeeping: max score, first medium+ alert, highest severity."""

    name = "baseline"
    citation = ""

    def __init__(self) -> None:
        self.max_scores: dict[str, float] = {}
        self.first_alert_ms: dict[str, int] = {}

    def _score(self, account: str, score: float, ts_ms: int) -> str | None:
        score = min(1.0, max(0.0, float(score)))
        if score > self.max_scores.get(account, -1.0):
            self.max_scores[account] = score
        if score >= MEDIUM and account not in self.first_alert_ms:
            self.first_alert_ms[account] = ts_ms
            return account
        return None

    def learn_one(self, event: RequestEvent) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def results(self) -> dict[str, AccountResult]:
        """Per-account outcome (``attack_requests_before`` is filled by the harness)."""
        return {a: AccountResult(s, self.first_alert_ms.get(a), None, severity_of(s))
                for a, s in self.max_scores.items()}


# --------------------------------------------------------------------------- volume

class VolumeBaseline(Baseline):
    """Per-account request-rate rule: the industry default (rate limits /
    "requests per hour above N" abuse rules, e.g. OpenAI and Anthropic usage
    tiers; Tramèr et al., "Stealing Machine Learning Models via Prediction
    APIs", USENIX Security 2016, §8 discuss rate limiting as the first defence).

    Score = ``min(1, 0.5 · count / N)`` where ``count`` is the account's
    requests in the sliding window (default 1 h) ending at this request: the
    alert (0.5) fires at ``count ≥ N``, ``high`` at 1.5 N, 1.0 at 2 N.
    """

    name = "volume"
    citation = "rate-limit rule; Tramer et al., USENIX Security 2016"

    def __init__(self, n: int = 200, window_ms: int = 3_600_000):
        super().__init__()
        self.n = n
        self.window_ms = window_ms
        self.windows: dict[str, deque[int]] = {}

    def params(self) -> dict[str, Any]:
        return {"n": self.n, "window_ms": self.window_ms}

    def learn_one(self, event: RequestEvent) -> str | None:
        w = self.windows.get(event.account_id)
        if w is None:
            w = self.windows[event.account_id] = deque()
        ts = event.ts_ms
        w.append(ts)
        start = ts - self.window_ms
        while w and w[0] <= start:
            w.popleft()
        return self._score(event.account_id, 0.5 * len(w) / self.n, ts)


# --------------------------------------------------------------------------- text

_WORD = re.compile(r"[a-z0-9]+")
_M1, _M2, _MASK = np.uint64(0x9E3779B1), np.uint64(0x2C1B3C6D), np.uint64(0xFFFFFFFF)
_S12, _S15, _S31, _ONE = np.uint64(12), np.uint64(15), np.uint64(31), np.uint64(1)


class HashedText:
    """Query text → L2-normalised 256-d signed feature-hashed bag of word
    unigrams and bigrams (see module docstring). Caches the last event's
    vector so several baselines share one featurisation per event."""

    def __init__(self, dim: int = 256, max_chars: int = 2000):
        self.dim = dim
        self.max_chars = max_chars
        self._cache = Memo("baselines.word_hashes", 500_000, register=False)
        self._last: tuple[RequestEvent, np.ndarray] | None = None

    @staticmethod
    def query_text(event: RequestEvent) -> str:
        for m in reversed(event.messages):
            if m.role == "user" and m.content:
                return m.content
        return " ".join(m.content for m in event.messages if m.content)

    def _hash(self, word: str) -> int:
        h = self._cache.get(word)
        if h is None:
            h = zlib.crc32(word.encode("utf-8", "surrogatepass"))
            self._cache.put(word, h)
        return h

    def text_vector(self, text: str) -> np.ndarray:
        """Unigram hashes are CRC-32 of the word; a bigram's hash mixes its two
        words' hashes (multiply-xorshift), so no bigram strings are built."""
        words = _WORD.findall(text[: self.max_chars].lower())
        v = np.zeros(self.dim)
        if not words:
            return v
        get, hsh = self._cache.get, self._hash
        uni = np.array([get(w) or hsh(w) for w in words], dtype=np.uint64)
        if len(uni) > 1:
            bi = (uni[:-1] * _M1 + uni[1:]) & _MASK
            bi ^= bi >> _S15
            bi = (bi * _M2) & _MASK
            bi ^= bi >> _S12
            allh = np.concatenate([uni, bi])
        else:
            allh = uni
        toks, counts = np.unique(allh, return_counts=True)
        idx = (toks % np.uint64(self.dim)).astype(np.intp)
        sign = ((toks >> _S31) & _ONE).astype(np.float64) * 2.0 - 1.0
        v = np.bincount(idx, weights=sign * np.log1p(counts), minlength=self.dim)
        norm = float(np.sqrt(v @ v))
        return v / norm if norm > 0 else v

    def vector(self, event: RequestEvent) -> np.ndarray:
        if self._last is not None and self._last[0] is event:
            return self._last[1]
        v = self.text_vector(self.query_text(event))
        self._last = (event, v)
        return v


# --------------------------------------------------------------------------- PRADA

def shapiro_w(values) -> float:
    """Shapiro–Wilk W (1.0 when undefined: fewer than 3 values or no spread)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 3 or float(np.ptp(x)) < 1e-9:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = float(_shapiro(x)[0])
    return 1.0 if math.isnan(w) else w


class PradaBaseline(Baseline):
    """PRADA: Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting Against DNN
    Model Stealing Attacks", IEEE EuroS&P 2019 (arXiv:1805.02628).

    Per account, each new query's minimum distance to the account's growing
    set G of earlier queries is appended to the distance set D; the query joins
    G when that distance exceeds ``mean(D) - std(D)`` (the paper's rule).
    Benign query streams give roughly normal distances; synthetic/adaptive
    query generation does not. Every ``every`` queries, once ``|D| ≥ min_d``,
    the Shapiro–Wilk statistic W of D is computed and the account is flagged
    when ``W < delta``.

    Adaptation to text (the paper works on images with L2 distance): queries
    are :class:`HashedText` vectors, distance = cosine distance. Bounded cost:
    G keeps the last ``history`` (200) members, D the last ``max_d`` (1000)
    distances. ``delta`` = 0.90 (the paper tunes δ per model, 0.87–0.96).
    Score = ``min(1, 0.5 · (1 − W) / (1 − δ))``: 0.5 at W = δ, 1.0 at
    W = 1 − 2(1 − δ).
    """

    name = "prada"
    citation = "Juuti et al., PRADA, IEEE EuroS&P 2019"

    def __init__(self, text: HashedText | None = None, delta: float = 0.90, history: int = 200,
                 max_d: int = 1000, min_d: int = 20, every: int = 10):
        super().__init__()
        self.text = text or HashedText()
        self.delta, self.history, self.max_d, self.min_d, self.every = delta, history, max_d, min_d, every
        self.state: dict[str, _PradaState] = {}
        self.last_w: dict[str, float] = {}

    def params(self) -> dict[str, Any]:
        return {"delta": self.delta, "history": self.history, "max_d": self.max_d, "min_d": self.min_d,
                "every": self.every, "distance": "cosine, hashed word 1+2-grams, dim %d" % self.text.dim}

    def distances(self, account: str) -> list[float]:
        st = self.state.get(account)
        return list(st.d) if st else []

    def learn_one(self, event: RequestEvent) -> str | None:
        acct = event.account_id
        x = self.text.vector(event)
        st = self.state.get(acct)
        if st is None:
            st = self.state[acct] = _PradaState(len(x), self.max_d)
            st.add(x, self.history)
            return self._score(acct, 0.0, event.ts_ms)
        dmin = max(0.0, 1.0 - float(np.max(st.g[: st.n] @ x)))
        d = st.d
        if len(d) == d.maxlen:
            old = d[0]
            st.dsum -= old
            st.dsq -= old * old
        d.append(dmin)
        st.dsum += dmin
        st.dsq += dmin * dmin
        n = len(d)
        mean = st.dsum / n
        std = math.sqrt(max(0.0, st.dsq / n - mean * mean))
        if n < 2 or dmin > mean - std:
            st.add(x, self.history)
        if n >= self.min_d and n % self.every == 0:
            w = shapiro_w(np.fromiter(d, dtype=float, count=n))
            self.last_w[acct] = w
            return self._score(acct, 0.5 * (1.0 - w) / (1.0 - self.delta), event.ts_ms)
        return None


class _PradaState:
    """One account's growing set G (ring buffer, capacity doubling up to the
    history bound) and distance set D with running sums."""

    __slots__ = ("g", "n", "pos", "d", "dsum", "dsq")

    def __init__(self, dim: int, max_d: int):
        self.g = np.empty((8, dim))
        self.n = 0
        self.pos = 0
        self.d: deque[float] = deque(maxlen=max_d)
        self.dsum = 0.0
        self.dsq = 0.0

    def add(self, x: np.ndarray, history: int) -> None:
        if self.n < history:
            if self.n == len(self.g):
                g = np.empty((min(2 * len(self.g), history), self.g.shape[1]))
                g[: self.n] = self.g[: self.n]
                self.g = g
            self.g[self.n] = x
            self.n += 1
        else:
            self.g[self.pos] = x
            self.pos = (self.pos + 1) % history


# --------------------------------------------------------------------------- MMD

def median_bandwidth(sqdist: np.ndarray) -> float:
    """Median heuristic: σ² = median of the positive pairwise squared distances."""
    pos = sqdist[sqdist > 1e-12]
    return float(np.median(pos)) if pos.size else 1.0


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances between the rows of ``a`` and ``b``."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD² (Gretton et al., JMLR 2012, eq. 3) from kernel matrices."""
    m, n = kxx.shape[0], kyy.shape[0]
    if m < 2 or n < 2:
        return 0.0
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


class MmdBaseline(Baseline):
    """Window two-sample test against a reference of all traffic, after the
    MMD-based query-distribution detector of arXiv:2606.05725 (which embeds
    queries with a sentence encoder; here :class:`HashedText` vectors) and
    Gretton et al., "A Kernel Two-Sample Test", JMLR 2012 (unbiased MMD²).

    Reference: a uniform reservoir (``reference`` = 300 events, seeded) of the
    whole stream: no labels are used. It is frozen into a snapshot every
    ``refresh`` events (first snapshot once the reservoir is full); at each
    snapshot the RBF bandwidth is set by the median heuristic on the reference
    and the alert threshold is calibrated as the ``quantile`` (0.99) of a
    null distribution: MMD² of ``null_draws`` (100) random ``window``-sized
    subsets of the reference against the rest of it.

    Per account: window of the last ``window`` (50) queries; every ``every``
    (10) queries once ``min_window`` (20) are in, MMD² of the window vs the
    reference. Score = ``min(1, 0.5 · MMD² / threshold)``: 0.5 at the
    calibrated threshold. Known limitation (also why this is a baseline): one
    account's traffic is more homogeneous than the global mix, so benign
    accounts exceed an i.i.d. null often.
    """

    name = "mmd"
    citation = "MMD window test after arXiv:2606.05725; Gretton et al., JMLR 2012"

    def __init__(self, text: HashedText | None = None, reference: int = 300, window: int = 50,
                 min_window: int = 20, every: int = 10, refresh: int = 20_000, quantile: float = 0.99,
                 null_draws: int = 100, seed: int = 0):
        super().__init__()
        self.text = text or HashedText()
        self.reference, self.window, self.min_window, self.every = reference, window, min_window, every
        self.refresh, self.quantile, self.null_draws = refresh, quantile, null_draws
        self.rng = random.Random(seed)
        self.reservoir: list[np.ndarray] = []
        self.seen = 0
        self.since_snapshot = 0
        self.ref: np.ndarray | None = None
        self.gamma = 1.0
        self.kyy_term = 0.0
        self.threshold = 0.0
        self.windows: dict[str, deque[np.ndarray]] = {}
        self.counts: dict[str, int] = {}
        self.last_mmd2: dict[str, float] = {}
        self.snapshots = 0

    def params(self) -> dict[str, Any]:
        return {"reference": self.reference, "window": self.window, "min_window": self.min_window,
                "every": self.every, "refresh": self.refresh, "quantile": self.quantile,
                "null_draws": self.null_draws, "threshold": round(self.threshold, 6),
                "bandwidth_sigma2": round(1.0 / (2 * self.gamma), 6) if self.gamma else None,
                "snapshots": self.snapshots}

    def _snapshot(self) -> None:
        y = np.stack(self.reservoir)
        dyy = sq_dists(y, y)
        self.gamma = 1.0 / (2.0 * median_bandwidth(dyy))
        kyy = np.exp(-self.gamma * dyy)
        n = len(y)
        self.ref = y
        self.kyy_term = float((kyy.sum() - np.trace(kyy)) / (n * (n - 1)))
        # null: random window-sized subsets of the reference vs the remainder
        rng = np.random.default_rng(self.rng.randrange(2**32))
        null = []
        m = min(self.window, n // 2)
        for _ in range(self.null_draws):
            idx = rng.permutation(n)
            a, b = idx[:m], idx[m:]
            null.append(mmd2_unbiased(kyy[np.ix_(a, a)], kyy[np.ix_(b, b)], kyy[np.ix_(a, b)]))
        self.threshold = max(float(np.quantile(null, self.quantile)), 1e-6)
        self.snapshots += 1
        self.since_snapshot = 0

    def mmd2(self, xs: np.ndarray) -> float:
        """Unbiased MMD² of the rows of ``xs`` against the current reference snapshot."""
        assert self.ref is not None
        kxx = np.exp(-self.gamma * sq_dists(xs, xs))
        kxy = np.exp(-self.gamma * sq_dists(xs, self.ref))
        m = len(xs)
        sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        return float(sxx + self.kyy_term - 2.0 * kxy.mean())

    def learn_one(self, event: RequestEvent) -> str | None:
        x = self.text.vector(event)
        # reservoir of all traffic (Vitter's algorithm R)
        self.seen += 1
        self.since_snapshot += 1
        if len(self.reservoir) < self.reference:
            self.reservoir.append(x)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.reference:
                self.reservoir[j] = x
        if len(self.reservoir) >= self.reference and (self.ref is None or self.since_snapshot >= self.refresh):
            self._snapshot()
        acct = event.account_id
        w = self.windows.get(acct)
        if w is None:
            w = self.windows[acct] = deque(maxlen=self.window)
        w.append(x)
        n = self.counts[acct] = self.counts.get(acct, 0) + 1
        if self.ref is None or len(w) < self.min_window or n % self.every:
            if acct not in self.max_scores:
                self.max_scores[acct] = 0.0
            return None
        v = self.mmd2(np.stack(w))
        self.last_mmd2[acct] = v
        return self._score(acct, 0.5 * max(0.0, v) / self.threshold, event.ts_ms)


def default_baselines() -> list[Baseline]:
    """The three baselines with their documented defaults, sharing one text featuriser."""
    text = HashedText()
    return [VolumeBaseline(), PradaBaseline(text), MmdBaseline(text)]
