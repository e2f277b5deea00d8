"""Plots for the console and the report: plotly figures, drawn in the browser by plotly.js.

plotly.js ships inside the ``plotly`` Python package (``plotly.offline.get_plotlyjs()``),
so nothing is fetched from a CDN: the console serves it as ``/static/plotly.min.js``,
the report inlines it. A figure travels as JSON in a ``<script type="application/json">``
block next to its ``<div>``; :data:`BOOT_JS` draws every such figure (no inline code
per plot, so the console can forbid inline scripts) and then lists the plots that
really rendered in ``body[data-rendered]``, which the browser tests read.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from html import escape

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

SEVERITY_COLORS = {"low": "#94a3b8", "medium": "#f59e0b", "high": "#ea580c", "critical": "#dc2626"}
PALETTE = ["#2563eb", "#16a34a", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#475569", "#65a30d"]

BOOT_JS = """
(function () {
  function draw() {
    var done = [];
    document.querySelectorAll('script[type="application/json"][data-figure]').forEach(function (s) {
      var div = document.getElementById(s.dataset.figure);
      var fig = JSON.parse(s.textContent);
      Plotly.newPlot(div, fig.data, fig.layout, {displaylogo: false, responsive: true});
      if (div.querySelector('.main-svg')) { done.push(div.dataset.plot); }
    });
    document.body.dataset.rendered = done.join(' ');
  }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', draw); } else { draw(); }
})();
"""


@cache
def plotly_js() -> str:
    """plotly.js from the installed plotly package (a few MB; read once)."""
    return get_plotlyjs()


def _layout(fig: go.Figure, height: int, **extra) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=10, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.2), font=dict(size=12), **extra)
    return fig


def embed(fig: go.Figure, name: str, kind: str | None = None, detector: str | None = None) -> str:
    """A figure as a div plus its JSON (``</`` escaped so a value can never close the script).
    ``name`` must be unique in the page; ``kind`` (default ``name``) is what ``data-rendered`` lists."""
    data = fig.to_json().replace("</", "<\\/")
    det = f' data-detector="{escape(detector)}"' if detector else ""
    return (f'<div class="plot" id="plot-{escape(name)}" data-plot="{escape(kind or name)}"{det}></div>'
            f'<script type="application/json" data-figure="plot-{escape(name)}">{data}</script>')


def empty(name: str, text: str) -> str:
    return f'<div class="plot empty" data-plot="{escape(name)}">{escape(text)}</div>'


def utc(ms_or_dt) -> datetime:
    if isinstance(ms_or_dt, datetime):
        return ms_or_dt if ms_or_dt.tzinfo else ms_or_dt.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(ms_or_dt / 1000, timezone.utc)


def severity_bars(name: str, buckets: list, counts: dict[str, list[float]], height: int = 260) -> str:
    """Stacked bars per time bucket, one colour per severity."""
    if not buckets:
        return empty(name, "no alert events")
    fig = go.Figure([go.Bar(x=buckets, y=counts[s], name=s, marker_color=c) for s, c in SEVERITY_COLORS.items()
                     if any(counts[s])])
    return embed(_layout(fig, height, barmode="stack", yaxis_title="alert events"), name)


def account_bars(name: str, accounts: list[str], values: list[float], severities: list[str],
                 hover: list[str], title: str) -> str:
    """Horizontal bars, one per account, coloured by severity, strongest on top."""
    if not accounts:
        return empty(name, "no accounts")
    fig = go.Figure(go.Bar(y=accounts, x=values, orientation="h", text=[f"{v:g}" for v in values],
                           marker_color=[SEVERITY_COLORS.get(s, PALETTE[0]) for s in severities],
                           hovertext=hover, hoverinfo="text"))
    fig.update_yaxes(autorange="reversed", type="category")
    return embed(_layout(fig, 60 + 22 * len(accounts), xaxis_title=title), name)


def time_lines(name: str, series: dict[str, tuple[list, list]], marks: list[tuple] = (), y_title: str = "",
               height: int = 280, y2: dict[str, tuple[list, list]] | None = None) -> str:
    """Lines over time (``series``: name -> (times, values)); ``marks``: (time, label, severity)
    drawn as dashed verticals; ``y2``: lines on a right-hand axis in 0..1 (scores, shares)."""
    if not any(xs for xs, _ in series.values()) and not (y2 and any(xs for xs, _ in y2.values())):
        return empty(name, "no data in this period")
    fig = go.Figure()
    for i, (label, (xs, ys)) in enumerate(series.items()):
        # minutes without requests are absent: step lines with markers, so a gap is not read as a ramp
        fig.add_trace(go.Scatter(x=xs, y=ys, name=label, mode="lines+markers", marker=dict(size=3),
                                 line=dict(color=PALETTE[i % len(PALETTE)], shape="hv")))
    for i, (label, (xs, ys)) in enumerate((y2 or {}).items()):
        fig.add_trace(go.Scatter(x=xs, y=ys, name=label, mode="lines+markers", yaxis="y2",
                                 line=dict(color=PALETTE[(i + len(series)) % len(PALETTE)], dash="dot")))
    for ts, _label, sev in marks:   # alert events: dashed verticals coloured by severity
        fig.add_vline(x=ts, line=dict(color=SEVERITY_COLORS.get(sev, "#64748b"), dash="dash", width=1))
    extra = {"yaxis2": dict(overlaying="y", side="right", range=[0, 1.05], title="score / share")} if y2 else {}
    return embed(_layout(fig, height, yaxis_title=y_title, **extra), name)


def finding_strength(reasons: list[dict]) -> dict | None:
    """The reason that is the finding's own strength in 0..1, if any: the scorer puts it first,
    with baseline 0 (a cluster alert starts with its size instead, baseline null)."""
    rows = [r for r in reasons if r.get("feature") != "feedback_tempered"]
    return rows[0] if rows and rows[0].get("baseline") == 0.0 else None


def reasons_chart(name: str, reasons: list[dict]) -> str:
    """Each reason's value next to its cohort baseline (log axis: features differ in scale)."""
    # the features against their cohort; the finding's strength has no cohort
    strength = finding_strength(reasons)
    rows = [r for r in reasons if isinstance(r.get("value"), (int, float)) and r.get("feature") != "feedback_tempered"
            and r is not strength]
    if not rows:
        return empty(name, "no reasons")
    labels = [r["feature"] for r in rows]
    fig = go.Figure([
        go.Bar(y=labels, x=[max(r["value"], 1e-4) for r in rows], orientation="h", name="this account",
               marker_color=PALETTE[0], hovertext=[f"{r['value']:g}" for r in rows], hoverinfo="text+y"),
        go.Bar(y=labels, x=[max(r["baseline"], 1e-4) if r.get("baseline") is not None else None for r in rows],
               orientation="h", name="cohort baseline", marker_color="#94a3b8",
               hovertext=["no baseline yet" if r.get("baseline") is None else f"{r['baseline']:g}" for r in rows],
               hoverinfo="text+y"),
    ])
    fig.update_yaxes(autorange="reversed", type="category")
    return embed(_layout(fig, 80 + 34 * len(rows), barmode="group", xaxis_type="log",
                         xaxis_title="value (log scale)"), name)


def precision_chart(name: str, rows: list[dict]) -> str:
    """Precision per detector per period (from models.feedback.precision_by_period)."""
    if not rows:
        return empty(name, "no triage decisions yet")
    fig = go.Figure()
    for i, det in enumerate(sorted({r["detector"] for r in rows})):
        mine = [r for r in rows if r["detector"] == det]
        fig.add_trace(go.Scatter(
            x=[utc(r["period_start_ms"]) for r in mine], y=[r["precision"] for r in mine], name=det,
            mode="lines+markers", line=dict(color=PALETTE[i % len(PALETTE)]),
            hovertext=[f"{r['confirmed']} confirmed, {r['false_positive']} false positive, "
                       f"{r['known_workload']} known workload" for r in mine], hoverinfo="text+y"))
    return embed(_layout(fig, 240, yaxis=dict(range=[0, 1.05], title="precision")), name)
