"""Enforcement decisions: alert events in, per-request decisions out. No I/O here.

A gateway hook (``distillguard.streams.enforcement``) feeds every alert event of the
alerts topic to a :class:`PolicyBook` and asks it, per request, what to do. The book keeps
the latest event of every open alert per account, or per (account, end user) when the
alert carries the ``per_end_user`` protection (contract v1.1); ``close`` lifts it. When
several alerts are open for one caller, the strictest action wins and protections add up.

>>> book = PolicyBook()
>>> book.apply({"alert_id": "a1", "activity": "create", "account_ids": ["acme"],
...             "recommended_action": "block", "severity": "critical"})
True
>>> book.decide(Caller("acme"), now_ms=0).status
403
>>> book.decide(Caller("other"), now_ms=0).allowed
True
>>> book.apply({"alert_id": "a1", "activity": "close", "account_ids": ["acme"]})
True
>>> book.decide(Caller("acme"), now_ms=0).allowed
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

# strictest last; "monitor" lets everything through
ACTIONS = ("monitor", "throttle", "step_up_verification", "block")
PROTECTIONS = ("summarize_reasoning", "disable_logprobs", "cap_output_tokens", "per_end_user")
# request parameters that expose the model's token distribution (disable_logprobs)
LOGPROB_PARAMS = ("logprobs", "top_logprobs", "logit_bias")
OUTPUT_TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True)
class EnforcementConfig:
    throttle_per_minute: float = 6.0        # requests a throttled caller may still make
    output_token_cap: int = 256             # cap_output_tokens
    verification_step: str = "identity verification"   # what step_up_verification asks for
    contact: str = "your account manager"


@dataclass(frozen=True)
class Caller:
    """Who a request is from: the billing account and, if the gateway knows it, the end user."""
    account_id: str
    end_user_id: str | None = None


@dataclass(frozen=True)
class Policy:
    """What one open alert asks for."""
    alert_id: str
    action: str
    protections: frozenset[str]
    severity: str = ""


@dataclass(frozen=True)
class Decision:
    """What the gateway does with one request: refuse it (``status`` set) or let it through,
    possibly degraded (``degrade`` applies the protections to the request body)."""
    status: int | None = None                   # 403 / 429, None = let through
    message: str = ""
    retry_after_s: int | None = None
    protections: frozenset[str] = frozenset()
    alert_ids: tuple[str, ...] = ()
    output_token_cap: int | None = None

    @property
    def allowed(self) -> bool:
        return self.status is None

    @property
    def degraded(self) -> bool:
        return self.allowed and bool(self.protections - {"per_end_user"})


@dataclass
class _Bucket:
    """Token bucket of a throttled caller: ``tokens`` at ``at_ms``."""
    tokens: float
    at_ms: int


@dataclass
class PolicyBook:
    config: EnforcementConfig = field(default_factory=EnforcementConfig)
    # key: (account, None) for the whole account, (account, end user) when scoped
    policies: dict[tuple[str, str | None], dict[str, Policy]] = field(default_factory=dict)
    buckets: dict[tuple[str, str | None], _Bucket] = field(default_factory=dict)
    ignored: int = 0          # alert events that were not usable (counted, never raised)

    def apply(self, alert: dict) -> bool:
        """Take one alert event into account; False (and counted) if it cannot be used."""
        try:
            alert_id, activity = str(alert["alert_id"]), alert["activity"]
            accounts = [str(a) for a in alert["account_ids"]]
        except (KeyError, TypeError):
            self.ignored += 1
            return False
        if activity == "close":
            for key in [k for k, by_id in self.policies.items() if alert_id in by_id]:
                del self.policies[key][alert_id]
                if not self.policies[key]:
                    del self.policies[key]
                    self.buckets.pop(key, None)
            return True
        action = alert.get("recommended_action")
        if activity not in ("create", "update") or action not in ACTIONS or not accounts:
            self.ignored += 1
            return False
        protections = frozenset(p for p in alert.get("protections") or () if p in PROTECTIONS)
        end_users = [str(u) for u in alert.get("end_user_ids") or ()]
        scoped = "per_end_user" in protections and bool(end_users)
        policy = Policy(alert_id, action, protections, str(alert.get("severity", "")))
        for key in [k for k, by_id in self.policies.items() if alert_id in by_id]:
            del self.policies[key][alert_id]   # an update may change the scope: drop the old one
            if not self.policies[key]:
                del self.policies[key]
        for account in accounts:
            for user in (end_users if scoped else [None]):
                self.policies.setdefault((account, user), {})[alert_id] = policy
        return True

    def decide(self, caller: Caller, now_ms: int) -> Decision:
        """The decision for one request of ``caller`` at ``now_ms`` (throttling counts it)."""
        keys = [(caller.account_id, None)]
        if caller.end_user_id:
            keys.append((caller.account_id, caller.end_user_id))
        found = [(key, p) for key in keys for p in self.policies.get(key, {}).values()]
        if not found:
            return Decision()
        where, strictest = max(found, key=lambda kp: ACTIONS.index(kp[1].action))
        ids = tuple(sorted({p.alert_id for _k, p in found}))
        protections = frozenset().union(*(p.protections for _k, p in found))
        cap = self.config.output_token_cap if "cap_output_tokens" in protections else None
        who = (f"end user {where[1]} of account {where[0]}" if where[1] is not None
               else f"account {caller.account_id}")
        if strictest.action == "block":
            return Decision(403, f"{who} is blocked: the traffic matches model extraction "
                                 f"(alert {strictest.alert_id}); contact {self.config.contact}", alert_ids=ids)
        if strictest.action == "step_up_verification":
            return Decision(403, f"{who} must complete {self.config.verification_step} before using the API "
                                 f"again (step_up_verification, alert {strictest.alert_id})", alert_ids=ids)
        if strictest.action == "throttle":
            wait_s = self._take_token(where, now_ms)
            if wait_s is not None:
                return Decision(429, f"{who} is throttled to {self.config.throttle_per_minute:g} requests per "
                                     f"minute (alert {strictest.alert_id}); retry after {wait_s}s",
                                retry_after_s=wait_s, alert_ids=ids)
        return Decision(protections=protections, alert_ids=ids, output_token_cap=cap)

    def _take_token(self, key: tuple[str, str | None], now_ms: int) -> int | None:
        """Spend one request of a throttled caller's budget; None if allowed, else seconds to wait."""
        rate_per_ms = self.config.throttle_per_minute / 60_000
        capacity = max(1.0, self.config.throttle_per_minute)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(capacity, now_ms)
        bucket.tokens = min(capacity, bucket.tokens + (now_ms - bucket.at_ms) * rate_per_ms)
        bucket.at_ms = now_ms
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / rate_per_ms / 1000))


def degrade(body: dict, decision: Decision) -> tuple[dict, list[str]]:
    """The request body with the decision's protections applied, and what was changed.

    ``disable_logprobs`` removes the parameters that expose token probabilities;
    ``cap_output_tokens`` lowers (never raises) the output token limit, and sets one if the
    request had none; ``summarize_reasoning`` is not a body change: the gateway passes it on
    to the serving side as a header (see the hook)."""
    out = dict(body)
    changes: list[str] = []
    if "disable_logprobs" in decision.protections:
        for name in LOGPROB_PARAMS:
            if out.pop(name, None) is not None:
                changes.append(f"removed {name}")
    if decision.output_token_cap is not None:
        cap = decision.output_token_cap
        present = [n for n in OUTPUT_TOKEN_PARAMS if out.get(n) is not None]
        for name in present or ["max_tokens"]:
            if not isinstance(out.get(name), int) or out[name] > cap:
                changes.append(f"{name} {out.get(name)} -> {cap}")
                out[name] = cap
    return out, changes
