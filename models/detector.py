"""The per-account detector: event → features → state → score → alert events.

One :class:`AccountDetector` runs inside the stream's detect agent (with its
state mapping backed by a changelogged table) and inside ``distillguard
replay`` (with a dict), always through :class:`~.pipeline.AccountStage`,
which owns the cadence (quiet-alert closes, idle expiry). Per-account state
lives in ``states``; cohort-wide models (River anomaly trees, tier baselines,
see :class:`~.scoring.Scorer`) live in this object, one per worker process,
and are relearned after a restart.

Everything it decides is a function of each account's own events, in event
time, except what the cohort-wide models have learnt (arrival order; see
README, "Stream and replay"):

* an alert quiet for ``close_after_ms`` closes at ``last_strong + close_after_ms``
  (``lifecycle``), whether the account's next event or ``advance`` notices it;
* an account idle for more than ``idle_expiry_ms`` starts from empty state at its
  next event, whether or not ``expire_idle`` has already freed its state.

>>> from distillguard.schemas import parse_event
>>> d = AccountDetector()
>>> d.process(parse_event(b'{"schema_version":"1","event_id":"e","ts_ms":1,"account_id":"a",'
...     b'"model":"m","operation":"chat","messages":[],"params":{}}')).alerts
[]
>>> d.expire_idle(1 + d.config.idle_expiry_ms + 1)
['a']
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field

from distillguard.schemas import Alert, RequestEvent

from .config import DetectorConfig
from .dedupe import DedupeWindow
from .elicitation import ElicitationModel
from .features import EventFeatures, PromptParts, extract, prepare
from .lifecycle import Lifecycle
from .memo import Bounds
from .response import Context
from .rows import FeatureSnapshotRow
from .scoring import Scorer, account_features
from .state import AccountState

DETECTOR = "account_extraction"
DEV_KEY = b"distillguard-dev-key"


@dataclass(slots=True)
class AccountResult:
    """What one request did to its account: its features (read by the minute aggregates and
    the cross-account stage), alert events, and a feature snapshot if the account was scored."""
    features: EventFeatures
    alerts: list[Alert] = field(default_factory=list)
    snapshot: FeatureSnapshotRow | None = None


class AccountDetector:
    """Per-account extraction detector.

    ``states`` maps account id → :class:`AccountState`; pass a mapping of your
    own to persist state elsewhere. ``max_scores`` keeps each account's highest
    score (for evaluation sweeps below the alert threshold), oldest scored first.
    ``expire_idle`` bounds both by event-time idleness and by ``config.max_accounts``.
    """

    def __init__(self, config: DetectorConfig | None = None, key: bytes = DEV_KEY,
                 states: MutableMapping[str, AccountState] | None = None,
                 elicitation: ElicitationModel | None = None):
        self.config = config or DetectorConfig()
        self.key = key
        # the reasoning-elicitation model (None: the shipped default), trained here, not by the first event
        self.elicitation = prepare(key, elicitation)
        self.states: MutableMapping[str, AccountState] = {} if states is None else states
        self.lifecycle = Lifecycle(DETECTOR, self.config)
        self.scorer = Scorer(self.config)
        self.max_scores: dict[str, float] = {}
        self.open_alerts: set[str] = set()  # accounts with an open alert, for advance
        self.watermark = 0                  # highest event time seen
        self.content_less = 0               # events without prompt text (redacted): content signals blind
        self.dedupe = DedupeWindow()        # a re-delivered event_id is not counted twice
        self.redelivered = 0                # events skipped because their account's state held them

    def _due(self, s: AccountState) -> bool:
        """Score when the state changed materially: at ``min_events``, then every ``score_every``."""
        n = s.events
        if n < self.config.min_events:
            return False
        return n == self.config.min_events or n % self.config.score_every == 0

    def process(self, event: RequestEvent, parts: PromptParts | None = None,
                position: tuple[int, int] | None = None) -> AccountResult | None:
        """Learn one event; return its features, alert events and feature snapshot, or None for
        a re-delivery: an event id seen within the dedupe window, or an input ``position``
        (source, offset) the account's state already holds (``AccountState.holds``: events read
        again by the worker that took over their partition). ``parts``: the event's
        ``features.prompt_parts`` if the caller has them already."""
        if self.dedupe.seen(event.event_id, event.ts_ms):
            return None
        account = event.account_id
        s = self.states.get(account)
        if position is not None and s is not None and s.holds(*position, event.ts_ms):
            self.redelivered += 1
            return None
        return self._learn(account, s, extract(event, self.key, self.elicitation, parts), position)

    def process_one(self, event: RequestEvent) -> list[Alert]:
        """The alert events of ``process`` (tests and notebooks)."""
        result = self.process(event)
        return [] if result is None else result.alerts

    def learn_features(self, account: str, f: EventFeatures) -> AccountResult:
        """``process`` after feature extraction (evaluation sweeps reuse extracted features)."""
        return self._learn(account, self.states.get(account), f, None)

    def _learn(self, account: str, s: AccountState | None, f: EventFeatures,
               position: tuple[int, int] | None) -> AccountResult:
        out = AccountResult(f)
        ts = f.ts_ms
        self.content_less += f.content_less
        if s is not None and s.alert is not None:
            s.alert, closed = self.lifecycle.expire(s.alert, account, [account], ts)
            if closed:
                out.alerts.append(closed)
        if s is None or (s.alert is None and ts - s.last_ms > self.config.idle_expiry_ms):
            s = AccountState()   # new, or back after the idle expiry: what expire_idle would have left
        s.learn_one(f)
        if position is not None:
            s.source, s.offset = position
        if f.reasoning or f.grader or f.logprob_probe or f.logit_bias_size:
            s.remember_sample(f.event_id)
        if ts > self.watermark:
            self.watermark = ts
        if self._due(s):
            x = account_features(s)
            score, reasons, findings = self.scorer.assess(s, x)
            self.scorer.learn_one(s, score, x)
            best = max(self.max_scores.pop(account, 0.0), score)   # re-inserted: oldest scored first
            if best > 0.0:
                self.max_scores[account] = best
            out.snapshot = FeatureSnapshotRow(account, ts, score,
                                              {r["feature"]: float(r["value"]) for r in reasons})
            samples = s.samples or [f.event_id]
            users = s.users.flagged() if s.users is not None else []   # end users the finding names
            context = Context(s.tier, x["account_age_days"], bool(users))
            s.alert, alert = self.lifecycle.observe(s.alert, account, [account], score, reasons, ts,
                                                   s.first_ms, s.events, samples, f.model, findings=findings,
                                                   context=context, end_user_ids=users)
            if alert:
                out.alerts.append(alert)
        if s.alert is not None:
            self.open_alerts.add(account)
        else:
            self.open_alerts.discard(account)
        self.states[account] = s
        return out

    def advance(self, now_ms: int | None = None) -> list[Alert]:
        """Close alerts of accounts quiet since ``now_ms - close_after_ms`` (default: the watermark)."""
        now = self.watermark if now_ms is None else now_ms
        out = []
        for account in sorted(self.open_alerts):
            s = self.states.get(account)
            if s is None or s.alert is None:
                self.open_alerts.discard(account)
                continue
            s.alert, closed = self.lifecycle.expire(s.alert, account, [account], now)
            if closed:
                out.append(closed)
                self.open_alerts.discard(account)
                self.states[account] = s
        return out

    def forget_open_alerts(self) -> None:
        """Drop the index of accounts with an open alert (the stream's states moved to another
        worker at a rebalance; an account's next event re-enters it)."""
        self.open_alerts.clear()

    def expire_idle(self, now_ms: int) -> list[str]:
        """Free the state of accounts idle (in event time) for more than ``idle_expiry_ms``;
        return their ids. Accounts with an open alert are kept until ``advance`` closes it.
        Memory only: an idle account's next event starts from empty state either way."""
        cutoff = now_ms - self.config.idle_expiry_ms
        idle = sorted(a for a, s in self.states.items() if s.last_ms < cutoff and s.alert is None)
        over = len(self.states) - len(idle) - self.config.max_accounts
        if over > 0:   # too many accounts: the longest idle go too (the bound holds under any load)
            gone = set(idle)
            idle += [a for _, a in sorted((s.last_ms, a) for a, s in self.states.items()
                                          if s.alert is None and a not in gone)[:over]]
        for account in idle:
            del self.states[account]
            self.max_scores.pop(account, None)
        max_scores = self.max_scores   # entries of accounts this worker no longer holds (rebalance)
        while len(max_scores) > self.config.max_accounts:
            del max_scores[next(iter(max_scores))]
        return idle

    def bounds(self) -> Bounds:
        """Sizes of the detector's structures against their bounds (``memo.Bounds``)."""
        n = self.config.max_accounts
        return {"detector.states": (len(self.states), n), "detector.max_scores": (len(self.max_scores), n),
                "detector.open_alerts": (len(self.open_alerts), n), **self.scorer.bounds()}


Detector = AccountDetector   # the name before 0.x; kept one release for callers outside this repo
