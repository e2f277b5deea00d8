"""What to do about a finding: context-aware action and targeted protections (alert contract v1.1).

A score says how sure we are that extraction is going on; the response also weighs *who* the
account is and *what* it is extracting:

* **Protections** degrade what an extractor gets without cutting a customer off:
  ``summarize_reasoning`` when reasoning is being harvested (serve summaries of the reasoning, as
  providers already do), ``disable_logprobs`` for logprob / logit-bias probing,
  ``cap_output_tokens`` when long answers are being harvested, ``per_end_user`` when the finding is
  about some of an account's end users (the alert names them in ``end_user_ids``).
* **Action**: the severity's action (``monitor`` < ``step_up_verification`` < ``throttle`` <
  ``block``), tempered by context. An *established* account (enterprise tier, or any paid tier
  older than a year) never gets ``block`` or ``throttle`` from one signal: it gets
  ``step_up_verification`` (review) unless two independent findings are strong. A finding scoped to
  end users never blocks the whole customer.

>>> respond("critical", {"capability_sweep": 0.9, "anomaly": 0.3}, Context("enterprise", 900.0, False))
('step_up_verification', ['summarize_reasoning'])
>>> respond("critical", {"capability_sweep": 0.9, "output_harvest": 0.8}, Context("free", 2.0, False))
('block', ['cap_output_tokens', 'summarize_reasoning'])
>>> respond("high", {"end_user_extraction": 0.9}, Context("startup", 100.0, True))
('throttle', ['cap_output_tokens', 'per_end_user', 'summarize_reasoning'])
"""
from __future__ import annotations

from dataclasses import dataclass

ACTIONS = {"low": "monitor", "medium": "step_up_verification", "high": "throttle", "critical": "block"}
_ORDER = ("monitor", "step_up_verification", "throttle", "block")
STRONG = 0.5                  # a finding at least this strong counts as one signal
ESTABLISHED_DAYS = 365.0
# finding -> protections that fit it
PROTECTIONS = {
    "capability_sweep": ("summarize_reasoning",),
    "reasoning_harvest": ("summarize_reasoning", "cap_output_tokens"),
    "output_harvest": ("cap_output_tokens",),
    "narrow_harvest": ("cap_output_tokens",),
    "grader_abuse": ("cap_output_tokens",),
    "logprob_probing": ("disable_logprobs",),
    "end_user_extraction": ("per_end_user", "summarize_reasoning", "cap_output_tokens"),
}
NOT_SIGNALS = frozenset({"anomaly", "model_pivot"})   # context, never a signal on their own


@dataclass(frozen=True, slots=True)
class Context:
    tier: str | None
    age_days: float
    end_users_named: bool

    @property
    def established(self) -> bool:
        return self.tier == "enterprise" or (self.tier not in (None, "free") and self.age_days >= ESTABLISHED_DAYS)


def _cap(action: str, ceiling: str) -> str:
    return action if _ORDER.index(action) <= _ORDER.index(ceiling) else ceiling


def respond(severity: str, findings: dict[str, float], ctx: Context) -> tuple[str, list[str]]:
    """(recommended_action, protections) for a finding of ``severity`` with these finding strengths."""
    action = ACTIONS[severity]
    signals = [k for k, v in findings.items() if v >= STRONG and k not in NOT_SIGNALS]
    protections: set[str] = set()
    basis = signals or ([max(findings, key=findings.get)] if findings else [])  # else the strongest one
    for k in basis:
        protections.update(PROTECTIONS.get(k, ()))
    if ctx.end_users_named and findings.get("end_user_extraction", 0.0) >= STRONG:
        protections.add("per_end_user")
        action = _cap(action, "throttle")     # scoped to the named end users, never the whole customer
    if ctx.established and len(signals) < 2:
        action = _cap(action, "step_up_verification")
    return action, sorted(protections)
