"""Model cards: Markdown and HTML from a version's metadata, its lineage and approvals.

Intended use and limitations come from mlops.yaml (they may be refined after release);
everything else comes from the registry. The HTML is the Markdown's content, escaped, with
no external assets, so it can be attached to an e-mail or stored as is.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["_none recorded_"]
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def sections(meta: dict[str, Any], *, intended_use: str, limitations: Sequence[str],
             chain: Sequence[dict[str, Any]], approvals: Sequence[dict[str, Any]],
             aliases: dict[str, str]) -> list[tuple[str, list[str]]]:
    data = meta.get("data") or {}
    code = meta.get("code") or {}
    env = meta.get("environment") or {}
    sig = meta.get("signature") or {}
    pointing = sorted(a for a, v in aliases.items() if v == meta["version"])
    overview = [
        meta.get("description") or "_no description_", "",
        *_table(("field", "value"), [
            ("model", meta["name"]), ("version", meta["version"]), ("task", meta.get("task")),
            ("aliases", ", ".join(pointing) or "—"), ("created", meta.get("created_at", "?")),
            ("author", meta.get("author", "?")), ("sha256", f"`{meta.get('sha256')}`"),
            ("size", f"{meta.get('size')} bytes"),
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted((meta.get("tags") or {}).items()))
             or "—"),
        ]),
    ]
    return [
        ("Overview", overview),
        ("Intended use", [intended_use or "_not stated: add `intended_use:` to the model in "
                          "mlops.yaml_"]),
        ("Limitations", [f"- {x}" for x in limitations] or
         ["_none stated: add `limitations:` to the model in mlops.yaml_"]),
        ("Metrics", _table(("metric", "value"),
                           sorted((meta.get("metrics") or {}).items()))),
        ("Training data", _table(("field", "value"), [
            ("file", data.get("path")), ("sha256", f"`{data.get('sha256')}`"),
            ("rows", data.get("rows")), ("columns", data.get("columns"))]) if data
         else ["_not recorded_"]),
        ("Parameters", _table(("parameter", "value"), sorted((meta.get("params") or {}).items()))),
        ("Inputs and outputs", _table(("direction", "name", "type", "shape"), [
            (d, t.get("name"), t.get("type"), t.get("shape"))
            for d in ("inputs", "outputs") for t in sig.get(d, [])])),
        ("Features", _table(("name", "type", "min", "max", "values"), [
            (f.get("name"), f.get("type"), f.get("min"), f.get("max"),
             ", ".join(map(str, f.get("values") or [])) or "")
            for f in meta.get("features") or []])),
        ("Lineage", _table(("version", "created", "data sha256", "code commit"), [
            (m["version"], m.get("created_at", "?"), str((m.get("data") or {}).get("sha256"))[:12],
             f"{str((m.get('code') or {}).get('commit'))[:12]}"
             f"{' (dirty)' if (m.get('code') or {}).get('dirty') else ''}")
            for m in chain])),
        ("Code and environment", _table(("field", "value"), [
            ("git commit", code.get("commit")), ("uncommitted changes", code.get("dirty")),
            ("python", env.get("python")),
            *sorted((f"package {k}", v) for k, v in (env.get("packages") or {}).items() if v)])),
        ("Approvals", _table(("by", "for alias", "time", "note"), [
            (a.get("by"), a.get("alias") or "any", a.get("time"), a.get("note"))
            for a in approvals])),
    ]


def markdown(title: str, parts: list[tuple[str, list[str]]]) -> str:
    lines = [f"# Model card: {title}", ""]
    for head, body in parts:
        lines += [f"## {head}", "", *body, ""]
    return "\n".join(lines)


def to_html(title: str, parts: list[tuple[str, list[str]]]) -> str:
    out = ["<!doctype html>", "<html><head><meta charset=\"utf-8\">",
           f"<title>Model card: {html.escape(title)}</title>",
           "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
           "text-align:left}code{font-size:.9em}</style></head><body>",
           f"<h1>Model card: {html.escape(title)}</h1>"]
    for head, body in parts:
        out.append(f"<h2>{html.escape(head)}</h2>")
        table = [line for line in body if line.startswith("| ")]
        if table:
            cells = [[c.strip().replace("\\|", "|") for c in row.strip("|").split(" | ")]
                     for row in table if not row.startswith("| ---")]
            out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
                       + "</tr>")
            for row in cells[1:]:
                out.append("<tr>" + "".join(
                    f"<td>{html.escape(c.strip('`'))}</td>" for c in row) + "</tr>")
            out.append("</table>")
        items = [line[2:] for line in body if line.startswith("- ")]
        if items:
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        text = [line for line in body if line and not line.startswith(("| ", "- "))]
        out += [f"<p>{html.escape(t.strip('_'))}</p>" for t in text]
    out.append("</body></html>")
    return "\n".join(out) + "\n"
