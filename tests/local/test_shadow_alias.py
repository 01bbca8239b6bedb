"""The control side of a shadow step against the local AWS: the shadow alias started on a
candidate (since when, in its description), moved, read and stopped; and the candidate's
Shadow* metrics summed over the step from CloudWatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from framework import shadow

from .conftest import Deployed


def test_start_move_read_stop(deployed: Deployed) -> None:
    lam = deployed.conn.client("lambda")
    assert shadow.current(lam, "echo") is None
    began = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    shadow.start(lam, "echo", "2", now=began)
    assert shadow.current(lam, "echo") == ("2", began)
    shadow.start(lam, "echo", "1", now=began + timedelta(minutes=5))  # already there: moved
    assert shadow.current(lam, "echo") == ("1", began + timedelta(minutes=5))
    shadow.stop(lam, "echo")
    assert shadow.current(lam, "echo") is None
    shadow.stop(lam, "echo")  # nothing to stop is fine


def test_figures_sum_the_candidates_shadow_metrics(deployed: Deployed) -> None:
    cloudwatch = deployed.conn.client("cloudwatch")
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    def put(model_version: str, when: datetime, **values: float) -> None:
        cloudwatch.put_metric_data(Namespace="mlops", MetricData=[{
            "MetricName": name, "Value": value, "Unit": "Count", "Timestamp": when,
            "Dimensions": [{"Name": "FunctionName", "Value": "echo"},
                           {"Name": "ModelVersion", "Value": model_version}]}
            for name, value in values.items()])

    put("1.1.0", now - timedelta(minutes=3), ShadowRequests=4, ShadowErrors=1,
        ShadowCompared=6, ShadowDisagreement=2)
    put("1.1.0", now - timedelta(minutes=1), ShadowRequests=2, ShadowErrors=0,
        ShadowCompared=4, ShadowDisagreement=1)
    put("1.1.0", now - timedelta(hours=2), ShadowRequests=50, ShadowCompared=50)  # before
    put("1.0.0", now - timedelta(minutes=2), ShadowRequests=9, ShadowCompared=9)  # another
    got = shadow.figures(cloudwatch, "echo", "predict", "1.1.0", now - timedelta(minutes=10))
    assert (got.requests, got.errors, got.compared, got.disagreed) == (6, 1, 10, 3)
    assert got.disagreement == 0.3
    assert "disagreement 30.0% (3 of 10 rows)" in got.describe()
    none = shadow.figures(cloudwatch, "echo", "predict", "9.9.9", now - timedelta(minutes=10))
    assert none.requests == 0 and none.disagreement is None
    assert "no shadow answers" in none.describe()
