"""Cross-account linking, stages 1 and 2: link observations and per-key linkers.

A hydra campaign spreads extraction over many small accounts; what ties them
together is what they *share*: a prompt wrapper, a system prompt, a payment
method, a network, a client. Stage 1 (:class:`LinkObserver`, in the detect
agent, next to the per-account detector) turns each request into at most one
*link observation* per (account, link key) every ``dedupe_ms`` of event time,
so the link stream is much thinner than the request stream. Stage 2
(:class:`Linker`, keyed by link key) remembers, per key, a bounded sample of
the accounts that used it and emits *pair evidence* (account, partner, kind,
weight, synchrony) for stage 3 (``models/clusters.py``).

Link keys are keyed BLAKE2b fingerprints of ``kind|value`` (``text.fingerprint``):
no prompt text, IP address or payment token ever leaves this module.

Kinds and base weights (a pair's evidence is combined by noisy-OR in stage 3):

======  ======================================================  ======
kind    value                                                   weight
======  ======================================================  ======
pay     payment fingerprint                                     0.60
net     client network: IPv4 /24, IPv6 /48                      0.35
wrap    last tokens of the user prompt (numbers masked): the    0.35
        instruction wrapper around a swept payload
sys     system prompt                                           0.25
ua      user agent + shape of the api key id                    0.15
======  ======================================================  ======

A key used by many accounts says little about any two of them (a browser
user agent, "You are a helpful assistant."), so the weight of ``net``,
``wrap``, ``sys`` and ``ua`` falls with the key's estimated number of
distinct accounts (``ref_card``), and a key whose weight is negligible emits
no pairs at all. Payment is not discounted: one card behind hundreds of
accounts is itself the finding.

Bounds (documented in README, "Cross-account detection"):

* observer: ``OBSERVER_MAX`` (account, key) dedupe entries (none older than
  ``slow_dedupe_ms``), ``OBSERVER_MAX_ACCOUNTS`` per-account profiles (none
  idle for ``profile_idle_ms``; ≤ 16 topic counts, a few counters,
  ``NET_RING`` networks, 8 wrapper fingerprints: ~1 KB each) and
  the link keys of the latest ``LINK_MEMO`` raw inputs and of the latest
  ``LINK_MEMO`` link values (each at most ``LINK_MEMO_CHARS`` long) per kind;
* linker: ``MAX_KEYS`` keys, each with a bottom-``ANCHORS`` sketch of accounts
  (the anchors: the accounts with the smallest hashes, which doubles as a
  k-minimum-values distinct counter) and a ring of the ``RECENT`` latest
  observations; keys idle for ``key_ttl_ms`` of event time are evicted;
* one observation yields at most ``ANCHORS + RECENT`` partners.

Everything is deterministic: hashes are BLAKE2b (not Python's ``hash``),
iteration is over lists or insertion-ordered dicts fed in event order.
"""
from __future__ import annotations

import hashlib
import ipaddress
import math
from collections import OrderedDict

from .config import ClusterConfig
from .features import PromptParts, event_front, prompt_parts
from .records import AccountSummary, LinkFeatures, LinkObservation, LinkRecord, PairEvidence, Partner
from . import native
from .memo import AgedMemo, Bounds, Memo
from .text import fingerprint, words
from .capability_areas import AREAS

KINDS = ("pay", "net", "wrap", "sys", "ua")
SLOW_KINDS = frozenset({"pay", "sys", "ua"})   # keys that rarely change: ClusterConfig.slow_dedupe_ms
# Tunables (weights, windows) are ClusterConfig's (models/config.py, the [clusters] table);
# what follows are memory bounds.
OBSERVER_MAX = 200_000       # (account, key) dedupe entries per worker
OBSERVER_MAX_ACCOUNTS = 100_000
NET_RING = 8                 # networks remembered per account (IP rotation)
LINK_MEMO = 10_000           # raw inputs per kind whose link keys are remembered...
LINK_MEMO_CHARS = 512        # ...if no longer than this (a hostile 100 KB user agent is not kept)

ANCHORS = 12                 # bottom-k accounts kept per key
RECENT = 8                   # latest observations kept per key (synchrony)
MAX_KEYS = 100_000

_WRAP_TAIL_CHARS = 160
_WRAP_TOKENS = 6
_WRAP_MIN_CHARS = 60         # shorter prompts are all payload, no wrapper
_SYSTEM_CHARS = 400          # a system prompt's link input: its start
_HASH_SPACE = float(2**64)


# an account is looked up once per key it observes; the recently active ones are enough: an
# account unused for ACCOUNT_HASH_AGE_MS of event time (ClusterConfig's default key_ttl_ms: by
# then its keys are forgotten too) goes, so with accounts arriving and going idle the memo holds
# the active population instead of filling to its count bound with idle ids (issue #18 soak)
ACCOUNT_HASH_AGE_MS = 6 * 3_600_000
_ACCOUNT_HASHES = AgedMemo("linking.account_hash", 4096, ACCOUNT_HASH_AGE_MS)


def account_hash(account: str, now: int) -> int:
    """A stable 64-bit hash of an account id (the per-key sketches order accounts by it);
    ``now``, the event time, ages the memo."""
    h = _ACCOUNT_HASHES.get(account, now)
    if h is None:
        h = int.from_bytes(hashlib.blake2b(account.encode(), digest_size=8).digest(), "big")
        _ACCOUNT_HASHES.put(account, h, now)
    return h


def network_of(ip: str | None) -> str | None:
    """IPv4 /24 or IPv6 /48 of ``ip``; None if absent or unparsable.

    >>> network_of("10.1.2.3"), network_of("2a02:1:2:3::4"), network_of("x")
    ('10.1.2', '2a02:1:2::/48', None)
    """
    if not ip:
        return None
    if ip.count(".") == 3 and ":" not in ip:
        return ip.rsplit(".", 1)[0]
    try:
        return str(ipaddress.ip_network(f"{ip}/48", strict=False))
    except ValueError:
        return None


def _key_shape(api_key: str | None) -> str:
    """The pattern of an api key id: its prefix up to '_' or '-', and its length."""
    if not api_key:
        return "-"
    for sep in ("_", "-"):
        if sep in api_key:
            return f"{api_key.split(sep, 1)[0]}{sep}{len(api_key)}"
    return str(len(api_key))


def link_inputs(event, parts: PromptParts | None = None) -> list[tuple[str, object]]:
    """(kind, raw input) pairs of one request: the fields a link value is derived from
    (``link_value``); raw inputs never leave this module. ``parts``: the event's
    ``prompt_parts`` if the caller has them already."""
    out: list[tuple[str, object]] = []
    if event.payment_fingerprint:
        out.append(("pay", event.payment_fingerprint))
    if event.client_ip:
        out.append(("net", event.client_ip))
    prompt, system, _turns, _question = prompt_parts(event) if parts is None else parts
    if len(prompt) >= _WRAP_MIN_CHARS:
        out.append(("wrap", prompt[-_WRAP_TAIL_CHARS:]))
    if system:
        out.append(("sys", system[:_SYSTEM_CHARS]))
    if event.user_agent:
        out.append(("ua", (event.user_agent, event.api_key_id)))
    return out


def link_record(event, features=None, parts: PromptParts | None = None) -> LinkRecord:
    """All that stage 1 reads of one request and its ``EventFeatures``: plain values only, so a
    ``tuple()`` of it is cheap to hand to another process (``replay --jobs 2``)."""
    if _compiled_record is not None and parts is not None:
        record = _compiled_record(event, features, parts)   # None: a type the C does not expect
        if record is not None:
            return record
    feats = None if features is None else (bool(features.reasoning), features.area, features.wrapper_fp)
    return LinkRecord(event.account_id, event.ts_ms, event.event_id, event.model, event.account_created_ms,
                      event.access_tier, link_inputs(event, parts), feats)


# link_record in C (models/_eventfront.c), used while the compiled route is on
_FRONT = event_front(record_cls=LinkRecord, wrap_min_chars=_WRAP_MIN_CHARS, wrap_tail_chars=_WRAP_TAIL_CHARS,
                     system_chars=_SYSTEM_CHARS)
_compiled_record = None


def _set_compiled(on: bool) -> None:
    global _compiled_record
    _compiled_record = _FRONT.record if on and _FRONT is not None else None


native.on_switch(_set_compiled)


def _wrapper_of(tail: str) -> str | None:
    """The last tokens of a prompt's tail, numbers masked: its instruction wrapper."""
    tokens = words(tail)[1:]   # the first token may be cut
    if len(tokens) < _WRAP_TOKENS:
        return None
    return " ".join("0" if t[0] <= "9" else t for t in tokens[-_WRAP_TOKENS:])


_VALUE_OF = {   # kind -> raw input (``link_inputs``) -> link value, None if there is none
    "pay": lambda pay: pay,
    "net": network_of,
    "wrap": _wrapper_of,
    "sys": str.lower,
    "ua": lambda client: f"{client[0]}|{_key_shape(client[1])}",
}


def link_value(kind: str, raw) -> str | None:
    """The link value of one raw input of ``kind``.

    >>> link_value("net", "10.1.2.3"), link_value("ua", ("curl/8", "sk-abc")), link_value("wrap", "short")
    ('10.1.2', 'curl/8|sk-6', None)
    """
    return _VALUE_OF[kind](raw)


DAY_MS = 86_400_000
_N_TOPICS = len(AREAS)
_TOPIC_NAMES = tuple(str(i) for i in range(_N_TOPICS))   # summary keys, made once
_WRAPPERS_KEPT = 8           # recent wrapper fingerprints per profile (repeats: a template)
_TAILS_KEPT = 8              # recent wrapper keys per profile (allow_wrap's repeats)
if native.LinkProfile is not None:   # the compiled profile (models/_linkprofile.c) reads the same constants
    native.configure_link_profile(_N_TOPICS, _TOPIC_NAMES, DAY_MS, NET_RING, _WRAPPERS_KEPT, _TAILS_KEPT)


class _Profile:
    """What the observer keeps per account for its summary: day-decayed request, reasoning and
    repeated-wrapper counts and topic mix (the per-account vocabulary), from EventFeatures only,
    so the cross-account stage does not depend on the layout of ``AccountState``. The
    definition: ``models/_linkprofile.c`` is the same in C (``LinkObserver._compiled_core``)."""

    __slots__ = ("first", "last", "n", "req", "reasoning", "template", "topics", "wrappers", "nets",
                 "wrap_tails", "budget_t", "budget")

    def __init__(self, ts: int) -> None:
        self.first = self.last = ts
        self.n = 0
        self.req = self.reasoning = self.template = 0.0
        self.topics: dict[int, float] = {}  # only the topics seen: a decayed 0.0 stays 0.0
        self.wrappers: list[int] = []
        self.nets: dict[str, int] = {}
        self.wrap_tails: list[str] = []   # recent wrapper-key fingerprints of this account
        self.budget_t = 0
        self.budget = 0

    def allow_wrap(self, k: str, ts: int, cfg: ClusterConfig) -> bool:
        """A wrapper key the account repeats is always sent (deduplicated); a novel one only
        within a small budget, so free-text traffic (every prompt a new tail) is not multiplied."""
        repeated = k in self.wrap_tails
        if not repeated:
            self.wrap_tails.append(k)
            del self.wrap_tails[:-_TAILS_KEPT]
            if ts - self.budget_t >= cfg.dedupe_ms:
                self.budget_t, self.budget = ts, 0
            if self.budget >= cfg.novel_wrap_budget:
                return False
            self.budget += 1
        return True

    def learn(self, feats: LinkFeatures | None, ts: int) -> None:
        """Fold one request in; ``feats`` is ``(reasoning, topic, wrapper_fp)`` (``link_record``)."""
        if ts > self.last:
            d = math.exp(-(ts - self.last) / DAY_MS)
            self.req *= d
            self.reasoning *= d
            self.template *= d
            topics = self.topics
            for t in topics:
                topics[t] *= d
            self.last = ts
        self.n += 1
        self.req += 1.0
        if feats is None:
            return
        reasoning, topic, w = feats
        self.reasoning += reasoning
        if topic is not None and 0 <= topic < _N_TOPICS:
            self.topics[topic] = self.topics.get(topic, 0.0) + 1.0
        if w is not None:
            if w in self.wrappers:
                self.template += 1.0
            else:
                self.wrappers.append(w)
                del self.wrappers[:-_WRAPPERS_KEPT]

    def saw_network(self, net: str, ts: int) -> None:
        """Remember ``net`` (a /24 or /48) as used at ``ts``: the last ``NET_RING`` networks."""
        ring = self.nets
        ring[net] = max(ts, ring.get(net, 0))
        if len(ring) > NET_RING:
            del ring[min(ring, key=lambda k: (ring[k], k))]

    def summary(self, ts: int, created: int | None, tier: str | None, net_window_ms: int) -> AccountSummary:
        """A per-account summary for collective features (a few hundred bytes, no text), as of a
        request at ``ts``: ``nets`` counts the networks used within ``net_window_ms`` (IP rotation)."""
        req = self.req
        return {"n": self.n, "rd": round(req, 2), "r": round(self.reasoning / req, 3) if req else 0.0,
                "tp": round(self.template / req, 3) if req else 0.0,
                "t": {_TOPIC_NAMES[i]: round(v, 2) for i, v in sorted(self.topics.items()) if v >= 0.01},
                "first": self.first, "created": created, "tier": tier,
                "nets": sum(1 for t in self.nets.values() if ts - t <= net_window_ms)}


class _CompiledStage:
    """A stage whose loop may run compiled (``_core``, made by ``_compiled_core``) on the stage's own
    objects. Pickling (``replay --jobs 2`` sends the cross-account stages to a child process): the
    compiled loop holds references into the stage, so it is made again after unpickling, not
    pickled; the pickle says whether it was compiled."""

    _core = None

    def _compiled_core(self, compiled: bool):
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = {name: value for name, value in self.__dict__.items() if name != "_core"}
        state["_core"] = self._core is not None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._core = self._compiled_core(state["_core"])


class LinkObserver(_CompiledStage):
    """Stage 1: requests (``LinkRecord``) → deduplicated ``LinkObservation``s.

    It runs for every request, so what repeats is computed once: link values and keys are
    memoised per raw input (an account keeps its network, client, system prompt and payment
    method; templated prompts repeat their tail), and the summary is built only for a request
    that sends an observation.
    """

    def __init__(self, key: bytes, cfg: ClusterConfig | None = None):
        self.key = key
        self.cfg = cfg = cfg or ClusterConfig()
        self._dedupe = {kind: cfg.slow_dedupe_ms if kind in SLOW_KINDS else cfg.dedupe_ms for kind in KINDS}
        self.sent: OrderedDict[tuple[str, str], int] = OrderedDict()   # (account, key) -> ts sent
        self.profiles: OrderedDict[str, _Profile] = OrderedDict()       # least recently seen first
        # kind -> raw input -> (link value, key), (None, None) if it has none
        self._links = {kind: Memo(f"observer.links.{kind}", LINK_MEMO, register=False) for kind in KINDS}
        # kind -> link value -> key: a raw-input miss whose value was seen skips the keyed hash
        self._keys = {kind: Memo(f"observer.keys.{kind}", LINK_MEMO, register=False) for kind in KINDS}
        self._core = self._compiled_core(native.enabled())

    def _compiled_core(self, compiled: bool):
        """``observe``'s loop and profiles compiled (``models/_linkprofile.c``), on these same
        objects, where built and ``compiled``; None: the Python below (its definition)."""
        if not compiled or native.LinkObserverCore is None:
            return None
        return native.LinkObserverCore(self.profiles, self.sent, {kind: memo.entries for kind, memo in self._links.items()},
                                       self._dedupe, self.cfg, self._link, LinkObservation, OBSERVER_MAX_ACCOUNTS,
                                       OBSERVER_MAX, wrap_keys=self._keys["wrap"].entries, key_fn=self._key_of,
                                       wrap_put=self._links["wrap"].put, memo_chars=LINK_MEMO_CHARS,
                                       wrap_tokens=_WRAP_TOKENS)

    def _link(self, kind: str, raw) -> tuple[str | None, str | None]:
        """(link value, key) of a raw input the memo missed (``observe`` looks the memo up itself:
        most inputs hit, and a call per input costs more than the lookup)."""
        memo = self._links[kind]
        value = link_value(kind, raw)
        link = (value, None if value is None else self._key_of(kind, value))
        if (len(raw) if type(raw) is str else len(raw[0]) + len(raw[1] or "")) <= LINK_MEMO_CHARS:
            memo.put(raw, link)
        return link

    def _key_of(self, kind: str, value: str) -> str:
        """The link key of a link value. Distinct raw inputs often share a value (templated prompt
        tails, one /24), so keys are memoised by value too (the compiled loop calls this on a miss
        of that memo: ``models/_linkprofile.c`` makes wrap values itself)."""
        keys = self._keys[kind]
        key = keys.get(value)
        if key is None:
            key = f"{kind}:{fingerprint(self.key, kind + '|' + value):016x}"
            if len(value) <= LINK_MEMO_CHARS:
                keys.put(value, key)
        return key

    def observe(self, record: LinkRecord) -> list[LinkObservation]:
        """Link observations for one request (usually none: most are deduplicated)."""
        if self._core is not None:   # models/_linkprofile.c: the same steps on the same objects
            return self._core.observe(record)
        account, ts, event_id, model, created, tier, inputs, feats = record
        prof = self.profiles.get(account)
        if prof is None:
            prof = self.profiles[account] = _Profile(ts)
            if len(self.profiles) > OBSERVER_MAX_ACCOUNTS:
                self.profiles.popitem(last=False)
        else:
            self.profiles.move_to_end(account)
        prof.learn(feats, ts)
        out: list[LinkObservation] = []
        sent, links = self.sent, self._links
        for kind, raw in inputs:
            link = links[kind].get(raw)
            value, k = self._link(kind, raw) if link is None else link
            if k is None:
                continue
            if kind == "net":
                prof.saw_network(value, ts)
            dk = (account, k)
            last = sent.get(dk)
            if last is not None and ts - last < self._dedupe[kind]:
                continue
            if kind == "wrap" and not prof.allow_wrap(k, ts, self.cfg):
                continue
            sent[dk] = ts
            sent.move_to_end(dk)
            out.append(LinkObservation(account, kind, k, ts, event_id, model, None))
        if out:
            summary = prof.summary(ts, created, tier, self.cfg.net_window_ms)   # after the network ring has seen this request
            for obs in out:
                obs.summary = summary
        self._forget(ts)
        return out

    def _forget(self, now: int) -> None:
        """Drop what can no longer matter, oldest first (both dicts are in order of last use):
        dedupe entries older than the longest dedupe window, profiles idle ``profile_idle_ms``;
        the count bounds hold whatever the event times."""
        sent, profiles = self.sent, self.profiles
        longest, idle = self.cfg.slow_dedupe_ms, self.cfg.profile_idle_ms
        while sent and (len(sent) > OBSERVER_MAX or now - next(iter(sent.values())) >= longest):
            sent.popitem(last=False)
        while profiles and now - next(iter(profiles.values())).last >= idle:
            profiles.popitem(last=False)

    def bounds(self) -> Bounds:
        out = {"observer.sent": (len(self.sent), OBSERVER_MAX),
               "observer.profiles": (len(self.profiles), OBSERVER_MAX_ACCOUNTS)}
        for memos in (self._links, self._keys):
            for memo in memos.values():
                out[memo.name] = (len(memo), memo.bound)
        return out


class _Key:
    __slots__ = ("kind", "anchors", "recent", "last_ts")

    def __init__(self, kind: str):
        self.kind = kind
        self.anchors: list[list] = []    # [hash, account, last_ts, summary], sorted by hash, <= ANCHORS
        self.recent: list[list] = []     # [account, ts, summary], newest last, <= RECENT
        self.last_ts = 0

    def cardinality(self) -> float:
        """Estimated distinct accounts (k-minimum-values over the anchors' hashes)."""
        if len(self.anchors) < ANCHORS:
            return float(len(self.anchors))
        return (ANCHORS - 1) / (self.anchors[-1][0] / _HASH_SPACE)


def key_weight(kind: str, card: float, cfg: ClusterConfig) -> float:
    """Evidence weight of sharing one key of ``kind`` used by about ``card`` accounts."""
    return cfg.base_weight[kind] * min(1.0, cfg.ref_card[kind] / max(card, 1.0))


class Linker(_CompiledStage):
    """Stage 2: link observations of one key → pair evidence.

    Partners of an observation are the key's anchors (the bottom-``ANCHORS``
    accounts by hash: the same few accounts for every key a population
    shares, so a pair collects evidence of several kinds) active within
    ``pair_window_ms``, plus the accounts of the ``RECENT`` latest
    observations within ``sync_ms`` (synchronised bursts; ``ClusterConfig``).

    Output: ``PairEvidence`` (partners sorted by account), or None.
    """

    def __init__(self, cfg: ClusterConfig | None = None) -> None:
        self.cfg = cfg or ClusterConfig()
        self.keys: OrderedDict[str, _Key] = OrderedDict()
        self.evicted = 0
        self._core = self._compiled_core(native.enabled())

    def _compiled_core(self, compiled: bool):
        """``process`` compiled (``models/_linkprofile.c``), on these same keys, where built and
        ``compiled``; None: the Python below (its definition)."""
        if not compiled or native.LinkerCore is None:
            return None
        return native.LinkerCore(self, self.keys, _Key, self.cfg, account_hash, Partner, PairEvidence,
                                 ANCHORS, RECENT, MAX_KEYS)

    def process(self, obs: LinkObservation) -> PairEvidence | None:
        if self._core is not None:   # models/_linkprofile.c: the same steps on the same objects
            return self._core.process(obs)
        k, account, ts = obs.key, obs.account, obs.ts_ms
        st = self.keys.get(k)
        if st is None:
            st = self.keys[k] = _Key(obs.kind)
        else:
            self.keys.move_to_end(k)
        st.last_ts = max(st.last_ts, ts)
        summary = obs.summary
        cfg = self.cfg
        window, sync_ms = cfg.pair_window_ms, cfg.sync_ms
        partners: dict[str, Partner] = {}
        own = None
        for entry in st.anchors:
            _, a_acct, a_ts, a_sum = entry
            if a_acct == account:
                own = entry
            elif ts - a_ts <= window:
                partners[a_acct] = Partner(a_acct, int(abs(ts - a_ts) <= sync_ms), a_sum)
        recent = []   # the ring without this account, which goes last
        for entry in st.recent:
            r_acct, r_ts, r_sum = entry
            if r_acct != account:
                if abs(ts - r_ts) <= sync_ms:
                    partners[r_acct] = Partner(r_acct, 1, r_sum)
                recent.append(entry)
        recent.append([account, ts, summary])
        st.recent = recent[-RECENT:]
        # update the sketch
        if own is not None:
            own[2] = max(own[2], ts)
            own[3] = summary
        else:
            h = account_hash(account, ts)
            if len(st.anchors) < ANCHORS or h < st.anchors[-1][0]:
                st.anchors.append([h, account, ts, summary])
                st.anchors.sort(key=lambda e: (e[0], e[1]))
                del st.anchors[ANCHORS:]
        self._evict(ts)
        w = key_weight(st.kind, st.cardinality(), cfg)
        if not partners or w < cfg.min_weight:
            return None
        return PairEvidence(account, summary, st.kind, round(w, 4), ts, obs.event_id, obs.model,
                            [partners[p] for p in sorted(partners)])

    def _evict(self, now: int) -> None:
        keys, ttl = self.keys, self.cfg.key_ttl_ms
        while keys:
            k, st = next(iter(keys.items()))
            if len(keys) > MAX_KEYS or now - st.last_ts > ttl:
                del keys[k]
                self.evicted += 1
            else:
                break

    def bounds(self) -> Bounds:
        return {"linker.keys": (len(self.keys), MAX_KEYS)}   # the account-hash memo: memo_bounds()
