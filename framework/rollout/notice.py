"""A CodeDeploy deployment read back as a ``RolloutRecord``, and the [ROLLBACK] e-mail about
one that was rolled back: one implementation for the CLI and for the stage's rollback
notifier.

The notifier (``handlers/rollback.py``, the target of the stage's EventBridge rule on
CodeDeploy's ``CodeDeploy Deployment State-change Notification`` events in state ``FAILURE``
or ``STOP``) runs ``notify``: it reads the deployment (``GetDeployment``, its Lambda target,
the model version each Lambda version serves, the pre-traffic hook's verdict in its log
group), and when CodeDeploy rolled it back (``rollbackInfo.rollbackDeploymentId``) e-mails the
recipients compiled for its deployment group. So the e-mail is sent by AWS, whether or not the
machine that started the deployment is still there, and once per rollback: a deployment fails
or stops once, and a stop without rollback (``mlops rollout promote``) sends nothing.

Stdlib-only (the Lambda zip packages it; boto3 is the function layer's): clients are passed
in, AWS errors are recognised by their ``response``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import Any

from framework.rollout.record import COMPLETED, ROLLED_BACK, RUNNING, RolloutRecord, status_of

DETAIL_TYPE = "CodeDeploy Deployment State-change Notification"
ENDED = ("FAILURE", "STOP")  # the states of a deployment that may have been rolled back
# CodeDeploy may record the rollback a moment after the state change: how long to look again.
ROLLBACK_WAIT_S = 15.0
ROLLBACK_POLL_S = 1.5
WRITER = "rollback-mail"  # the notifier's audit chain


def event_pattern(application: str) -> dict[str, Any]:
    """The EventBridge pattern of the stage's failed or stopped deployments."""
    return {"source": ["aws.codedeploy"], "detail-type": [DETAIL_TYPE],
            "detail": {"application": [application], "state": list(ENDED)}}


def _time(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value or 0.0)


def model_version(lam: Any, function: str, version: str) -> str:
    """The model version a published Lambda version serves ("?" when it does not say)."""
    try:
        cfg = lam.get_function_configuration(FunctionName=function, Qualifier=version)
    except Exception:  # gone, or not readable: the record says so
        return "?"
    return str(cfg.get("Environment", {}).get("Variables", {}).get("MLOPS_MODEL_VERSION", "?"))


def pretraffic_verdict(logs: Any, log_group: str, deployment_id: str) -> dict[str, Any]:
    """The pre-traffic hook's verdict on a deployment, from its log group ({} if none)."""
    try:
        page = logs.filter_log_events(
            logGroupName=log_group,
            filterPattern=f'{{ $.msg = "pretraffic" && $.deployment_id = "{deployment_id}" }}')
    except Exception:  # no log group yet, or not readable
        return {}
    for event in reversed(page.get("events", [])):
        message = str(event.get("message", ""))
        try:
            line = json.loads(message[message.find("{"):])
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("deployment_id") == deployment_id:
            return line
    return {}


def _lambda_target(cd: Any, deployment_id: str) -> dict[str, Any]:
    try:
        ids = cd.list_deployment_targets(deploymentId=deployment_id).get("targetIds", [])
        if not ids:
            return {}
        got: dict[str, Any] = cd.get_deployment_target(
            deploymentId=deployment_id, targetId=ids[0])["deploymentTarget"].get(
            "lambdaTarget", {})
        return got
    except Exception:  # not started yet: no target
        return {}


def read_deployment(cd: Any, lam: Any, logs: Any | None, deployment_id: str, *, stage: str,
                    endpoint: str, strategy: str, weights: Sequence[int],
                    hook_log_group: str | None, function: str = "", alias: str = "",
                    stable: str = "", candidate: str = "", description: str = "",
                    ) -> RolloutRecord:
    """The deployment as CodeDeploy reports it now. ``function``, ``alias``, ``stable`` and
    ``candidate`` default to its Lambda target's (``GetDeploymentTarget``)."""
    info = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    target = _lambda_target(cd, deployment_id)
    about = target.get("lambdaFunctionInfo") or {}
    function = function or str(about.get("functionName", ""))
    alias = alias or str(about.get("functionAlias", ""))
    stable = stable or str(about.get("currentVersion", ""))
    candidate = candidate or str(about.get("targetVersion", ""))
    status = status_of(info)
    weight = 0.0
    if status == RUNNING:
        live = lam.get_alias(FunctionName=function, Name=alias)
        extra = (live.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        weight = 100.0 if str(live["FunctionVersion"]) == candidate else \
            float(extra.get(candidate, 0.0)) * 100
    elif status == COMPLETED:
        weight = 100.0
    step = max([i for i, w in enumerate(weights) if weight >= w] or [0])
    history = []
    for event in target.get("lifecycleEvents", []):
        if event.get("status") in ("Pending", None):
            continue
        history.append({"time": _time(event.get("endTime") or event.get("startTime")),
                        "event": str(event["lifecycleEventName"]),
                        "status": str(event.get("status")), "step": step,
                        "reason": (event.get("diagnostics") or {}).get("message", "")})
    error = info.get("errorInformation") or {}
    rollback = (info.get("rollbackInfo") or {}).get("rollbackDeploymentId", "")
    verdict = pretraffic_verdict(logs, hook_log_group, deployment_id) \
        if hook_log_group and logs is not None else {}
    reason = str(error.get("message") or "")
    if verdict.get("status") == "Failed":
        reason = f"the pre-traffic check failed: {verdict.get('reason')}"
    elif status == COMPLETED:
        reason = f"all traffic on Lambda version {candidate}"
    elif status == RUNNING:
        reason = str(info.get("status", ""))
    started = _time(info.get("startTime") or info.get("createTime"))
    ended = _time(info.get("completeTime")) if info.get("completeTime") else time.time()
    return RolloutRecord(
        stage=stage, endpoint=endpoint, function=function, alias=alias,
        stable=stable, candidate=candidate, stable_model=model_version(lam, function, stable),
        candidate_model=model_version(lam, function, candidate), strategy=strategy,
        steps=[{"weight": w} for w in weights], deployment_id=deployment_id,
        deployment_status=str(info.get("status", "")),
        description=description or str(info.get("description") or ""),
        step=step, status=status, weight=round(weight), started_at=started,
        updated_at=ended, reason=reason, rollback_deployment_id=str(rollback),
        history=history, pretraffic=verdict)


def rollback_message(project: str, rec: RolloutRecord, sender: str, to: Sequence[str],
                     ) -> bytes:
    """The [ROLLBACK] e-mail about ``rec`` (text and HTML), as SES's SendRawEmail takes it."""
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


def _complete(rec: RolloutRecord, group: Mapping[str, Any]) -> bool:
    """Whether ``rec`` says all the e-mail needs: the rollback (CodeDeploy may record it a
    moment after the state change) and, when the pre-traffic hook failed it, the hook's
    verdict (CloudWatch Logs may make its line searchable a few seconds late)."""
    hook_failed = any(h["event"] == "BeforeAllowTraffic" and h["status"] == "Failed"
                      for h in rec.history)
    return rec.status == ROLLED_BACK and not (
        hook_failed and group.get("hook_log_group") and not rec.pretraffic)


Send = Callable[[Any, bytes, str, Sequence[str]], dict[str, Any]]  # mailer.send
Audit = Callable[..., Any]  # AuditLog.record


def notify(event: Mapping[str, Any], settings: Mapping[str, Any], clients: Mapping[str, Any],
           send: Send, audit: Audit | None = None,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The notifier's run on one CodeDeploy state-change event: the [ROLLBACK] e-mail sent
    when the deployment was rolled back; what happened, in a summary (never raises once the
    e-mail is out: a retried invocation would send it twice).

    ``settings`` (``MLOPS_ROLLBACK``, written by compile): ``project``, ``stage`` and, by
    deployment group, ``endpoint``, ``strategy``, ``steps``, ``hook_log_group``, ``sender``
    and ``to``. ``clients``: ``codedeploy``, ``lambda``, ``logs``, ``ses``."""
    detail = event.get("detail") or {}
    deployment_id = str(detail.get("deploymentId", ""))
    summary: dict[str, Any] = {"deployment": deployment_id, "state": detail.get("state"),
                               "sent": False}
    group = (settings.get("groups") or {}).get(str(detail.get("deploymentGroup", "")))
    if event.get("detail-type") != DETAIL_TYPE or detail.get("state") not in ENDED:
        return {**summary, "why": "not a failed or stopped deployment"}
    if group is None:
        return {**summary, "why": f"deployment group {detail.get('deploymentGroup')!r} is "
                                  "not one of this stage's endpoints"}
    cd = clients["codedeploy"]

    def read() -> RolloutRecord:
        return read_deployment(cd, clients["lambda"], clients.get("logs"), deployment_id,
                               stage=str(settings["stage"]), endpoint=str(group["endpoint"]),
                               strategy=str(group["strategy"]),
                               weights=[int(w) for w in group["steps"]],
                               hook_log_group=group.get("hook_log_group"))

    rec = read()
    waited = 0.0
    while not _complete(rec, group) and waited < ROLLBACK_WAIT_S:
        sleep(ROLLBACK_POLL_S)
        waited += ROLLBACK_POLL_S
        rec = read()
    summary["endpoint"] = rec.endpoint
    if rec.status != ROLLED_BACK:
        return {**summary, "why": f"not rolled back ({rec.deployment_status})"}
    sender, to = str(group.get("sender") or ""), [str(a) for a in group.get("to") or []]
    outcome = send(clients["ses"], rollback_message(str(settings["project"]), rec, sender, to),
                   sender, to)
    summary.update(sent=bool(outcome.get("sent")), recipients=to,
                   attempts=outcome.get("attempts"), errors=outcome.get("errors") or [],
                   rollback=rec.rollback_deployment_id)
    if audit is not None:
        try:
            audit(actor=f"codedeploy:{WRITER}", command="rollback-notifier",
                  stage=rec.stage, action="notify", resource=f"endpoint.{rec.endpoint}",
                  kind="email", outcome="succeeded" if outcome.get("sent") else "failed",
                  after={"recipients": to, "attempts": outcome.get("attempts"),
                         "deployment": rec.deployment_id,
                         "rollback": rec.rollback_deployment_id},
                  error="; ".join(outcome.get("errors") or []))
        except Exception as exc:  # the e-mail is out: said, never retried for this
            summary["audit_error"] = f"{type(exc).__name__}: {exc}"
    return summary
