"""Feed one event stream to distillguard's pipeline and to the baselines side by side.

:class:`Harness` watches a replay (``distillguard.streams.replay.replay``): pass
``harness.on_event`` and ``harness.on_alert`` to it, and every detector sees
identical traffic in identical order. It learns distillguard's outcome from
the pipeline's typed outputs only (alert events, feature snapshots), and
times the baselines' work.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from distillguard.models.pipeline import AccountOutput
from distillguard.schemas import Alert, RequestEvent

from .baselines import Baseline
from .metrics import ALERTING, AccountResult, evaluate_detector, max_severity

DISTILLGUARD = "distillguard"


class Harness:
    """Outcomes of distillguard and of ``baselines`` on labelled traffic."""

    def __init__(self, baselines: Sequence[Baseline], labels: Mapping[str, dict]):
        self.baselines = list(baselines)
        self.labels = labels
        self.attack_requests: dict[str, int] = {}
        self.seen: set[str] = set()
        # distillguard outcome, built from its outputs
        self.first_alert: dict[str, tuple[int, int]] = {}   # account -> (raised_at_ms, attack requests so far)
        self.severity: dict[str, str] = {}
        self.max_scores: dict[str, float] = {}    # highest per-account score (feature snapshots)
        self.baseline_first: dict[str, dict[str, int]] = {b.name: {} for b in self.baselines}
        self.baseline_seconds: dict[str, float] = {b.name: 0.0 for b in self.baselines}
        self.alert_events = 0
        self.alert_scores: dict[str, float] = {}  # highest alert score per account (cluster alerts included)

    def _count(self, event: RequestEvent) -> None:
        acct = event.account_id
        self.seen.add(acct)
        lab = self.labels.get(acct)
        if lab is not None and lab.get("label") == "attack":
            start = lab.get("first_attack_ts_ms")
            if start is None or event.ts_ms >= start:
                self.attack_requests[acct] = self.attack_requests.get(acct, 0) + 1

    def on_event(self, event: RequestEvent, out: AccountOutput) -> None:
        """After distillguard's per-account stage has seen ``event`` (replay's ``on_event``):
        count it, remember the account's score, and feed the baselines."""
        self._count(event)
        snap = out.snapshot
        if snap is not None and snap.score > self.max_scores.get(snap.account_id, 0.0):
            self.max_scores[snap.account_id] = snap.score
        for b in self.baselines:
            t0 = time.perf_counter()
            hit = b.learn_one(event)
            self.baseline_seconds[b.name] += time.perf_counter() - t0
            if hit is not None:
                self.baseline_first[b.name][hit] = self.attack_requests.get(hit, 0)

    def on_alert(self, a: Alert) -> None:
        """Record one alert event, per-account or cluster (replay's ``on_alert``)."""
        self.alert_events += 1
        if a.activity == "close":
            return
        for acct in a.account_ids:
            self.severity[acct] = max_severity(self.severity.get(acct), a.severity) or a.severity
            if a.score > self.alert_scores.get(acct, 0.0):
                self.alert_scores[acct] = a.score
            if a.severity in ALERTING and acct not in self.first_alert:
                self.first_alert[acct] = (a.raised_at_ms, self.attack_requests.get(acct, 0))

    # ----------------------------------------------------------------- results

    def results(self) -> dict[str, dict[str, AccountResult]]:
        """Per detector name, per account outcome."""
        out: dict[str, dict[str, AccountResult]] = {}
        dg: dict[str, AccountResult] = {}
        for acct in self.seen | set(self.first_alert) | set(self.max_scores):
            first = self.first_alert.get(acct)
            score = max(self.max_scores.get(acct, 0.0), self.alert_scores.get(acct, 0.0))
            dg[acct] = AccountResult(score,
                                     first[0] if first else None, first[1] if first else None,
                                     self.severity.get(acct))
        out[DISTILLGUARD] = dg
        for b in self.baselines:
            res = b.results()
            for acct, r in res.items():
                r.attack_requests_before = self.baseline_first[b.name].get(acct)
            out[b.name] = res
        return out

    def _account_doc(self, account: str, r: AccountResult | None) -> dict:
        lab = self.labels.get(account, {})
        doc = {"cohort": lab.get("cohort"), "label": lab.get("label"),
               "first_attack_ts_ms": lab.get("first_attack_ts_ms")}
        doc.update((r or AccountResult()).to_dict())
        return doc

    def evaluate(self) -> dict[str, dict]:
        """Metrics per detector (see :func:`~.metrics.evaluate_detector`), plus per-account outcomes."""
        out = {}
        for name, res in self.results().items():
            m = evaluate_detector(self.labels, res)
            m["accounts"] = {a: self._account_doc(a, res.get(a)) for a in sorted(self.labels)}
            out[name] = m
        return out
