"""Pages of the dashboard from ``SiteData``: pure, deterministic for the same data.

Every page is one self-contained HTML file: inline CSS, charts as inline SVG (the monitoring
report's ``svg_chart`` over ``framework.monitoring.charts``), no script or style from the
network; the audit page has a few lines of inline JS to filter its table (it reads fine
without). Every value is escaped; every internal link is relative, so the site works from a
folder (``file://``) and from the registry bucket alike.
"""

from __future__ import annotations

import html
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from framework.dashboard.collect import EndpointView, ModelView, MonitorView, RunView, SiteData
from framework.monitoring import charts
from framework.monitoring.report import STATUS_LABEL, svg_chart

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
STATUS_COLOUR = {"ok": "#2e7d32", "drift": "#c62828", "degraded": "#ef6c00",
                 "no_data": "#616161", "failure": "#6a1b9a", "running": "#f9a825",
                 "completed": "#2e7d32", "rolled_back": "#c62828", "aborted": "#616161",
                 "succeeded": "#2e7d32", "failed": "#c62828"}
CHART_FIGURES = ("drift_share", "drifted_features", "rows", "error_rate", "latency_p99_ms",
                 "prediction_drift", "accuracy", "precision", "recall", "f1", "roc_auc", "mae",
                 "rmse", "r2")
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222}
header{background:#263238;color:#fff;padding:10px 24px}
header a{color:#cfd8dc;margin-right:16px;text-decoration:none}header a:hover{color:#fff}
header .project{font-weight:700;color:#fff;margin-right:24px}
main{padding:8px 24px 32px;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#fafafa}code{font-size:12px}
.badge{display:inline-block;padding:1px 7px;border-radius:4px;color:#fff;font-weight:600;
font-size:12px}
.muted{color:#777;font-size:12px}.plots svg{margin:4px;border:1px solid #eee;vertical-align:top}
.warn{background:#fff8e1;border:1px solid #ffe082;padding:6px 10px}
input.filter{margin:6px 0;padding:4px;width:20em}
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
    """Escaped text of any value; None shows as a dash."""
    return "–" if value is None or value == "" else html.escape(str(value))


def safe(part: str) -> str:
    """A file-name-safe form of a name, version or run id (stable, collision-free)."""
    if SAFE.match(part) and ".." not in part:
        return part
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._")[:60] or "x"
    return f"{cleaned}-{sha256(part.encode()).hexdigest()[:8]}"


# -- paths of the pages (relative to the site root) ----------------------------------------

INDEX, AUDIT = "index.html", "audit.html"


def model_page(name: str) -> str:
    return f"models/{safe(name)}.html"


def card_page(name: str, version: str) -> str:
    return f"models/{safe(name)}/{safe(version)}-card.html"


def endpoint_page(name: str) -> str:
    return f"endpoints/{safe(name)}.html"


def monitor_page(name: str) -> str:
    return f"monitors/{safe(name)}.html"


def report_page(monitor: str, run_id: str) -> str:
    return f"monitors/{safe(monitor)}/{safe(run_id)}.html"


def href(src: str, dest: str) -> str:
    rel = posixpath.relpath(dest, posixpath.dirname(src) or ".")
    return urllib.parse.quote(rel)


def a(src: str, dest: str, text: str) -> str:
    return f'<a href="{html.escape(href(src, dest))}">{text}</a>'


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
          empty: str = "none yet") -> str:
    body = "".join("<tr class=\"row\">" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                   for r in rows)
    if not body:
        return f'<p class="muted">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    attr = f' id="{ident}"' if ident else ""
    return f"<table{attr}><tr>{head}</tr>{body}</table>"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return e(value)


def page(path: str, title: str, body: str, data: SiteData, *, script: str = "") -> str:
    nav = " ".join([
        f'<span class="project">{e(data.project)}/{e(data.stage)}</span>',
        a(path, INDEX, "Overview"),
        *(a(path, model_page(m.name), f"model {e(m.name)}") for m in data.models),
        *(a(path, monitor_page(m.name), f"monitor {e(m.name)}") for m in data.monitors),
        a(path, AUDIT, "Audit")])
    js = f"<script>{script}</script>" if script else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{e(title)} · {e(data.project)} dashboard</title><style>{CSS}</style>"
            f"</head><body><header>{nav}</header><main><h1>{e(title)}</h1>{body}"
            f"<p class=\"muted\">Built by <code>mlops dashboard</code> at {e(data.generated_at)}"
            f" from s3://{e(data.bucket)} ({e(data.target)}, {e(data.region)}, account "
            f"{e(data.account)}).</p></main>{js}</body></html>\n")


# -- charts --------------------------------------------------------------------------------


def status_strip(runs: Sequence[RunView], width: int = 460) -> str:
    """One coloured square per run, oldest left; hover shows run and verdict."""
    if not runs:
        return ""
    size = max(4.0, min(16.0, (width - 8) / len(runs)))
    cells = "".join(
        f'<rect x="{4 + i * size:.1f}" y="20" width="{size - 1:.1f}" height="16" '
        f'fill="{STATUS_COLOUR.get(r.status, "#455a64")}"><title>{e(r.run_id)}: '
        f'{e(r.status)}</title></rect>' for i, r in enumerate(runs))
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


# -- pages ---------------------------------------------------------------------------------


def _endpoint_rows(src: str, data: SiteData) -> list[list[str]]:
    rows = []
    for ep in data.endpoints:
        rec = ep.rollout
        rows.append([a(src, endpoint_page(ep.name), e(ep.name)), f"<code>{e(ep.route)}</code>",
                     f"<code>{e(ep.url)}</code>" if ep.url else "not deployed",
                     e(ep.model), e(ep.model_version), e(ep.lambda_version),
                     badge(rec.status) if rec else "–"])
    return rows


def index(data: SiteData) -> str:
    src = INDEX
    parts = [f'<p class="warn">{e(w)}</p>' for w in data.warnings]
    parts.append(f"<p>Project <b>{e(data.project)}</b>, stage <b>{e(data.stage)}</b> on "
                 f"<b>{e(data.target)}</b> ({e(data.region)}); registry "
                 f"<code>s3://{e(data.bucket)}</code>.</p>")
    parts.append("<h2>Endpoints</h2>" + table(
        ["endpoint", "route", "URL", "model", "serving version", "Lambda version", "rollout"],
        _endpoint_rows(src, data), empty="no endpoints declared"))
    parts.append("<h2>Models</h2>" + table(
        ["model", "versions", "latest", "aliases", "declared in mlops.yaml"],
        ([a(src, model_page(m.name), e(m.name)), str(len(m.versions)),
          e(m.versions[-1]["version"]) if m.versions else "–",
          e(", ".join(f"{k} → {v}" for k, v in m.aliases.items())), e(m.declared)]
         for m in data.models), empty="no models registered"))
    mon_rows = []
    for mon in data.monitors:
        last = mon.runs[-1] if mon.runs else None
        summary = (last.report or {}).get("summary") if last else None
        mon_rows.append([a(src, monitor_page(mon.name), e(mon.name)), e(mon.endpoint),
                         badge(last.status) if last else "no runs yet",
                         e(summary), e(last.time) if last else "–", str(len(mon.runs))])
    parts.append("<h2>Monitors: latest verdicts</h2>" + table(
        ["monitor", "endpoint", "latest verdict", "summary", "run at", "runs"], mon_rows,
        empty="no monitors declared"))
    strips = [status_strip(m.runs) for m in data.monitors if m.runs]
    if strips:
        parts.append('<div class="plots">' + "".join(strips) + "</div>")
    rollouts = sorted((ep.rollout for ep in data.endpoints if ep.rollout),
                      key=lambda r: r.updated_at, reverse=True)
    parts.append("<h2>Latest rollouts</h2>" + table(
        ["endpoint", "strategy", "from → to", "status", "traffic on new", "updated", "reason"],
        ([a(src, endpoint_page(r.endpoint), e(r.endpoint)), e(r.strategy),
          f"{e(r.stable_model)} → {e(r.candidate_model)}", badge(r.status), f"{r.weight}%",
          e(when(r.updated_at)), e(r.reason)] for r in rollouts),
        empty="no rollouts yet (first deploys go live directly)"))
    recent = list(reversed(data.audit[-15:]))
    parts.append("<h2>Recent changes</h2>" + _audit_table(recent) +
                 f"<p>{a(src, AUDIT, f'Full audit log ({len(data.audit)} records)')}</p>")
    return page(src, f"{data.project} dashboard", "".join(parts), data)


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "—"
    return "—" if value is None else str(value)


def _audit_table(records: Sequence[dict[str, Any]], ident: str = "") -> str:
    rows = []
    for rec in records:
        change = ""
        if rec.get("before") is not None or rec.get("after") is not None:
            change = f"{_brief(rec.get('before'))} → {_brief(rec.get('after'))}"
        rows.append([e(rec.get("time")), e(rec.get("actor")), e(rec.get("command")),
                     e(rec.get("action")), e(rec.get("resource")), e(change),
                     badge(str(rec.get("outcome") or "")) + (
                         f' <span class="muted">{e(rec.get("error"))}</span>'
                         if rec.get("error") else "")])
    return table(["time", "actor", "command", "action", "resource", "before → after",
                  "outcome"], rows, ident=ident, empty="no audit records")


def audit_page(data: SiteData) -> str:
    body = (f"<p>{len(data.audit)} record(s), newest first: every deploy action and every "
            "registry change (registration, approval, promotion, rollback), rollouts and "
            "monitor actions.</p>"
            '<input class="filter" data-table="audit" placeholder="filter rows…" '
            'aria-label="filter">' + _audit_table(list(reversed(data.audit)), "audit"))
    return page(AUDIT, "Audit log", body, data, script=FILTER_JS)


def model(data: SiteData, m: ModelView) -> str:
    src = model_page(m.name)
    rows = []
    for meta in reversed(m.versions):
        version = str(meta["version"])
        lineage = meta.get("lineage") or {}
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in sorted((meta.get("metrics") or
                                                                  {}).items()))
        pointing = ", ".join(k for k, v in m.aliases.items() if v == version)
        rows.append([f'<b id="v-{e(safe(version))}">{e(version)}</b>',
                     e(meta.get("created_at")), e(meta.get("author")), e(metrics),
                     e(pointing), e(lineage.get("parent")),
                     f"<code>{e(str(meta.get('sha256', ''))[:12])}</code>",
                     f"<code>{e(str(lineage.get('data') or '')[:12])}</code>",
                     f"<code>{e(str(lineage.get('code') or '')[:12])}</code>",
                     str(len(m.approvals.get(version, []))),
                     a(src, card_page(m.name, version), "model card")])
    parts = [f"<p>{e(m.versions[-1].get('description')) if m.versions else ''}</p>",
             "<h2>Versions</h2>" + table(
                 ["version", "created", "author", "metrics", "aliases", "parent", "sha256",
                  "data", "code", "approvals", "card"], rows, empty="no registered version")]
    parts.append("<h2>Aliases</h2>" + table(
        ["alias", "version"], ([e(k), e(v)] for k, v in m.aliases.items()),
        empty="no alias set"))
    parts.append("<h2>Alias history</h2>" + table(
        ["time", "alias", "action", "from", "to", "by", "reason"],
        ([e(h.get("changed_at")), e(h.get("alias")), e(h.get("action")), e(h.get("previous")),
          e(h.get("version")), e(h.get("changed_by")), e(h.get("reason"))]
         for h in reversed(m.history)), empty="no alias changes"))
    parts.append("<h2>Lineage</h2>" + _lineage(m))
    approvals = [(v, rec) for v, recs in m.approvals.items() for rec in recs]
    parts.append("<h2>Approvals</h2>" + table(
        ["version", "by", "for alias", "time", "note"],
        ([e(v), e(r.get("by")), e(r.get("alias") or "any"), e(r.get("time")), e(r.get("note"))]
         for v, r in approvals), empty="no approvals"))
    return page(src, f"Model {m.name}", "".join(parts), data)


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


def endpoint(data: SiteData, ep: EndpointView) -> str:
    src = endpoint_page(ep.name)
    parts = [table(["field", "value"], [
        ["route", f"<code>{e(ep.route)}</code>"],
        ["URL", f"<code>{e(ep.url)}</code>" if ep.url else "not deployed"],
        ["model", e(ep.model)], ["serving model version", e(ep.model_version)],
        ["Lambda version", e(ep.lambda_version)]])]
    models = {m.name for m in data.models}
    name = ep.model.split("@", 1)[0]
    if name in models:
        parts.append(f"<p>{a(src, model_page(name), f'Model {e(name)}')}</p>")
    monitors = [m for m in data.monitors if m.endpoint == ep.name]
    if monitors:
        parts.append("<p>Watched by " + ", ".join(
            a(src, monitor_page(m.name), e(m.name)) for m in monitors) + "</p>")
    rec = ep.rollout
    parts.append("<h2>Rollout</h2>")
    if rec is None:
        parts.append('<p class="muted">no rollout recorded: the first deploy went live '
                     "directly, or the strategy is all_at_once</p>")
    else:
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
        parts.append("<h2>Rollout history</h2>" + table(
            ["time", "event", "step", "detail"],
            ([e(when(h.get("time"))), e(h.get("event")), e(h.get("step")),
              e(h.get("reason") or h.get("note") or _brief(
                  {k: v for k, v in h.items() if k not in ("time", "event", "step")}))]
             for h in reversed(rec.history)), empty="no events"))
    return page(src, f"Endpoint {ep.name}", "".join(parts), data)


def monitor(data: SiteData, mon: MonitorView, reports: set[str]) -> str:
    src = monitor_page(mon.name)
    parts = [f"<p>Watches endpoint {a(src, endpoint_page(mon.endpoint), e(mon.endpoint))} on "
             f"schedule <code>{e(mon.schedule)}</code>; {len(mon.runs)} run(s).</p>"
             if any(ep.name == mon.endpoint for ep in data.endpoints) else
             f"<p>Watches endpoint {e(mon.endpoint)}; {len(mon.runs)} run(s).</p>"]
    if mon.runs:
        last = mon.runs[-1]
        parts.append(f"<h2>Latest: {badge(last.status)} {e((last.report or {}).get('subject'))}"
                     "</h2>")
        if report_page(mon.name, last.run_id) in reports:
            parts.append(f"<p>{a(src, report_page(mon.name, last.run_id), 'Open the report')}"
                         "</p>")
        parts.append(f'<h2>History</h2><div>{status_strip(mon.runs)}</div>'
                     '<div class="plots">' + "".join(figure_charts(mon.runs)) + "</div>")
        latest_charts = (last.report or {}).get("charts") or {}
        if latest_charts:
            parts.append("<h2>Control charts of the latest run</h2><div class=\"plots\">" +
                         "".join(svg_chart(f"{fig} · {kind}", c)
                                 for fig, kinds in sorted(latest_charts.items())
                                 for kind, c in sorted(kinds.items())) + "</div>")
    rows = []
    for run in reversed(mon.runs):
        target = report_page(mon.name, run.run_id)
        share = run.figures.get("drift_share")
        rows.append([a(src, target, e(run.run_id)) if target in reports else e(run.run_id),
                     e(run.time), f"{e(run.window.get('start'))} .. {e(run.window.get('end'))}",
                     badge(run.status), fmt(run.figures.get("rows")), fmt(share),
                     e((run.report or {}).get("summary"))])
    parts.append("<h2>Runs</h2>" + table(
        ["run", "time", "window", "verdict", "rows", "drift share", "summary"], rows,
        empty="no runs yet: `mlops monitor run " + mon.name + "`"))
    return page(src, f"Monitor {mon.name}", "".join(parts), data)


def stored_report(data: SiteData, mon: MonitorView, run: RunView) -> str:
    """The report.html the monitor stored, with a bar linking back into the dashboard."""
    assert run.html is not None
    src = report_page(mon.name, run.run_id)
    text = run.html.decode("utf-8", errors="replace")
    bar = (f'<p style="font-family:sans-serif;font-size:13px">'
           f'{a(src, monitor_page(mon.name), f"← monitor {e(mon.name)}")} · '
           f'{a(src, INDEX, "dashboard")}</p>')
    at = re.search(r"<body[^>]*>", text)
    return text[:at.end()] + bar + text[at.end():] if at else bar + text


def render_site(data: SiteData) -> dict[str, str]:
    """Every page of the site: relative path → HTML."""
    pages: dict[str, str] = {}
    for m in data.models:
        pages[model_page(m.name)] = model(data, m)
        for version, card_html in m.cards.items():
            pages[card_page(m.name, version)] = _card(data, m.name, version, card_html)
    for ep in data.endpoints:
        pages[endpoint_page(ep.name)] = endpoint(data, ep)
    for mon in data.monitors:
        for run in mon.runs:
            if run.html is not None:
                pages[report_page(mon.name, run.run_id)] = stored_report(data, mon, run)
    reports = set(pages)
    for mon in data.monitors:
        pages[monitor_page(mon.name)] = monitor(data, mon, reports)
    pages[AUDIT] = audit_page(data)
    pages[INDEX] = index(data)
    return dict(sorted(pages.items()))


def _card(data: SiteData, name: str, version: str, card_html: str) -> str:
    src = card_page(name, version)
    bar = (f'<p style="font-size:13px">{a(src, model_page(name), f"← model {e(name)}")} · '
           f'{a(src, INDEX, "dashboard")}</p>')
    at = re.search(r"<body[^>]*>", card_html)
    return card_html[:at.end()] + bar + card_html[at.end():] if at else bar + card_html
