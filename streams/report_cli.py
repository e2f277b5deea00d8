"""``distillguard report``: a self-contained HTML page built from ClickHouse.

For analysts without Grafana: alert timeline, top accounts with their
reasons, cluster sizes, and one account's history (requests per minute with
its alerts). Works on the embedded store and on a server alike. Plots are
inline SVG (``<svg data-plot="...">``); a few lines of inline script only
mark, after layout, how many plots the browser actually drew
(``body[data-rendered]``), which the headless-Chromium test reads.
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import orjson

from .eval_report import CSS, PALETTE

SEVERITY_COLORS = {"low": "#94a3b8", "medium": "#f59e0b", "high": "#ea580c", "critical": "#dc2626"}
W, H, PAD = 760, 240, 44
RENDER_CHECK = """<script>
addEventListener('load', () => {
  const drawn = [...document.querySelectorAll('svg[data-plot]')]
    .filter(s => s.getBBox().width > 0 && s.querySelectorAll('rect,path,circle').length > 0);
  document.body.dataset.rendered = drawn.map(s => s.dataset.plot).join(' ');
});
</script>"""


def _ts(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _empty(plot: str, text: str) -> str:
    return (f'<svg data-plot="{plot}" width="{W}" height="60"><rect x="0" y="0" width="{W}" height="60" '
            f'fill="#f8fafc"/><text x="12" y="34">{escape(text)}</text></svg>')


def stacked_bars(plot: str, buckets: list, series: dict[str, list[float]], colors: dict[str, str],
                 label_every: int = 1) -> str:
    """Vertical stacked bars, one per bucket; ``series`` maps name -> values per bucket."""
    if not buckets:
        return _empty(plot, "no data")
    totals = [sum(vals[i] for vals in series.values()) for i in range(len(buckets))]
    top = max(totals) or 1
    bw = (W - 2 * PAD) / len(buckets)
    parts = [f'<svg data-plot="{plot}" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#94a3b8"/>',
             f'<text x="4" y="{PAD}">{top:g}</text>']
    for i, bucket in enumerate(buckets):
        y = H - PAD
        for name, vals in series.items():
            h = (H - 2 * PAD) * vals[i] / top
            if h > 0:
                y -= h
                parts.append(f'<rect x="{PAD + i * bw:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" '
                             f'height="{h:.1f}" fill="{colors[name]}"><title>{escape(str(bucket))} {name}: '
                             f'{vals[i]:g}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{PAD + i * bw:.1f}" y="{H - PAD + 14}">{escape(str(bucket))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(plot: str, labels: list[str], values: list[float], color: str, vmax: float | None = None) -> str:
    if not labels:
        return _empty(plot, "no data")
    row = 18
    height = row * len(labels) + 20
    vmax = vmax or max(values) or 1
    left = 230
    parts = [f'<svg data-plot="{plot}" width="{W}" height="{height}" viewBox="0 0 {W} {height}">']
    for i, (label, v) in enumerate(zip(labels, values)):
        y = 10 + i * row
        parts.append(f'<text x="4" y="{y + 12}">{escape(label[:34])}</text>'
                     f'<rect x="{left}" y="{y}" width="{(W - left - 60) * v / vmax:.1f}" height="{row - 4}" '
                     f'fill="{color}"/><text x="{left + (W - left - 60) * v / vmax + 6:.1f}" y="{y + 12}">{v:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(plot: str, xs: list[float], ys: list[float], marks: list[tuple[float, str]]) -> str:
    """A line of (x, y) with vertical markers at (x, color)."""
    if not xs:
        return _empty(plot, "no data for this account")
    x0, x1 = min(xs), max(xs + [m[0] for m in marks])
    span = (x1 - x0) or 1
    top = max(ys) or 1

    def px(x):
        return PAD + (W - 2 * PAD) * (x - x0) / span

    def py(y):
        return H - PAD - (H - 2 * PAD) * y / top

    path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(zip(xs, ys)))
    parts = [f'<svg data-plot="{plot}" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#94a3b8"/>',
             f'<text x="4" y="{PAD}">{top:g}/min</text>',
             f'<text x="{PAD}" y="{H - PAD + 14}">{_ts(x0)}</text>',
             f'<text x="{W - PAD - 90}" y="{H - PAD + 14}">{_ts(x1)}</text>',
             f'<path d="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/>']
    for x, color in marks:
        parts.append(f'<line x1="{px(x):.1f}" y1="{PAD}" x2="{px(x):.1f}" y2="{H - PAD}" stroke="{color}" '
                     f'stroke-dasharray="3,2"/><circle cx="{px(x):.1f}" cy="{PAD}" r="3" fill="{color}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _table(columns: list[str], rows: list[list]) -> str:
    head = "".join(f'<th class="l">{escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="l">{escape(str(v))}</td>' for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _has_table(store, name: str) -> bool:
    rows = store.query(f"SELECT count() FROM system.tables WHERE database = '{store.db}' AND name = '{name}'")
    return rows.result_rows[0][0] > 0


def collect(store, account: str | None, top_n: int = 15) -> dict:
    """Everything the page shows, as plain data (testable without a browser)."""
    db = store.db
    timeline = store.query(
        f"SELECT toStartOfHour(raised_at) AS hour, severity, count() FROM {db}.alert_events "
        f"WHERE activity != 'close' GROUP BY hour, severity ORDER BY hour").result_rows
    top = store.query(  # the evidence of the strongest create/update, not the close record
        f"SELECT account_id, max(score) AS s, argMax(severity, score), argMax(detector, score), "
        f"argMax(reasons, score), uniqExact(alert_id) FROM {db}.alert_events WHERE activity != 'close' "
        f"GROUP BY account_id ORDER BY s DESC, account_id LIMIT {int(top_n)}").result_rows
    clusters = []
    if _has_table(store, "cluster_members"):
        clusters = store.query(
            f"SELECT cluster_id, uniqExact(account_id) AS n FROM {db}.cluster_members "
            f"GROUP BY cluster_id ORDER BY n DESC LIMIT 20").result_rows
    account = account or (top[0][0] if top else None)
    history, marks = [], []
    if account:
        history = store.query(
            f"SELECT toUnixTimestamp(minute), sum(requests) FROM {db}.account_minute "
            "WHERE account_id = {a:String} GROUP BY minute ORDER BY minute", parameters={"a": account}).result_rows
        marks = store.query(
            f"SELECT toUnixTimestamp(raised_at), severity, activity, score, reasons FROM {db}.alert_events "
            "WHERE has(account_ids, {a:String}) AND activity != 'close' ORDER BY raised_at",
            parameters={"a": account}).result_rows
    content = None   # the blind spot (issue #14): events read without prompt text
    if _has_table(store, "content_minute"):
        content = store.query(f"SELECT sum(events), sum(content_less) FROM {db}.content_minute").result_rows[0]
    return {"timeline": timeline, "top": top, "clusters": clusters, "account": account,
            "history": history, "marks": marks, "content": content}


def _blind_spot(content) -> str:
    """One line on how much of the traffic the detector read without prompt text."""
    events, blind = content if content else (0, 0)
    if not events:
        return '<div class="muted">prompt text: no event counts recorded</div>'
    text = (f"prompt text: {blind:,} of {events:,} events ({blind / events:.1%}) carried none (redacted by the "
            "producer or not captured); for them only metadata signals work")
    style = ' style="color:#b91c1c;font-weight:600"' if blind > 0.2 * events else ""
    return f'<div class="muted" data-blind-share="{blind / events:.4f}"{style}>{escape(text)}</div>'


def render(data: dict, source: str) -> str:
    hours = sorted({r[0] for r in data["timeline"]})
    index = {h: i for i, h in enumerate(hours)}
    series = {s: [0.0] * len(hours) for s in SEVERITY_COLORS}
    for hour, sev, n in data["timeline"]:
        series[sev][index[hour]] += n
    timeline = stacked_bars("timeline", [_ts(h)[5:13] for h in hours], series, SEVERITY_COLORS,
                            label_every=max(1, len(hours) // 8))
    top = data["top"]
    top_plot = horizontal_bars("top-accounts", [r[0] for r in top], [round(r[1], 3) for r in top],
                               SEVERITY_COLORS["high"], vmax=1.0)
    top_rows = []
    for account, score, sev, detector, reasons, n in top:
        first = orjson.loads(reasons)[:3] if reasons else []
        why = "; ".join(f"{r['feature']}={r['value']} (baseline {r['baseline']})" for r in first)
        top_rows.append([account, f"{score:.3f}", sev, detector, n, why])
    clusters = horizontal_bars("clusters", [r[0] for r in data["clusters"]], [r[1] for r in data["clusters"]],
                               PALETTE[3]) if data["clusters"] else _empty("clusters", "no clusters recorded")
    account = data["account"]
    history = line_chart("account-history", [r[0] for r in data["history"]], [r[1] for r in data["history"]],
                         [(r[0], SEVERITY_COLORS[r[1]]) for r in data["marks"]])
    mark_rows = [[_ts(r[0]), r[2], r[1], f"{r[3]:.3f}",
                  "; ".join(f"{x['feature']}={x['value']}" for x in orjson.loads(r[4])[:3])] for r in data["marks"]]
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>distillguard report</title>
<style>{CSS}</style></head><body>
<h1>distillguard report</h1><div class="muted">source {escape(source)} · generated {generated}</div>
{_blind_spot(data.get("content"))}
<h2>Alert events (create, update) per hour, by severity</h2>{timeline}
<div class="legend">{''.join(f'<span><i class="sw" style="background:{c}"></i>{s}</span>' for s, c in SEVERITY_COLORS.items())}</div>
<h2>Top accounts by alert score</h2>{top_plot}
{_table(["account", "max score", "severity", "detector", "alerts", "strongest reasons"], top_rows)}
<h2>Clusters (accounts per cluster)</h2>{clusters}
<h2>Account history: {escape(account or "none")}</h2>
<div class="muted">requests per minute; dashed lines are alert events (colour = severity)</div>{history}
{_table(["raised at", "activity", "severity", "score", "reasons"], mark_rows)}
{RENDER_CHECK}</body></html>"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="var/report.html", help="HTML file to write (default var/report.html)")
    parser.add_argument("--account", help="account whose history to show (default: the top-scoring one)")
    parser.add_argument("--top", type=int, default=15, help="how many top accounts to list")


def run(args) -> int:
    from .clickhouse import open_store
    from .settings import load_settings

    with open_store(load_settings(), migrate=True) as store:
        data = collect(store, args.account, args.top)
        source = store.describe()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, source), encoding="utf-8")
    print(f"wrote {out} ({len(data['top'])} accounts, {len(data['clusters'])} clusters, "
          f"history of {data['account'] or 'no account'})")
    return 0
