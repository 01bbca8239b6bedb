"""The local CloudWatch (``framework/local/metrics_engine.py``) against the real local AWS.

- A daemon of this module's own, whose engines do not tick during the tests
  (``MLOPS_LOG_SHIP_S=3600``), and an engine the tests drive with their own clock, one region
  per test: EMF log events put in the daemon's log groups become metrics (GetMetricStatistics
  answers them by exact dimensions, with percentiles) and the alarms ``framework.rollout
  .alarms`` declares for an endpoint go to ALARM and back to OK, with CloudWatch's reasons.
- Lambda's own metrics (``AWS/Lambda``, ``lambda_points``), recorded by the engine as the
  local Lambda hands them over: the function-errors alarm counts crashes over invocations.
- The shared local AWS and its own engine: a function's EMF lines, written by the real
  ``framework.runtime.emf`` in a Lambda worker and shipped by the runner, and the runner's
  ``AWS/Lambda`` metrics of each invocation (a crash among them), become metrics and move an
  alarm with no test driving anything.
- Pure parts: the EMF checks of extraction, the missing-data tables of CloudWatch's
  documentation, metric math.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from framework import local
from framework.config.models import Rollout
from framework.local.metrics_engine import (
    ALARM,
    INSUFFICIENT,
    OK,
    EmfError,
    ExpressionError,
    MetricsEngine,
    decide,
    evaluate_expression,
    extract,
    lambda_points,
)
from framework.rollout.alarms import endpoint_alarms, wilson_lower
from framework.runtime import emf

from .conftest import start_daemon
from .support import REGION, create_function, make_zip

LATE_S = 5.0


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalAWS]:
    home = tmp_path_factory.mktemp("quiet-aws")
    saved = os.environ.get("MLOPS_LOG_SHIP_S")
    os.environ["MLOPS_LOG_SHIP_S"] = "3600"  # the daemon's own engine waits an hour
    try:
        aws = start_daemon(home)
    finally:
        if saved is None:
            os.environ.pop("MLOPS_LOG_SHIP_S", None)
        else:
            os.environ["MLOPS_LOG_SHIP_S"] = saved
    yield aws
    local.stop(home)


def client_of(aws: local.LocalAWS) -> Callable[[str, str], Any]:
    return lambda service, region: local.connection(aws, region).client(service)


def engine(aws: local.LocalAWS, region: str, home: Path | None = None) -> MetricsEngine:
    return MetricsEngine(client_of(aws), lambda: [region], home=home, late_s=LATE_S)


def a_minute_ago_by_an_hour() -> float:
    """The start of a whole minute an hour ago (the tests' clock starts there)."""
    return (time.time() // 60 - 60) * 60


def put_lines(aws: local.LocalAWS, region: str, group: str, stream: str,
              lines: list[str], at_ms: int | None = None) -> None:
    logs = local.connection(aws, region).client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000) if at_ms is None else at_ms
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": now, "message": line.rstrip("\n")} for line in lines])


def requests(line: emf.MetricLine, start: float, statuses: list[int],
             latencies: list[float]) -> list[str]:
    """EMF lines of requests one second apart from ``start``, as the handler writes them."""
    out = []
    for i, (status, ms) in enumerate(zip(statuses, latencies, strict=True)):
        scores = (1, 0.25 + i / 100, 0.9) if status == 200 else None
        out.append(line.line(start + i + 0.5, status, repr(ms), scores))
    return out


def statistics(aws: local.LocalAWS, region: str, metric: str, dims: dict[str, str],
               around: float, namespace: str = "mlops", **kwargs: Any) -> list[dict[str, Any]]:
    cloudwatch = local.connection(aws, region).client("cloudwatch")
    points: list[dict[str, Any]] = cloudwatch.get_metric_statistics(
        Namespace=namespace, MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=datetime.fromtimestamp(around - 600, UTC),
        EndTime=datetime.fromtimestamp(around + 600, UTC), Period=60, **kwargs)["Datapoints"]
    return sorted(points, key=lambda p: p["Timestamp"])


def alarms_of(aws: local.LocalAWS, region: str) -> dict[str, dict[str, Any]]:
    cloudwatch = local.connection(aws, region).client("cloudwatch")
    return {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}


def stamp(ts: float) -> str:
    return re.escape(datetime.fromtimestamp(ts, UTC).strftime("%d/%m/%y %H:%M:%S"))


def test_emf_lines_become_metrics_and_the_endpoint_alarms_go_to_alarm_and_back(
        quiet: local.LocalAWS) -> None:
    region = "eu-west-1"
    cloudwatch = local.connection(quiet, region).client("cloudwatch")
    rollout = Rollout.model_validate({"every": "1m", "watch": {
        "error_rate": 0.05, "invalid_rate": 0.2, "p99_latency_ms": 50, "min_requests": 10}})
    declared = endpoint_alarms("shop-dev-score", "score", rollout, alias="live")
    assert [a["AlarmName"] for a in declared] == [
        "shop-dev-score-error-rate", "shop-dev-score-function-errors",
        "shop-dev-score-invalid-input", "shop-dev-score-p99-latency"]
    for alarm in declared:
        cloudwatch.put_metric_alarm(**alarm)
    run = engine(quiet, region)
    group, stream = "/aws/lambda/shop-dev-score", "2026/01/01/[local]abc"
    line = emf.MetricLine("shop-dev-score", "score", "2.0.0")
    b = a_minute_ago_by_an_hour()

    # minute b: 20 requests, 4 answered 500 (20%: its 95% lower bound, 9.3%, is above 5%), 2
    # refused 422 (10%: bound 3.4% < 20%), one slow
    statuses = [500] * 4 + [422] * 2 + [200] * 14
    latencies = [10.0 + i for i in range(19)] + [80.0]
    put_lines(quiet, region, group, stream, requests(line, b, statuses, latencies))
    counts = run.tick(now=b + 60 + LATE_S + 1)
    assert counts["events"] == 20 and counts["values"] == 20 * 8 * 2 - 6 * 3 * 2

    endpoint = {"FunctionName": "shop-dev-score"}
    version = {"FunctionName": "shop-dev-score", "ModelVersion": "2.0.0"}
    [total] = statistics(quiet, region, "Requests", endpoint, b, Statistics=["Sum"])
    assert total["Sum"] == 20 and total["Unit"] == "Count"  # not 40: dimensions match exactly
    assert total["Timestamp"].timestamp() == b
    [by_version] = statistics(quiet, region, "Requests", version, b,
                              Statistics=["Sum", "SampleCount"])
    assert by_version["Sum"] == 20 and by_version["SampleCount"] == 20
    [errors] = statistics(quiet, region, "ServerErrors", endpoint, b,
                          Statistics=["Sum", "Average"])
    assert errors["Sum"] == 4 and errors["Average"] == pytest.approx(0.2)
    [latency] = statistics(quiet, region, "Latency", endpoint, b,
                           ExtendedStatistics=["p99", "p50"], Statistics=["Maximum"])
    assert latency["ExtendedStatistics"] == {"p99": 80.0, "p50": 19.0}
    assert latency["Maximum"] == 80.0 and latency["Unit"] == "Milliseconds"
    [rows] = statistics(quiet, region, "Rows", version, b, Statistics=["Sum"])
    assert rows["Sum"] == 14  # answered predictions only
    assert statistics(quiet, region, "Requests", {"Endpoint": "score"}, b,
                      Statistics=["Sum"]) == []  # the endpoint's name is no dimension

    state = alarms_of(quiet, region)
    error_rate = state["shop-dev-score-error-rate"]
    assert error_rate["StateValue"] == ALARM
    assert re.fullmatch(
        rf"Threshold Crossed: 1 out of the last 1 datapoints \[9\.311\d* \({stamp(b)}\)\] was "
        r"greater than the threshold \(5\.0\) \(minimum 1 datapoint for OK -> ALARM "
        r"transition\)\.", error_rate["StateReason"]), error_rate["StateReason"]
    data = json.loads(error_rate["StateReasonData"])
    assert data["evaluatedDatapoints"][0]["value"] == pytest.approx(9.3111739)
    assert data["threshold"] == 5.0
    invalid = state["shop-dev-score-invalid-input"]
    assert invalid["StateValue"] == OK
    assert "[3.366" in invalid["StateReason"] and "was not greater than the threshold (20.0)" \
        in invalid["StateReason"]
    slow = state["shop-dev-score-p99-latency"]
    assert slow["StateValue"] == ALARM and "[80.0 (" in slow["StateReason"]
    assert json.loads(slow["StateReasonData"])["extendedStatistic"] == "p99"

    # minute b + 60: 20 healthy requests; the alarms go back to OK
    put_lines(quiet, region, group, stream,
              requests(line, b + 60, [200] * 20, [12.0] * 20))
    counts = run.tick(now=b + 120 + LATE_S + 1)
    assert counts["events"] == 20 and counts["changed"] == 2
    state = alarms_of(quiet, region)
    error_rate = state["shop-dev-score-error-rate"]
    assert error_rate["StateValue"] == OK
    assert re.fullmatch(
        rf"Threshold Crossed: 1 out of the last 1 datapoints \[0\.0 \({stamp(b + 60)}\)\] "
        r"was not greater than the threshold \(5\.0\) \(minimum 1 datapoint for ALARM -> OK "
        r"transition\)\.", error_rate["StateReason"]), error_rate["StateReason"]
    assert state["shop-dev-score-p99-latency"]["StateValue"] == OK
    assert [p["Sum"] for p in statistics(quiet, region, "Requests", endpoint, b,
                                         Statistics=["Sum"])] == [20, 20]

    # nothing new, the same minute: nothing is evaluated again, nothing put twice
    assert run.tick(now=b + 120 + LATE_S + 2) == {"events": 0, "values": 0, "evaluated": 0,
                                                  "changed": 0}


def test_alarms_without_evidence(quiet: local.LocalAWS) -> None:
    region = "us-west-2"
    cloudwatch = local.connection(quiet, region).client("cloudwatch")
    rollout = Rollout.model_validate({"every": "1m", "watch": {"error_rate": 0.05,
                                                               "min_requests": 10}})
    for alarm in endpoint_alarms("idle-dev-ep", "ep", rollout, alias="live"):
        cloudwatch.put_metric_alarm(**alarm)
    cloudwatch.put_metric_alarm(  # CloudWatch's default: missing data is missing
        AlarmName="idle-latency", Namespace="mlops", MetricName="Latency",
        Dimensions=[{"Name": "Endpoint", "Value": "nobody"}], Statistic="Average",
        Period=60, EvaluationPeriods=2, Threshold=100.0,
        ComparisonOperator="GreaterThanThreshold")
    b = a_minute_ago_by_an_hour()
    # 3 requests, all failing: fewer than min_requests, the rate counts as 0
    put_lines(quiet, region, "/aws/lambda/idle-dev-ep", "s",
              requests(emf.MetricLine("idle-dev-ep", "ep", "1.0.0"), b, [500] * 3, [5.0] * 3))
    # another stage of the project, in the same account and region, serves an endpoint of
    # the same name, all failing: its requests are not the dev endpoint's
    put_lines(quiet, region, "/aws/lambda/idle-prod-ep", "s",
              requests(emf.MetricLine("idle-prod-ep", "ep", "1.0.0"), b, [500] * 20,
                       [5.0] * 20))
    engine(quiet, region).tick(now=b + 60 + LATE_S + 1)
    state = alarms_of(quiet, region)
    assert state["idle-dev-ep-error-rate"]["StateValue"] == OK
    assert "[0.0 (" in state["idle-dev-ep-error-rate"]["StateReason"]
    assert state["idle-latency"]["StateValue"] == INSUFFICIENT
    assert state["idle-latency"]["StateReason"] == "Insufficient Data: 2 datapoints were unknown."


def test_a_restart_does_not_count_the_resent_tail_twice(quiet: local.LocalAWS,
                                                        tmp_path: Path) -> None:
    region = "ap-southeast-2"
    line = emf.MetricLine("p-dev-ep", "ep", "1.0.0")
    b = a_minute_ago_by_an_hour()
    before = requests(line, b, [200] * 5, [3.0] * 5)
    put_lines(quiet, region, "/aws/lambda/ep", "first-run", before)
    engine(quiet, region, tmp_path).tick(now=b + 60 + LATE_S + 1)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "put_before_ms": int((b + 60) * 1000)}
    # after a restart the log shipper sends the recent tail again, into a new stream, with
    # one line of the minute still open when the daemon stopped
    after = line.line(b + 61, 200, "3.0", None)
    put_lines(quiet, region, "/aws/lambda/ep", "second-run", [*before, after])
    counts = engine(quiet, region, tmp_path).tick(now=b + 120 + LATE_S + 1)
    assert counts["events"] == 1
    sums = [p["Sum"] for p in statistics(quiet, region, "Requests",
                                         {"FunctionName": "p-dev-ep"}, b, Statistics=["Sum"])]
    assert sums == [5, 1]


def test_events_of_one_millisecond_read_in_two_rounds_count_once(
        quiet: local.LocalAWS) -> None:
    region = "sa-east-1"
    line = emf.MetricLine("p-dev-ep", "ep", "1.0.0")
    b = a_minute_ago_by_an_hour()
    at = int(time.time() * 1000)
    run = engine(quiet, region)
    put_lines(quiet, region, "/aws/lambda/ep", "s", requests(line, b, [200] * 3, [1.0] * 3), at)
    assert run.tick(now=b + 30)["events"] == 3
    put_lines(quiet, region, "/aws/lambda/ep", "s", requests(line, b + 10, [500] * 2, [1.0] * 2),
              at)  # the same millisecond of ingestion
    assert run.tick(now=b + 31)["events"] == 2
    assert run.tick(now=b + 60 + LATE_S + 1)["events"] == 0
    [point] = statistics(quiet, region, "ServerErrors", {"FunctionName": "p-dev-ep"}, b,
                         Statistics=["Sum", "SampleCount"])
    assert (point["Sum"], point["SampleCount"]) == (2, 5)


def test_broken_emf_gives_no_metric(quiet: local.LocalAWS) -> None:
    region = "ca-central-1"
    b = a_minute_ago_by_an_hour()
    good = emf.MetricLine("p-dev-ep", "ep", "1.0.0").line(b + 1, 200, "3.0", None)
    broken = json.loads(good)
    broken["FunctionName"] = 7  # a dimension value must be a string
    put_lines(quiet, region, "/aws/lambda/ep", "s", [
        json.dumps(broken), "not json but mentions \"_aws\"", "START RequestId: 1",
        f"2026-01-01T00:00:00.000Z\trequest-id\tINFO\t{good}"])  # Lambda's prefix is allowed
    run = engine(quiet, region)
    assert run.tick(now=b + 60 + LATE_S + 1)["events"] == 1
    assert run.rejected == 1
    [point] = statistics(quiet, region, "Requests", {"FunctionName": "p-dev-ep"}, b,
                         Statistics=["Sum"])
    assert point["Sum"] == 1


def test_lambdas_own_metrics_and_the_function_errors_alarm(quiet: local.LocalAWS) -> None:
    region = "eu-north-1"
    cloudwatch = local.connection(quiet, region).client("cloudwatch")
    rollout = Rollout.model_validate({"every": "1m", "watch": {"error_rate": 0.05,
                                                               "min_requests": 10}})
    [alarm] = [a for a in endpoint_alarms("shop-dev-score", "score", rollout, alias="live")
               if a["AlarmName"] == "shop-dev-score-function-errors"]
    cloudwatch.put_metric_alarm(**alarm)
    run = engine(quiet, region)
    b = a_minute_ago_by_an_hour()
    arn = f"arn:aws:lambda:{region}:123456789012:function:shop-dev-score"
    # minute b, through the alias: version 3 answers 16 invocations, version 4 crashes in 4
    # (20% of the invocations: its 95% lower bound, 9.3%, above 5%); one is refused by
    # reserved concurrency (no invocation); one invokes the function unqualified
    for i in range(20):
        run.record(region, lambda_points(f"{arn}:live", "4" if i < 4 else "3",
                                         int((b + i + 0.5) * 1000),
                                         duration_ms=30.0 if i < 4 else 3.0,
                                         function_error=i < 4))
    run.record(region, lambda_points(f"{arn}:live", "3", int((b + 30) * 1000),
                                     duration_ms=None, function_error=False))
    run.record(region, lambda_points(arn, "$LATEST", int((b + 31) * 1000), duration_ms=1.0,
                                     function_error=False))
    run.tick(now=b + 60 + LATE_S + 1)

    def total(metric: str, dims: dict[str, str], stat: str = "Sum") -> float:
        [point] = statistics(quiet, region, metric, dims, b, namespace="AWS/Lambda",
                             Statistics=[stat])
        assert point["Timestamp"].timestamp() == b  # stamped when the invocation started
        return float(point[stat])

    alias = {"FunctionName": "shop-dev-score", "Resource": "shop-dev-score:live"}
    assert (total("Invocations", alias), total("Errors", alias)) == (20, 4)
    assert total("Throttles", alias) == 1
    assert total("Duration", alias, "Maximum") == 30.0
    assert total("Errors", {**alias, "ExecutedVersion": "4"}) == 4
    assert total("Invocations", {**alias, "ExecutedVersion": "3"}) == 16
    assert total("Invocations", {"FunctionName": "shop-dev-score"}) == 21
    assert total("Invocations", {}) == 21  # across all functions
    state = alarms_of(quiet, region)["shop-dev-score-function-errors"]
    assert state["StateValue"] == ALARM and "[9.311" in state["StateReason"], state

    # minute b + 60: 5 invocations, all crashing: fewer than min_requests, judged 0
    for i in range(5):
        run.record(region, lambda_points(f"{arn}:live", "4", int((b + 60 + i) * 1000),
                                         duration_ms=1.0, function_error=True))
    run.tick(now=b + 120 + LATE_S + 1)
    state = alarms_of(quiet, region)["shop-dev-score-function-errors"]
    assert state["StateValue"] == OK and "[0.0 (" in state["StateReason"], state


# -- the daemon's own engine, fed by a function's log ---------------------------------------
PROBE = '''
import json
import sys

from framework.runtime import emf

LINE = emf.MetricLine("emf-probe", "probe", "1.0.0")


def handler(event, context):
    if event.get("crash"):
        raise RuntimeError("crashed")  # a function error: no EMF line, Lambda's Errors
    sys.stdout.write(LINE.line(event["ts"], event["status"], "4.25", None))
    sys.stdout.write(json.dumps({"msg": "request", "status": event["status"]}) + "\\n")
    return {"statusCode": event["status"]}
'''


def test_the_daemon_extracts_a_functions_emf_lines_and_moves_an_alarm(
        aws: local.LocalAWS) -> None:
    import framework.runtime

    runtime = Path(framework.runtime.__file__).parent
    code = make_zip({"framework/__init__.py": "", "handlers/__init__.py": "",
                     "framework/runtime/__init__.py": (runtime / "__init__.py").read_text(),
                     "framework/runtime/emf.py": (runtime / "emf.py").read_text(),
                     "handlers/echo.py": PROBE})
    conn = local.connection(aws, REGION)
    logs, cloudwatch = conn.client("logs"), conn.client("cloudwatch")
    create_function(conn, "emf-probe", "probe", data=code)
    logs.create_log_group(logGroupName="/aws/lambda/emf-probe")  # as a deploy makes it
    cloudwatch.put_metric_alarm(
        AlarmName="probe-errors", Namespace="mlops", MetricName="ServerErrors",
        Dimensions=[{"Name": "FunctionName", "Value": "emf-probe"}], Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=0.0, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching")
    ts = time.time() - 90  # a minute that is over: its values are put at the next round
    lam = conn.client("lambda")
    for status in (200, 500, 200, 500, 200, 200):
        answer = lam.invoke(FunctionName="emf-probe",
                            Payload=json.dumps({"ts": ts, "status": status}))
        assert json.loads(answer["Payload"].read())["statusCode"] == status
    invoked = time.time()
    crashed = lam.invoke(FunctionName="emf-probe", Payload=json.dumps({"crash": True}))
    assert crashed["FunctionError"] == "Unhandled"
    minute = ts // 60 * 60
    deadline = time.monotonic() + 90  # a bound on the wait for a loaded machine, not a claim
    points: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        points = cloudwatch.get_metric_statistics(
            Namespace="mlops", MetricName="Requests",
            Dimensions=[{"Name": "FunctionName", "Value": "emf-probe"}],
            StartTime=datetime.fromtimestamp(minute, UTC),
            EndTime=datetime.fromtimestamp(minute, UTC) + timedelta(minutes=1), Period=60,
            Statistics=["Sum"])["Datapoints"]
        state = cloudwatch.describe_alarms(AlarmNames=["probe-errors"])["MetricAlarms"][0]
        if points and points[0]["Sum"] == 6 and state["StateValue"] == ALARM:
            break
        time.sleep(0.5)
    assert [p["Sum"] for p in points] == [6]
    assert state["StateValue"] == ALARM  # as soon as the first error's value was put
    assert re.fullmatch(r"Threshold Crossed: 1 out of the last 1 datapoints \[[12]\.0 \(.*\)\] "
                        r"was greater than the threshold \(0\.0\) .*", state["StateReason"])

    # The local Lambda published its own metrics of the seven invocations, the crash among
    # them (which wrote no EMF line), stamped when they started: put once their minutes end.
    def lambda_sums(metric: str) -> float:
        found = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda", MetricName=metric,
            Dimensions=[{"Name": "FunctionName", "Value": "emf-probe"}],
            StartTime=datetime.fromtimestamp(invoked - 600, UTC),
            EndTime=datetime.fromtimestamp(invoked + 600, UTC), Period=60,
            Statistics=["Sum"])["Datapoints"]
        return sum(p["Sum"] for p in found)

    deadline = time.monotonic() + 150  # the minute of the invocations must end first
    while time.monotonic() < deadline and lambda_sums("Invocations") < 7:
        time.sleep(1)
    assert (lambda_sums("Invocations"), lambda_sums("Errors")) == (7, 1)


# -- pure parts -----------------------------------------------------------------------------
def doc(**root: Any) -> str:
    base = {"_aws": {"Timestamp": 1000, "CloudWatchMetrics": [
        {"Namespace": "app", "Dimensions": [["Service"], []],
         "Metrics": [{"Name": "Time", "Unit": "Milliseconds"}, {"Name": "Hits"}]}]},
        "Service": "api", "Time": [1, 2.5], "Hits": 3}
    base.update(root)
    return json.dumps(base)


def test_extract_follows_the_specification() -> None:
    points = extract(doc())
    assert [(p.name, p.dimensions, p.unit, p.values) for p in points] == [
        ("Time", (("Service", "api"),), "Milliseconds", (1.0, 2.5)),
        ("Time", (), "Milliseconds", (1.0, 2.5)),
        ("Hits", (("Service", "api"),), "None", (3.0,)),
        ("Hits", (), "None", (3.0,))]
    assert extract("plain text") == [] and extract('{"msg": "request"}') == []
    directive = json.loads(doc())["_aws"]["CloudWatchMetrics"][0]
    for broken in (
        doc(Service=1), doc(Time="1"), doc(Hits=None), doc(Time=[1] * 101),
        doc(Time=float("nan")),
        doc(_aws={"Timestamp": 1.5, "CloudWatchMetrics": [directive]}),
        doc(_aws={"Timestamp": 1, "CloudWatchMetrics": [{**directive, "Namespace": "AWS/X"}]}),
        doc(_aws={"Timestamp": 1, "CloudWatchMetrics": [
            {**directive, "Metrics": [{"Name": "Hits", "Unit": "Hits"}]}]}),
        doc(_aws={"Timestamp": 1, "CloudWatchMetrics": [
            {**directive, "Metrics": [{"Name": "Hits", "StorageResolution": 5}]}]}),
    ):
        with pytest.raises(EmfError):
            extract(broken)


# CloudWatch's documentation, "How alarm state is evaluated when data is missing": datapoints
# oldest first (0 not breaching, X breaching, - missing) and the state for each treatment of
# missing data (None: the current state is kept).
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")
TABLES = [
    (3, 3, "0 - X - X", (OK, OK, OK, OK)),
    (3, 3, "0 - - - -", (OK, OK, OK, OK)),
    (3, 3, "- - - - -", (INSUFFICIENT, None, ALARM, OK)),
    (3, 3, "0 X X - X", (ALARM, ALARM, ALARM, ALARM)),
    (3, 3, "- - - - X", (INSUFFICIENT, None, ALARM, OK)),
    # documented ALARM for "missing": the oldest datapoint breaching and no other; here, as
    # for the newest one above, one breaching datapoint of three needed is not enough
    (3, 3, "X - - - -", (INSUFFICIENT, None, ALARM, OK)),
    (3, 2, "0 - X - X", (ALARM, ALARM, ALARM, ALARM)),
    (3, 2, "0 0 X 0 X", (ALARM, ALARM, ALARM, ALARM)),
    (3, 2, "0 - X - -", (OK, OK, ALARM, OK)),
    (3, 2, "- - - - 0", (OK, OK, ALARM, OK)),
    (3, 2, "- - - - X", (INSUFFICIENT, None, ALARM, OK)),
]


@pytest.mark.parametrize(("n", "m", "points", "states"), TABLES)
def test_missing_data_as_cloudwatch_documents_it(n: int, m: int, points: str,
                                                 states: tuple[str | None, ...]) -> None:
    values = [None if p == "-" else (5.0 if p == "X" else 0.0) for p in points.split()]
    times = [60.0 * i for i in range(len(values))]
    for treat, want in zip(TREATMENTS, states, strict=True):
        got = decide(values, times, evaluation_periods=n, datapoints_to_alarm=m,
                     comparison="GreaterThanThreshold", threshold=1.0, treat_missing=treat)
        assert got.state == want, (points, treat, got)


def test_reasons_are_worded_as_cloudwatch_words_them() -> None:
    times = [0.0, 60.0, 120.0]
    two = decide([5.0, 0.5, 7.0], times, evaluation_periods=3, datapoints_to_alarm=2,
                 comparison="GreaterThanOrEqualToThreshold", threshold=1.0)
    assert two.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [7.0 (01/01/70 00:02:00), 5.0 "
        "(01/01/70 00:00:00)] were greater than or equal to the threshold (1.0) (minimum 2 "
        "datapoints for OK -> ALARM transition).")
    none = decide([None, None, None], times, evaluation_periods=2, datapoints_to_alarm=2,
                  comparison="LessThanThreshold", threshold=1.0, treat_missing="breaching")
    assert none.state == ALARM and none.reason == (
        "Threshold Crossed: no datapoints were received for 2 periods and 2 missing "
        "datapoints were treated as [Breaching].")


def test_metric_math() -> None:
    grid = [0.0, 60.0, 120.0]
    series = {"errors": {0.0: 1.0, 60.0: 0.0}, "requests": {0.0: 4.0, 60.0: 0.0, 120.0: 9.0}}
    assert evaluate_expression("100*errors/requests", series, grid) == {0.0: 25.0}
    # at 120 the condition holds but errors has no value: no value
    assert evaluate_expression("IF(requests >= 4, errors, -1)", series, grid) == {
        0.0: 1.0, 60.0: -1.0}
    assert evaluate_expression("FILL(errors, 0) / 2", series, grid) == {
        0.0: 0.5, 60.0: 0.0, 120.0: 0.0}
    assert evaluate_expression("3", series, grid) == dict.fromkeys(grid, 3.0)
    # ^ is the exponent, binding tighter than * and /
    assert evaluate_expression("2 * requests ^ 0.5", series, grid) == {
        0.0: 4.0, 60.0: 0.0, 120.0: 6.0}
    assert evaluate_expression("-errors ^ 2 + 1", series, grid) == {0.0: 0.0, 60.0: 1.0}
    for unsupported in ("ANOMALY_DETECTION_BAND(errors)", "errors ** 2", "nobody + 1",
                        "errors and requests", "1/0"):
        with pytest.raises(ExpressionError):
            evaluate_expression(unsupported, series, grid)


def test_declared_alarms_are_put_metric_alarm_requests() -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("cloudwatch").operation_model(
        "PutMetricAlarm").input_shape
    everything = Rollout.model_validate({"watch": {
        "error_rate": 0.07, "invalid_rate": 0.25, "p99_latency_ms": 120.5}})
    narrow = Rollout.model_validate({"every": "90s", "watch": {"min_requests": 0}})
    for alarm in [*endpoint_alarms("p-dev-ep", "ep", everything, alias="live"),
                  *endpoint_alarms("p-dev-ep", "ep", narrow, alias="live",
                                   model_version="1.1.0")]:
        report = ParamValidator().validate(alarm, shape)
        assert not report.has_errors(), report.generate_report()

    error, crashes, invalid, slow = endpoint_alarms("p-dev-ep", "ep", everything, alias="live")
    assert (error["Threshold"], crashes["Threshold"], invalid["Threshold"],
            slow["Threshold"]) == (7.0, 7.0, 25.0, 120.5)
    assert error["Metrics"][0]["Expression"] == (
        f"IF(requests >= 10, 100 * {wilson_lower('servererrors', 'requests')}, 0)")
    # the rate's 95% lower bound (Wilson): 1 error in 20 requests is not above 7%; 5 are
    bound = {n: evaluate_expression(error["Metrics"][0]["Expression"],
                                    {"servererrors": {0.0: n}, "requests": {0.0: 20.0}}, [0.0])
             for n in (0.0, 1.0, 5.0)}
    assert [round(b[0.0], 2) for b in bound.values()] == [0.0, 1.12, 12.74]
    assert {q["MetricStat"]["Period"] for q in error["Metrics"][1:]} == {300}  # every: 5m
    assert slow["ExtendedStatistic"] == "p99" and slow["Period"] == 300
    # the function's name: unique in the account and region, unlike the endpoint's
    assert slow["Dimensions"] == [{"Name": "FunctionName", "Value": "p-dev-ep"}]
    # Lambda's Errors over its Invocations, of the alias (every version it routes to)
    assert crashes["Metrics"][0]["Expression"] == (
        f"IF(invocations >= 10, 100 * {wilson_lower('errors', 'invocations')}, 0)")
    assert [(q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"],
             q["MetricStat"]["Stat"], q["MetricStat"]["Period"])
            for q in crashes["Metrics"][1:]] == [("AWS/Lambda", "Errors", "Sum", 300),
                                                 ("AWS/Lambda", "Invocations", "Sum", 300)]
    assert crashes["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": "p-dev-ep"},
        {"Name": "Resource", "Value": "p-dev-ep:live"}]

    only, function_errors = endpoint_alarms("p-dev-ep", "ep", narrow, alias="live",
                                            model_version="1.1.0")
    assert only["AlarmName"] == "p-dev-ep-1.1.0-error-rate"
    assert function_errors["AlarmName"] == "p-dev-ep-1.1.0-function-errors"
    assert only["Metrics"][0]["Expression"] == (
        f"100 * {wilson_lower('servererrors', 'requests')}")
    assert only["Metrics"][1]["MetricStat"]["Period"] == 120  # 90 s, in whole minutes
    assert only["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": "p-dev-ep"}, {"Name": "ModelVersion", "Value": "1.1.0"}]
    assert function_errors["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"][1] == {
        "Name": "Resource", "Value": "p-dev-ep:live"}  # no model version in Lambda's metrics
