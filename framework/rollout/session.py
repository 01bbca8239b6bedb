"""Rollouts of a deployed project, as the commands read and report them.

The plan starts a CodeDeploy deployment whenever an endpoint rolled out step by step is to
serve a new version (``framework.plan.deployments``); CodeDeploy runs it
(``framework.rollout.deployments`` reads it). ``records`` gives each endpoint's latest one.
A rolled-back rollout is e-mailed to the recipients of the endpoint's monitors
(``recipients``) by the stage's rollback notifier, on AWS's own event
(``framework.rollout.notice``): not by a command, which may never run again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from framework.rollout.record import RolloutRecord

if TYPE_CHECKING:
    from framework.config.models import Monitor
    from framework.workflow import Session


def records(session: Session) -> list[RolloutRecord]:
    """The latest rollout of every declared endpoint that has one (read from CodeDeploy)."""
    from framework.rollout.deployments import records as read

    return read(session)


def recipients(monitors: Mapping[str, Monitor], endpoint: str) -> tuple[str, list[str]]:
    """(sender, recipients) of ``endpoint``'s rollback e-mail, from the monitors of it: every
    address they e-mail, and the first sender one names (else the first address)."""
    to: list[str] = []
    sender = ""
    for mon in monitors.values():
        if mon.endpoint == endpoint:
            to += [a for a in mon.notify.email if a not in to]
            sender = sender or mon.notify.sender or ""
    return (sender or (to[0] if to else "")), to
