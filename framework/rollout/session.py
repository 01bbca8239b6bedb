"""Rollouts of a deployed project, as the commands read and report them.

The plan starts a CodeDeploy deployment whenever an endpoint rolled out step by step is to
serve a new version (``framework.plan.deployments``); CodeDeploy runs it
(``framework.rollout.deployments`` reads it). ``records`` gives each endpoint's latest one; a
rolled-back rollout seen by a command e-mails the recipients of the endpoint's monitors
(``notify``).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import TYPE_CHECKING

from framework.rollout.record import RolloutRecord

if TYPE_CHECKING:
    from framework.workflow import Session


def records(session: Session) -> list[RolloutRecord]:
    """The latest rollout of every declared endpoint that has one (read from CodeDeploy)."""
    from framework.rollout.deployments import records as read

    return read(session)


def recipients(session: Session, endpoint: str) -> tuple[str, list[str]]:
    """(sender, recipients) from the monitors of ``endpoint``."""
    to: list[str] = []
    sender = ""
    for mon in session.ws.loaded.config.monitors.values():
        if mon.endpoint == endpoint:
            to += [a for a in mon.notify.email if a not in to]
            sender = sender or mon.notify.sender or ""
    return (sender or (to[0] if to else "")), to


def rollback_message(session: Session, rec: RolloutRecord, sender: str,
                     to: list[str]) -> bytes:
    project = session.ws.project
    msg = EmailMessage()
    msg["Subject"] = (f"[ROLLBACK] {project}/{rec.stage} {rec.endpoint}: "
                      f"{rec.candidate_model} rolled back to {rec.stable_model}")
    msg["From"], msg["To"] = sender, ", ".join(to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="mlops.local")
    msg["X-Mlops-Rollout"] = f"{rec.endpoint}:{rec.status}:{rec.deployment_id}"
    steps = "\n".join(f"- {h['event']}: {h['status']}" + (f" ({h['reason']})" if h.get("reason")
                                                          else "") for h in rec.history)
    text = (f"The {rec.strategy} rollout of model version {rec.candidate_model} (Lambda version "
            f"{rec.candidate}) on endpoint {rec.endpoint} was rolled back by CodeDeploy "
            f"(deployment {rec.deployment_id}, rolled back by {rec.rollback_deployment_id}).\n\n"
            f"Why: {rec.reason}\n\nAll traffic is back on {rec.stable_model} (Lambda version "
            f"{rec.stable}).\n\nLifecycle:\n{steps}\n")
    msg.set_content(text)
    rows = "".join(f"<tr><td>{escape(str(h['event']))}</td><td>{escape(str(h['status']))}</td>"
                   f"<td>{escape(str(h.get('reason') or ''))}</td></tr>" for h in rec.history)
    msg.add_alternative(
        f"<html><body><h2>Rollback on {escape(rec.endpoint)}</h2>"
        f"<p>The {escape(rec.strategy)} rollout of <b>{escape(rec.candidate_model)}</b> was "
        f"rolled back: <b>{escape(rec.reason)}</b>.</p>"
        f"<p>All traffic is back on <b>{escape(rec.stable_model)}</b>.</p>"
        "<table border=1 cellpadding=4>"
        f"<tr><th>lifecycle event</th><th>status</th><th>detail</th></tr>{rows}</table>"
        "</body></html>", subtype="html")
    return msg.as_bytes()


def notify(session: Session, rec: RolloutRecord) -> None:
    """E-mail the endpoint's monitor recipients that ``rec`` was rolled back (audited)."""
    from framework.monitoring.mailer import send

    sender, to = recipients(session, rec.endpoint)
    if not to:
        session.warnings.append(f"rollout of {rec.endpoint} rolled back; no monitor of it "
                                "names e-mail recipients, so no one was told")
        return
    outcome = send(session.target.conn.client("ses"), rollback_message(session, rec, sender, to),
                   sender, to)
    session.audit.record(actor=session.target.actor, command="rollout", stage=rec.stage,
                         action="notify", resource=f"endpoint.{rec.endpoint}", kind="email",
                         outcome="succeeded" if outcome["sent"] else "failed",
                         after={"recipients": to, "attempts": outcome["attempts"],
                                "deployment": rec.deployment_id},
                         error="; ".join(outcome["errors"]))
