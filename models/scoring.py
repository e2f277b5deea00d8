"""Account state → named features → evidence → one combined score in 0..1 with reasons.

``account_features`` turns an :class:`AccountState` into named numbers, each
with the reason it separates extraction from ordinary use. ``evidence`` turns
them into per-finding strengths in 0..1: crisp rules for crisp signals
(logit-bias / logprob probing, grader prompts at volume, reasoning harvested
at volume) and graded ones for sweeps and pivots. :class:`Scorer` adds the
per-cohort River anomaly score and combines everything by noisy-OR, so one
crisp signal can carry an alert while weak signals add up. The anomaly term
alone is capped below ``medium``: unusual is not the same as extracting.

>>> from distillguard.models.config import DetectorConfig
>>> from distillguard.models.state import AccountState
>>> sc = Scorer(DetectorConfig())
>>> score, reasons = sc.score_one(AccountState())
>>> score, reasons[0]["feature"]
(0.0, 'capability_sweep')
"""
from __future__ import annotations

from .anomaly import CohortAnomaly, scale
from .baseline import CohortBaseline
from .config import DetectorConfig
from .memo import Bounds
from .ramps import ramp
from .workload_shape import DEFAULT_SHAPE
from .state import (C_BIAS, C_BURST, C_ERRORS, C_FRESH, C_GRADER, C_IN_TOKENS, C_LOGPROB, C_LONG_ANSWER,
                    C_LONG_OUT, C_NEW_MODEL, C_OUT_TOKENS, C_PADDED, C_REASONING, C_REPEAT_SKELETON, C_REQUESTS,
                    C_SHORT_ANSWER, C_TEMPLATE_FILL, C_TRUNCATED, H_DAY, H_HOUR, H_SHORT, HORIZONS_MS,
                    AccountState)

DAY_MS = 86_400_000
MAX_COHORTS = 32       # anomaly models and baselines (one per tier, ~1 MB each)
OTHER_COHORT = "other"
PRIOR_REQUESTS = 10.0  # shares shrink towards 0 by this many pseudo-requests: a quiet hour of 3 requests
                       # on a new model is not a "100% pivot"


def account_features(s: AccountState) -> dict[str, float]:
    """Named account features at the state's latest event time (fixed order: River and the
    baselines see the same vector whatever the process's hash seed)."""
    breadth, unplaced = s.capability_spread()
    n_hour = s.count(C_REQUESTS, H_HOUR)
    n_day = s.count(C_REQUESTS, H_DAY)
    shrink = n_hour / (n_hour + PRIOR_REQUESTS)

    def hour_share(counter: int) -> float:
        return s.share(counter, H_HOUR) * shrink

    age = (s.last_ms - s.created_ms) / DAY_MS if s.created_ms is not None else 365.0
    return {
        # volume and rate: distillation needs thousands of samples, people send dozens
        "requests_day": n_day,
        "requests_per_min": s.count(C_REQUESTS, H_SHORT) * 60_000 / HORIZONS_MS[H_SHORT],
        # burstiness: scripts fire requests back to back, people read the answer first
        "burst_share": hour_share(C_BURST),
        # inter-arrival regularity: a scripted loop has near-constant gaps (small spread)
        "gap_spread": s.gap_spread(),
        # template-ness: one wrapper filled with many payloads (dataset generation)...
        "template_fill_share": hour_share(C_TEMPLATE_FILL),
        "top_template_share": s.top_template_share(),
        # ...and exact repeats (retries, follow-up chit-chat), which are *not* harvesting
        "repeat_share": hour_share(C_REPEAT_SKELETON),
        # distinct skeletons per request: a sweep never asks the same thing twice
        "novelty": min(s.distinct_skeletons() / max(s.events, 1), 1.0),
        # coverage, whatever the framing: campaigns sweep dozens of the 64 capability areas, a product
        # lives in a few
        "capability_breadth": breadth,
        "capability_unplaced": unplaced,
        # ...and over tasks: areas are topics, and one task (science questions, news summaries) over
        # diverse content spans many of them; a sweep asks many tasks
        "task_breadth": s.task_breadth(),
        # reasoning elicitation: chain-of-thought traces are the most valuable thing to distil
        "reasoning_share": s.share(C_REASONING, H_DAY),
        # grader abuse: harvesting judgements / preference labels with rubric prompts
        "grader_share": s.share(C_GRADER, H_DAY),
        # output harvesting: long outputs asked for and returned, cut off at the limit
        "long_output_share": hour_share(C_LONG_OUT),
        # output harvesting without cue words: long answers actually returned, per request
        "long_answer_share": s.share(C_LONG_ANSWER, H_DAY) * n_day / (n_day + PRIOR_REQUESTS),
        "output_tokens_per_request": s.ratio(C_OUT_TOKENS, C_REQUESTS, H_DAY),
        # transformation products paste long input and get bounded answers (workload_shape)
        "input_tokens_per_request": s.ratio(C_IN_TOKENS, C_REQUESTS, H_DAY),
        # bounded outputs (short verdicts / labels): judges and classifiers, not harvesters
        "short_answer_share": s.share(C_SHORT_ANSWER, H_DAY),
        "out_in_ratio": s.ratio(C_OUT_TOKENS, C_IN_TOKENS, H_HOUR),
        # ...unless the pasted text is padding: questions unrelated to the text beside them, new each time
        "padded_share": s.share(C_PADDED, H_DAY),
        "truncated_share": hour_share(C_TRUNCATED),
        # distribution probing: logprobs with one-token outputs, logit-bias sweeps
        "logprob_share": hour_share(C_LOGPROB),
        "logit_bias_share": hour_share(C_BIAS),
        # standalone queries: no conversation, no system prompt — a dataset, not a product
        "standalone_share": s.share(C_FRESH, H_DAY) * n_day / (n_day + PRIOR_REQUESTS),
        "error_share": hour_share(C_ERRORS),
        # account context: new accounts and sudden moves onto a fresh model are riskier
        "account_age_days": max(age, 0.0),
        # an extracting sub-population of the account's end users (user_id), 0..1
        "end_user_extraction": s.users.finding()[0] if s.users is not None else 0.0,
        "models_used": float(s.models_used()),
        "new_model_share": hour_share(C_NEW_MODEL),
    }


def shape_relief(x: dict[str, float], cfg: DetectorConfig) -> float:
    """Factor on the findings that breadth explains (1: none; 1 - ``transformation_relief`` at a full
    transformation shape): long pasted input with bounded answers spans topics, breadth means less
    there; padding earns no relief (the shape comes from pasted text the questions are not about)."""
    transform = DEFAULT_SHAPE.transformation(x["input_tokens_per_request"], x["output_tokens_per_request"])
    transform *= 1.0 - ramp(x["padded_share"], cfg.padded_share / 2, cfg.padded_share)
    return DEFAULT_SHAPE.relief(transform, cfg.transformation_relief)


def evidence(x: dict[str, float], cfg: DetectorConfig) -> dict[str, float]:
    """Strength in 0..1 of each extraction finding, from the named features. None of them looks at
    how a request is framed (system prompt, history, tools, language): breadth is over every
    request, elicitation is learned and read wherever it sits, harvest is measured on outputs."""
    volume = ramp(x["requests_day"], cfg.min_events, 4 * cfg.min_events)
    breadth = ramp(x["capability_breadth"], cfg.broad_areas - 10, cfg.broad_areas) * \
        ramp(x["task_breadth"], cfg.broad_tasks - 3, cfg.broad_tasks)
    reasoning = ramp(x["reasoning_share"], cfg.reasoning_share / 2, cfg.reasoning_share)
    long_answers = ramp(x["long_answer_share"], cfg.long_answer_share / 2, cfg.long_answer_share)
    # ...or answers under the long-answer line at several times the question's length (output volume)
    answer_volume = DEFAULT_SHAPE.harvest(x["input_tokens_per_request"], x["output_tokens_per_request"])
    # ...over a sweep's full breadth (a launch day's tries over a dozen areas have the same shape)
    full_breadth = ramp(x["capability_breadth"], cfg.broad_areas + 2, cfg.broad_areas + 5) * \
        ramp(x["task_breadth"], cfg.broad_tasks + 1, cfg.broad_tasks + 2)
    bounded = 1.0 - ramp(x["short_answer_share"], 0.3, 0.7)   # judges and classifiers return verdicts
    shape = shape_relief(x, cfg)
    ev = {
        # a sweep elicits reasoning across many capability areas (eval harnesses, tutors: one or two)
        "capability_sweep": breadth * reasoning * volume * shape,
        # long answers harvested across many areas, no cue word needed (judges return short verdicts)
        "output_harvest": max(breadth * long_answers, full_breadth * answer_volume) * bounded * volume * shape,
        # long answers to short questions at volume in one or two areas, no cue word: a narrow harvest,
        # or a content-generation product; capped at narrow_harvest_cap (review, not block)
        "narrow_harvest": cfg.narrow_harvest_cap * ramp(x["long_answer_share"], 0.35, 0.5)
                          * ramp(x["output_tokens_per_request"] / max(x["input_tokens_per_request"], 1.0), 3.0, 5.0)
                          * ramp(x["requests_day"], 60, 160),
        # reasoning traces harvested at volume with long answers, whatever the areas
        "reasoning_harvest": ramp(x["reasoning_share"], 0.5, 0.7) * long_answers
                             * ramp(x["requests_day"], 60, 160),
        "logprob_probing": ramp(max(x["logprob_share"], x["logit_bias_share"]),
                                 cfg.logprob_share / 2, cfg.logprob_share) * volume,
        # rubric prompts that get long critiques / model answers back; a judge's verdicts are short
        "grader_abuse": ramp(x["grader_share"], cfg.grader_share / 2, cfg.grader_share) * volume
                        * ramp(x["output_tokens_per_request"], 150, 350),
    }
    # some end users of a product sweep and harvest while the product's own traffic dilutes the account;
    # in a transformation product each user's "areas" are what they paste, as for the account's breadth
    ev["end_user_extraction"] = x["end_user_extraction"] * shape
    # moving to a new model is what every developer does on launch day: it only strengthens
    # extraction evidence that is already there, never stands alone
    extraction = max(ev.values())
    ev["model_pivot"] = ramp(x["new_model_share"], 0.4, 0.8) * min(1.0, 1.5 * extraction)
    return ev


class Scorer:
    """Scores account states; owns the per-cohort anomaly models and baselines (per worker process)."""

    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        self.anomaly = CohortAnomaly(height=cfg.hst_height, seed=cfg.seed)
        self.baseline = CohortBaseline()
        self._cohorts: set[str] = set()

    def cohort(self, s: AccountState) -> str:
        """The account's cohort (its tier): a model each, so at most ``MAX_COHORTS``; tiers seen
        after that share one (the tier is the client's field: a hostile one must not grow models)."""
        c = s.tier or "unknown"
        if c not in self._cohorts:
            if len(self._cohorts) >= MAX_COHORTS:
                return OTHER_COHORT
            self._cohorts.add(c)
        return c

    def bounds(self) -> Bounds:
        return {"scorer.cohorts": (len(self._cohorts), MAX_COHORTS)}

    @staticmethod
    def anomaly_vector(x: dict[str, float]) -> dict[str, float]:
        """The features River sees, scaled to [0, 1]."""
        return {
            "requests_day": scale(x["requests_day"], 200.0),
            "requests_per_min": scale(x["requests_per_min"], 2.0),
            "burst_share": x["burst_share"],
            "gap_spread": scale(x["gap_spread"], 0.5),
            "template_fill_share": x["template_fill_share"],
            "novelty": x["novelty"],
            "capability_breadth": scale(x["capability_breadth"], 30.0),
            "reasoning_share": x["reasoning_share"],
            "long_output_share": x["long_output_share"],
            "standalone_share": x["standalone_share"],
            "out_in_ratio": scale(x["out_in_ratio"], 5.0),
        }

    def score_one(self, s: AccountState, x: dict[str, float] | None = None) -> tuple[float, list[dict]]:
        """Combined score of one account and the reasons behind it, strongest first
        (``x``: the state's ``account_features`` if the caller has them already)."""
        score, reasons, _ = self.assess(s, x)
        return score, reasons

    def assess(self, s: AccountState, x: dict[str, float] | None = None
               ) -> tuple[float, list[dict], dict[str, float]]:
        """``score_one`` plus the strength of every finding (for the response: action, protections)."""
        cfg = self.cfg
        if x is None:
            x = account_features(s)
        ev = evidence(x, cfg)
        cohort = self.cohort(s)
        hst = self.anomaly.score_one(cohort, self.anomaly_vector(x))
        # the anomaly term reads the same breadth, reasoning share and token ratio that the shape
        # explains: tempered as the breadth findings are (else it re-adds what the relief took off)
        ev["anomaly"] = cfg.anomaly_weight * ramp(hst, cfg.anomaly_lo, cfg.anomaly_hi) * shape_relief(x, cfg)
        miss = 1.0
        for v in ev.values():
            miss *= 1.0 - v
        score = round(1.0 - miss, 4)
        top = max(ev, key=lambda k: (ev[k], k != "anomaly"))  # ties: a named finding over "anomaly"
        reasons = [{"feature": top, "value": round(ev[top], 4), "baseline": 0.0}]
        reasons += self.baseline.explain(cohort, x, cfg.max_reasons)
        return score, reasons, ev

    def learn_one(self, s: AccountState, score: float, x: dict[str, float] | None = None) -> None:
        """Update the cohort models with an account that is not alerting (attackers must not
        become the norm)."""
        if score >= self.cfg.medium:
            return
        if x is None:
            x = account_features(s)
        cohort = self.cohort(s)
        self.anomaly.learn_one(cohort, self.anomaly_vector(x))
        self.baseline.learn_one(cohort, x)
