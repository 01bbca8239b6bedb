"""Render a report dict as a self-contained HTML page (inline SVG plots, no external assets)
and as plain text (the e-mail's text alternative).

Templates are ``string.Template`` files in ``infra/templates`` (the Lambda has no jinja2); the
template text is packaged next to this module's caller through ``TEMPLATE`` fallbacks.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

TEMPLATES = Path(__file__).resolve().parents[2] / "infra" / "templates"
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


# ---------------------------------------------------------------- SVG plots


def svg_distribution(name: str, plot: Mapping[str, Any], width: int = 300,
                     height: int = 160) -> str:
    """Reference (grey) vs current (red) shares, as overlaid bars."""
    ref, cur = list(plot["reference"]), list(plot["current"])
    n = max(len(ref), 1)
    top = max(ref + cur + [1e-9])
    pad, w, h = 24, width - 30, height - 44
    bw = w / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(name)}">',
             f'<text x="4" y="14" font-size="12" font-weight="600">{html.escape(name)}</text>']
    for i, (a, b) in enumerate(zip(ref, cur, strict=False)):
        x = pad + i * bw
        for value, colour, off in ((a, "#9e9e9e", 0.0), (b, "#e53935", 0.35)):
            bh = value / top * h
            parts.append(f'<rect x="{x + off * bw:.1f}" y="{20 + h - bh:.1f}" '
                         f'width="{max(bw * 0.6, 0.8):.1f}" height="{bh:.1f}" fill="{colour}" '
                         'fill-opacity="0.75"/>')
    labels = plot.get("labels")
    if plot.get("kind") == "numeric":
        edges = plot["edges"]
        lo_hi = (f'<text x="{pad}" y="{height - 10}" font-size="10">{edges[0]:.4g}</text>'
                 f'<text x="{pad + w}" y="{height - 10}" font-size="10" text-anchor="end">'
                 f'{edges[-1]:.4g}</text>')
        parts.append(lo_hi)
    elif labels:
        parts.append(f'<text x="{pad}" y="{height - 10}" font-size="10">'
                     f'{html.escape(", ".join(map(str, labels[:6])))}</text>')
    parts.append(f'<text x="{width - 4}" y="14" font-size="10" text-anchor="end">'
                 '<tspan fill="#757575">■ reference</tspan> <tspan fill="#e53935">■ current'
                 '</tspan></text></svg>')
    return "".join(parts)


def svg_chart(name: str, chart: Mapping[str, Any], width: int = 460, height: int = 170) -> str:
    """A chart statistic over runs with its control limits; flagged points drawn in red."""
    stat: Sequence[float] = chart["statistic"]
    upper: Sequence[float] = chart["upper"]
    lower: Sequence[float] = chart["lower"]
    flagged = set(chart.get("flagged", []))
    n = len(stat)
    if n == 0:
        return ""
    allv = [v for v in list(stat) + list(upper) + list(lower) if v is not None]
    lo, hi = min(allv), max(allv)
    if hi - lo < 1e-12:
        hi, lo = hi + 1.0, lo - 1.0
    pad_l, pad_t, w, h = 40, 20, width - 50, height - 40

    def xy(i: int, v: float) -> str:
        x = pad_l + (i / max(n - 1, 1)) * w
        y = pad_t + (hi - v) / (hi - lo) * h
        return f"{x:.1f},{y:.1f}"

    def line(values: Sequence[float], colour: str, dash: str = "") -> str:
        pts = " ".join(xy(i, v) for i, v in enumerate(values))
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"{extra}/>'

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(name)}">',
             f'<text x="4" y="14" font-size="12" font-weight="600">{html.escape(name)}</text>',
             f'<text x="4" y="{pad_t + 8}" font-size="9">{hi:.3g}</text>',
             f'<text x="4" y="{pad_t + h}" font-size="9">{lo:.3g}</text>',
             line(upper, "#ef6c00", "4 3"), line(lower, "#ef6c00", "4 3"),
             line(stat, "#1565c0")]
    for i, v in enumerate(stat):
        x, y = xy(i, v).split(",")
        colour, r = ("#d32f2f", 4) if i in flagged else ("#1565c0", 2.5)
        parts.append(f'<circle cx="{x}" cy="{y}" r="{r}" fill="{colour}"/>')
    parts.append(f'<text x="{width - 4}" y="14" font-size="10" text-anchor="end">'
                 f'{len(flagged)} out-of-control point(s)</text></svg>')
    return "".join(parts)


# ---------------------------------------------------------------- sections


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]],
           flags: Sequence[bool] | None = None) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="flag"' if flags and flags[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def sections(report: Mapping[str, Any]) -> list[tuple[str, str]]:
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
            svg_distribution(name, plot) for name, plot in dist.items()) + "</div>"))
    pd = report.get("prediction_drift")
    if pd:
        text = (html.escape(pd.get("message", "")) if pd.get("baseline") == "created" else
                f"{pd['test']} statistic {_fmt(pd['statistic'])}, p {_fmt(pd['p_value'])}: "
                f"{'<b>drift</b>' if pd['drifted'] else 'no drift'}")
        plot = svg_distribution("predictions", pd["plot"]) if pd.get("plot") else ""
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
        out.append(("Control charts (history of each figure)", '<div class="plots">' + "".join(
            svg_chart(f"{fig} · {kind}", c) for fig, kinds in charts.items()
            for kind, c in kinds.items()) + "</div>"))
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
    return out


def render_html(report: Mapping[str, Any]) -> str:
    status = str(report.get("status", "failure"))
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections(report))
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
    lines = [str(report.get("subject", "")), "", str(report.get("summary", "")), ""]
    window = report.get("window") or {}
    lines.append(f"monitor {report.get('monitor')} / endpoint {report.get('endpoint')} / model "
                 f"{report.get('model')}@{report.get('version')}")
    lines.append(f"window {window.get('start')} .. {window.get('end')}")
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
    lines += ["", "The full report (HTML) and report.json are attached."]
    return "\n".join(lines) + "\n"
