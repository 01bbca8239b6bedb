"""The [ROLLBACK] e-mail (``framework.rollout.notice``): what it says, parsed back as a mail
client reads it, and the notifier's decision on CodeDeploy's events — one e-mail for a
rolled-back deployment, none for anything else. The AWS reads are exercised for real by
tests/e2e/test_rollout_e2e.py; here CodeDeploy's answers are given as its API shapes them."""

from __future__ import annotations

import email
import email.policy
from typing import Any

from framework.rollout.notice import ROLLBACK_WAIT_S, notify, rollback_message
from framework.rollout.record import ROLLED_BACK, RolloutRecord

GROUP = "cancer-dx-dev-predict"
SETTINGS = {"project": "cancer-dx", "stage": "dev", "groups": {GROUP: {
    "endpoint": "predict", "strategy": "canary", "steps": [50, 100],
    "hook_log_group": "/aws/lambda/cancer-dx-dev-hook-predict",
    "sender": "ops@example.com", "to": ["oncology-ops@example.com", "risk@example.com"]}}}


def record(**changes: Any) -> RolloutRecord:
    base: dict[str, Any] = dict(
        stage="dev", endpoint="predict", function="cancer-dx-dev-predict", alias="live",
        stable="1", candidate="2", stable_model="1.0.0", candidate_model="1.1.0",
        strategy="canary", steps=[{"weight": 50}, {"weight": 100}], deployment_id="d-AAA",
        status=ROLLED_BACK, reason="the pre-traffic check failed: <rows 1-1> & more",
        rollback_deployment_id="d-BBB",
        history=[{"event": "BeforeAllowTraffic", "status": "Failed", "reason": "crashed"}])
    return RolloutRecord(**{**base, **changes})


def parse(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_the_message_says_what_was_rolled_back_why_and_what_serves() -> None:
    raw = rollback_message("cancer-dx", record(), "ops@example.com",
                           ["oncology-ops@example.com", "risk@example.com"])
    msg = parse(raw)
    assert msg["Subject"] == "[ROLLBACK] cancer-dx/dev predict: 1.1.0 rolled back to 1.0.0"
    assert msg["From"] == "ops@example.com"
    assert msg["To"] == "oncology-ops@example.com, risk@example.com"
    assert msg["X-Mlops-Rollout"] == "predict:rolled_back:d-AAA"
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "rolled back by CodeDeploy (deployment d-AAA, rolled back by d-BBB)" in text
    assert "Why: the pre-traffic check failed: <rows 1-1> & more" in text
    assert "All traffic is back on 1.0.0 (Lambda version 1)" in text
    assert "- BeforeAllowTraffic: Failed (crashed)" in text
    html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;rows 1-1&gt; &amp; more" in html and "<rows" not in html  # escaped


class CodeDeploy:
    """GetDeployment, ListDeploymentTargets and GetDeploymentTarget answers, in AWS's shapes;
    the rollback recorded from the ``recorded_after``-th read on."""

    def __init__(self, status: str, rollback: bool, recorded_after: int = 0,
                 hook_failed: bool = True) -> None:
        self.status, self.rollback, self.after = status, rollback, recorded_after
        self.hook_failed = hook_failed
        self.reads = 0

    def get_deployment(self, deploymentId: str) -> dict[str, Any]:
        self.reads += 1
        info: dict[str, Any] = {"deploymentId": deploymentId, "status": self.status,
                                "errorInformation": {"code": "HOOK_EXECUTION_FAILURE",
                                                     "message": "hook failed"}}
        if self.rollback and self.reads > self.after:
            info["rollbackInfo"] = {"rollbackDeploymentId": "d-BBB"}
        return {"deploymentInfo": info}

    def list_deployment_targets(self, deploymentId: str) -> dict[str, Any]:
        return {"targetIds": ["cancer-dx-dev-predict:live"]}

    def get_deployment_target(self, deploymentId: str, targetId: str) -> dict[str, Any]:
        status = "Failed" if self.hook_failed else "Succeeded"
        return {"deploymentTarget": {"lambdaTarget": {
            "lambdaFunctionInfo": {"functionName": "cancer-dx-dev-predict",
                                   "functionAlias": "live", "currentVersion": "1",
                                   "targetVersion": "2"},
            "lifecycleEvents": [{"lifecycleEventName": "BeforeAllowTraffic",
                                 "status": status}]}}}


class Lambda:
    def get_function_configuration(self, FunctionName: str, Qualifier: str) -> dict[str, Any]:
        model = {"1": "1.0.0", "2": "1.1.0"}[Qualifier]
        return {"Environment": {"Variables": {"MLOPS_MODEL_VERSION": model}}}


class Logs:
    def filter_log_events(self, logGroupName: str, filterPattern: str) -> dict[str, Any]:
        assert logGroupName == "/aws/lambda/cancer-dx-dev-hook-predict"
        line = ('{"msg": "pretraffic", "deployment_id": "d-AAA", "status": "Failed", '
                '"reason": "failed on hold-out rows 1-1"}')
        return {"events": [{"message": f"2024-03-01T09:30:15Z {line}"}]}


def event(state: str, group: str = GROUP) -> dict[str, Any]:
    return {"detail-type": "CodeDeploy Deployment State-change Notification",
            "source": "aws.codedeploy",
            "detail": {"application": "cancer-dx-dev", "deploymentGroup": group,
                       "deploymentId": "d-AAA", "state": state}}


def run(cd: CodeDeploy, ev: dict[str, Any]) -> tuple[dict[str, Any], list[Any], list[Any]]:
    sent: list[Any] = []
    audited: list[Any] = []
    slept: list[float] = []

    def send(ses: Any, raw: bytes, sender: str, to: Any) -> dict[str, Any]:
        sent.append((parse(raw), sender, list(to)))
        return {"sent": True, "attempts": 1, "errors": []}

    summary = notify(ev, SETTINGS, {"codedeploy": cd, "lambda": Lambda(), "logs": Logs(),
                                    "ses": object()}, send,
                     lambda **fields: audited.append(fields), sleep=slept.append)
    assert sum(slept) <= ROLLBACK_WAIT_S + 2
    return summary, sent, audited


def test_a_rolled_back_deployment_is_mailed_once_to_its_endpoint_recipients() -> None:
    summary, sent, audited = run(CodeDeploy("Failed", rollback=True), event("FAILURE"))
    assert summary["sent"] is True and summary["rollback"] == "d-BBB"
    ((msg, sender, to),) = sent
    assert sender == "ops@example.com" and to == ["oncology-ops@example.com", "risk@example.com"]
    assert msg["Subject"] == "[ROLLBACK] cancer-dx/dev predict: 1.1.0 rolled back to 1.0.0"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "the pre-traffic check failed: failed on hold-out rows 1-1" in text
    ((record_,),) = [tuple(audited)]
    assert record_["kind"] == "email" and record_["after"]["recipients"] == to


def test_a_rollback_recorded_a_moment_after_the_event_is_waited_for() -> None:
    cd = CodeDeploy("Failed", rollback=True, recorded_after=2)
    summary, sent, _ = run(cd, event("FAILURE"))
    assert summary["sent"] is True and len(sent) == 1 and cd.reads == 3


def test_no_mail_without_a_rollback_or_for_another_stage_or_state() -> None:
    # StopDeployment without rollback (`mlops rollout promote`): waited for, then nothing.
    summary, sent, audited = run(CodeDeploy("Stopped", rollback=False, hook_failed=False),
                                 event("STOP"))
    assert sent == [] and audited == [] and summary["why"].startswith("not rolled back")
    summary, sent, _ = run(CodeDeploy("Failed", rollback=True), event("FAILURE", "other"))
    assert sent == [] and "not one of this stage's endpoints" in summary["why"]
    summary, sent, _ = run(CodeDeploy("Succeeded", rollback=False), event("SUCCESS"))
    assert sent == [] and summary["why"] == "not a failed or stopped deployment"
