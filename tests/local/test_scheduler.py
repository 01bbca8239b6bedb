"""The local scheduler without a daemon: due times, delivery, disabled rules, restarts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from framework.config.schedule import parse_schedule
from framework.local.scheduler import Clock, Rule, Scheduler, Target, latest_due

T0 = datetime(2024, 3, 1, 9, 30, 15, tzinfo=UTC)
DAY = timedelta(days=1)
FN = "arn:aws:lambda:us-east-1:123456789012:function:cancer-dx-dev-monitor-drift:live"
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/drift"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- due times ---------------------------------------------------------------------------------
def test_rate_due_from_the_anchor_and_coalesced() -> None:
    daily = parse_schedule("rate(1 day)")
    assert latest_due(daily, T0, T0 + DAY - timedelta(seconds=1), T0) is None
    assert latest_due(daily, T0, T0 + DAY, T0) == T0 + DAY
    # Five and a half days missed: one fire, for the latest due time.
    assert latest_due(daily, T0, T0 + 5.5 * DAY, T0) == T0 + 5 * DAY
    # Already handled up to day 5: nothing until day 6.
    assert latest_due(daily, T0 + 5 * DAY, T0 + 5.9 * DAY, T0) is None
    every5 = parse_schedule("rate(5 minutes)")
    assert latest_due(every5, T0, T0 + timedelta(minutes=12), T0) == T0 + timedelta(minutes=10)


def test_cron_due_times() -> None:
    noon = parse_schedule("cron(0 12 * * ? *)")
    assert latest_due(noon, at("2024-01-01T00:00"), at("2024-01-01T11:59")) is None
    assert latest_due(noon, at("2024-01-01T00:00"), at("2024-01-01T12:00")) == \
        at("2024-01-01T12:00")
    assert latest_due(noon, at("2024-01-01T00:00"), at("2024-01-10T13:00")) == \
        at("2024-01-10T12:00")
    weekdays = parse_schedule("cron(15 8 ? * MON-FRI *)")
    # Saturday 2024-03-02 evening: the latest weekday fire is Friday 08:15.
    assert latest_due(weekdays, at("2024-02-20T00:00"), at("2024-03-02T20:00")) == \
        at("2024-03-01T08:15")
    every_minute = parse_schedule("cron(* * * * ? *)")
    # Months of missed minutes are found without walking each of them one by one.
    assert latest_due(every_minute, at("2024-01-01T00:00"), at("2024-04-01T10:07:30")) == \
        at("2024-04-01T10:07")
    once = parse_schedule("cron(0 0 1 1 ? 2020)")
    assert latest_due(once, at("2021-01-01T00:00"), at("2024-01-01T00:00")) is None


# -- the scheduler -----------------------------------------------------------------------------
class Harness:
    def __init__(self, home: Path, *rules: Rule) -> None:
        self.home = home
        self.rules = list(rules)
        self.calls: list[tuple[str, Any]] = []

    def invoke(self, arn: str, payload: Any) -> dict[str, Any]:
        self.calls.append((arn, payload))
        return {"ok": True, "payload": {"status": "ok"}, "executed_version": "3"}

    def scheduler(self) -> Scheduler:
        return Scheduler(self.home, lambda: list(self.rules), self.invoke, workers=1)

    def tick(self, sched: Scheduler, now: datetime) -> list[dict[str, Any]]:
        return [f.outcome(10) for f in sched.tick(now)]


def rule(expression: str = "rate(1 day)", enabled: bool = True, **target: Any) -> Rule:
    return Rule(arn=RULE_ARN, name="drift", region="us-east-1", account="123456789012",
                expression=expression, enabled=enabled,
                targets=(Target(id="monitor", arn=FN, **target),))


def test_fires_once_when_due_with_a_scheduled_event(tmp_path: Path) -> None:
    h = Harness(tmp_path, rule())
    sched = h.scheduler()
    assert h.tick(sched, T0) == []  # first sight: anchored, nothing due
    assert h.tick(sched, T0 + DAY - timedelta(seconds=1)) == []
    (fired,) = h.tick(sched, T0 + DAY + timedelta(seconds=5))
    assert fired["ok"] and fired["scheduled"] == "2024-03-02T09:30:15Z"
    assert fired["function"] == FN and fired["executed_version"] == "3"
    ((arn, event),) = h.calls
    assert arn == FN
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["version"] == "0" and event["id"] and event["detail"] == {}
    assert event["time"] == "2024-03-02T09:30:15Z" and event["resources"] == [RULE_ARN]
    assert event["account"] == "123456789012" and event["region"] == "us-east-1"
    assert h.tick(sched, T0 + DAY + timedelta(seconds=30)) == []  # not twice
    state = json.loads((tmp_path / "scheduler.json").read_text())["rules"][RULE_ARN]
    assert state["last_fire"]["scheduled"] == "2024-03-02T09:30:15Z"
    assert state["last_fire"]["outcomes"]["monitor"]["ok"]
    sched.close()


def test_target_input_is_delivered_like_eventbridge(tmp_path: Path) -> None:
    constant = Harness(tmp_path / "a",
                       rule(input='{"source": "mlops.schedule", "monitor": "d"}'))
    sched = constant.scheduler()
    sched.tick(T0)
    h_fires = constant.tick(sched, T0 + DAY)
    assert h_fires and constant.calls[0][1] == {"source": "mlops.schedule", "monitor": "d"}
    path = Harness(tmp_path / "b", rule(input_path="$.time"))
    sched_b = path.scheduler()
    sched_b.tick(T0)
    path.tick(sched_b, T0 + DAY)
    assert path.calls[0][1] == "2024-03-02T09:30:15Z"
    transformer = Harness(tmp_path / "c", rule(input_transformer={
        "InputPathsMap": {"when": "$.time", "detail": "$.detail"},
        "InputTemplate": '{"monitor": "d", "time": "<when>", "detail": <detail>, '
                         '"rule": "<aws.events.rule-name>"}'}))
    sched_c = transformer.scheduler()
    sched_c.tick(T0)
    transformer.tick(sched_c, T0 + DAY)
    assert transformer.calls[0][1] == {"monitor": "d", "time": "2024-03-02T09:30:15Z",
                                       "detail": {}, "rule": "drift"}
    for s in (sched, sched_b, sched_c):
        s.close()


def test_disabled_rules_do_not_fire_or_catch_up(tmp_path: Path) -> None:
    h = Harness(tmp_path, rule(enabled=False))
    sched = h.scheduler()
    sched.tick(T0)
    assert h.tick(sched, T0 + 2.5 * DAY) == [] and h.calls == []
    h.rules = [rule(enabled=True)]
    sched.reload(T0 + 2.5 * DAY)
    assert h.tick(sched, T0 + 2.6 * DAY) == []  # the skipped days stay skipped
    assert len(h.tick(sched, T0 + 3 * DAY)) == 1
    sched.close()


def test_restart_fires_missed_once_and_never_twice(tmp_path: Path) -> None:
    h = Harness(tmp_path, rule())
    first = h.scheduler()
    first.tick(T0)
    assert len(h.tick(first, T0 + DAY)) == 1
    first.close()
    # The daemon was down for four and a half days: one fire, for the latest due time.
    second = h.scheduler()
    (fired,) = h.tick(second, T0 + 5.5 * DAY)
    assert fired["scheduled"] == "2024-03-06T09:30:15Z"
    second.close()
    # Restarted again at the same moment (e.g. a crash right after the fire): nothing.
    third = h.scheduler()
    assert h.tick(third, T0 + 5.5 * DAY) == []
    assert len(h.calls) == 2
    third.close()


def test_changed_expression_reanchors_and_bad_rules_are_skipped(tmp_path: Path) -> None:
    h = Harness(tmp_path, rule("rate(1 day)"))
    sched = h.scheduler()
    sched.tick(T0)
    h.rules = [rule("rate(1 hour)")]
    sched.reload(T0 + timedelta(minutes=30))
    assert h.tick(sched, T0 + timedelta(minutes=89)) == []
    assert h.tick(sched, T0 + timedelta(minutes=90))[0]["scheduled"] == "2024-03-01T11:00:15Z"
    h.rules = [rule("rate(0 days)")]  # moto accepts it; the scheduler never fires it
    sched.reload(T0 + DAY)
    assert h.tick(sched, T0 + 9 * DAY) == []
    sched.close()


def test_non_lambda_targets_and_failures_are_recorded(tmp_path: Path) -> None:
    queue = Rule(arn=RULE_ARN, name="drift", region="us-east-1", account="123456789012",
                 expression="rate(1 day)", enabled=True,
                 targets=(Target(id="q", arn="arn:aws:sqs:us-east-1:123456789012:q"),))
    h = Harness(tmp_path, queue)
    sched = h.scheduler()
    sched.tick(T0)
    (fired,) = h.tick(sched, T0 + DAY)
    assert not fired["ok"] and "only Lambda targets" in fired["error"] and h.calls == []

    def boom(arn: str, payload: Any) -> dict[str, Any]:
        raise ConnectionError("runner gone")

    failing = Scheduler(tmp_path / "f", lambda: [rule()], boom, workers=1)
    failing.tick(T0)
    (out,) = [f.outcome(10) for f in failing.tick(T0 + DAY)]
    assert not out["ok"] and "runner gone" in out["error"]
    for s in (sched, failing):
        s.close()


def test_clock_moves_forward_only() -> None:
    clock = Clock(now=lambda: T0)
    assert clock.now() == T0
    assert clock.advance(3600) == T0 + timedelta(hours=1)
    assert clock.set(T0 + DAY) == T0 + DAY and clock.offset == DAY
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(T0)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


# -- on the daemon -----------------------------------------------------------------------------
def _post(url: str, body: Any) -> dict[str, Any]:
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_daemon_fires_rules_when_its_clock_moves(deployed: Any) -> None:
    events = deployed.conn.client("events")
    arn = events.put_rule(Name="every-5", ScheduleExpression="rate(5 minutes)",
                          State="ENABLED")["RuleArn"]
    events.put_targets(Rule="every-5",
                       Targets=[{"Id": "echo", "Arn": f"{deployed.function_arn}:1"}])
    gateway = deployed.aws.gateway_url
    try:
        _post(f"{gateway}/_mlops/refresh", {})
        moved = _post(f"{gateway}/_mlops/clock", {"advance": 301})
        (fire,) = [f for f in moved["fires"] if f["rule"] == "every-5"]
        assert fire["ok"] and fire["executed_version"] == "1"
        event = json.loads(fire["payload"]["body"])["event"]
        assert event["detail-type"] == "Scheduled Event" and event["resources"] == [arn]
        assert event["time"] == fire["scheduled"]
        assert _post(f"{gateway}/_mlops/clock", {"advance": 60})["fires"] == []
        events.disable_rule(Name="every-5")
        assert _post(f"{gateway}/_mlops/clock", {"advance": 600})["fires"] == []
        state = json.loads((deployed.aws.home / "scheduler.json").read_text())["rules"][arn]
        assert state["last_fire"]["scheduled"] == fire["scheduled"]
        # Lambda's Invoke on the control plane runs the function too (moto's never runs code).
        lam = deployed.conn.client("lambda")
        called = lam.invoke(FunctionName=deployed.function_arn, Qualifier="2",
                            Payload=json.dumps({"x": 1}).encode())
        assert called["StatusCode"] == 200 and called["ExecutedVersion"] == "2"
        assert "FunctionError" not in called
        assert json.loads(json.loads(called["Payload"].read())["body"])["event"] == {"x": 1}
        failed = lam.invoke(FunctionName=deployed.function_arn, Qualifier="2",
                            Payload=json.dumps({"queryStringParameters": {"mode": "raise"}}))
        assert failed["FunctionError"] == "Unhandled"
        assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
    finally:
        events.remove_targets(Rule="every-5", Ids=["echo"])
        events.delete_rule(Name="every-5")
