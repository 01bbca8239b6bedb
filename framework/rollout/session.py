"""Rollouts of a deployed project: started by deploy, driven to the end, reported.

``install(session)`` makes the provider start a rollout whenever an endpoint's ``live`` alias
must move to a new version under a strategy other than ``all_at_once``; ``drive`` then runs
every running rollout of the stage until it completes or rolls back (or, with ``wait=False``,
looks once). A rolled-back rollout e-mails the recipients of the endpoint's monitors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import TYPE_CHECKING, Any

from framework.config.models import Rollout, Strategy
from framework.rollout.driver import Clock, Driver, HealthSource, WallClock
from framework.rollout.health import CloudWatchHealth, GatewayHealth
from framework.rollout.record import RUNNING, RolloutRecord, RolloutStore

if TYPE_CHECKING:
    from framework.workflow import Session

Event = Callable[[RolloutRecord, str], None]


def store(session: Session) -> RolloutStore:
    return RolloutStore(session.target.conn.client("s3"), session.bucket)


def driver(session: Session, *, clock: Clock | None = None,
           on_event: Event | None = None) -> Driver:
    conn = session.target.conn
    health: HealthSource = (GatewayHealth(session.target.gateway_url)
                            if session.target.gateway_url
                            else CloudWatchHealth(conn.client("cloudwatch")))
    watching = frozenset(name for name, ep in session.ws.loaded.config.endpoints.items()
                         if ep.rollout.watch.drift)
    if watching:
        from framework.monitoring.store import S3Store
        from framework.rollout.drift import WithOutputDrift

        health = WithOutputDrift(health, S3Store(conn.client("s3"), session.bucket), watching)
    return Driver(lam=conn.client("lambda"), store=store(session), health=health,
                  audit=session.audit.record, actor=session.target.actor,
                  clock=clock or WallClock(), notify=lambda rec: notify(session, rec),
                  on_event=on_event, after_route=session.target.refresh_gateway)


def _model_version(session: Session, function: str, version: str) -> str:
    cfg = session.target.conn.client("lambda").get_function_configuration(
        FunctionName=function, Qualifier=version)
    return str(cfg.get("Environment", {}).get("Variables", {}).get("MLOPS_MODEL_VERSION", "?"))


def install(session: Session, *, on_event: Event | None = None) -> None:
    """Let the provider start rollouts when it moves an endpoint's alias."""

    def hook(props: dict[str, Any], current: str) -> dict[str, Any] | None:
        rollout = Rollout.model_validate(props["rollout"])
        if rollout.strategy is Strategy.all_at_once:
            return None
        function, candidate = props["function_name"], str(props["function_version"])
        record = driver(session, on_event=on_event).start(
            stage=session.ws.stage, endpoint=props["endpoint"], function=function,
            alias=props["alias"], stable=current, candidate=candidate,
            stable_model=_model_version(session, function, current),
            candidate_model=_model_version(session, function, candidate), rollout=rollout)
        arn = session.target.conn.client("lambda").get_alias(
            FunctionName=function, Name=props["alias"])["AliasArn"]
        return {"arn": arn, "version": record.serving, "rollout": record.status,
                "candidate": record.candidate}

    session.provider.rollout_hook = hook


def records(session: Session) -> list[RolloutRecord]:
    """The latest rollout record of every declared endpoint that has one."""
    st = store(session)
    out = []
    for name in session.ws.loaded.config.endpoints:
        got = st.get(session.ws.stage, name)
        if got is not None:
            out.append(got[0])
    return out


def drive(session: Session, *, wait: bool = True, clock: Clock | None = None,
          on_event: Event | None = None, max_seconds: float | None = None,
          ) -> list[RolloutRecord]:
    """Drive the stage's running rollouts; returns their records afterwards."""
    d = driver(session, clock=clock, on_event=on_event)
    endpoints = session.ws.loaded.config.endpoints
    done = []
    for record in records(session):
        if record.status == RUNNING and record.endpoint in endpoints:
            rollout = endpoints[record.endpoint].rollout
            record = (d.run(record, rollout, max_seconds=max_seconds) if wait
                      else d.tick(record, rollout))
        done.append(record)
    record_serving(session, done)
    return done


def record_serving(session: Session, finished: list[RolloutRecord]) -> None:
    """Write the version each alias now serves into the deploy state."""
    if not finished:
        return
    session.store.acquire(session.target.actor, "mlops rollout")
    try:
        state = session.store.load()
        changed = False
        for rec in finished:
            entry = state.resources.get(f"alias.{rec.endpoint}")
            if entry is None:
                continue
            outputs = {**entry.outputs, "version": rec.serving, "rollout": rec.status,
                       "candidate": rec.candidate}
            if outputs != entry.outputs:
                state = state.record(f"alias.{rec.endpoint}", replace(entry, outputs=outputs))
                changed = True
        if changed:
            session.store.save(state)
    finally:
        session.store.release()


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
    msg["X-Mlops-Rollout"] = f"{rec.endpoint}:{rec.status}"
    steps = "\n".join(f"- {h['event']} (step {h['step']}): {h.get('reason') or h.get('note', '')}"
                      for h in rec.history)
    text = (f"The {rec.strategy} rollout of model version {rec.candidate_model} (Lambda version "
            f"{rec.candidate}) on endpoint {rec.endpoint} was rolled back.\n\n"
            f"Why: {rec.reason}\n\nAll traffic is back on {rec.stable_model} (Lambda version "
            f"{rec.stable}).\n\nHistory:\n{steps}\n")
    msg.set_content(text)
    rows = "".join(f"<tr><td>{escape(str(h['event']))}</td><td>{h['step']}</td>"
                   f"<td>{escape(str(h.get('reason') or h.get('note', '')))}</td></tr>"
                   for h in rec.history)
    msg.add_alternative(
        f"<html><body><h2>Rollback on {escape(rec.endpoint)}</h2>"
        f"<p>The {escape(rec.strategy)} rollout of <b>{escape(rec.candidate_model)}</b> was "
        f"rolled back: <b>{escape(rec.reason)}</b>.</p><p>All traffic is back on "
        f"<b>{escape(rec.stable_model)}</b>.</p><table border=1 cellpadding=4>"
        f"<tr><th>event</th><th>step</th><th>detail</th></tr>{rows}</table>"
        "</body></html>", subtype="html")
    return msg.as_bytes()


def notify(session: Session, rec: RolloutRecord) -> None:
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
                         after={"recipients": to, "attempts": outcome["attempts"]},
                         error="; ".join(outcome["errors"]))
