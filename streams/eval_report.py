"""Self-contained HTML report of a ``distillguard eval`` run.

One file, no network: inline CSS, plotly figures with plotly.js inlined from
the ``plotly`` package (:mod:`distillguard.streams.plots`). Every plot is a
``<div data-plot="...">``; ``body[data-rendered]`` lists those the browser drew:

* ``scores``: per detector, each account's max score per cohort (strip plot,
  attack red, benign grey), with the alert threshold and the cohort median;
* ``delay``: per attack cohort and detector, time from the first attack
  request to the first medium+ alert (symlog minutes), with missed counts;
* ``sweep`` / ``sweep-zoom``: recall vs benign FPR over score thresholds, one
  line per detector, the default operating point (0.5) marked;
* the metrics tables follow, detectors side by side.
"""
from __future__ import annotations

import math
from html import escape
from typing import Any

import plotly.graph_objects as go

from . import plots

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#a16207")
ATTACK_C, BENIGN_C = "#dc2626", "#64748b"
FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif"

CSS = """
body{%s;margin:24px;color:#0f172a;background:#fff;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.muted{color:#64748b;font-size:13px} .grid{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0} figcaption{font-size:13px;font-weight:600;margin-bottom:2px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 14px}
th,td{padding:3px 7px;border-bottom:1px solid #e2e8f0;text-align:right;white-space:nowrap}
th{background:#f8fafc;font-weight:600} td.l,th.l{text-align:left}
th.grp{border-left:2px solid #cbd5e1;text-align:center} td.gs{border-left:2px solid #cbd5e1}
tr.atk td.l:first-child{color:%s} tr.tot td{font-weight:600;background:#f8fafc}
.legend span{display:inline-block;margin-right:14px;font-size:12.5px}
.sw{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}
""" % (FONT, ATTACK_C)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _cohort_order(result: dict) -> list[tuple[str, str]]:
    """(cohort, label) with attack cohorts first."""
    det = next(iter(result["detectors"].values()))
    rows = sorted(det["cohorts"].values(), key=lambda c: (c["label"] != "attack", c["cohort"]))
    return [(r["cohort"], r["label"]) for r in rows]


def _members(result: dict) -> dict[str, list[str]]:
    """cohort -> accounts, from the per-account outcomes of the first detector."""
    det = next(iter(result["detectors"].values()))
    out: dict[str, list[str]] = {}
    for a, doc in det.get("accounts", {}).items():
        out.setdefault(str(doc.get("cohort") or doc.get("label")), []).append(a)
    return out


# ------------------------------------------------------------------ plots

def scores_plot(name: str, det: dict, order: list[tuple[str, str]], members: dict[str, list[str]],
                threshold: float = 0.5) -> str:
    """Each account's max score, one row of points (and a box) per cohort."""
    accounts = det.get("accounts", {})
    fig = go.Figure()
    for cohort, label in reversed(order):
        vals = [float((accounts.get(a) or {}).get("max_score") or 0.0) for a in members.get(cohort, [])]
        fig.add_trace(go.Box(x=vals, name=cohort, orientation="h", boxpoints="all", jitter=0.6, pointpos=0,
                             marker=dict(color=ATTACK_C if label == "attack" else BENIGN_C, size=4, opacity=0.6),
                             line=dict(width=1), fillcolor="rgba(0,0,0,0)", hovertext=members.get(cohort, []),
                             showlegend=False))
    fig.add_vline(x=threshold, line=dict(color="#0f172a", dash="dash", width=1))
    fig.update_layout(height=60 + 22 * len(order), width=520, margin=dict(l=130, r=10, t=10, b=40),
                      template="plotly_white", xaxis=dict(range=[-0.02, 1.02], title="max score (dashed: alert at medium)"))
    return plots.embed(fig, f"scores-{name}", kind="scores", detector=name)


def delay_plot(result: dict, order: list[tuple[str, str]], members: dict[str, list[str]]) -> str:
    """Per attack cohort and detector: minutes from the first attack request to the first
    medium+ alert (log axis, 0 shown as 0.1), found/total in the legend of each point set."""
    attack = [c for c, lab in order if lab == "attack"]
    if not attack:
        return plots.empty("delay", "no attack cohorts in the labels")
    fig = go.Figure()
    for i, d in enumerate(result["detectors"]):
        accs = result["detectors"][d].get("accounts", {})
        xs, ys, hover = [], [], []
        for c in attack:
            found = 0
            for a in members.get(c, []):
                r = accs.get(a) or {}
                start = r.get("first_attack_ts_ms")
                if r.get("first_alert_ms") is not None and start is not None:
                    t = max(0.0, (r["first_alert_ms"] - start) / 60_000.0)
                    found += 1
                    xs.append(max(t, 0.1))
                    ys.append(c)
                    hover.append(f"{d} {a}: {t:.1f} min")
            hover_c = f"{d}: {found}/{len(members.get(c, []))} found"
            if not found:
                xs.append(None)
                ys.append(c)
                hover.append(hover_c)
        fig.add_trace(go.Box(x=xs, y=ys, name=d, orientation="h", boxpoints="all", jitter=0.5, pointpos=0,
                             marker=dict(color=_color(i), size=5, opacity=0.7), line=dict(width=1.5),
                             fillcolor="rgba(0,0,0,0)", hovertext=hover, hoverinfo="text"))
    fig.update_layout(boxmode="group", height=80 + 40 * len(attack), margin=dict(l=140, r=10, t=10, b=40),
                      template="plotly_white", legend=dict(orientation="h", y=-0.15),
                      xaxis=dict(type="log", title="time from first attack request to first medium+ alert "
                                                   "(minutes of event time, log)"),
                      yaxis=dict(categoryorder="array", categoryarray=list(reversed(attack))))
    return plots.embed(fig, "delay")


def sweep_plot(result: dict, fpr_max: float = 1.0, plot: str = "sweep") -> str:
    """Recall against benign FPR over score thresholds, one line per detector, 0.5 marked."""
    fig = go.Figure()
    for i, d in enumerate(result["detectors"]):
        pts = sorted(((p["fpr"], p["recall"], p["threshold"]) for p in result["detectors"][d]["sweep"]
                      if p["fpr"] is not None and p["recall"] is not None), key=lambda p: (p[0], p[1]))
        if not pts:
            continue
        pts = [(0.0, 0.0, math.inf)] + pts    # a threshold above every score
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=d, mode="lines",
                                 line=dict(color=_color(i), width=2), line_shape="hv"))
        op = [p for p in pts if abs(p[2] - 0.5) < 1e-9]
        if op:
            fig.add_trace(go.Scatter(x=[op[0][0]], y=[op[0][1]], mode="markers", showlegend=False,
                                     marker=dict(size=9, color="#fff", line=dict(color=_color(i), width=2)),
                                     hovertext=f"{d} at 0.5: recall {op[0][1]:.2f}, FPR {op[0][0]:.3f}",
                                     hoverinfo="text"))
    fig.update_layout(height=300, width=420, margin=dict(l=50, r=10, t=10, b=40), template="plotly_white",
                      showlegend=False, xaxis=dict(range=[0, fpr_max], title="benign-account FPR"),
                      yaxis=dict(range=[0, 1.02], title="attack recall"))
    return plots.embed(fig, plot)


# ------------------------------------------------------------------ tables

def _cell(x: Any, kind: str = "") -> str:
    if x is None:
        return "–"
    if kind == "rate":
        return f"{x:.2f}"
    if kind == "min":
        return f"{x:.1f}"
    if isinstance(x, float):
        return f"{x:.4g}"
    return escape(str(x))


def metrics_table(result: dict, order: list[tuple[str, str]]) -> str:
    dets = list(result["detectors"])
    cols = [("rate", "recall / FPR", "rate"), ("alerted", "alerted", ""), ("alerted_high", "high+", ""),
            ("ttd_median_min", "TTD p50 (min)", "min"), ("ttd_p90_min", "TTD p90", "min"),
            ("requests_before_alert_median", "reqs p50", ""), ("requests_before_alert_p90", "reqs p90", "")]
    out = ['<table><thead><tr><th class="l" rowspan="2">cohort</th><th class="l" rowspan="2">label</th>'
           '<th rowspan="2">accounts</th>']
    out += [f'<th class="grp" colspan="{len(cols)}"><span class="sw" style="background:{_color(i)}"></span>'
            f'{escape(d)}</th>' for i, d in enumerate(dets)]
    out.append("</tr><tr>")
    for _ in dets:
        out += [f'<th{" class=grp" if j == 0 else ""}>{escape(t)}</th>' for j, (_k, t, _f2) in enumerate(cols)]
    out.append("</tr></thead><tbody>")
    rows = [(c, lab, None) for c, lab in order] + [("all attack", "attack", "attack"), ("all benign", "benign", "benign")]
    for name, label, overall in rows:
        cls = "tot" if overall else ("atk" if label == "attack" else "")
        first = result["detectors"][dets[0]]
        m0 = first["overall"][overall] if overall else first["cohorts"][name]
        out.append(f'<tr class="{cls}"><td class="l">{escape(name)}</td><td class="l">{escape(str(label))}</td>'
                   f'<td>{m0["accounts"]}</td>')
        for d in dets:
            dm = result["detectors"][d]
            m = dm["overall"][overall] if overall else dm["cohorts"][name]
            for j, (k, _t, kind) in enumerate(cols):
                v = (m["recall"] if label == "attack" else m["fpr"]) if k == "rate" else m.get(k)
                if label != "attack" and k.startswith(("ttd", "requests")):
                    v = None
                out.append(f'<td{" class=gs" if j == 0 else ""}>{_cell(v, kind)}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def summary_table(result: dict) -> str:
    out = ['<table><thead><tr><th class="l">detector</th><th>ROC AUC</th><th>recall @ FPR≤1%</th>'
           '<th>recall @ FPR≤5%</th><th>recall (medium+)</th><th>benign FPR (medium+)</th><th>seconds</th>'
           '<th class="l">source</th></tr></thead><tbody>']
    run = result.get("run", {})
    for i, (d, m) in enumerate(result["detectors"].items()):
        secs = run.get("distillguard_seconds") if i == 0 else run.get("baselines", {}).get(d, {}).get("seconds")
        out.append(f'<tr><td class="l"><span class="sw" style="background:{_color(i)}"></span>{escape(d)}</td>'
                   f'<td>{_cell(m.get("auc"), "rate")}</td><td>{_cell(m.get("recall_at_fpr_1pct"), "rate")}</td>'
                   f'<td>{_cell(m.get("recall_at_fpr_5pct"), "rate")}</td>'
                   f'<td>{_cell(m["overall"]["attack"]["recall"], "rate")}</td>'
                   f'<td>{_cell(m["overall"]["benign"]["fpr"], "rate")}</td><td>{_cell(secs)}</td>'
                   f'<td class="l">{escape(m.get("description", ""))}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def run_table(run: dict) -> str:
    keys = ["input", "labels", "events", "bad_lines", "late_events", "alert_events", "accounts_labelled",
            "accounts_labelled_attack", "accounts_seen_unlabelled", "accounts_labelled_unseen", "replay_seconds",
            "replay_events_per_s", "distillguard_seconds", "distillguard_events_per_s", "total_seconds"]
    rows = "".join(f'<tr><td class="l">{escape(k)}</td><td class="l">{_cell(run[k])}</td></tr>'
                   for k in keys if k in run)
    bl = "".join(f'<tr><td class="l">{escape(n)}</td><td class="l">{escape(str(b.get("params")))}</td></tr>'
                 for n, b in run.get("baselines", {}).items())
    return f'<table><tbody>{rows}{bl}</tbody></table>'


# ------------------------------------------------------------------ page

def feedback_section(effect: dict | None) -> str:
    """``eval --feedback``: what the analysts' decisions changed, per cohort (distillguard)."""
    if not effect:
        return ""
    decided = ", ".join(f"{n} {escape(d.replace('_', ' '))}" for d, n in sorted(effect["decisions"].items()))
    rows = []
    for name, c in sorted(effect["cohorts"].items(), key=lambda kv: (kv[0].startswith("all "),
                                                                     kv[1]["before"]["label"] != "attack", kv[0])):
        b, a = c["before"], c["after"]
        rows.append(f'<tr class="{"atk" if b["label"] == "attack" else ""}"><td class="l">{escape(name)}</td>'
                    f'<td>{b["accounts"]}</td><td>{b["alerted"]}</td><td>{a["alerted"]}</td>'
                    f'<td>{_cell(b["rate"], "rate")}</td><td>{_cell(a["rate"], "rate")}</td></tr>')
    ev, te = effect["alert_events"], effect["tempered_alert_events"]
    return (f'<h2>Analysts\' feedback replayed</h2><div class="muted">{escape(effect["file"])}: {decided}. '
            f'Alert events {ev[0]} → {ev[1]}, tempered by feedback {te[1]}.</div>'
            '<table><tr><th class="l">cohort</th><th>accounts</th><th>alerted before</th><th>alerted after</th>'
            '<th>rate before</th><th>rate after</th></tr>' + "".join(rows) + "</table>")


def render_report(result: dict, title: str = "distillguard eval") -> str:
    """The whole report (an eval.json document) as one HTML string."""
    members = _members(result)
    order = _cohort_order(result)
    dets = list(result["detectors"])
    legend = "".join(f'<span><span class="sw" style="background:{_color(i)}"></span>{escape(d)}</span>'
                     for i, d in enumerate(dets))
    run = result.get("run", {})
    scores = "".join(f'<figure><figcaption><span class="sw" style="background:{_color(i)}"></span>{escape(d)}'
                     f'</figcaption>{scores_plot(d, result["detectors"][d], order, members)}</figure>'
                     for i, d in enumerate(dets))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="muted">{escape(str(run.get("input", "")))} · {run.get("events", 0):,} events · '
        f'{run.get("accounts_labelled", 0)} labelled accounts · distillguard '
        f'{(run.get("distillguard_events_per_s") or 0):,.0f} events/s</div>',
        "<h2>Summary</h2>", summary_table(result),
        '<h2>Recall vs benign FPR (threshold sweep on max score)</h2>',
        f'<div class="legend">{legend} <span class="muted">○ = default alert threshold 0.5</span></div>',
        '<div class="grid"><figure><figcaption>full range</figcaption>', sweep_plot(result),
        '</figure><figure><figcaption>FPR ≤ 10%</figcaption>', sweep_plot(result, 0.1, "sweep-zoom"),
        "</figure></div>",
        "<h2>Detection delay per attack cohort</h2>",
        f'<div class="legend">{legend} <span class="muted">bar = median; dots = accounts</span></div>',
        delay_plot(result, order, members),
        "<h2>Max score per account, by cohort</h2>",
        '<div class="muted">red = attack cohort, grey = benign; black bar = cohort median</div>',
        f'<div class="grid">{scores}</div>',
        "<h2>Metrics per cohort (alert = medium or higher)</h2>", metrics_table(result, order),
        '<div class="muted">recall for attack cohorts, benign-account FPR for benign ones; TTD in minutes '
        "of event time from the account's first attack request; reqs = attack requests up to the first alert.</div>",
        feedback_section(result.get("feedback")),
        "<h2>Run</h2>", run_table(run),
        f"<script>{plots.plotly_js()}</script><script>{plots.BOOT_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)
