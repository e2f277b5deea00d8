"""The per-account detector: event → features → state → score → alert events.

The same object runs inside the Faust agent (with its state mapping backed by
a changelogged table) and inside ``distillguard replay`` (with a dict), so a
stream and a replay of the same events give the same alerts. Per-account
state lives in ``states``; cohort-wide models (River anomaly trees, tier
baselines, see :class:`~.scoring.Scorer`) live in this object, one per worker
process, and are relearned after a restart.

>>> from distillguard.schemas import parse_event
>>> d = Detector()
>>> d.process_one(parse_event(b'{"schema_version":"1","event_id":"e","ts_ms":1,"account_id":"a",'
...     b'"model":"m","operation":"chat","messages":[],"params":{}}'))
[]
>>> d.expire_idle(1 + d.config.idle_expiry_ms + 1)
['a']
"""
from __future__ import annotations

from collections.abc import Callable, MutableMapping

from distillguard.schemas import Alert, RequestEvent

from .config import DetectorConfig
from .dedupe import DedupeWindow
from .elicitation import ElicitationModel
from .features import EventFeatures, extract
from .lifecycle import Lifecycle
from .response import Context
from .scoring import Scorer, account_features
from .state import AccountState

DETECTOR = "account_extraction"
DEV_KEY = b"distillguard-dev-key"


class Detector:
    """Per-account extraction detector.

    ``states`` maps account id → :class:`AccountState`; pass a mapping of your
    own to persist state elsewhere. ``max_scores`` keeps each account's highest
    score (for evaluation sweeps below the alert threshold).
    """

    def __init__(self, config: DetectorConfig | None = None, key: bytes = DEV_KEY,
                 states: MutableMapping[str, AccountState] | None = None,
                 elicitation: ElicitationModel | None = None):
        self.config = config or DetectorConfig()
        self.key = key
        self.elicitation = elicitation  # reasoning-elicitation model (None: the shipped default)
        self.states: MutableMapping[str, AccountState] = {} if states is None else states
        self.lifecycle = Lifecycle(DETECTOR, self.config)
        self.scorer = Scorer(self.config)
        self.max_scores: dict[str, float] = {}
        self.open_alerts: set[str] = set()  # accounts with an open alert, for expiry
        self.watermark = 0                  # highest event time seen
        self.dedupe = DedupeWindow()        # a re-delivered event_id is not counted twice
        # optional callback(account, ts_ms, score, reasons) on every scoring: the stream stores
        # these as feature snapshots for analysts (account_features)
        self.on_score: Callable[[str, int, float, list[dict]], None] | None = None

    def _due(self, s: AccountState) -> bool:
        """Score when the state changed materially: at ``min_events``, then every ``score_every``."""
        n = s.events
        if n < self.config.min_events:
            return False
        return n == self.config.min_events or n % self.config.score_every == 0

    def process_one(self, event: RequestEvent) -> list[Alert]:
        """Learn one event; return the alert events (create/update/close) it causes."""
        if self.dedupe.seen(event.event_id, event.ts_ms):
            self.last_features = None    # the cross-account stage must not reuse the previous event's
            return []
        return self.learn_features(event.account_id, extract(event, self.key, self.elicitation))

    def learn_features(self, account: str, f: EventFeatures) -> list[Alert]:
        """``process_one`` after feature extraction (evaluation sweeps reuse extracted features)."""
        self.last_features = f  # read by the cross-account stage (models/clusters.py), features computed once
        s = self.states.get(account)
        if s is None:
            s = AccountState()
        s.learn_one(f)
        if f.reasoning or f.grader or f.logprob_probe or f.logit_bias_size:
            s.remember_sample(f.event_id)
        ts = f.ts_ms
        if ts > self.watermark:
            self.watermark = ts
        out: list[Alert] = []
        if s.alert is not None:
            s.alert, closed = self.lifecycle.expire(s.alert, account, [account], ts, f.model)
            if closed:
                out.append(closed)
        if self._due(s):
            x = account_features(s)
            score, reasons, findings = self.scorer.assess(s, x)
            self.scorer.learn_one(s, score, x)
            if score > self.max_scores.get(account, 0.0):
                self.max_scores[account] = score
            if self.on_score is not None:
                self.on_score(account, ts, score, reasons)
            samples = s.samples or [f.event_id]
            users = s.users.flagged() if s.users is not None else []   # end users the finding names
            context = Context(s.tier, x["account_age_days"], bool(users))
            s.alert, alert = self.lifecycle.observe(s.alert, account, [account], score, reasons, ts,
                                                   s.first_ms, s.events, samples, f.model, findings=findings,
                                                   context=context, end_user_ids=users)
            if alert:
                out.append(alert)
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

    def expire_idle(self, now_ms: int) -> list[str]:
        """Delete the state of accounts idle (in event time) for more than ``idle_expiry_ms``;
        return their ids. Accounts with an open alert are kept until ``advance`` closes it."""
        cutoff = now_ms - self.config.idle_expiry_ms
        idle = sorted(a for a, s in self.states.items() if s.last_ms < cutoff and s.alert is None)
        for account in idle:
            del self.states[account]
            self.max_scores.pop(account, None)
        return idle
