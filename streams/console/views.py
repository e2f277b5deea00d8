"""HTML of the console's pages: plain server-rendered pages, every value escaped.

No inline script (the Content-Security-Policy forbids it): figures are JSON blocks
drawn by ``/static/console.js`` (:data:`distillguard.streams.plots.BOOT_JS`).
"""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from urllib.parse import urlencode

from .. import plots
from .queries import SEVERITIES, SINCE_HOURS, STATES, QueueFilter

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#0f172a;background:#f8fafc}
header{background:#0f172a;color:#e2e8f0;padding:8px 20px;display:flex;gap:18px;align-items:center}
header a{color:#e2e8f0;text-decoration:none} header .who{margin-left:auto;font-size:13px}
main{padding:14px 20px;max-width:1280px} h1{font-size:20px;margin:6px 0 10px} h2{font-size:16px;margin:22px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff} th,td{padding:4px 8px;border-bottom:1px solid #e2e8f0;
text-align:left;vertical-align:top;font-size:13px} th{background:#f1f5f9}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.sev-low{background:#94a3b8}.sev-medium{background:#f59e0b}.sev-high{background:#ea580c}.sev-critical{background:#dc2626}
.tag{display:inline-block;padding:0 6px;border-radius:3px;background:#e2e8f0;font-size:12px;margin-right:4px}
.tempered{background:#fde68a} .muted{color:#64748b;font-size:12.5px} .flash{background:#dcfce7;padding:6px 10px;margin:6px 0}
.error{background:#fee2e2;padding:6px 10px;margin:6px 0} .counts a{margin-right:12px}
.counts a.on{font-weight:600;text-decoration:underline} form.filters{display:flex;gap:8px;flex-wrap:wrap;margin:8px 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px} .card{background:#fff;border:1px solid #e2e8f0;padding:10px 12px}
.plot.empty{padding:18px;color:#64748b;background:#fff;border:1px dashed #cbd5e1}
.triage label{display:block;margin:4px 0} .triage textarea,.triage input[type=text]{width:95%}
code{font-size:12px}
"""


TEMPERED_TAG = ' <span class="tag tempered">tempered</span>'


def fmt_time(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value / 1000, timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def sev(s: str) -> str:
    return f'<span class="sev sev-{escape(s)}">{escape(s)}</span>'


def fmt_num(v) -> str:
    if v is None:
        return "no baseline yet"
    if isinstance(v, float):
        return f"{v:,.4g}"
    return escape(str(v))


def page(title: str, body: str, analyst: str | None, csrf: str | None = None, flash: str = "",
         error: str = "") -> str:
    who = ""
    if analyst:
        who = (f'<span class="who">signed in as <b>{escape(analyst)}</b> '
               f'<form method="post" action="/logout" style="display:inline">'
               f'<input type="hidden" name="csrf" value="{escape(csrf or "")}">'
               f'<button type="submit">sign out</button></form></span>')
    notes = (f'<div class="flash" id="flash">{escape(flash)}</div>' if flash else "") + \
            (f'<div class="error" id="error">{escape(error)}</div>' if error else "")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)} · distillguard</title>
<link rel="stylesheet" href="/static/console.css"><script src="/static/plotly.min.js"></script></head>
<body><header><b>distillguard console</b><a href="/">alert queue</a><a href="/precision">precision</a>{who}</header>
<main>{notes}{body}</main><script src="/static/console.js"></script></body></html>"""


def login_page(error: str = "") -> str:
    body = """<h1>Sign in</h1><form method="post" action="/login" class="card" style="max-width:360px">
<label>Your name (recorded with every decision)<br><input name="analyst" required maxlength="100"></label><br>
<label>Console token<br><input name="token" type="password" required></label><br>
<button type="submit">sign in</button></form>"""
    return page("sign in", body, None, error=error)


def _queue_link(f: QueueFilter, **change) -> str:
    values = {**f.__dict__, **change}
    return "/?" + urlencode({k: v for k, v in values.items() if v})


def queue_page(f: QueueFilter, rows: list[dict], counts: dict[str, int], detectors: list[str], analyst: str,
               csrf: str, flash: str = "") -> str:
    tabs = " ".join(f'<a href="{escape(_queue_link(f, state=s))}" class="{"on" if f.state == s else ""}" '
                    f'data-state="{s}">{s.replace("_", " ")} <b>{counts.get(s, 0)}</b></a>' for s in STATES)
    tabs += f' <a href="{escape(_queue_link(f, state="all"))}" class="{"on" if f.state == "all" else ""}">all</a>'

    def select(name: str, options, current: str, label: str) -> str:
        opts = "".join(f'<option value="{escape(o)}"{" selected" if o == current else ""}>{escape(o or label)}</option>'
                       for o in ["", *options])
        return f'<select name="{name}">{opts}</select>'

    filters = (f'<form class="filters" method="get" action="/"><input type="hidden" name="state" value="{escape(f.state)}">'
               + select("detector", detectors, f.detector, "any detector")
               + select("severity", SEVERITIES, f.severity, "any severity")
               + f'<input name="account" placeholder="account id" value="{escape(f.account)}">'
               + f'<input name="cluster" placeholder="cluster id" value="{escape(f.cluster)}">'
               + select("since", list(SINCE_HOURS), f.since, "all time")
               + '<button type="submit">filter</button></form>')
    trs = []
    for r in rows:
        top = r["reasons"][0] if r["reasons"] else {}
        tempered = any(x.get("feature") == "feedback_tempered" for x in r["reasons"])
        accounts = r["account_ids"]
        acct = escape(accounts[0]) + (f' <span class="muted">+{len(accounts) - 1}</span>' if len(accounts) > 1 else "")
        cluster = (f'<a href="/clusters/{escape(r["cluster_id"])}">{escape(r["cluster_id"])}</a>'
                   if r["cluster_id"] else "")
        trs.append(
            f'<tr class="alert-row" data-alert-id="{escape(r["alert_id"])}"><td>{sev(r["severity"])}'
            f'{TEMPERED_TAG if tempered else ""}</td>'
            f'<td>{r["score"]:.3f}</td><td><a href="/alerts/{escape(r["alert_id"])}">{escape(r["alert_id"])}</a></td>'
            f'<td>{escape(r["detector"])}</td><td>{acct}</td><td>{cluster}</td>'
            f'<td>{escape(str(top.get("feature", "")))} {fmt_num(top.get("value"))}</td>'
            f'<td>{r["event_count"]:,}</td><td>{escape(r["recommended_action"])}</td>'
            f'<td>{fmt_time(r["raised_at"])}</td><td><span class="tag">{escape(r["state"])}</span>'
            f'{" " + escape(r["analyst"]) if r["analyst"] else ""}</td></tr>')
    table = ("<table id=\"queue\"><tr><th>severity</th><th>score</th><th>alert</th><th>detector</th><th>account</th>"
             "<th>cluster</th><th>strongest finding</th><th>requests</th><th>action</th><th>raised (UTC)</th>"
             "<th>state</th></tr>" + "".join(trs) + "</table>") if trs else \
        '<p class="muted" id="queue-empty">No alerts match these filters.</p>'
    body = f'<h1>Alert queue</h1><div class="counts">{tabs}</div>{filters}{table}'
    return page("alert queue", body, analyst, csrf, flash)


def _reasons_table(reasons: list[dict]) -> str:
    rows = []
    strength = plots.finding_strength(reasons)
    for r in reasons:
        if r.get("feature") == "feedback_tempered":
            continue
        value, base = r.get("value"), r.get("baseline")
        ratio = f"{value / base:,.1f}×" if isinstance(value, (int, float)) and base else ""
        # the finding's own strength (0..1) has no cohort to compare with
        base_cell = '<span class="muted">finding strength</span>' if r is strength else fmt_num(base)
        rows.append(f"<tr><td>{escape(str(r.get('feature')))}</td><td>{fmt_num(value)}</td>"
                    f"<td>{base_cell}</td><td>{ratio}</td></tr>")
    return ("<table id=\"reasons\"><tr><th>feature</th><th>this account</th><th>cohort baseline</th>"
            "<th>ratio</th></tr>" + "".join(rows) + "</table>")


def _tempered_note(reasons: list[dict]) -> str:
    t = next((r for r in reasons if r.get("feature") == "feedback_tempered"), None)
    if not t:
        return ""
    until = fmt_time(t.get("expires_at_ms")) if t.get("expires_at_ms") else "no expiry"
    return (f'<div class="flash tempered" id="tempered">Tempered by analyst feedback: '
            f'{escape(str(t.get("decision")))} ({escape(str(t.get("why") or "no reason given"))}), '
            f'severity {escape(str(t.get("severity_before")))} → low until {until} UTC; '
            f'decision on {escape(str(t.get("alert_id")))}.</div>')


def alert_page(a: dict, lifecycle: list[dict], feedback: list[dict], plots_html: dict[str, str],
               end_users: list[str] | None, protections: list[str] | None, members: list[dict],
               analyst: str, csrf: str, flash: str = "", error: str = "") -> str:
    accounts = a["account_ids"]
    samples = "".join(f"<code>{escape(s)}</code> " for s in a["sample_event_ids"]) or '<span class="muted">none</span>'
    users = ("".join(f'<span class="tag">{escape(u)}</span>' for u in end_users) or
             '<span class="muted">none named</span>') if end_users is not None else \
        '<span class="muted">not recorded by this version of the alert table</span>'
    prot = ("".join(f'<span class="tag">{escape(p)}</span>' for p in protections) or
            '<span class="muted">none</span>') if protections is not None else \
        '<span class="muted">not recorded by this version of the alert table</span>'
    cluster = ""
    if a.get("cluster_id"):
        cluster = (f'<p>Cluster <a href="/clusters/{escape(a["cluster_id"])}">{escape(a["cluster_id"])}</a>: '
                   f'{len(members)} members.</p>')
    member_list = "".join(f'<span class="tag">{escape(m)}</span>' for m in accounts)
    life = "".join(f"<tr><td>{escape(e['activity'])}</td><td>{sev(e['severity'])}</td><td>{e['score']:.3f}</td>"
                   f"<td>{fmt_time(e['raised_at'])}</td><td>{e['event_count']:,}</td>"
                   f"<td>{escape(e['recommended_action'])}</td>"
                   f"<td>{'tempered' if any(r.get('feature') == 'feedback_tempered' for r in e['reasons']) else ''}"
                   f"</td></tr>" for e in lifecycle)
    fb_rows = "".join(f"<tr><td>{fmt_time(f['decided_at'])}</td><td>{escape(f['analyst'])}</td>"
                      f"<td>{escape(f['decision'])}</td><td>{escape(f['reason'])}</td><td>{escape(f['note'])}</td>"
                      f"<td>{fmt_time(f['expires_at']) if f['expires_at'] else '-'}</td></tr>" for f in feedback)
    triage = f"""<form method="post" action="/alerts/{escape(a['alert_id'])}/triage" class="card triage" id="triage">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<label><input type="radio" name="decision" value="confirmed"> confirmed extraction (kept as a label)</label>
<label><input type="radio" name="decision" value="false_positive"> false positive (tempers this finding for these accounts)</label>
<label><input type="radio" name="decision" value="known_workload"> known workload (needs a reason and an expiry)</label>
<label><input type="radio" name="decision" value="note" checked> note only</label>
<label>reason <input type="text" name="reason" maxlength="500" placeholder="e.g. verified LLM-as-judge pipeline"></label>
<label>expires after <input type="number" name="expiry_days" min="1" max="365" value="90" style="width:5em"> days
<span class="muted">(false positive and known workload)</span></label>
<label>note <textarea name="note" rows="2" maxlength="2000"></textarea></label>
<button type="submit" id="triage-submit">record decision</button></form>"""
    body = f"""<h1>Alert <code>{escape(a['alert_id'])}</code> {sev(a['severity'])} <span class="tag">{escape(a['state'])}</span></h1>
{_tempered_note(a['reasons'])}
<div class="grid"><div class="card">
<p><b>{escape(a['detector'])}</b>, score {a['score']:.3f}, {a['event_count']:,} requests from {fmt_time(a['window_start'])}
to {fmt_time(a['window_end'])} UTC; raised {fmt_time(a['raised_at'])}; last activity <b>{escape(a['activity'])}</b>.</p>
<p>Recommended action: <b>{escape(a['recommended_action'])}</b>. Protections: {prot}</p>
<p>Accounts: {member_list}</p><p>End users: {users}</p>{cluster}
<p>Sample event ids: {samples}</p><p class="muted">Requests are shown as ids and derived numbers only: no prompt text is stored.</p>
</div><div>{triage}</div></div>
<h2>Why: reasons against the cohort baseline</h2>{plots_html['reasons']}{_reasons_table(a['reasons'])}
<h2>Requests per minute</h2><p class="muted">dashed lines: this alert's events, coloured by severity</p>{plots_html['rate']}
<h2>Score and features over time (each time the detector scored the account)</h2>{plots_html['features']}
<h2>Lifecycle</h2><table id="lifecycle"><tr><th>activity</th><th>severity</th><th>score</th><th>at (UTC)</th><th>requests</th>
<th>action</th><th>feedback</th></tr>{life}</table>
<h2>Decisions (audit trail)</h2>{'<table id="decisions"><tr><th>at (UTC)</th><th>analyst</th><th>decision</th><th>reason</th><th>note</th><th>expires</th></tr>' + fb_rows + '</table>' if fb_rows else '<p class="muted">No decision yet.</p>'}"""
    return page(f"alert {a['alert_id']}", body, analyst, csrf, flash, error)


def cluster_page(cluster_id: str, members: list[dict], alerts: list[tuple], activity_plot: str,
                 kinds: dict[str, int], analyst: str, csrf: str) -> str:
    rows = "".join(f"<tr><td><a href=\"/?state=all&account={escape(m['account_id'])}\">{escape(m['account_id'])}</a></td>"
                   f"<td>{m['score']:.3f}</td><td>{fmt_time(m['updated_at'])}</td></tr>" for m in members)
    kind_tags = "".join(f'<span class="tag">{escape(k)}: {n}</span>' for k, n in sorted(kinds.items())) or \
        '<span class="muted">not recorded</span>'
    al = "".join(f'<tr><td><a href="/alerts/{escape(i)}">{escape(i)}</a></td><td>{sev(s)}</td><td>{sc:.3f}</td>'
                 f"<td>{escape(act)}</td><td>{fmt_time(t)}</td></tr>" for i, s, sc, act, t in alerts)
    body = f"""<h1>Cluster <code>{escape(cluster_id)}</code></h1>
<p>{len(members)} members. Linked by (link key kind: members whose links use it): {kind_tags}</p>
<h2>Activity of the members (requests per minute)</h2>{activity_plot}
<h2>Members</h2><table id="members"><tr><th>account</th><th>cluster score</th><th>updated (UTC)</th></tr>{rows}</table>
<h2>Alerts</h2><table><tr><th>alert</th><th>severity</th><th>score</th><th>activity</th><th>raised</th></tr>{al}</table>"""
    return page(f"cluster {cluster_id}", body, analyst, csrf)


def precision_page(rows: list[dict], chart: str, analyst: str, csrf: str) -> str:
    def pct(x) -> str:
        return "-" if x is None else f"{x:.2f}"

    trs = "".join(f"<tr><td>{escape(r['detector'])}</td><td>{fmt_time(r['period_start_ms'])[:10]}</td>"
                  f"<td>{r['confirmed']}</td><td>{r['false_positive']}</td><td>{r['known_workload']}</td>"
                  f"<td>{pct(r['precision'])}</td></tr>" for r in rows)
    body = f"""<h1>Precision per detector, from analysts' decisions</h1>
<p class="muted">Per day of decision, each alert once with its latest decision: confirmed ÷ (confirmed + false positive
+ known workload). Notes do not count.</p>{chart}
<table id="precision"><tr><th>detector</th><th>day (UTC)</th><th>confirmed</th><th>false positive</th>
<th>known workload</th><th>precision</th></tr>{trs}</table>"""
    return page("precision", body, analyst, csrf)
