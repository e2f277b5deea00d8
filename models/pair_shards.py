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
        self.kinds: dict[str, list] = {}    # kind -> [weight, ts]
        self.sync: list[int] = []           # distinct minutes with synchronised observations
        self.last_ts = ts
        self.first_ts = ts

    def strength(self, now: int, cfg: ClusterConfig) -> float:
        miss = 1.0
        hold = cfg.pair_hold_ms
        for w, ts in self.kinds.values():
            age = now - ts
            miss *= 1.0 - (w if age <= hold else w * _fade(age, cfg))   # most evidence is held
        if self.sync:
            miss *= 1.0 - _sync_weight(self.sync)
        return 1.0 - miss

    def snapshot(self) -> _Pair:
        """A copy of this state: what a shard in another process would send the core."""
        copy = _Pair(self.first_ts)
        copy.kinds = {k: list(v) for k, v in self.kinds.items()}
        copy.sync = list(self.sync)
        copy.last_ts = self.last_ts
        return copy

    def potential(self) -> float:
        """The strength with nothing faded: no ``strength(now)`` of this state is higher."""
        miss = 1.0
        for w, _ in self.kinds.values():
            miss *= 1.0 - w
        if self.sync:
            miss *= 1.0 - _sync_weight(self.sync)
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

    def update(self, a: str, kind: str, w: float, ts: int, partners: Iterable[Partner],
               linked: Container[str] = ()) -> list[HotPair]:
        cc = self.cc
        pairs, hot = self.pairs, self.hot
        out: list[HotPair] = []
        for b, sync, sb in partners:
            key = (a, b) if a < b else (b, a)
            p = pairs.get(key)
            if p is None:
                if w < cc.pair_seed_weight or len(pairs) >= self.max_pairs:
                    if b in linked:
                        out.append((b, sb, None, None))
                    continue
                p = pairs[key] = _Pair(ts)
            old = p.kinds.get(kind)
            if old is None or w >= old[0] * _fade(ts - old[1], cc):
                p.kinds[kind] = [w, ts]
            if sync:
                minute = ts // 60_000
                if minute not in p.sync:
                    p.sync.append(minute)
                    del p.sync[:-cc.sync_keep]
            if ts > p.last_ts:
                p.last_ts = ts
            if key in hot or p.potential() >= cc.link_threshold:
                hot.add(key)
                out.append((b, sb, p, key))
            elif b in linked:
                out.append((b, sb, None, None))
        return out

    def sweep(self, now: int) -> None:
        """Evict pairs idle for ``pair_ttl_ms`` (the core evicts its hot copies by the same rule)."""
        ttl = self.cc.pair_ttl_ms
        for key in [k for k, p in self.pairs.items() if now - p.last_ts > ttl]:
            del self.pairs[key]
            self.hot.discard(key)
