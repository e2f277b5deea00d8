"""The per-account detector: event → features → state → score → alert events.

The same object runs inside the Faust agent (with its state mapping backed by
a changelogged table) and inside ``distillguard replay`` (with a dict), so a
stream and a replay of the same events give the same alerts.

>>> from distillguard.schemas import parse_event
>>> d = Detector()
>>> d.process_one(parse_event(b'{"schema_version":"1","event_id":"e","ts_ms":1,"account_id":"a",'
...     b'"model":"m","operation":"chat","messages":[],"params":{}}'))
[]
"""
from __future__ import annotations

from collections.abc import MutableMapping

from distillguard.schemas import Alert, RequestEvent

from .config import DetectorConfig
from .features import extract
from .lifecycle import Lifecycle
from .scoring import score_state
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
                 states: MutableMapping[str, AccountState] | None = None):
        self.config = config or DetectorConfig()
        self.key = key
        self.states: MutableMapping[str, AccountState] = {} if states is None else states
        self.lifecycle = Lifecycle(DETECTOR, self.config)
        self.max_scores: dict[str, float] = {}
        self.open_alerts: set[str] = set()  # accounts with an open alert, for expiry
        self.watermark = 0                  # highest event time seen

    def _due(self, s: AccountState) -> bool:
        n = s.events
        if n < self.config.min_events:
            return False
        return n == self.config.min_events or n % self.config.score_every == 0

    def process_one(self, event: RequestEvent) -> list[Alert]:
        """Learn one event; return the alert events (create/update/close) it causes."""
        f = extract(event, self.key)
        account = event.account_id
        s = self.states.get(account)
        if s is None:
            s = AccountState()
        s.learn_one(f)
        if f.reasoning or f.grader or f.logprob_probe or f.logit_bias_size:
            s.remember_sample(f.event_id)
        if event.ts_ms > self.watermark:
            self.watermark = event.ts_ms
        out: list[Alert] = []
        if s.alert is not None:
            s.alert, closed = self.lifecycle.expire(s.alert, account, [account], event.ts_ms, event.model)
            if closed:
                out.append(closed)
        if self._due(s):
            score, reasons = score_state(s, self.config)
            if score > self.max_scores.get(account, 0.0):
                self.max_scores[account] = score
            samples = s.samples or [f.event_id]
            s.alert, alert = self.lifecycle.observe(s.alert, account, [account], score, reasons, event.ts_ms,
                                                   s.first_ms, s.events, samples, event.model)
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
        for account in list(self.open_alerts):
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
