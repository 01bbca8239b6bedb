"""The dashboard page from ``SiteData``: pure, deterministic for the same data.

One self-contained HTML file (``index.html``): inline CSS, charts as inline SVG (the monitoring
report's ``svg_chart`` over ``framework.monitoring.charts``), nothing fetched from the network
and no link to another file, because a presigned S3 link opens exactly one object. Sections
are reached by in-page anchors; model cards fold out in place. A few lines of inline JS filter
the audit table (it reads fine without). Every value is escaped. Tables fit the page: long
cells wrap anywhere, and the audit table has fixed column widths.

Stdlib and ``framework.monitoring`` only: the monitor function's zip imports it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from framework.dashboard.data import EndpointView, ModelView, MonitorView, RunView, SiteData
from framework.monitoring import charts
from framework.monitoring.report import STATUS_LABEL, svg_chart

INDEX = "index.html"
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
LONG = re.compile(r"\S{24,}")  # wider than a narrow column: wraps anywhere
STATUS_COLOUR = {"ok": "#2e7d32", "drift": "#c62828", "degraded": "#ef6c00",
                 "no_data": "#616161", "failure": "#6a1b9a", "running": "#f9a825",
                 "completed": "#2e7d32", "rolled_back": "#c62828", "aborted": "#616161",
                 "succeeded": "#2e7d32", "failed": "#c62828"}
CHART_FIGURES = ("drift_share", "drifted_features", "rows", "error_rate", "latency_p99_ms",
                 "prediction_drift", "accuracy", "precision", "recall", "f1", "roc_auc", "mae",
                 "rmse", "r2")
RUNS_SHOWN = 60  # newest runs in each monitor's table (the charts use the whole history)
# The audit table's columns: time, actor, command, action, resource, before → after, outcome.
AUDIT_WIDTHS = (12, 13, 10, 7, 14, 34, 10)
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222}
header{background:#263238;color:#fff;padding:10px 24px}
header a{color:#cfd8dc;margin-right:16px;text-decoration:none}header a:hover{color:#fff}
header .project{font-weight:700;color:#fff;margin-right:24px}
main{padding:8px 24px 32px;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin:32px 0 8px;border-bottom:2px solid #ccc}
h3{font-size:16px;margin:24px 0 6px;border-bottom:1px solid #ddd}
h4{font-size:14px;margin:14px 0 4px}
p,li,td,th,summary{overflow-wrap:break-word}.long,.card td{overflow-wrap:anywhere}
table{border-collapse:collapse;font-size:13px;margin:4px 0;max-width:100%}
table.fixed{table-layout:fixed;width:100%}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#fafafa}code{font-size:12px}
.badge{display:inline-block;padding:1px 7px;border-radius:4px;color:#fff;font-weight:600;
font-size:12px}
.muted{color:#777;font-size:12px}.plots svg{margin:4px;border:1px solid #eee;vertical-align:top}
.warn{background:#fff8e1;border:1px solid #ffe082;padding:6px 10px}
.chg{margin:0 0 3px}.chg .old{color:#b71c1c}.chg .new{color:#1b5e20}
details{margin:4px 0}details .card{border-left:3px solid #cfd8dc;padding-left:12px}
input.filter{margin:6px 0;padding:4px;width:20em;max-width:100%}
"""
FILTER_JS = """
document.querySelectorAll('input.filter').forEach(function(box){
  var rows=document.querySelectorAll('#'+box.dataset.table+' tr.row');
  box.addEventListener('input',function(){var q=box.value.toLowerCase();
    rows.forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';});
  });
});
"""


def e(value: Any) -> str:
    """Escaped text of any value for the page's body; None shows as a dash. A long run of
    characters without a space (a URL, an ARN, a hash) may wrap anywhere; words do not."""
    if value is None or value == "":
        return "–"
    return LONG.sub(r'<span class="long">\g<0></span>', html.escape(str(value)))


def safe(part: str) -> str:
    """An id-safe form of a name, version or run id (stable, collision-free)."""
    if SAFE.match(part) and ".." not in part:
        return part
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._")[:60] or "x"
    return f"{cleaned}-{sha256(part.encode()).hexdigest()[:8]}"


# -- anchors of the sections -----------------------------------------------------------------

def anchor(kind: str, name: str) -> str:
    """The id of an endpoint's, model's or monitor's section: ``model-fraud-clf``."""
    return f"{kind}-{safe(name)}"


def a(target: str, text: str) -> str:
    """A link to the section with id ``target`` (``text`` is already HTML)."""
    return f'<a href="#{html.escape(target)}">{text}</a>'


# -- small pieces --------------------------------------------------------------------------

def badge(status: str | None) -> str:
    if not status:
        return "–"
    colour = STATUS_COLOUR.get(status, "#455a64")
    label = STATUS_LABEL.get(status, status.replace("_", " "))
    return f'<span class="badge" style="background:{colour}">{e(label)}</span>'


def when(value: Any) -> str:
    """Epoch seconds or ISO text, as an ISO UTC time."""
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, ident: str = "",
          empty: str = "none yet", widths: Sequence[int] = ()) -> str:
    """A table of already-escaped cells; ``widths`` (percent per column) fixes its layout."""
    body = "".join("<tr class=\"row\">" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                   for r in rows)
    if not body:
        return f'<p class="muted">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    attr = f' id="{ident}"' if ident else ""
    cols = ""
    if widths:
        attr += ' class="fixed"'
        cols = "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in widths) + \
            "</colgroup>"
    return f"<table{attr}>{cols}<tr>{head}</tr>{body}</table>"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return e(value)


def _value(value: Any) -> str:
    if isinstance(value, dict | list):
        return e(json.dumps(value, sort_keys=True, default=str))
    return e(value)


def change(before: Any, after: Any) -> str:
    """What an audit record changed, one line per field: only the fields that differ, the old
    value in red, the new one in green; a value that is not a mapping as one line."""
    if not isinstance(before, dict) and not isinstance(after, dict):
        if before is None and after is None:
            return ""
        return (f'<div class="chg"><span class="old">{_value(before)}</span> → '
                f'<span class="new">{_value(after)}</span></div>')
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    keys = [k for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)]
    if not keys:
        return '<span class="muted">outputs unchanged</span>'
    lines = []
    for k in keys:
        parts = []
        if old.get(k) is not None:
            parts.append(f'<span class="old">{_value(old[k])}</span>')
        if new.get(k) is not None:
            parts.append(f'<span class="new">{_value(new[k])}</span>')
        lines.append(f'<div class="chg"><b>{e(k)}</b>: {" → ".join(parts)}</div>')
    lead = "" if isinstance(before, dict) and isinstance(after, dict) else \
        ('<div class="muted">created</div>' if after else '<div class="muted">removed</div>')
    return lead + "".join(lines)


# -- charts --------------------------------------------------------------------------------

def status_strip(runs: Sequence[RunView], width: int = 460) -> str:
    """One coloured square per run, oldest left; hover shows run and verdict."""
    if not runs:
        return ""
    size = max(4.0, min(16.0, (width - 8) / len(runs)))
    shown = runs[-int((width - 8) // size):]
    cells = "".join(
        f'<rect x="{4 + i * size:.1f}" y="20" width="{size - 1:.1f}" height="16" '
        f'fill="{STATUS_COLOUR.get(r.status, "#455a64")}"><title>{html.escape(r.run_id)}: '
        f'{html.escape(r.status)}</title></rect>' for i, r in enumerate(shown))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="44" role="img" '
            'aria-label="verdicts"><text x="4" y="14" font-size="12" font-weight="600">'
            f'verdict of each run (oldest left)</text>{cells}</svg>')


def figure_charts(runs: Sequence[RunView]) -> list[str]:
    """An EWMA control chart per figure over the runs' history."""
    out = []
    for name in CHART_FIGURES:
        series = [float(r.figures[name]) for r in runs
                  if isinstance(r.figures.get(name), int | float)]
        if not series:
            continue
        chart = charts.ewma(series, baseline=min(5, len(series)))
        out.append(svg_chart(f"{name} · ewma", chart.to_dict()))
    return out


# -- the overview --------------------------------------------------------------------------

def _monitor_rows(data: SiteData) -> list[list[str]]:
    rows = []
    for mon in data.monitors:
        last = mon.runs[-1] if mon.runs else None
        summary = (last.report or {}).get("summary") if last else None
        rows.append([a(anchor("monitor", mon.name), e(mon.name)), e(mon.endpoint),
                     badge(last.status) if last else "no runs yet", e(summary),
                     e(last.time) if last else "–", str(len(mon.runs))])
    return rows


def _endpoint_rows(data: SiteData) -> list[list[str]]:
    rows = []
    for ep in data.endpoints:
        rec = ep.rollout
        rows.append([a(anchor("endpoint", ep.name), e(ep.name)), f"<code>{e(ep.route)}</code>",
                     f"<code>{e(ep.url)}</code>" if ep.url else "not deployed",
                     e(ep.model), e(ep.model_version), e(ep.lambda_version),
                     badge(rec.status) if rec else "–"])
    return rows


def overview(data: SiteData) -> str:
    parts = [f'<p class="warn">{e(w)}</p>' for w in data.warnings]
    parts.append(f"<p>Project <b>{e(data.project)}</b>, stage <b>{e(data.stage)}</b> on "
                 f"<b>{e(data.target)}</b> ({e(data.region)}); registry "
                 f"<code>s3://{e(data.bucket)}</code>.</p>")
    if data.read_at and data.read_at != data.generated_at:
        parts.append(f'<p class="muted">Monitors and the audit log as of {e(data.generated_at)}; '
                     f"models, endpoints and rollouts as read at {e(data.read_at)} (by the "
                     "last <code>mlops deploy</code> or <code>mlops dashboard --publish</code>)."
                     "</p>")
    parts.append('<h2 id="monitors">Monitors: latest verdicts</h2>' + table(
        ["monitor", "endpoint", "latest verdict", "summary", "run at", "runs"],
        _monitor_rows(data), empty="no monitors declared"))
    strips = [status_strip(m.runs) for m in data.monitors if m.runs]
    if strips:
        parts.append('<div class="plots">' + "".join(strips) + "</div>")
    parts.append('<h2 id="endpoints">Endpoints</h2>' + table(
        ["endpoint", "route", "URL", "model", "serving version", "Lambda version", "rollout"],
        _endpoint_rows(data), empty="no endpoints declared"))
    parts.append('<h2 id="models">Models</h2>' + table(
        ["model", "versions", "latest", "aliases", "declared in mlops.yaml"],
        ([a(anchor("model", m.name), e(m.name)), str(len(m.versions)),
          e(m.versions[-1]["version"]) if m.versions else "–",
          e(", ".join(f"{k} → {v}" for k, v in m.aliases.items())), e(m.declared)]
         for m in data.models), empty="no models registered"))
    rollouts = sorted((ep.rollout for ep in data.endpoints if ep.rollout),
                      key=lambda r: r.updated_at, reverse=True)
    parts.append('<h2 id="rollouts">Latest rollouts</h2>' + table(
        ["endpoint", "strategy", "from → to", "status", "traffic on new", "updated", "reason"],
        ([a(anchor("endpoint", r.endpoint), e(r.endpoint)), e(r.strategy),
          f"{e(r.stable_model)} → {e(r.candidate_model)}", badge(r.status), f"{r.weight}%",
          e(when(r.updated_at)), e(r.reason)] for r in rollouts),
        empty="no rollouts yet (first deploys go live directly)"))
    return "".join(parts)


# -- one section per endpoint, model and monitor -------------------------------------------

def endpoint(data: SiteData, ep: EndpointView) -> str:
    parts = [f'<h3 id="{anchor("endpoint", ep.name)}">Endpoint {e(ep.name)}</h3>',
             table(["field", "value"], [
                 ["route", f"<code>{e(ep.route)}</code>"],
                 ["URL", f"<code>{e(ep.url)}</code>" if ep.url else "not deployed"],
                 ["model", e(ep.model)], ["serving model version", e(ep.model_version)],
                 ["Lambda version", e(ep.lambda_version)]])]
    model_name = ep.model.split("@", 1)[0]
    if any(m.name == model_name for m in data.models):
        parts.append(f"<p>{a(anchor('model', model_name), f'Model {e(model_name)}')}</p>")
    watching = [m for m in data.monitors if m.endpoint == ep.name]
    if watching:
        parts.append("<p>Watched by " + ", ".join(
            a(anchor("monitor", m.name), e(m.name)) for m in watching) + "</p>")
    rec = ep.rollout
    parts.append("<h4>Rollout</h4>")
    if rec is None:
        parts.append('<p class="muted">no rollout recorded: the first deploy went live '
                     "directly, or the strategy is all_at_once</p>")
        return "".join(parts)
    steps = ", ".join(f"{s.get('weight')}%" + (" (mirror)" if s.get("mirror") else "")
                      for s in rec.steps)
    parts.append(table(["field", "value"], [
        ["status", badge(rec.status)], ["strategy", e(rec.strategy)],
        ["from", f"{e(rec.stable_model)} (Lambda version {e(rec.stable)})"],
        ["to", f"{e(rec.candidate_model)} (Lambda version {e(rec.candidate)})"],
        ["steps", e(steps)], ["current step", f"{rec.step + 1} of {len(rec.steps)}"],
        ["traffic on new version", f"{rec.weight}%"],
        ["started", e(when(rec.started_at))], ["updated", e(when(rec.updated_at))],
        ["reason", e(rec.reason)]]))
    parts.append("<h4>Rollout history</h4>" + table(
        ["time", "event", "step", "detail"],
        ([e(when(h.get("time"))), e(h.get("event")), e(h.get("step")),
          e(h.get("reason") or h.get("note") or _brief(
              {k: v for k, v in h.items() if k not in ("time", "event", "step")}))]
         for h in reversed(rec.history)), empty="no events"))
    return "".join(parts)


def _brief(value: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "—"


def model(m: ModelView) -> str:
    rows = []
    for meta in reversed(m.versions):
        version = str(meta["version"])
        lineage = meta.get("lineage") or {}
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in sorted((meta.get("metrics") or
                                                                  {}).items()))
        pointing = ", ".join(k for k, v in m.aliases.items() if v == version)
        rows.append([f"<b>{e(version)}</b>", e(meta.get("created_at")), e(meta.get("author")),
                     e(metrics), e(pointing), e(lineage.get("parent")),
                     f"<code>{e(str(meta.get('sha256', ''))[:12])}</code>",
                     f"<code>{e(str(lineage.get('data') or '')[:12])}</code>",
                     f"<code>{e(str(lineage.get('code') or '')[:12])}</code>",
                     str(len(m.approvals.get(version, [])))])
    description = m.versions[-1].get("description") if m.versions else None
    parts = [f'<h3 id="{anchor("model", m.name)}">Model {e(m.name)}</h3>',
             f"<p>{e(description)}</p>" if description else "",
             "<h4>Versions</h4>" + table(
                 ["version", "created", "author", "metrics", "aliases", "parent", "sha256",
                  "data", "code", "approvals"], rows, empty="no registered version")]
    parts.append("<h4>Aliases</h4>" + table(
        ["alias", "version"], ([e(k), e(v)] for k, v in m.aliases.items()),
        empty="no alias set"))
    parts.append("<h4>Alias history</h4>" + table(
        ["time", "alias", "action", "from", "to", "by", "reason"],
        ([e(h.get("changed_at")), e(h.get("alias")), e(h.get("action")), e(h.get("previous")),
          e(h.get("version")), e(h.get("changed_by")), e(h.get("reason"))]
         for h in reversed(m.history)), empty="no alias changes"))
    parts.append("<h4>Lineage</h4>" + _lineage(m))
    approvals = [(v, rec) for v, recs in m.approvals.items() for rec in recs]
    parts.append("<h4>Approvals</h4>" + table(
        ["version", "by", "for alias", "time", "note"],
        ([e(v), e(r.get("by")), e(r.get("alias") or "any"), e(r.get("time")), e(r.get("note"))]
         for v, r in approvals), empty="no approvals"))
    if m.cards:
        parts.append("<h4>Model cards</h4>" + "".join(
            f'<details id="{anchor("card", f"{m.name}@{v}")}"><summary>Model card of '
            f'{e(m.name)}@{e(v)}</summary><div class="card">{_demote(body)}</div></details>'
            for v, body in reversed(m.cards.items())))
    return "".join(parts)


def _demote(card_body: str) -> str:
    """A card's own headings, a few levels down inside the page (the registry escaped it)."""
    return re.sub(r"<(/?)h2>", r"<\1h5>", re.sub(r"<(/?)h1>", r"<\1h4>", card_body))


def _lineage(m: ModelView) -> str:
    """Each version with its parent chain, as nested lists from the roots."""
    children: dict[str | None, list[str]] = {}
    known = {str(meta["version"]) for meta in m.versions}
    for meta in m.versions:
        parent = (meta.get("lineage") or {}).get("parent")
        children.setdefault(parent if parent in known else None, []).append(str(meta["version"]))
    by_version = {str(meta["version"]): meta for meta in m.versions}

    def tree(parent: str | None, depth: int) -> str:
        items = children.get(parent, [])
        if not items or depth > 50:
            return ""
        out = []
        for v in items:
            meta = by_version[v]
            data = (meta.get("data") or {})
            out.append(f"<li><b>{e(v)}</b> <span class=\"muted\">data "
                       f"{e(str(data.get('sha256') or '')[:12])}, code "
                       f"{e(str(((meta.get('code') or {}).get('commit')) or '')[:12])}</span>"
                       f"{tree(v, depth + 1)}</li>")
        return "<ul>" + "".join(out) + "</ul>"

    return tree(None, 0) or '<p class="muted">no versions</p>'


def monitor(data: SiteData, mon: MonitorView) -> str:
    watched = any(ep.name == mon.endpoint for ep in data.endpoints)
    target = a(anchor("endpoint", mon.endpoint), e(mon.endpoint)) if watched else e(mon.endpoint)
    parts = [f'<h3 id="{anchor("monitor", mon.name)}">Monitor {e(mon.name)}</h3>',
             f"<p>Watches endpoint {target} on schedule <code>{e(mon.schedule)}</code>; "
             f"{len(mon.runs)} run(s).</p>"]
    if mon.runs:
        last = mon.runs[-1]
        report = last.report or {}
        parts.append(f"<h4>Latest: {badge(last.status)} {e(report.get('subject'))}</h4>")
        if report.get("summary"):
            parts.append(f"<p>{e(report['summary'])} <span class=\"muted\">run "
                         f"{e(last.run_id)}; report <code>{e(last.report_key)}</code></span></p>")
        parts.append(f'<h4>History</h4><div>{status_strip(mon.runs)}</div>'
                     '<div class="plots">' + "".join(figure_charts(mon.runs)) + "</div>")
        latest_charts = report.get("charts") or {}
        if latest_charts:
            parts.append("<h4>Control charts of the latest run</h4><div class=\"plots\">" +
                         "".join(svg_chart(f"{fig} · {kind}", c)
                                 for fig, kinds in sorted(latest_charts.items())
                                 for kind, c in sorted(kinds.items())) + "</div>")
    rows = []
    for run in reversed(mon.runs[-RUNS_SHOWN:]):
        rows.append([e(run.run_id), e(run.time),
                     f"{e(run.window.get('start'))} .. {e(run.window.get('end'))}",
                     badge(run.status), fmt(run.figures.get("rows")),
                     fmt(run.figures.get("drift_share")), e((run.report or {}).get("summary"))])
    shown = f" (newest {RUNS_SHOWN})" if len(mon.runs) > RUNS_SHOWN else ""
    parts.append(f"<h4>Runs{shown}</h4>" + table(
        ["run", "time", "window", "verdict", "rows", "drift share", "summary"], rows,
        empty="no runs yet: `mlops monitor run " + mon.name + "`"))
    return "".join(parts)


def audit(records: Sequence[dict[str, Any]]) -> str:
    """The audit records, newest first, with a filter box."""
    rows = []
    for rec in reversed(records):
        rows.append([e(rec.get("time")), e(rec.get("actor")), e(rec.get("command")),
                     e(rec.get("action")), e(rec.get("resource")),
                     change(rec.get("before"), rec.get("after")),
                     badge(str(rec.get("outcome") or "")) + (
                         f' <span class="muted">{e(rec.get("error"))}</span>'
                         if rec.get("error") else "")])
    return (f"<p>{len(records)} record(s), newest first: every deploy action and every "
            "registry change (registration, approval, promotion, rollback), rollouts and "
            "monitor actions.</p>"
            '<input class="filter" data-table="audit" placeholder="filter rows…" '
            'aria-label="filter">' + table(
                ["time", "actor", "command", "action", "resource", "before → after",
                 "outcome"], rows, ident="audit", empty="no audit records",
                widths=AUDIT_WIDTHS))


def render_page(data: SiteData) -> str:
    """The whole dashboard as one HTML document."""
    nav = " ".join([f'<span class="project">{e(data.project)}/{e(data.stage)}</span>',
                    a("monitors", "Monitors"), a("endpoints", "Endpoints"),
                    a("models", "Models"), a("rollouts", "Rollouts"), a("audit-log", "Audit")])
    read = (f"; models, endpoints and rollouts as read at {e(data.read_at)}"
            if data.read_at and data.read_at != data.generated_at else "")
    body = [overview(data)]
    if data.endpoints:
        body.append("<h2>Endpoint details</h2>" +
                    "".join(endpoint(data, ep) for ep in data.endpoints))
    if data.models:
        body.append("<h2>Model details</h2>" + "".join(model(m) for m in data.models))
    if data.monitors:
        body.append("<h2>Monitor details</h2>" +
                    "".join(monitor(data, mon) for mon in data.monitors))
    body.append('<h2 id="audit-log">Audit log</h2>' + audit(data.audit))
    title = f"{data.project} dashboard"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)} · {html.escape(data.stage)}</title><style>{CSS}</style>"
            f"</head><body><header>{nav}</header><main><h1>{e(title)}</h1>{''.join(body)}"
            f"<p class=\"muted\">Built by {e(data.built_by)} at {e(data.generated_at)}{read}, "
            f"from s3://{e(data.bucket)} ({e(data.target)}, {e(data.region)}, account "
            f"{e(data.account)}).</p></main><script>{FILTER_JS}</script></body></html>\n")


def render_site(data: SiteData) -> dict[str, str]:
    """Every file of the site: relative path → HTML (one page)."""
    return {INDEX: render_page(data)}
