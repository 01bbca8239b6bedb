"""Render a report dict as a self-contained HTML page (inline SVG plots, no external assets)
and as plain text (the e-mail's text alternative). Plots are drawn by ``framework.monitoring
.plots``; ``render_html`` takes how to show each (inline SVG by default; the e-mail shows PNG
images instead, see ``framework.monitoring.mailer``).

Templates are ``string.Template`` files in ``infra/templates`` (the Lambda has no jinja2); the
template text is packaged next to this module's caller through ``TEMPLATE`` fallbacks.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from framework.monitoring import plots

TEMPLATES = Path(__file__).resolve().parents[2] / "infra" / "templates"
Draw = Callable[[plots.Figure], str]  # a figure -> the HTML that shows it
STATUS_LABEL = {"ok": "OK", "drift": "DRIFT", "degraded": "DEGRADED", "no_data": "NO DATA",
                "failure": "FAILURE"}


def _template() -> Template:
    for path in (TEMPLATES / "report.html", Path(__file__).with_name("report.html")):
        if path.exists():
            return Template(path.read_text())
    return Template("<!DOCTYPE html><html><head><meta charset='utf-8'><title>$title</title>"
                    "</head><body><h1>$title</h1><p>$status_label: $summary</p>$sections"
                    "</body></html>")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


# ---------------------------------------------------------------- plots


def svg_distribution(name: str, plot: Mapping[str, Any]) -> str:
    """Reference (grey) vs current (red) shares, as overlaid bars."""
    return plots.to_svg(plots.distribution(name, plot))


def svg_chart(name: str, chart: Mapping[str, Any]) -> str:
    """A chart statistic over runs with its control limits; flagged points drawn in red."""
    fig = plots.chart(name, chart)
    return "" if fig is None else plots.to_svg(fig)


# ---------------------------------------------------------------- sections


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]],
           flags: Sequence[bool] | None = None) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="flag"' if flags and flags[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def sections(report: Mapping[str, Any], draw: Draw = plots.to_svg) -> list[tuple[str, str]]:
    """(heading, HTML) pairs in reading order."""
    out: list[tuple[str, str]] = []
    if report.get("error"):
        out.append(("What went wrong", f"<pre>{html.escape(str(report['error']))}</pre>"))
    issues = report.get("issues") or []
    if report.get("insufficient"):
        issues = [{"message": report["insufficient"]}, *issues]
    if issues:
        out.append(("Data problems", "<ul>" + "".join(
            f"<li>{html.escape(str(i['message']))}</li>" for i in issues) + "</ul>"))
    d = report.get("drift") or {}
    if d.get("tests"):
        tests = sorted(d["tests"], key=lambda t: (not t["drifted"], t["feature"]))
        rows = [[html.escape(t["feature"]), t["test"], _fmt(t["statistic"]), _fmt(t["p_value"]),
                 _fmt(t.get("p_adjusted")), _fmt(t["threshold"]), t["method"],
                 "<b>drift</b>" if t["drifted"] else "ok"] for t in tests]
        out.append((f"Data drift: {len(d['drifted'])} of {d['tested']} features "
                    f"({d['correction']}, alpha {d['alpha']})",
                    _table(["feature", "test", "statistic", "p", "p adjusted", "threshold",
                            "on", "verdict"], rows, [t["drifted"] for t in tests])))
    dist = report.get("distributions") or {}
    if dist:
        out.append(("Reference vs current, drifted features", '<div class="plots">' + "".join(
            draw(plots.distribution(name, plot)) for name, plot in dist.items()) + "</div>"))
    pd = report.get("prediction_drift")
    if pd:
        text = (html.escape(pd.get("message", "")) if pd.get("baseline") == "created" else
                f"{pd['test']} statistic {_fmt(pd['statistic'])}, p {_fmt(pd['p_value'])}: "
                f"{'<b>drift</b>' if pd['drifted'] else 'no drift'}")
        plot = draw(plots.distribution("predictions", pd["plot"])) if pd.get("plot") else ""
        out.append(("Prediction drift", f"<p>{text}</p>{plot}"))
    perf = report.get("performance")
    if perf:
        rows = [["all", str(perf["labelled"])] + [_fmt(v) for v in perf["overall"].values()]]
        rows += [[html.escape(v), str(m.get("labelled"))] +
                 [_fmt(x) for k, x in m.items() if k != "labelled"]
                 for v, m in perf.get("by_version", {}).items()]
        msg = f"<p>{html.escape(perf['message'])}</p>" if perf.get("message") else ""
        out.append((f"Performance ({perf['metric']} = {_fmt(perf.get('value'))}, bounds "
                    f"{_fmt(perf.get('min'))}..{_fmt(perf.get('max'))})", msg + _table(
                        ["version", "labelled", *perf["overall"].keys()], rows)))
    alarms = report.get("alarms") or []
    if alarms:
        out.append(("Alarms", _table(["figure", "rule", "value", "state"], [
            [html.escape(a["figure"]), html.escape(a["rule"]), _fmt(a["value"]),
             "<b>ALARM</b>" if a["breached"] else ("no data" if a["value"] is None else "ok")]
            for a in alarms], [a["breached"] for a in alarms])))
    charts = report.get("charts") or {}
    if charts:
        figures = [plots.chart(f"{fig} · {kind}", c) for fig, kinds in charts.items()
                   for kind, c in kinds.items()]
        out.append(("Control charts (history of each figure)", '<div class="plots">' + "".join(
            draw(f) for f in figures if f is not None) + "</div>"))
    data = report.get("data") or {}
    if data:
        out.append(("Traffic", _table(["figure", "value"], [
            [html.escape(k), _fmt(v) if not isinstance(v, dict) else html.escape(str(v))]
            for k, v in data.items()])))
    actions = report.get("actions") or []
    if actions:
        out.append(("Actions", "<ul>" + "".join(
            f"<li>{html.escape(a['action'])}: {html.escape(a['outcome'])}</li>"
            for a in actions) + "</ul>"))
    link = report.get("dashboard") or {}
    if link.get("url"):  # presigned: only the e-mail carries it (see framework.dashboard)
        out.append(("Team dashboard", f'<p><a href="{html.escape(link["url"])}">Open the '
                    f'dashboard</a> (this link works until {html.escape(link["expires_at"])} '
                    "at the latest; `mlops dashboard --url` prints a fresh one)</p>"))
    return out


def render_html(report: Mapping[str, Any], draw: Draw = plots.to_svg) -> str:
    """The report page; ``draw`` shows each plot (inline SVG unless told otherwise)."""
    status = str(report.get("status", "failure"))
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}"
                   for h, content in sections(report, draw))
    window = report.get("window") or {}
    return _template().safe_substitute(
        title=html.escape(str(report.get("subject", "mlops monitoring report"))),
        status=status, status_label=STATUS_LABEL.get(status, status.upper()),
        summary=html.escape(str(report.get("summary", ""))),
        monitor=html.escape(str(report.get("monitor", ""))),
        endpoint=html.escape(str(report.get("endpoint", ""))),
        model=html.escape(str(report.get("model", ""))),
        version=html.escape(str(report.get("version", ""))),
        window=html.escape(f"{window.get('start', '?')} .. {window.get('end', '?')}"),
        run_id=html.escape(str(report.get("run_id", ""))),
        generated_at=html.escape(str(report.get("generated_at", ""))), sections=body)


def render_text(report: Mapping[str, Any]) -> str:
    """The verdict and the findings as plain text (what is attached is the mailer's to say)."""
    lines = [str(report.get("subject", "")), "", str(report.get("summary", "")), ""]
    window = report.get("window") or {}
    lines.append(f"monitor {report.get('monitor')} / endpoint {report.get('endpoint')} / model "
                 f"{report.get('model')}@{report.get('version')}")
    lines.append(f"window {window.get('start')} .. {window.get('end')}, run {report.get('run_id')}")
    if report.get("error"):
        lines += ["", f"Error: {report['error']}"]
    if report.get("insufficient"):
        lines += ["", str(report["insufficient"])]
    for issue in report.get("issues") or []:
        lines.append(f"- {issue['message']}")
    d = report.get("drift") or {}
    for t in d.get("tests", []):
        if t["drifted"]:
            lines.append(f"DRIFT {t['feature']}: {t['test']} statistic {_fmt(t['statistic'])} "
                         f"p_adjusted {_fmt(t.get('p_adjusted'))}")
    perf = report.get("performance")
    if perf:
        lines.append(f"performance {perf['metric']} = {_fmt(perf.get('value'))} "
                     f"({perf['labelled']} labelled)")
    for a in report.get("alarms") or []:
        if a["breached"]:
            lines.append(f"ALARM {a['figure']} {_fmt(a['value'])} breaks {a['rule']}")
    for a in report.get("actions") or []:
        lines.append(f"action {a['action']}: {a['outcome']}")
    link = report.get("dashboard") or {}
    if link.get("url"):
        lines += ["", f"Team dashboard (until {link['expires_at']} at the latest): {link['url']}"]
    return "\n".join(lines) + "\n"
