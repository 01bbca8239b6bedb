"""The local EventBridge's routing of events to rules with an event pattern (without a
daemon): the matcher on the filters EventBridge documents, and ``Scheduler.route`` invoking
the targets of the rules an event matches — the stage's rollback rule, as compile writes it,
on the events the local CodeDeploy emits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from framework.local.scheduler import Rule, Scheduler, Target, matches
from framework.rollout.notice import event_pattern

ACCOUNT, REGION = "123456789012", "us-east-1"
NOTIFIER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:cancer-dx-dev-rollback-mail:live"


def codedeploy_event(state: str, application: str = "cancer-dx-dev",
                     region: str = REGION, account: str = ACCOUNT) -> dict[str, Any]:
    """A deployment state-change event, as CodeDeploy (and the local one) emits it."""
    return {"version": "0", "id": "c071bfbf-83c4-49ca-a6ff-3df053957145",
            "detail-type": "CodeDeploy Deployment State-change Notification",
            "source": "aws.codedeploy", "account": account, "time": "2024-03-01T09:30:15Z",
            "region": region,
            "resources": [f"arn:aws:codedeploy:{region}:{account}:application:{application}"],
            "detail": {"region": region, "application": application,
                       "deploymentGroup": f"{application}-predict", "deploymentId": "d-ABC",
                       "state": state, "instanceGroupId": "9fd2fbef"}}


def test_the_compiled_pattern_matches_failures_and_stops_of_its_application_only() -> None:
    pattern = event_pattern("cancer-dx-dev")
    assert matches(pattern, codedeploy_event("FAILURE"))
    assert matches(pattern, codedeploy_event("STOP"))
    for state in ("START", "SUCCESS", "READY"):
        assert not matches(pattern, codedeploy_event(state)), state
    assert not matches(pattern, codedeploy_event("FAILURE", application="cancer-dx-prod"))
    other = {**codedeploy_event("FAILURE"),
             "detail-type": "CodeDeploy Instance State-change Notification"}
    assert not matches(pattern, other)


def test_the_filters_eventbridge_documents() -> None:
    event = codedeploy_event("FAILURE")
    assert matches({"detail": {"deploymentId": [{"prefix": "d-"}]}}, event)
    assert not matches({"detail": {"deploymentId": [{"prefix": "x-"}]}}, event)
    assert matches({"detail": {"state": [{"anything-but": ["SUCCESS", "START"]}]}}, event)
    assert not matches({"detail": {"state": [{"anything-but": "FAILURE"}]}}, event)
    assert matches({"detail": {"instanceId": [{"exists": False}]}}, event)
    assert not matches({"detail": {"instanceId": [{"exists": True}]}}, event)
    assert matches({"resources": [f"arn:aws:codedeploy:{REGION}:{ACCOUNT}:application:"
                                  "cancer-dx-dev"]}, event)  # an array matches any element
    assert not matches({"source": ["aws.events"]}, event)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, arn: str, payload: Any) -> dict[str, Any]:
        self.calls.append((arn, payload))
        return {"ok": True}


def rules() -> list[Rule]:
    arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/cancer-dx-dev-deploy-events"
    return [
        Rule(arn=arn, name="cancer-dx-dev-deploy-events", region=REGION, account=ACCOUNT,
             expression="", enabled=True, targets=(Target(id="rollback-mail", arn=NOTIFIER),),
             pattern=event_pattern("cancer-dx-dev")),
        Rule(arn=arn + "-off", name="off", region=REGION, account=ACCOUNT, expression="",
             enabled=False, targets=(Target(id="t", arn=NOTIFIER + "-off"),),
             pattern={"source": ["aws.codedeploy"]}),
        Rule(arn=arn + "-schedule", name="daily", region=REGION, account=ACCOUNT,
             expression="rate(1 day)", enabled=True,
             targets=(Target(id="m", arn=NOTIFIER + "-schedule"),)),
        Rule(arn=arn.replace(REGION, "eu-west-1") + "-far", name="far", region="eu-west-1",
             account=ACCOUNT, expression="", enabled=True,
             targets=(Target(id="t", arn=NOTIFIER + "-far"),),
             pattern={"source": ["aws.codedeploy"]}),
    ]


def test_route_invokes_the_targets_of_the_enabled_rules_an_event_matches(tmp_path: Path,
                                                                         ) -> None:
    invoke = Recorder()
    scheduler = Scheduler(tmp_path, rules, invoke, workers=1)
    try:
        assert scheduler.route(codedeploy_event("START")) == []  # no rule wants a start
        failed = codedeploy_event("FAILURE")
        fires = scheduler.route(failed)
        assert [f.outcome(timeout=10)["target"] for f in fires] == ["rollback-mail"]
        # The target gets the event as it is (no Input, InputPath or transformer).
        assert invoke.calls == [(NOTIFIER, failed)]
        # A schedule rule is not fired by events, nor does routing give it a schedule state.
        assert all(not str(arn).endswith("-schedule") for arn, _ in invoke.calls)
        assert [s["rule"] for s in scheduler.schedules() if s.get("event_pattern")] == [
            "cancer-dx-dev-deploy-events", "off", "far"]
    finally:
        scheduler.close()
