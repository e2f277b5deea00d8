"""Per-family, per-seed tables and leave-one-family-out (LOFO) fitting.

A *family* is a simulator cohort (``labels[account]["cohort"]``). A *run* is
one seed's per-account results (:class:`~.metrics.AccountResult`) with its labels.

Leave-one-family-out answers "would this family be caught if nobody had seen
it?". What distillguard fits from labelled data is (a) the elicitation
classifier, trained from phrase families (``models/data/elicitation_phrases.json``)
and (b) the alert threshold. For a held-out family F the caller replays with a
classifier trained without the phrase styles F uses (:data:`HELD_OUT_STYLES`),
and :func:`fit_threshold` picks the cut from the *other* families only: halfway
between the lowest cut that keeps the benign FPR ≤ 0.5% and the highest at which
every other attack family keeps recall ≥ 0.95 (the issue's targets). F's recall
is then "max score ≥ that cut".

>>> from .metrics import AccountResult
>>> labels = {"a": {"label": "attack", "cohort": "x"}, "b": {"label": "attack", "cohort": "y"},
...           "c": {"label": "benign", "cohort": "z"}}
>>> res = {"a": AccountResult(0.9), "b": AccountResult(0.6), "c": AccountResult(0.2)}
>>> fit_threshold([(labels, res)], exclude="y", floor=0.5)
0.7
>>> lofo_recall([(labels, res)], "y", 0.7)
0.0
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .metrics import ALERTING, ATTACK, HIGH, SWEEP_GRID, AccountResult, percentile, severity_rank

Run = tuple[Mapping[str, dict], Mapping[str, AccountResult]]

TARGET_RECALL = 0.95
TARGET_FPR = 0.005

# Phrase styles of the elicitation training data that an evasive family relies on: LOFO trains the
# classifier without them (families not listed, e.g. breadth_sweep, use no elicitation phrasing).
HELD_OUT_STYLES: dict[str, tuple[str, ...]] = {
    "system_elicitation": ("system",),
    "multi_turn_harvest": ("follow_up",),
    "agent_sweep": ("agent",),
    "foreign_elicitation": ("non_english",),
    "end_user_rotation": ("paraphrase",),
}


def families(labels: Mapping[str, dict]) -> dict[str, str]:
    """family → label (``attack``/``benign``), sorted attack first."""
    out: dict[str, str] = {}
    for lab in labels.values():
        out.setdefault(str(lab.get("cohort")), lab.get("label"))
    return dict(sorted(out.items(), key=lambda kv: (kv[1] != ATTACK, kv[0])))


def family_row(labels: Mapping[str, dict], results: Mapping[str, AccountResult], family: str) -> dict:
    """One family in one run: accounts, alerted (medium+), alerted high+, rate, median requests before."""
    empty = AccountResult()
    n = alerted = high = 0
    reqs: list[float] = []
    attack = False
    for acct, lab in labels.items():
        if lab.get("cohort") != family:
            continue
        attack = lab.get("label") == ATTACK
        r = results.get(acct, empty)
        n += 1
        hit = r.first_alert_ms is not None or r.severity in ALERTING
        alerted += hit
        high += severity_rank(r.severity) >= severity_rank("high")
        if hit and r.attack_requests_before is not None:
            reqs.append(r.attack_requests_before)
    return {"family": family, "label": ATTACK if attack else "benign", "accounts": n, "alerted": alerted,
            "alerted_high": high, "rate": round(alerted / n, 4) if n else None,
            "requests_before_median": percentile(reqs, 50)}


def family_table(runs: Mapping[int, Run]) -> dict[str, dict]:
    """family → {"label", "seeds": {seed: row}, "all": pooled row} over the runs (seed → run)."""
    out: dict[str, dict] = {}
    for seed, (labels, results) in sorted(runs.items()):
        for fam, label in families(labels).items():
            doc = out.setdefault(fam, {"label": label, "seeds": {}})
            doc["seeds"][seed] = family_row(labels, results, fam)
    for doc in out.values():
        rows = list(doc["seeds"].values())
        n = sum(r["accounts"] for r in rows)
        alerted = sum(r["alerted"] for r in rows)
        meds = [r["requests_before_median"] for r in rows if r["requests_before_median"] is not None]
        doc["all"] = {"accounts": n, "alerted": alerted, "alerted_high": sum(r["alerted_high"] for r in rows),
                      "rate": round(alerted / n, 4) if n else None, "requests_before_median": percentile(meds, 50)}
    return dict(sorted(out.items(), key=lambda kv: (kv[1]["label"] != ATTACK, kv[0])))


def _rates(runs: Sequence[Run], cut: float, exclude: str | None) -> tuple[dict[str, list[int]], list[int]]:
    per_family: dict[str, list[int]] = {}
    benign = [0, 0]
    for labels, results in runs:
        for acct, lab in labels.items():
            fam = lab.get("cohort")
            r = results.get(acct)
            hit = r is not None and r.max_score >= cut
            if lab.get("label") == ATTACK:
                if fam == exclude:
                    continue
                c = per_family.setdefault(fam, [0, 0])
            else:
                c = benign
            c[0] += hit
            c[1] += 1
    return per_family, benign


def fit_threshold(runs: Sequence[Run], exclude: str | None, floor: float) -> float:
    """Max-margin cut fitted without ``exclude``: halfway between the lowest grid cut that keeps the
    benign FPR ≤ 0.5% and the highest at which every other attack family keeps recall ≥ 0.95
    (never below ``floor``, the configured ``medium``; the benign cut alone if no margin exists)."""
    lo = hi = None
    for cut in SWEEP_GRID:
        if cut < floor:
            continue
        fams, ben = _rates(runs, cut, exclude)
        if lo is None and (not ben[1] or ben[0] / ben[1] <= TARGET_FPR):
            lo = cut
        if all(hit / n >= TARGET_RECALL for hit, n in fams.values() if n):
            hi = cut
    lo = floor if lo is None else lo
    if hi is None or hi < lo:
        return lo
    return round((lo + hi) / 2, 2)


def lofo_recall(runs: Sequence[Run], family: str, cut: float) -> float | None:
    """Recall of ``family`` (max score ≥ ``cut``) pooled over the runs."""
    hit = n = 0
    for labels, results in runs:
        for acct, lab in labels.items():
            if lab.get("cohort") == family:
                r = results.get(acct)
                hit += r is not None and r.max_score >= cut
                n += 1
    return round(hit / n, 4) if n else None


def high_lookalikes(runs: Mapping[int, Run], lookalike_families: Sequence[str]) -> list[tuple[int, str, str]]:
    """(seed, family, account) of look-alike accounts alerted at high or critical."""
    out = []
    for seed, (labels, results) in sorted(runs.items()):
        for acct, lab in sorted(labels.items()):
            r = results.get(acct)
            if lab.get("cohort") in lookalike_families and r is not None and r.severity in HIGH:
                out.append((seed, lab["cohort"], acct))
    return out


def format_family_table(table: Mapping[str, dict], lofo: Mapping[str, dict] | None = None) -> str:
    """Text table: per family and seed, alerted/accounts and median attack requests before the alert;
    benign families show alerted (medium+) and high+ counts; LOFO columns when given."""
    seeds = sorted({s for doc in table.values() for s in doc["seeds"]})
    w = max([len(f) for f in table] + [8])
    head = f"{'family':<{w}} kind " + "".join(f"{'seed ' + str(s):>16}" for s in seeds) + f"{'all':>16}"
    if lofo:
        head += f"{'LOFO cut':>10}{'LOFO rec':>10}"
    lines = [head, "-" * len(head)]

    def cell(r: dict, attack: bool) -> str:
        if attack:
            med = r["requests_before_median"]
            return f"{r['alerted']}/{r['accounts']} ({'-' if med is None else round(med)})".rjust(16)
        return f"{r['alerted']}/{r['accounts']} hi{r['alerted_high']}".rjust(16)
    for fam, doc in table.items():
        attack = doc["label"] == ATTACK
        line = f"{fam:<{w}} {'atk ' if attack else 'ben '} " + "".join(
            cell(doc["seeds"][s], attack) if s in doc["seeds"] else " " * 16 for s in seeds) + cell(doc["all"], attack)
        if lofo and fam in lofo:
            line += f"{lofo[fam]['cut']:>10.2f}{lofo[fam]['recall']:>10.2f}"
        lines.append(line)
    lines.append("atk: alerted (medium+)/accounts (median attack requests before the first medium+ alert); "
                 "ben: alerted/accounts, hiN = N accounts at high or critical")
    return "\n".join(lines)
