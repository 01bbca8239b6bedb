"""The report e-mail: MIME structure and sending through SES ``send_raw_email`` with retries.

multipart/mixed
├── multipart/alternative
│   ├── text/plain                    the verdict and the findings; names the attachments
│   └── multipart/related
│       ├── text/html                 the report; each plot an <img src="cid:..." alt="...">
│       └── image/png (inline) ...    one per plot, its Content-ID the <img>'s cid
├── text/html (attachment)            report.html: the stored report page (inline SVG plots)
└── application/json (attachment)     report.json

The plots are PNG because the mail clients most people read with (Gmail, Outlook) show no SVG
image. They are drawn by ``framework.monitoring.png`` (numpy and zlib) rather than a plotting
library: the monitor function's layer stays numpy, scipy and boto3.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from framework.monitoring import plots
from framework.monitoring.report import render_html, render_text

ATTACHMENTS = (("report.html", "the full report with its charts, to open in a browser"),
               ("report.json", "every figure of this run, for programs"))


class InlineImages:
    """Draws each figure as a PNG part and shows it as ``<img src="cid:...">``."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str, bytes]] = []  # (Content-ID with <>, filename, PNG)

    def __call__(self, fig: plots.Figure) -> str:
        n = len(self.parts) + 1
        cid = make_msgid(idstring=f"plot{n}", domain="mlops.local")
        self.parts.append((cid, f"plot{n}.png", plots.to_png(fig)))
        legend = " ".join(f'<span style="color:{colour}">{html.escape(text)}</span>'
                          for text, colour in fig.legend)
        return (f'<div style="display:inline-block;vertical-align:top;margin:4px 8px 12px 0">'
                f'<div style="font-size:12px;font-weight:600">{html.escape(fig.title)} '
                f'<span style="font-weight:400;font-size:11px">{legend}</span></div>'
                f'<img src="cid:{cid[1:-1]}" width="{fig.width}" height="{fig.height}" '
                f'alt="{html.escape(fig.alt)}" style="display:block">'
                f'<div style="font-size:11px;color:#555;max-width:{fig.width}px">'
                f"{html.escape(fig.caption)}</div></div>")


def attachments_note(names: Sequence[str]) -> str:
    """The text part's last lines: what is attached, as it is."""
    about = dict(ATTACHMENTS)
    return "Attached:\n" + "".join(f"- {n}: {about[n]}\n" for n in names)


def build_message(report: Mapping[str, Any], sender: str, recipients: Sequence[str]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = str(report.get("subject", "mlops monitoring report"))
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="mlops.local")
    msg["X-Mlops-Monitor"] = str(report.get("monitor", ""))
    msg["X-Mlops-Status"] = str(report.get("status", ""))
    files = {"report.html": render_html(report),
             "report.json": json.dumps(report, indent=2, sort_keys=True, default=str)}
    msg.set_content(render_text(report) + "\n" + attachments_note(list(files)))
    images = InlineImages()
    msg.add_alternative(render_html(report, draw=images), subtype="html")
    html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
    for cid, filename, png in images.parts:
        html_part.add_related(png, maintype="image", subtype="png", cid=cid,
                              disposition="inline", filename=filename)
    msg.add_attachment(files["report.html"], subtype="html", filename="report.html")
    msg.add_attachment(files["report.json"].encode(), maintype="application", subtype="json",
                       filename="report.json")
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
