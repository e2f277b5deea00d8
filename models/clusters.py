"""Cross-account detection, stage 3: pair evidence → clusters → collective scores → alerts.

Hydra networks: tens to thousands of accounts, each too small or too narrow
for the per-account detector (``DetectorConfig.min_events``), acting as one
extraction campaign. :class:`ClusterEngine` combines the pair evidence of
``models/linking.py`` into clusters and scores each cluster on its
*collective* behaviour. ``models/pipeline.py`` wraps it as ``ClusterStage``
(cadence, typed output) and chains all three stages for ``distillguard
replay``; the stream runs the same stage objects in three agents
(``streams/cluster_agents.py``).

Linking. A pair of accounts collects decayed evidence per kind (shared
payment, network, wrapper, system prompt, client; ``linking.BASE_WEIGHT``)
plus synchrony (observations on a shared key within ``sync_ms``,
counted in distinct minutes). The pair's strength is the noisy-OR of its
kinds; a pair at ``link_threshold`` or more joins the two accounts'
clusters (union-find). No single kind reaches the threshold: payment with a
network does, a wrapper with a network and synchronised bursts does.

Scoring (``score_cluster``) multiplies

* *collective extraction*: the cluster's pooled topic mix is broad
  (areas, entropy) and it elicits reasoning or shares one wrapper, or it
  probes logprobs / grades at scale -- the per-account vocabulary, pooled;
* *coordination*: members are young accounts, on low-verification tiers,
  rotating networks, and firing in synchronised bursts;
* size (at least ``min_members``) and pooled volume.

Why an enterprise is not a hydra. An enterprise whose teams share one
payment method and one office network *is* linked into a cluster -- that
is a true statement about it -- but its score stays near zero: its accounts
are old (months to years), on the enterprise tier, each keep to the same
network, and send ordinary, human-paced requests with no shared extraction
wrapper, so the coordination factor is ~0 and the product is ~0 however
broad the pooled topic mix of many teams looks. Pooled breadth alone never
alerts: many honest people together cover many topics. Sybil farms that buy
aged accounts still show synchrony and IP rotation, which carry the
coordination factor on their own (0.5 and 0.4 of it).

Pair state lives in ``models/pair_shards.py`` (``PairShard``, split by pair): the
engine keeps only the pairs that can ever reach ``link_threshold`` (*hot*), so the
shards take most of the work and the engine's decisions do not depend on how many
there are.

Bounds: ``MAX_PAIRS`` pairs per shard (each ≤ 5 kinds + ``SYNC_KEEP`` sync minutes;
the hot ones indexed by both accounts), ``MAX_ACCOUNTS`` account summaries with ``TS_RING`` timestamps each,
clusters of at most ``MAX_CLUSTER`` members; pairs idle for ``pair_ttl_ms``
and accounts idle for ``account_ttl_ms`` of event time are evicted at each
sweep (every ``sweep_ms``; tunables
are ``ClusterConfig``'s, the ``[clusters]`` table), and the union-find is rebuilt from the live
strong pairs then, so decayed links fall apart. Deterministic: iteration is
over sorted accounts / pairs; ids are SHA-256 of event-time facts.
"""
from __future__ import annotations

import hashlib
import heapq
from collections.abc import Mapping

from distillguard.schemas import Alert

from .config import ClusterConfig, DetectorConfig
from .lifecycle import Lifecycle, OpenAlert, severity_of
from .records import PairEvidence
from .memo import Bounds
from .pair_shards import MAX_PAIRS, HotPair, PairShard, _Pair, pair_key, shard_of, strength_of
from .rows import ClusterMemberRow
from .ramps import ramp
from .spread import area_spread
from .window_min import WindowMin

DETECTOR = "hydra_cluster"
# Tunables (thresholds, windows) are ClusterConfig's (models/config.py, the [clusters] table);
# what follows are memory bounds.
RETIRED_MAX = 10_000              # records of clusters that fell apart, kept to reuse their alert,
RETIRED_TTL_MS = 24 * 3_600_000   # and once their alert is closed, for this long of event time
MAX_CLUSTER = 2_000
MAX_ACCOUNTS = 200_000
TS_RING = 8                       # recent observation times per account (synchrony)
MAX_SAMPLES = 5


class _Account:
    __slots__ = ("summary", "times", "last_ts", "samples")

    def __init__(self) -> None:
        self.summary: dict = {}
        self.times: list[int] = []
        self.last_ts = 0
        self.samples: list[str] = []


class _Cluster:
    __slots__ = ("cluster_id", "first_link_ts", "alert", "last_scored", "scored_size", "emitted_members",
                 "model", "last_ts", "rows_members")

    def __init__(self, first_link_ts: int) -> None:
        self.cluster_id: str | None = None   # fixed when first needed (alert or persisted row)
        self.first_link_ts = first_link_ts
        self.alert: OpenAlert | None = None
        self.last_scored = -1
        self.scored_size = 0
        self.emitted_members: tuple[str, ...] = ()
        self.model: str | None = None
        self.last_ts = first_link_ts
        self.rows_members: tuple[str, ...] = ()


def topic_spread(topics: Mapping[str, float]) -> tuple[int, float]:
    """``spread.area_spread`` of a pooled topic mix (topic id -> weight)."""
    return area_spread(topics.values())


def synchrony(times: Mapping[str, list[int]], sync_ms: int = ClusterConfig.sync_ms) -> float:
    """Share of members' recent observations with ≥ 2 other members within ±``sync_ms``."""
    events = sorted([(t, a) for a, ts in times.items() for t in ts])
    if not events:
        return 0.0
    stamps = [t for t, _ in events]     # the times and accounts apart: one subscript each in the loops
    owners = [a for _, a in events]
    hits = 0
    lo = hi = 0
    n = len(events)
    window: dict[str, int] = {}   # account -> its observations within ±sync_ms (a's own among them)
    for t in stamps:
        start, end = t - sync_ms, t + sync_ms
        while stamps[lo] < start:
            b = owners[lo]
            window[b] -= 1
            if not window[b]:
                del window[b]
            lo += 1
        while hi < n and stamps[hi] <= end:
            b = owners[hi]
            window[b] = window.get(b, 0) + 1
            hi += 1
        if len(window) >= 3:      # a and at least two others
            hits += 1
    return hits / n


def score_cluster(members: Mapping[str, dict], times: Mapping[str, list[int]], kinds: Mapping[str, int],
                  cfg: ClusterConfig | None = None) -> tuple[float, list[dict], dict]:
    """Collective score of one cluster: (score, reasons strongest first, evidence numbers).

    ``members`` maps account → summary (``linking.summarize``), ``times`` account →
    recent observation times, ``kinds`` link kind → members linked through it.
    """
    cfg = cfg or ClusterConfig()
    n = len(members)
    topics: dict[str, float] = {}
    reqs = reasoning = template = 0.0
    young = low_tier = rotating = 0
    alone_areas = []
    alone_reqs = []
    young_ms, low_tiers = cfg.young_ms, cfg.low_tiers
    for s in members.values():
        rd = s.get("rd") or s.get("n") or 0.0
        reqs += rd
        reasoning += s.get("r", 0.0) * rd
        template += s.get("tp", 0.0) * rd
        mix = s.get("t", {})
        for t, v in mix.items():
            topics[t] = topics.get(t, 0.0) + v
        alone_areas.append(area_spread(mix.values())[0])   # topic_spread(mix)
        alone_reqs.append(rd)
        created = s.get("created")
        if created is not None and s.get("first", 0) - created < young_ms:
            young += 1
        if s.get("tier") in low_tiers:
            low_tier += 1
        if s.get("nets", 0) >= 2:
            rotating += 1
    if n == 0:
        return 0.0, [], {}
    reasoning = reasoning / reqs if reqs else 0.0
    template = template / reqs if reqs else 0.0
    wrapper_share = kinds.get("wrap", 0) / n
    areas, entropy = topic_spread(topics)
    sync = synchrony(times, cfg.sync_ms)
    ev = {
        "members": n, "requests": round(reqs, 1), "topic_areas": areas, "topic_entropy": round(entropy, 3),
        "reasoning_share": round(reasoning, 3), "template_share": round(max(template, wrapper_share), 3),
        "young_share": round(young / n, 3), "low_tier_share": round(low_tier / n, 3),
        "ip_rotation_share": round(rotating / n, 3), "timing_synchrony": round(sync, 3),
        "median_member_requests": round(sorted(alone_reqs)[n // 2], 1),
        "median_member_areas": sorted(alone_areas)[n // 2],
    }
    breadth = ramp(areas, 3, 6) * ramp(entropy, 0.3, 0.6)
    reasoning_r = ramp(reasoning, 0.2, 0.4)
    template_r = ramp(ev["template_share"], 0.25, 0.5)
    extraction = max(breadth * max(reasoning_r, template_r),
                     # one reasoning-eliciting wrapper shared across accounts over several areas:
                     # harvesting chains of thought, even before the pooled mix looks broad
                     0.85 * reasoning_r * template_r * ramp(areas, 1, 3))
    coordination = 1.0 - ((1 - 0.6 * young / n) * (1 - 0.2 * low_tier / n) * (1 - 0.4 * rotating / n)
                          * (1 - 0.5 * ramp(sync, 0.1, 0.4)))
    ev["collective_extraction"] = round(extraction, 3)
    ev["coordination"] = round(coordination, 3)
    score = extraction * ramp(coordination, 0.2, 0.5) * ramp(n, cfg.min_members - 1, 5) * ramp(reqs, 4, 10)
    baselines = {"topic_areas": 2.0, "topic_entropy": 0.25, "reasoning_share": 0.05, "template_share": 0.1,
                 "young_share": 0.05, "low_tier_share": 0.3, "ip_rotation_share": 0.05,
                 "timing_synchrony": 0.02}
    reasons = [{"feature": f, "value": ev[f], "baseline": b} for f, b in baselines.items()]
    reasons.sort(key=lambda r: -(r["value"] - r["baseline"]) / max(r["baseline"], 0.05))
    linked = [{"feature": f"linked_by_{k}", "value": c, "baseline": None}
              for k, c in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))]
    head = [{"feature": "cluster_members", "value": n, "baseline": None},
            {"feature": "collective_extraction", "value": ev["collective_extraction"], "baseline": 0.0},
            {"feature": "coordination", "value": ev["coordination"], "baseline": 0.0}]
    return round(min(max(score, 0.0), 1.0), 4), head + linked + reasons + [
        {"feature": "median_member_requests", "value": ev["median_member_requests"], "baseline": None},
        {"feature": "median_member_areas", "value": ev["median_member_areas"], "baseline": None}], ev


class ClusterEngine:
    """Stage 3: pair evidence → clusters, scores, alert events and ``cluster_members`` rows."""

    def __init__(self, config: DetectorConfig | None = None, settle: int = 1, shards: int = 1):
        """Clusters touched by evidence of time t are scored (as of t: ``raised_at_ms`` = t) once
        the clock passes t + ``settle_ms``; the clock is the oldest event time among the last
        ``settle`` messages: 1 for an ordered replay, ``stream_settle`` in the stream, where the
        evidence of one instant arrives from partitions consumed at different speeds. Both then
        score a cluster with all its evidence up to t + settle_ms, so the stream's cluster ids
        and alert ids agree with a replay's. The price: alerts leave settle_ms of event time
        after the evidence that raised them.

        ``shards``: pair state is kept by this many ``PairShard``s (``models/pair_shards.py``);
        the engine itself keeps only hot pairs. The decisions do not depend on the number."""
        self.config = config or DetectorConfig()
        self.cc = self.config.clusters
        self._pending: dict[str, int] = {}              # account -> evidence time awaiting scoring
        self._due: list[tuple[int, str]] = []           # heap of (time, account), also superseded ones
        self.lifecycle = Lifecycle(DETECTOR, self.config)
        self.accounts: dict[str, _Account] = {}
        self.shards = [PairShard(self.cc) for _ in range(max(1, shards))]
        self.pairs: dict[tuple[str, str], _Pair] = {}   # the hot pairs (``pair_shards``), the shards' own
        self.partners: dict[str, set[str]] = {}         # account -> the other accounts of its hot pairs
        # a pair's strength only falls while no evidence arrives, so a sweep re-checks only the pairs
        # strong at the previous sweep and those with evidence since
        self._strong: set[tuple[str, str]] = set()
        self._changed: set[tuple[str, str]] = set()
        self.parent: dict[str, str] = {}
        self.component: dict[str, set[str]] = {}       # root -> its accounts (scoring reads it, no scan)
        self.size: dict[str, int] = {}
        self.clusters: dict[str, _Cluster] = {}        # root -> cluster
        self.watermark = 0
        self.last_sweep = 0
        self.pending_rows: list[ClusterMemberRow] = []  # drained by ClusterStage after each call
        self.max_scores: dict[str, float] = {}          # cluster id -> highest score
        self.retired: dict[str, _Cluster] = {}          # cluster id -> record of a cluster that fell apart
        self._clock = WindowMin(max(1, settle))        # oldest event time of the last `settle` messages

    # -- union-find ------------------------------------------------------
    def find(self, a: str) -> str:
        parent = self.parent
        root, up = a, parent.get(a, a)
        while up != root:
            root, up = up, parent.get(up, up)
        if root != a:             # most accounts asked for are roots or right under one
            while parent.get(a, a) != root:
                parent[a], a = root, parent[a]
        return root

    def _members(self, root: str) -> list[str]:
        return sorted(self.component.get(root, ()))

    def _attach(self, ra: str, rb: str) -> None:
        """Root ``ra`` goes under root ``rb`` (the caller keeps the sizes)."""
        self.parent.setdefault(ra, ra)
        self.parent.setdefault(rb, rb)
        self.parent[ra] = rb
        into = self.component.setdefault(rb, {rb})
        into |= self.component.pop(ra, {ra})

    def _union_roots(self, ra: str, rb: str, ts: int) -> str | None:
        """Join the clusters of two different roots: the root of the joined one (None past ``MAX_CLUSTER``).
        Callers find the roots first: most strong pairs are in one cluster already, and then nothing is called."""
        sa, sb = self.size.get(ra, 1), self.size.get(rb, 1)
        if sa + sb > MAX_CLUSTER:
            return None
        if (sa, rb) > (sb, ra):  # bigger root wins; ties by account id, so replay and stream agree
            ra, rb, sa, sb = rb, ra, sb, sa
        # ra: the smaller side is attached under rb
        self._attach(ra, rb)
        self.size[rb] = sa + sb
        self.size.pop(ra, None)
        ca, cb = self.clusters.pop(ra, None), self.clusters.get(rb)
        keep, drop = _older(ca, cb)
        if keep is None:
            keep = _Cluster(ts)
        if drop is not None:
            keep.first_link_ts = min(keep.first_link_ts, drop.first_link_ts)
            self._absorbed(drop, ts)
        self.clusters[rb] = keep
        return rb

    def _absorbed(self, c: _Cluster, ts: int) -> None:
        """A cluster merged into an older one: close its open alert (the older id carries on)."""
        if c.alert is not None:
            c.alert.last_strong_ms = ts - self.config.close_after_ms
            c.alert, closed = self.lifecycle.expire(c.alert, c.cluster_id, list(c.emitted_members), ts,
                                                   c.cluster_id)
            if closed:
                closed.reasons = [{"feature": "merged_into_older_cluster", "value": 1, "baseline": None}]
                self._out.append(closed)

    # -- input -------------------------------------------------------------
    def _account(self, account: str, summary: dict | None, ts: int) -> _Account:
        acc = self.accounts.get(account)
        if acc is None:
            acc = self.accounts[account] = _Account()
        if summary:
            acc.summary = summary
        if ts > acc.last_ts:      # max(last_ts, ts), without the call
            acc.last_ts = ts
        return acc

    def process(self, msg: PairEvidence) -> list[Alert]:
        """Fold one pair-evidence message (``Linker.process`` output); return alert events
        (``cluster_members`` rows accumulate for ``drain_rows``)."""
        self._out: list[Alert] = []
        cc = self.cc
        a, ts = msg.account, msg.ts_ms
        if ts > self.watermark:
            self.watermark = ts
        self._clock.push(ts)
        acc = self._account(a, msg.summary, ts)
        times = acc.times             # kept sorted
        if not times or ts != times[-1]:
            late = bool(times) and ts < times[-1]
            times.append(ts)
            if late:                  # in order needs no sort
                times.sort()
            del times[:-TS_RING]
        if msg.event_id and msg.event_id not in acc.samples:
            acc.samples.append(msg.event_id)
            del acc.samples[:-2]
        touched = self._link(a, ts, self._hot_pairs(msg))
        if a in self.parent:
            touched.add(self.find(a))
        if msg.model:
            for r in touched:
                if r in self.clusters:
                    self.clusters[r].model = msg.model
        if touched:
            if ts < self._pending.get(a, ts + 1):    # earliest: a busy account never starves
                self._pending[a] = ts
                heapq.heappush(self._due, (ts, a))
        self._flush_pending(self.close_clock() - cc.settle_ms)
        if ts - self.last_sweep >= cc.sweep_ms:
            self.last_sweep = ts
            self._sweep(ts)
        return self._out

    def _link(self, a: str, ts: int, hot: list[HotPair]) -> set[str]:
        """Take the hot pairs of ``a`` in, union the strong ones: the roots they touched."""
        cc = self.cc
        pairs, changed, find = self.pairs, self._changed, self.find
        held_since, threshold = ts - cc.pair_hold_ms, cc.link_threshold   # ts - seen <= hold: int times
        touched: set[str] = set()
        for b, sb, p, key in hot:
            self._account(b, sb, 0)
            if p is None:
                continue          # a linked account's newer summary, its pair with ``a`` is not hot
            if pairs.get(key) is not p:
                if key not in pairs:
                    self._partner(a, b)
                pairs[key] = p
            changed.add(key)
            if strength_of(p, ts, held_since, cc) >= threshold:
                ra, rb = find(a), find(b)
                root = ra if ra == rb else self._union_roots(ra, rb, ts)
                if root is not None:
                    touched.add(root)
        return touched

    def _hot_pairs(self, msg: PairEvidence) -> list[HotPair]:
        """Fold the message's partners into the shards' pairs; the hot and linked ones (``PairShard``),
        in message order."""
        shards = self.shards
        if len(shards) == 1:
            return shards[0].update(msg.account, msg.kind, msg.weight, msg.ts_ms, msg.partners, self.partners)
        a, n = msg.account, len(shards)
        routed: dict[int, list] = {}
        for partner in msg.partners:
            routed.setdefault(shard_of(pair_key(a, partner.account), n), []).append(partner)
        hot: list[HotPair] = []
        for i, partners in routed.items():
            hot += shards[i].update(a, msg.kind, msg.weight, msg.ts_ms, partners, self.partners)
        if len(hot) > 1:
            order = {partner.account: i for i, partner in enumerate(msg.partners)}
            hot.sort(key=lambda h: order[h[0]])
        return hot

    def _flush_pending(self, clock: int) -> None:
        due = self._due   # a heap: most messages find nothing due without looking at every account
        if not due or due[0][0] > clock:
            return
        done: set[str] = set()
        while due and due[0][0] <= clock:
            t, a = heapq.heappop(due)
            if self._pending.get(a) != t:
                continue      # superseded by earlier evidence, or already scored
            del self._pending[a]
            root = self.find(a)
            if root not in done:
                done.add(root)
                self._score(root, t)

    def flush(self) -> list[Alert]:
        """Score every cluster still waiting to settle (the stream went quiet: all delivered)."""
        self._out = []
        self._flush_pending(self.watermark)
        return self._out

    def close_clock(self) -> int:
        """Event time up to which every source has (probably) delivered: the oldest time among the
        last ``settle`` messages (``WindowMin``). In a stream, evidence comes from partitions consumed at
        different speeds (a low watermark, as the per-account detector uses); in a replay this
        trails the watermark slightly, which only delays closes."""
        return self._clock.min(self.watermark)


    # -- scoring -----------------------------------------------------------
    def _cluster_id(self, c: _Cluster, members: list[str]) -> str:
        if c.cluster_id is None:
            def first(m: str) -> int:
                return self.accounts[m].summary.get("first", 0) if m in self.accounts else 0
            earliest = min(members, key=lambda m: (first(m), m))
            # the hour of the earliest member's first request, not of the first link: event-time
            # facts that do not depend on the order in which partitions delivered the evidence
            hour = (first(earliest) or c.first_link_ts) // 3_600_000 * 3_600_000
            c.cluster_id = "hc-" + hashlib.sha256(f"{earliest}|{hour}".encode()).hexdigest()[:20]
            old = self.retired.pop(c.cluster_id, None)
            if old is not None:   # the same cluster formed again: carry on with its open alert
                c.alert, c.emitted_members, c.rows_members = old.alert, old.emitted_members, old.rows_members
        return c.cluster_id

    def _partner(self, a: str, b: str) -> None:
        partners = self.partners   # unrolled: no tuple of pairs built per new pair
        others = partners.get(a)
        if others is None:
            partners[a] = {b}
        else:
            others.add(b)
        others = partners.get(b)
        if others is None:
            partners[b] = {a}
        else:
            others.add(a)

    def _kinds(self, members: list[str], ts: int) -> dict[str, int]:
        """Link kind -> members with a live pair of that kind inside the cluster."""
        cc = self.cc
        partners, pairs = self.partners, self.pairs
        held_since, threshold = ts - cc.pair_hold_ms, cc.link_threshold   # ts - seen <= hold: int times
        mset = set(members)
        by_kind: dict[str, set] = {}
        for x in members:   # the members' pairs, not all pairs: a cluster is a small part of them
            for y in partners.get(x, ()):
                if x > y or y not in mset:
                    continue
                p = pairs[(x, y)]
                if strength_of(p, ts, held_since, cc) < threshold:
                    continue
                for k in (*p.kinds, "sync") if p.sync else p.kinds:
                    linked = by_kind.get(k)
                    if linked is None:
                        by_kind[k] = {x, y}
                    else:
                        linked.add(x)
                        linked.add(y)
        return {k: len(v) for k, v in sorted(by_kind.items())}

    def _score(self, root: str, ts: int) -> None:
        c = self.clusters.get(root)
        if c is None:
            return
        c.last_ts = max(c.last_ts, ts)
        size = self.size.get(root, 1)
        if size < self.cc.min_members:
            return
        if ts - c.last_scored < self.cc.score_every_ms and size == c.scored_size:
            return
        c.last_scored, c.scored_size = ts, size
        members = self._members(root)
        summaries = {m: self.accounts[m].summary if m in self.accounts else {} for m in members}
        times = {m: self.accounts[m].times if m in self.accounts else [] for m in members}
        kinds = self._kinds(members, ts)
        score, reasons, ev = score_cluster(summaries, times, kinds, self.cc)
        cid = self._cluster_id(c, members)
        if score > self.max_scores.get(cid, 0.0):
            self.max_scores[cid] = score
        members_t = tuple(members)
        # an alert quiet for close_after_ms closes before this score, whether or not an advance
        # has closed it yet (as the per-account detector does): the cadence of advance does not matter
        c.alert, closed = self.lifecycle.expire(c.alert, cid, list(c.emitted_members), ts, cid)
        if closed:
            self._out.append(closed)
        if c.alert is not None and members_t != c.emitted_members and severity_of(score, self.config):
            c.alert.emitted_events = 0       # membership changed: the next observe emits an update
        samples = []
        for m in members:
            if m in self.accounts:
                samples.extend(self.accounts[m].samples[:1])
            if len(samples) >= MAX_SAMPLES:
                break
        events = int(sum(s.get("n", 0) for s in summaries.values()))
        first = min((self.accounts[m].times[0] for m in members if m in self.accounts and self.accounts[m].times),
                    default=ts)
        last_strong = c.alert.last_strong_ms if c.alert is not None else ts
        c.alert, alert = self.lifecycle.observe(c.alert, cid, list(members), score, reasons, ts, first, events,
                                                samples, c.model, cid)
        if c.alert is not None and c.alert.last_strong_ms < last_strong:
            c.alert.last_strong_ms = last_strong     # late evidence never makes a cluster look quieter
        if alert is not None:
            self._out.append(alert)
            c.emitted_members = members_t
        if members_t != c.rows_members or alert is not None:
            # membership as analysts see it: every scored cluster, again when it changes or alerts
            c.rows_members = members_t
            evidence = dict(ev, linked_by=kinds, alerted=c.alert is not None)
            for m in members:
                self.pending_rows.append(ClusterMemberRow(cid, m, ts, score, evidence))

    # -- maintenance ---------------------------------------------------------
    def _sweep(self, now: int) -> None:
        """Evict idle pairs and accounts, then rebuild the union-find from the live strong pairs."""
        cc = self.cc
        for shard in self.shards:
            shard.sweep(now)
        for a, b in [k for k, p in self.pairs.items() if now - p.last_ts > cc.pair_ttl_ms]:
            del self.pairs[(a, b)]
            self._strong.discard((a, b))
            self._changed.discard((a, b))
            for x, y in ((a, b), (b, a)):
                self.partners[x].discard(y)
                if not self.partners[x]:
                    del self.partners[x]
        self.accounts = {a: acc for a, acc in self.accounts.items()
                         if a in self.partners or now - acc.last_ts <= cc.account_ttl_ms}
        if len(self.accounts) > MAX_ACCOUNTS:
            keep = sorted(self.accounts, key=lambda a: (-self.accounts[a].last_ts, a))[:MAX_ACCOUNTS]
            self.accounts = {a: self.accounts[a] for a in sorted(keep)}
        old_root = {a: self.find(a) for a in self.parent}
        old_clusters = self.clusters
        self.parent, self.size, self.clusters, self.component = {}, {}, {}, {}
        self._strong = self._strong_at(self._strong | self._changed, now)
        self._changed = set()
        for (a, b) in sorted(self._strong):
            ra, rb = self.find(a), self.find(b)
            if ra == rb or self.size.get(ra, 1) + self.size.get(rb, 1) > MAX_CLUSTER:
                continue
            if (self.size.get(ra, 1), rb) > (self.size.get(rb, 1), ra):
                ra, rb = rb, ra
            self._attach(ra, rb)
            self.size[rb] = self.size.pop(ra, 1) + self.size.get(rb, 1)
        # carry cluster records (ids, open alerts) over: each old record to the new component
        # holding most of its members; a component with several candidates keeps the oldest
        old_members: dict[str, list[str]] = {}
        for a, r in old_root.items():
            old_members.setdefault(r, []).append(a)
        claims: dict[str, list[tuple[int, str]]] = {}
        for old in sorted(old_clusters):
            votes: dict[str, int] = {}
            for a in old_members.get(old, ()):
                if a in self.parent:
                    nr = self.find(a)
                    votes[nr] = votes.get(nr, 0) + 1
            if votes:
                best = min(votes, key=lambda r: (-votes[r], r))
                claims.setdefault(best, []).append((votes[best], old))
        for root in sorted(claims):
            cands = [old_clusters[o] for _, o in claims[root]]
            keep = cands[0]
            for c in cands[1:]:
                keep, drop = _older(keep, c)
                self._absorbed(drop, now)
            self.clusters[root] = keep
        for root in sorted({self.find(a) for a in self.parent}):
            if root not in self.clusters:
                self.clusters[root] = _Cluster(now)
        kept = {id(c) for c in self.clusters.values()}
        for old, c in sorted(old_clusters.items()):
            if id(c) not in kept and c.cluster_id is not None:
                self.retired[c.cluster_id] = c    # fell apart: its alert closes when quiet
        for cid in [k for k, c in self.retired.items() if c.alert is None and now - c.last_ts > RETIRED_TTL_MS]:
            del self.retired[cid]     # closed long ago: nothing left to carry over
        live = {c.cluster_id for c in self.clusters.values()}
        self.max_scores = {k: v for k, v in self.max_scores.items() if k in live or k in self.retired}
        now = self.close_clock()
        for cid in sorted(self.retired):
            c = self.retired[cid]
            if c.alert is not None:
                c.alert, closed = self.lifecycle.expire(c.alert, cid, list(c.emitted_members), now, cid)
                if closed:
                    self._out.append(closed)
        while len(self.retired) > RETIRED_MAX:
            del self.retired[min(self.retired, key=lambda k: (self.retired[k].last_ts, k))]
        self._close_quiet(self.close_clock())

    def _strong_at(self, keys: set[tuple[str, str]], now: int) -> set[tuple[str, str]]:
        """The pairs of ``keys`` at ``link_threshold`` or more at ``now``."""
        cc, pairs = self.cc, self.pairs
        held_since, threshold = now - cc.pair_hold_ms, cc.link_threshold   # now - seen <= hold: int times
        strong = set()
        for k in keys:
            if strength_of(pairs[k], now, held_since, cc) >= threshold:
                strong.add(k)
        return strong

    def _close_quiet(self, now: int) -> None:
        """Close the alerts of clusters quiet for ``close_after_ms`` at ``now``."""
        for root in sorted(self.clusters):
            c = self.clusters[root]
            if c.alert is not None:
                c.alert, closed = self.lifecycle.expire(c.alert, c.cluster_id, list(c.emitted_members), now,
                                                       c.cluster_id)
                if closed:
                    self._out.append(closed)

    def close_quiet(self, now_ms: int) -> list[Alert]:
        """Close alerts of clusters quiet for ``close_after_ms`` at ``now_ms``."""
        self._out = []
        self._close_quiet(now_ms)
        return self._out

    def drain_rows(self) -> list[ClusterMemberRow]:
        """``cluster_members`` rows produced since the last call."""
        rows, self.pending_rows = self.pending_rows, []
        return rows

    def stats(self) -> dict:
        return {"accounts": len(self.accounts), "pairs": sum(len(s.pairs) for s in self.shards),
                "hot_pairs": len(self.pairs), "clusters": len(self.clusters),
                "largest": max(self.size.values(), default=0)}

    def bounds(self) -> Bounds:
        """Sizes against bounds. Accounts and pairs are cut to theirs at each sweep (``ClusterConfig.sweep_ms``);
        union-find, clusters and scores hold only accounts of live pairs; ``max_scores`` only
        live and retired clusters."""
        in_pairs = 2 * MAX_PAIRS
        return {"engine.accounts": (len(self.accounts), MAX_ACCOUNTS),
                "engine.pairs": (sum(len(s.pairs) for s in self.shards), MAX_PAIRS * len(self.shards)),
                "engine.partners": (len(self.partners), in_pairs), "engine.union_find": (len(self.parent), in_pairs),
                "engine.clusters": (len(self.clusters), MAX_PAIRS), "engine.retired": (len(self.retired), RETIRED_MAX),
                "engine.max_scores": (len(self.max_scores), MAX_PAIRS + RETIRED_MAX),
                "engine.pending": (len(self._pending), MAX_ACCOUNTS)}


def _older(a: _Cluster | None, b: _Cluster | None) -> tuple[_Cluster | None, _Cluster | None]:
    """(the record that keeps its id, the one absorbed): an alerted / older record wins."""
    if a is None:
        return b, None
    if b is None:
        return a, None
    ka = (a.cluster_id is None, a.first_link_ts, a.cluster_id or "")
    kb = (b.cluster_id is None, b.first_link_ts, b.cluster_id or "")
    return (a, b) if ka <= kb else (b, a)
