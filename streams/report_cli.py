"""``distillguard report``: a self-contained HTML page built from ClickHouse.

For analysts without Grafana or the console: alert timeline, top accounts
with their reasons, cluster sizes, one account's history (requests per minute
with its alerts) and precision per detector from analysts' decisions. Works
on the embedded store and on a server alike. Plots are plotly figures
(:mod:`distillguard.streams.plots`), with plotly.js from the Python package
inlined, so the file opens without a network; ``body[data-rendered]`` lists
the plots the browser drew, which the headless-Chromium test reads.
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import orjson

from distillguard.models.feedback import precision_by_period

from . import plots
from .plots import finding_strength
from .eval_report import CSS

SEVERITY_RANK = "indexOf(['low','medium','high','critical'], severity)"


def _ts(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M")


def describe_reason(r: dict, strongest: bool = False) -> str:
    """One reason as text: value against the cohort baseline when there is one. The strongest
    (first) reason of an alert is the finding's own strength in 0..1, which has no baseline."""
    feature, value, base = r.get("feature"), r.get("value"), r.get("baseline")
    if feature == "feedback_tempered":
        return f"tempered by analyst feedback ({r.get('decision')}: {r.get('why') or 'no reason given'})"
    if strongest and isinstance(value, (int, float)):
        return f"{feature} {value:g} (finding strength)"
    if base is None:
        return f"{feature} {value:g}" if isinstance(value, (int, float)) else f"{feature} {value}"
    return f"{feature} {value:g} vs cohort {base:g}"


def describe_reasons(reasons: list[dict]) -> str:
    """Reasons as one line (see :func:`~distillguard.streams.plots.finding_strength`)."""
    strength = finding_strength(reasons)
    return "; ".join(describe_reason(r, strongest=r is strength) for r in reasons)


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
    # per account its strongest finding: highest severity, then score, then the most requests behind
    # it (scores saturate at 1.0, so the bars show requests and the colour the severity)
    top = store.query(
        f"SELECT account_id, argMax(score, k), argMax(severity, k), argMax(detector, k), argMax(reasons, k), "
        f"uniqExact(alert_id), argMax(event_count, k) FROM (SELECT *, ({SEVERITY_RANK}, score, event_count) AS k "
        f"FROM {db}.alert_events WHERE activity != 'close') GROUP BY account_id "
        f"ORDER BY max(k) DESC, account_id LIMIT {int(top_n)}").result_rows
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
    decisions = []
    if _has_table(store, "alert_feedback"):
        decisions = store.query(f"SELECT detector, alert_id, decision, toUnixTimestamp64Milli(decided_at) "
                                f"FROM {db}.alert_feedback ORDER BY decided_at").result_rows
    return {"timeline": timeline, "top": top, "clusters": clusters, "account": account,
            "history": history, "marks": marks, "content": content, "precision": precision_by_period(decisions)}


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
    series = {s: [0] * len(hours) for s in plots.SEVERITY_COLORS}
    for hour, sev, n in data["timeline"]:
        series[sev][index[hour]] += n
    timeline = plots.severity_bars("timeline", hours, series)
    top = data["top"]
    top_plot = plots.account_bars(
        "top-accounts", [r[0] for r in top], [r[6] for r in top], [r[2] for r in top],
        [f"{r[0]}: {r[2]}, score {r[1]:.3f}, {r[6]:,} requests, {r[3]}" for r in top],
        "requests behind the account's strongest finding (colour: severity)")
    top_rows = []
    for account, score, sev, detector, reasons, n, events in top:
        first = orjson.loads(reasons)[:3] if reasons else []
        top_rows.append([account, f"{score:.3f}", sev, f"{events:,}", detector, n,
                         describe_reasons(first)])
    clusters = plots.account_bars("clusters", [r[0] for r in data["clusters"]], [r[1] for r in data["clusters"]],
                                  ["" for _ in data["clusters"]], [f"{r[0]}: {r[1]} members" for r in data["clusters"]],
                                  "member accounts") if data["clusters"] else plots.empty("clusters",
                                                                                           "no clusters recorded")
    account = data["account"]
    history = plots.time_lines(
        "account-history", {"requests per minute": ([plots.utc(r[0] * 1000) for r in data["history"]],
                                                     [r[1] for r in data["history"]])},
        [(plots.utc(r[0] * 1000), r[2], r[1]) for r in data["marks"]], "requests per minute")
    mark_rows = [[_ts(r[0]), r[2], r[1], f"{r[3]:.3f}",
                  describe_reasons(orjson.loads(r[4])[:3])] for r in data["marks"]]
    precision = data["precision"]
    precision_rows = [[r["detector"], _ts(r["period_start_ms"] / 1000)[:10], r["confirmed"], r["false_positive"],
                       r["known_workload"], "-" if r["precision"] is None else f"{r['precision']:.2f}"]
                      for r in precision]
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>distillguard report</title>
<style>{CSS} .plot.empty{{padding:14px;color:#64748b;border:1px dashed #cbd5e1}}</style></head><body>
<h1>distillguard report</h1><div class="muted">source {escape(source)} · generated {generated}</div>
{_blind_spot(data.get("content"))}
<h2>Alert events (create, update) per hour, by severity</h2>{timeline}
<h2>Top accounts by their strongest finding</h2>{top_plot}
{_table(["account", "max score", "severity", "requests", "detector", "alerts", "strongest reasons"], top_rows)}
<h2>Clusters (accounts per cluster)</h2>{clusters}
<h2>Account history: {escape(account or "none")}</h2>
<div class="muted">requests per minute; dashed lines are alert events (colour = severity)</div>{history}
{_table(["raised at", "activity", "severity", "score", "reasons"], mark_rows)}
<h2>Precision per detector, from analysts' decisions</h2>
<div class="muted">per day of decision, each alert once with its latest decision: confirmed ÷ (confirmed +
false positive + known workload)</div>{plots.precision_chart("precision", precision)}
{_table(["detector", "day", "confirmed", "false positive", "known workload", "precision"], precision_rows)}
<script>{plots.plotly_js()}</script><script>{plots.BOOT_JS}</script></body></html>"""


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
