"""Cross-account detection, stage 3a: pair state, split into shards by pair.

Most pair evidence never matters to a cluster: two accounts behind one /24, or
one shared system prompt, stay below ``link_threshold`` however often they are
seen. Keeping and updating that pair state is most of the cluster stage's work
(``streams/cluster_ceiling.py`` measures it), and it depends on nothing but
the pair's own evidence, so it partitions by pair. A :class:`PairShard` keeps
the pairs whose key ``shard_of`` gives it and hands the cluster core
(``clusters.ClusterEngine``) only the pairs that can ever join two accounts:

*hot* pairs, whose *potential* (the strength with no evidence faded:
``_Pair.potential``) reached ``link_threshold`` once. A pair's strength at any
time is at most its potential, so a pair that never got hot was never strong
and the core, which only unions strong pairs and counts strong pairs' kinds,
decides the same without it. Once hot, a pair is handed over with every
update, so the core's copy is the shard's own.

With one shard this is the engine's own pair book; with several, the core's
input is the same sequence of hot pairs whichever shard keeps them, so its
decisions are the same (``tests/test_pair_shards.py``). Bounds: ``MAX_PAIRS``
pairs per shard; pairs idle for ``pair_ttl_ms`` are evicted at the core's sweeps.
"""
from __future__ import annotations

import zlib
from collections.abc import Container, Iterable

from .config import ClusterConfig
from .records import AccountSummary, Partner

MAX_PAIRS = 500_000

PairKey = tuple[str, str]


def _fade(age: int, cfg: ClusterConfig) -> float:
    """Weight of evidence ``age`` ms old: held for pair_hold_ms, then fading out by pair_ttl_ms.
    (A step-and-fade, not an exponential: links must not flicker between sweeps.)"""
    hold = cfg.pair_hold_ms
    if age <= hold:
        return 1.0
    return max(0.0, 1.0 - (age - hold) / (cfg.pair_ttl_ms - hold))


def _sync_weight(sync: list[int]) -> float:
    return 0.5 if len(sync) >= 2 else 0.3


class _Pair:
    __slots__ = ("kinds", "sync", "last_ts", "first_ts")

    def __init__(self, ts: int) -> None:
        # kind -> (weight, ts): a tuple of numbers, which the cyclic collector stops tracking after
        # one pass (a list it traverses at every pass over the pair's generation, ~16k pairs' worth
        # per 50k requests), and 16 bytes less than a list
        self.kinds: dict[str, tuple[float, int]] = {}
        self.sync: list[int] = []           # distinct minutes with synchronised observations
        self.last_ts = ts
        self.first_ts = ts

    def strength(self, now: int, cfg: ClusterConfig) -> float:
        return strength_of(self, now, now - cfg.pair_hold_ms, cfg)

    def snapshot(self) -> _Pair:
        """A copy of this state: what a shard in another process would send the core."""
        copy = _Pair(self.first_ts)
        copy.kinds = dict(self.kinds)   # tuples: shared, never changed in place
        copy.sync = list(self.sync)
        copy.last_ts = self.last_ts
        return copy

    def potential(self) -> float:
        """The strength with nothing faded: no ``strength(now)`` of this state is higher."""
        return potential_of(self)


def potential_of(p: _Pair) -> float:
    """``p.potential()`` (a function, as ``strength_of``: ``PairShard.update`` calls it for every
    partner whose pair is not hot yet and changed, ~17k times per 50k requests)."""
    miss = 1.0
    for w, _ in p.kinds.values():
        miss *= 1.0 - w
    if p.sync:
        miss *= 1.0 - _sync_weight(p.sync)
    return 1.0 - miss


def strength_of(p: _Pair, now: int, held_since: int, cfg: ClusterConfig) -> float:
    """``p.strength(now, cfg)``, with ``held_since = now - cfg.pair_hold_ms`` worked out once by a
    caller that asks for many pairs at one time (the cluster engine's loops: ~70k pairs per 50k
    requests). Evidence seen since then is held (``_fade`` is 1.0 for it: ``now - seen <= hold``)."""
    miss = 1.0
    for w, seen in p.kinds.values():
        miss *= 1.0 - (w if seen >= held_since else w * _fade(now - seen, cfg))   # most evidence is held
    if p.sync:
        miss *= 1.0 - _sync_weight(p.sync)
    return 1.0 - miss


def pair_key(a: str, b: str) -> PairKey:
    return (a, b) if a < b else (b, a)


def shard_of(key: PairKey, shards: int) -> int:
    """The shard of a pair: CRC-32 of its accounts (stable across processes and versions)."""
    if shards == 1:
        return 0
    return zlib.crc32(f"{key[0]}|{key[1]}".encode()) % shards


# what a shard hands the core for one partner: (partner, its summary, the pair, the pair's key);
# pair and key are None for a partner that is only ``linked`` (its summary is news to the core)
HotPair = tuple[str, AccountSummary, "_Pair | None", "PairKey | None"]


class PairShard:
    """The pairs of one shard: ``update`` folds one evidence message's partners of this shard in
    (exactly as the engine always did) and returns, in the order given, the hot ones and the
    ``linked`` ones (accounts the core holds hot pairs of: it keeps their latest summary)."""

    def __init__(self, cfg: ClusterConfig | None = None, max_pairs: int = MAX_PAIRS) -> None:
        self.cc = cfg or ClusterConfig()
        self.max_pairs = max_pairs
        self.pairs: dict[PairKey, _Pair] = {}
        self.hot: set[PairKey] = set()
        # every pair's key, filed under a period (``sweep_ms`` of event time) no later than its last_ts's:
        # a sweep reads only the periods that can hold idle pairs, not every pair (see ``sweep``)
        self.period = max(1, self.cc.sweep_ms)
        self.filed: dict[int, list[PairKey]] = {}

    def update(self, a: str, kind: str, w: float, ts: int, partners: Iterable[Partner],
               linked: Container[str] = ()) -> list[HotPair]:
        cc = self.cc
        pairs, hot = self.pairs, self.hot
        # the same for every partner: looked up once per message, not once per partner
        weak = w < cc.pair_seed_weight            # reinforces existing pairs but starts none
        max_pairs, threshold, keep = self.max_pairs, cc.link_threshold, cc.sync_keep
        held_since = ts - cc.pair_hold_ms        # evidence seen since is held: ts - seen <= hold (int times)
        minute = ts // 60_000
        out: list[HotPair] = []
        for b, sync, sb in partners:
            key = (a, b) if a < b else (b, a)
            p = pairs.get(key)
            if p is None:
                if weak or len(pairs) >= max_pairs:
                    if b in linked:
                        out.append((b, sb, None, None))
                    continue
                p = pairs[key] = _Pair(ts)
                self._file(key, ts)
            kinds = p.kinds
            old = kinds.get(kind)
            if old is None:
                kinds[kind] = (w, ts)
                changed = True
            # ``old[0] * _fade(ts - old[1], cc)``, the call saved for held evidence (``_fade`` is 1.0
            # there): it ran ~40k times per 50k requests
            elif w >= (old[0] if old[1] >= held_since else old[0] * _fade(ts - old[1], cc)):
                changed = w != old[0]
                kinds[kind] = (w, ts)
            else:
                changed = False
            if sync and minute not in p.sync:
                p.sync.append(minute)
                del p.sync[:-keep]
                changed = True
            if ts > p.last_ts:
                p.last_ts = ts
            # a pair not hot had its potential below link_threshold after its last update; the potential
            # reads only the weights and the sync minutes, so unless they changed it still has
            if key in hot or (changed and potential_of(p) >= threshold):
                hot.add(key)
                out.append((b, sb, p, key))
            elif b in linked:
                out.append((b, sb, None, None))
        return out

    def _file(self, key: PairKey, ts: int) -> None:
        """File a pair's key under the period of ``ts`` (``sweep``)."""
        period = ts // self.period
        keys = self.filed.get(period)
        if keys is None:
            self.filed[period] = [key]
        else:
            keys.append(key)

    def sweep(self, now: int) -> None:
        """Evict pairs idle for ``pair_ttl_ms`` (the core evicts its hot copies by the same rule).

        A pair is idle when ``now - last_ts > ttl``, that is ``last_ts < cutoff`` (times are ints). Its
        key is filed under a period no later than its last_ts's (evidence since only moved last_ts on),
        so every idle pair is in a period up to the cutoff's: those are read, their idle pairs evicted
        and the others filed again under their last_ts. Each pair is read about once per ``pair_ttl_ms``
        of activity instead of at every sweep; which pairs go is the same."""
        cutoff = now - self.cc.pair_ttl_ms
        last = cutoff // self.period
        pairs, hot, filed = self.pairs, self.hot, self.filed
        for period in sorted(period for period in filed if period <= last):
            for key in filed.pop(period):
                p = pairs[key]
                if p.last_ts < cutoff:
                    del pairs[key]
                    hot.discard(key)
                else:
                    self._file(key, p.last_ts)
