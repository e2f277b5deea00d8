"""Detection metrics from labels and per-account detector results (plain Python).

Definitions (every detector is measured the same way):

* an account is *alerted* when the detector raised an alert of severity
  ``medium`` or higher for it (``alerted_high``: ``high`` or ``critical``);
* *recall* = alerted attack accounts / attack accounts; *FPR* = alerted
  benign accounts / benign accounts (per cohort, and over all cohorts);
* *time to detect* (TTD) = first medium+ alert time − ``first_attack_ts_ms``,
  in minutes of event time, over detected attack accounts; an alert raised
  before the attack started (e.g. on the benign prelude of a pivoting
  account) counts as TTD 0;
* *requests before alert* = the account's attack requests (``ts_ms`` ≥
  ``first_attack_ts_ms``) seen up to and including the request that raised
  the first medium+ alert;
* the threshold *sweep* treats "max score ≥ t" as the decision, for t on a
  fixed grid, and reports recall and benign FPR; ``auc`` is the ROC area
  (Mann–Whitney, ties count half) of max scores, attack vs benign.

Ratios are ``None`` when their denominator is zero; percentiles of an empty
list are ``None``.

>>> labels = {"a": {"label": "attack", "cohort": "sweep", "first_attack_ts_ms": 0},
...           "b": {"label": "benign", "cohort": "casual", "first_attack_ts_ms": None}}
>>> res = {"a": AccountResult(0.9, 600_000, 12, "high")}
>>> m = evaluate_detector(labels, res)
>>> m["cohorts"]["sweep"]["recall"], m["cohorts"]["sweep"]["ttd_median_min"], m["cohorts"]["casual"]["fpr"]
(1.0, 10.0, 0.0)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

SEVERITIES = ("low", "medium", "high", "critical")
ALERTING = frozenset({"medium", "high", "critical"})
HIGH = frozenset({"high", "critical"})
SWEEP_GRID = tuple(round(i / 100, 2) for i in range(0, 101))
ATTACK, BENIGN = "attack", "benign"


@dataclass
class AccountResult:
    """One detector's outcome for one account."""
    max_score: float = 0.0
    first_alert_ms: int | None = None          # first medium+ alert (event time)
    attack_requests_before: int | None = None  # attack requests up to that alert
    severity: str | None = None                # highest severity of any alert

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def severity_rank(sev: str | None) -> int:
    """0 for no alert, 1..4 for low..critical."""
    return SEVERITIES.index(sev) + 1 if sev in SEVERITIES else 0


def max_severity(a: str | None, b: str | None) -> str | None:
    return a if severity_rank(a) >= severity_rank(b) else b


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), ``q`` in 0..100.

    >>> percentile([1, 2, 3, 4], 50), percentile([], 50), percentile([5], 90)
    (2.5, None, 5.0)
    """
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _ttd_minutes(r: AccountResult, first_attack_ms: int | None) -> float | None:
    if r.first_alert_ms is None or first_attack_ms is None:
        return None
    return max(0.0, (r.first_alert_ms - first_attack_ms) / 60_000.0)


def group_metrics(name: str, members: list[tuple[str, dict]], results: Mapping[str, AccountResult]) -> dict:
    """Metrics of one group of labelled accounts (a cohort, or all of one label)."""
    empty = AccountResult()
    n_attack = n_benign = alerted = alerted_high = tp = fp = 0
    ttd: list[float] = []
    reqs: list[float] = []
    for account, lab in members:
        r = results.get(account, empty)
        is_attack = lab.get("label") == ATTACK
        hit = r.first_alert_ms is not None
        n_attack += is_attack
        n_benign += not is_attack
        alerted += hit
        alerted_high += severity_rank(r.severity) >= severity_rank("high") and hit
        if is_attack:
            tp += hit
            t = _ttd_minutes(r, lab.get("first_attack_ts_ms"))
            if t is not None:
                ttd.append(t)
            if hit and r.attack_requests_before is not None:
                reqs.append(r.attack_requests_before)
        else:
            fp += hit
    label = ATTACK if n_attack and not n_benign else BENIGN if n_benign and not n_attack else \
        "mixed" if members else None
    return {
        "cohort": name,
        "label": label,
        "accounts": len(members),
        "attack_accounts": n_attack,
        "benign_accounts": n_benign,
        "alerted": alerted,
        "alerted_high": alerted_high,
        "recall": _round(ratio(tp, n_attack)),
        "fpr": _round(ratio(fp, n_benign)),
        "ttd_median_min": _round(percentile(ttd, 50), 2),
        "ttd_p90_min": _round(percentile(ttd, 90), 2),
        "requests_before_alert_median": _round(percentile(reqs, 50), 1),
        "requests_before_alert_p90": _round(percentile(reqs, 90), 1),
    }


def threshold_sweep(labels: Mapping[str, dict], scores: Mapping[str, float],
                    grid: Iterable[float] = SWEEP_GRID) -> list[dict]:
    """Recall and benign FPR when "max score ≥ t" is the decision, for each t in ``grid``.

    >>> labels = {"a": {"label": "attack"}, "b": {"label": "benign"}}
    >>> [(p["threshold"], p["recall"], p["fpr"]) for p in threshold_sweep(labels, {"a": .8, "b": .3}, [0, .5, .9])]
    [(0, 1.0, 1.0), (0.5, 1.0, 0.0), (0.9, 0.0, 0.0)]
    """
    att = [scores.get(a, 0.0) for a, lab in labels.items() if lab.get("label") == ATTACK]
    ben = [scores.get(a, 0.0) for a, lab in labels.items() if lab.get("label") != ATTACK]
    out = []
    for t in grid:
        tp = sum(s >= t for s in att)
        fp = sum(s >= t for s in ben)
        out.append({"threshold": t, "recall": _round(ratio(tp, len(att))), "fpr": _round(ratio(fp, len(ben))),
                    "tp": tp, "fp": fp})
    return out


def roc_auc(labels: Mapping[str, dict], scores: Mapping[str, float]) -> float | None:
    """P(score of a random attack account > that of a random benign one), ties ½.

    >>> roc_auc({"a": {"label": "attack"}, "b": {"label": "benign"}, "c": {"label": "benign"}},
    ...         {"a": .8, "b": .3, "c": .8})
    0.75
    """
    att = sorted(scores.get(a, 0.0) for a, lab in labels.items() if lab.get("label") == ATTACK)
    ben = sorted(scores.get(a, 0.0) for a, lab in labels.items() if lab.get("label") != ATTACK)
    if not att or not ben:
        return None
    import bisect
    total = 0.0
    for s in att:
        below = bisect.bisect_left(ben, s)
        ties = bisect.bisect_right(ben, s) - below
        total += below + 0.5 * ties
    return round(total / (len(att) * len(ben)), 4)


def recall_at_fpr(sweep: list[dict], max_fpr: float) -> float | None:
    """Best recall on the sweep whose benign FPR is ≤ ``max_fpr``."""
    ok = [p["recall"] for p in sweep if p["fpr"] is not None and p["recall"] is not None and p["fpr"] <= max_fpr]
    return max(ok) if ok else None


def evaluate_detector(labels: Mapping[str, dict], results: Mapping[str, AccountResult]) -> dict:
    """Per-cohort and overall metrics, threshold sweep and AUC of one detector.

    ``labels``: account → ``{"label": "attack"|"benign", "cohort": str,
    "first_attack_ts_ms": int|None}``; accounts without a result count as
    never alerted with score 0. Results for unlabelled accounts are ignored.
    """
    by_cohort: dict[str, list[tuple[str, dict]]] = {}
    for account, lab in labels.items():
        by_cohort.setdefault(str(lab.get("cohort") or lab.get("label") or "unknown"), []).append((account, lab))
    cohorts = {c: group_metrics(c, m, results) for c, m in sorted(by_cohort.items())}
    attack = [(a, lab) for a, lab in labels.items() if lab.get("label") == ATTACK]
    benign = [(a, lab) for a, lab in labels.items() if lab.get("label") != ATTACK]
    scores = {a: results[a].max_score for a in labels if a in results}
    sweep = threshold_sweep(labels, scores)
    return {
        "cohorts": cohorts,
        "overall": {"attack": group_metrics("all attack", attack, results),
                    "benign": group_metrics("all benign", benign, results)},
        "sweep": sweep,
        "auc": roc_auc(labels, scores),
        "recall_at_fpr_1pct": recall_at_fpr(sweep, 0.01),
        "recall_at_fpr_5pct": recall_at_fpr(sweep, 0.05),
    }
