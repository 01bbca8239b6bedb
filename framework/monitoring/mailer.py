"""The report e-mail: MIME structure and sending through SES ``send_raw_email`` with retries.

multipart/mixed
├── multipart/alternative
│   ├── text/plain                      the verdict and the findings, for any mail client
│   └── multipart/related
│       ├── text/html                   the report; plots referenced as cid: images
│       └── image/svg+xml (inline) ...  one per plot
└── application/json (attachment)       report.json
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from framework.monitoring.report import render_html, render_text

SVG_RE = re.compile(r"<svg\b.*?</svg>", re.S)


def build_message(report: Mapping[str, Any], sender: str, recipients: Sequence[str]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = str(report.get("subject", "mlops monitoring report"))
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="mlops.local")
    msg["X-Mlops-Monitor"] = str(report.get("monitor", ""))
    msg["X-Mlops-Status"] = str(report.get("status", ""))
    msg.set_content(render_text(report))
    plots: list[tuple[str, str]] = []

    def to_cid(match: re.Match[str]) -> str:
        cid = make_msgid(idstring=f"plot{len(plots) + 1}", domain="mlops.local")
        plots.append((cid, match.group(0)))
        return f'<img src="cid:{cid[1:-1]}" alt="plot {len(plots)}">'

    html_body = SVG_RE.sub(to_cid, render_html(report))
    msg.add_alternative(html_body, subtype="html")
    html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
    for i, (cid, svg) in enumerate(plots, start=1):
        html_part.add_related(svg.encode(), maintype="image", subtype="svg+xml", cid=cid,
                              disposition="inline", filename=f"plot{i}.svg")
    msg.add_attachment(json.dumps(report, indent=2, sort_keys=True).encode(),
                       maintype="application", subtype="json", filename="report.json")
    return msg.as_bytes()


def send(ses: Any, raw: bytes, sender: str, recipients: Sequence[str], attempts: int = 3,
         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Send with retries; returns the outcome (never raises) for the report to record."""
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            resp = ses.send_raw_email(Source=sender, Destinations=list(recipients),
                                      RawMessage={"Data": raw})
            return {"sent": True, "attempts": attempt, "message_id": resp.get("MessageId"),
                    "recipients": list(recipients), "errors": errors}
        except Exception as e:  # any transport or API error is retried, then recorded
            errors.append(f"attempt {attempt}: {type(e).__name__}: {e}")
            if attempt < attempts:
                sleep(0.5 * 2 ** (attempt - 1))
    return {"sent": False, "attempts": attempts, "recipients": list(recipients), "errors": errors}
