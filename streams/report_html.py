"""Self-contained HTML report of a ``distillguard eval`` run.

One file, inline CSS and inline SVG, no JavaScript and no network. Every
plot is an ``<svg data-plot="...">``:

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
import zlib
from html import escape
from typing import Any

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
svg text{font-size:11px;fill:#334155} .legend span{display:inline-block;margin-right:14px;font-size:12.5px}
.sw{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}
""" % (FONT, ATTACK_C)


def _f(x: float) -> str:
    return f"{x:.1f}"


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _jitter(key: str, spread: float) -> float:
    return ((zlib.crc32(key.encode()) % 1000) / 999.0 - 0.5) * spread


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

def scores_svg(name: str, det: dict, order: list[tuple[str, str]], members: dict[str, list[str]],
               threshold: float = 0.5) -> str:
    label_w, w, row_h, top, bottom = 140, 300, 18, 10, 36
    h = top + row_h * len(order) + bottom
    W = label_w + w + 20
    x = lambda s: label_w + s * w  # noqa: E731
    parts = [f'<svg data-plot="scores" data-detector="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="score distribution {escape(name)}">']
    for i in range(0, 11, 2):
        s = i / 10
        parts.append(f'<line x1="{_f(x(s))}" x2="{_f(x(s))}" y1="{top}" y2="{h - bottom}" stroke="#f1f5f9"/>')
        parts.append(f'<text x="{_f(x(s))}" y="{h - bottom + 14}" text-anchor="middle">{s:.1f}</text>')
    parts.append(f'<line x1="{_f(x(threshold))}" x2="{_f(x(threshold))}" y1="{top}" y2="{h - bottom}" '
                 f'stroke="#0f172a" stroke-dasharray="3,3"/>')
    parts.append(f'<text x="{_f(x(0.5))}" y="{h - 4}" text-anchor="middle">max score (dashed: alert at medium)</text>')
    accounts = det.get("accounts", {})
    for r, (cohort, label) in enumerate(order):
        cy = top + r * row_h + row_h / 2
        col = ATTACK_C if label == "attack" else BENIGN_C
        parts.append(f'<text x="{label_w - 6}" y="{_f(cy + 4)}" text-anchor="end" '
                     f'fill="{col}">{escape(cohort)}</text>')
        vals = []
        for a in members.get(cohort, []):
            s = float((accounts.get(a) or {}).get("max_score") or 0.0)
            vals.append(s)
            parts.append(f'<circle cx="{_f(x(min(max(s, 0), 1)))}" cy="{_f(cy + _jitter(a, row_h * 0.6))}" r="2.2" '
                         f'fill="{col}" fill-opacity="0.55"><title>{escape(a)}: {s:.3f}</title></circle>')
        if vals:
            vals.sort()
            med = vals[len(vals) // 2] if len(vals) % 2 else (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]) / 2
            parts.append(f'<line x1="{_f(x(med))}" x2="{_f(x(med))}" y1="{_f(cy - row_h * 0.45)}" '
                         f'y2="{_f(cy + row_h * 0.45)}" stroke="#0f172a" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


DELAY_TICKS = (0, 1, 5, 15, 60, 240, 1440)


def _symlog(minutes: float) -> float:
    return math.log10(1.0 + max(minutes, 0.0))


def delay_svg(result: dict, order: list[tuple[str, str]], members: dict[str, list[str]]) -> str:
    dets = list(result["detectors"])
    attack = [c for c, lab in order if lab == "attack"]
    label_w, w, sub_h, gap, top, bottom, right = 140, 420, 11, 8, 10, 34, 64
    band = sub_h * max(len(dets), 1) + gap
    h = top + band * max(len(attack), 1) + bottom
    W = label_w + w + right
    tmax = 60.0
    for d in dets:
        for c in attack:
            m = result["detectors"][d]["cohorts"].get(c, {})
            tmax = max(tmax, m.get("ttd_p90_min") or 0.0)
    accounts_ttd: dict[str, dict[str, float]] = {}
    for d in dets:
        accs = result["detectors"][d].get("accounts", {})
        for c in attack:
            for a in members.get(c, []):
                r = accs.get(a) or {}
                start = r.get("first_attack_ts_ms")
                if r.get("first_alert_ms") is not None and start is not None:
                    t = max(0.0, (r["first_alert_ms"] - start) / 60_000.0)
                    accounts_ttd.setdefault(d, {})[a] = t
                    tmax = max(tmax, t)
    lmax = _symlog(tmax) * 1.02
    x = lambda t: label_w + _symlog(t) / lmax * w  # noqa: E731
    parts = [f'<svg data-plot="delay" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" '
             f'viewBox="0 0 {W} {h}" role="img" aria-label="detection delay per attack cohort">']
    ticks = [t for t in DELAY_TICKS if t <= tmax] + ([round(tmax)] if tmax > 1440 * 1.5 else [])
    for t in ticks:
        parts.append(f'<line x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top}" y2="{h - bottom}" stroke="#f1f5f9"/>')
        lab = f"{t / 60:.0f}h" if t >= 60 else f"{t}m"
        parts.append(f'<text x="{_f(x(t))}" y="{h - bottom + 14}" text-anchor="middle">{lab}</text>')
    parts.append(f'<text x="{label_w + w / 2}" y="{h - 4}" text-anchor="middle">time from first attack request '
                 f'to first medium+ alert (event time, symlog)</text>')
    if not attack:
        parts.append(f'<text x="{label_w}" y="{top + 14}">no attack cohorts in the labels</text>')
    for r, c in enumerate(attack):
        y0 = top + r * band
        parts.append(f'<text x="{label_w - 6}" y="{_f(y0 + band / 2)}" text-anchor="end" '
                     f'fill="{ATTACK_C}">{escape(c)}</text>')
        if r:
            parts.append(f'<line x1="{label_w - 120}" x2="{W}" y1="{_f(y0 - gap / 2)}" y2="{_f(y0 - gap / 2)}" '
                         f'stroke="#e2e8f0"/>')
        n = len(members.get(c, []))
        for i, d in enumerate(dets):
            cy = y0 + i * sub_h + sub_h / 2
            col = _color(i)
            ttd = {a: t for a, t in accounts_ttd.get(d, {}).items() if a in set(members.get(c, []))}
            for a, t in ttd.items():
                parts.append(f'<circle cx="{_f(x(t))}" cy="{_f(cy + _jitter(a, sub_h * 0.5))}" r="2.4" fill="{col}" '
                             f'fill-opacity="0.7"><title>{escape(d)} {escape(a)}: {t:.1f} min</title></circle>')
            m = result["detectors"][d]["cohorts"].get(c, {})
            if m.get("ttd_median_min") is not None:
                mx = x(m["ttd_median_min"])
                parts.append(f'<line x1="{_f(mx)}" x2="{_f(mx)}" y1="{_f(cy - sub_h / 2 + 1)}" '
                             f'y2="{_f(cy + sub_h / 2 - 1)}" stroke="{col}" stroke-width="2.5"/>')
            missed = n - len(ttd)
            parts.append(f'<text x="{label_w + w + 6}" y="{_f(cy + 4)}" fill="{col}">'
                         f'{len(ttd)}/{n}<title>{escape(d)}: {len(ttd)} of {n} found, {missed} missed</title></text>')
    parts.append("</svg>")
    return "".join(parts)


def sweep_svg(result: dict, fpr_max: float = 1.0, plot: str = "sweep") -> str:
    dets = list(result["detectors"])
    left, top, w, h0, bottom = 46, 10, 300, 240, 36
    W, H = left + w + 16, top + h0 + bottom
    x = lambda f: left + min(f, fpr_max) / fpr_max * w  # noqa: E731
    y = lambda r: top + (1 - r) * h0  # noqa: E731
    parts = [f'<svg data-plot="{plot}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="recall vs benign FPR">']
    for i in range(0, 6):
        f = fpr_max * i / 5
        r = i / 5
        parts.append(f'<line x1="{_f(x(f))}" x2="{_f(x(f))}" y1="{top}" y2="{top + h0}" stroke="#f1f5f9"/>')
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{_f(y(r))}" y2="{_f(y(r))}" stroke="#f1f5f9"/>')
        parts.append(f'<text x="{_f(x(f))}" y="{top + h0 + 14}" text-anchor="middle">{f:.2g}</text>')
        parts.append(f'<text x="{left - 5}" y="{_f(y(r) + 4)}" text-anchor="end">{r:.1f}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h0}" fill="none" stroke="#cbd5e1"/>')
    parts.append(f'<text x="{left + w / 2}" y="{H - 4}" text-anchor="middle">benign-account FPR</text>')
    parts.append(f'<text x="12" y="{top + h0 / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + h0 / 2})">attack recall</text>')
    for i, d in enumerate(dets):
        pts = [(p["fpr"], p["recall"], p["threshold"]) for p in result["detectors"][d]["sweep"]
               if p["fpr"] is not None and p["recall"] is not None]
        if not pts:
            continue
        pts = [(0.0, 0.0, math.inf)] + sorted(pts, key=lambda p: (p[0], p[1]))  # threshold above every score
        clipped = [(f, r) for f, r, _ in pts if f <= fpr_max]
        if pts and pts[-1][0] > fpr_max and clipped:  # carry the line to the right edge
            clipped.append((fpr_max, clipped[-1][1]))
        path = " ".join(f"{_f(x(f))},{_f(y(r))}" for f, r in clipped)
        col = _color(i)
        parts.append(f'<polyline data-detector="{escape(d)}" points="{path}" fill="none" stroke="{col}" '
                     f'stroke-width="2" stroke-linejoin="round"/>')
        op = [(f, r) for f, r, t in pts if abs(t - 0.5) < 1e-9]
        if op and op[0][0] <= fpr_max:
            f, r = op[0]
            parts.append(f'<circle cx="{_f(x(f))}" cy="{_f(y(r))}" r="4" fill="#fff" stroke="{col}" '
                         f'stroke-width="2"><title>{escape(d)} at 0.5: recall {r:.2f}, FPR {f:.3f}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


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
                     f'</figcaption>{scores_svg(d, result["detectors"][d], order, members)}</figure>'
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
        '<div class="grid"><figure><figcaption>full range</figcaption>', sweep_svg(result),
        '</figure><figure><figcaption>FPR ≤ 10%</figcaption>', sweep_svg(result, 0.1, "sweep-zoom"),
        "</figure></div>",
        "<h2>Detection delay per attack cohort</h2>",
        f'<div class="legend">{legend} <span class="muted">bar = median; dots = accounts</span></div>',
        delay_svg(result, order, members),
        "<h2>Max score per account, by cohort</h2>",
        '<div class="muted">red = attack cohort, grey = benign; black bar = cohort median</div>',
        f'<div class="grid">{scores}</div>',
        "<h2>Metrics per cohort (alert = medium or higher)</h2>", metrics_table(result, order),
        '<div class="muted">recall for attack cohorts, benign-account FPR for benign ones; TTD in minutes '
        "of event time from the account's first attack request; reqs = attack requests up to the first alert.</div>",
        feedback_section(result.get("feedback")),
        "<h2>Run</h2>", run_table(run),
        "</body></html>",
    ]
    return "\n".join(parts)
