"""A monitor run that never finished: Lambda's on-failure record becomes a [FAILURE] report
of the window it was checking, mailed per notify.when, and one MonitorFailures data point."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from framework.monitoring.failure import METRIC, report_failure, why
from framework.monitoring.run import Clients, history_key
from tests.monitoring.support import spec, store_with_reference

TIMED_OUT = {
    "version": "1.0", "timestamp": "2024-05-02T00:00:07.120Z",
    "requestContext": {"requestId": "c0ffee", "condition": "RetriesExhausted",
                       "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:f:live",
                       "approximateInvokeCount": 1},
    "requestPayload": {"source": "mlops.schedule", "monitor": "m-drift",
                       "time": "2024-05-02T00:00:00Z"},
    "responseContext": {"statusCode": 200, "executedVersion": "3",
                        "functionError": "Unhandled"},
    "responsePayload": {"errorType": "Sandbox.Timedout",
                        "errorMessage": "Task timed out after 1.00 seconds"},
}


@pytest.mark.parametrize("payload,head", [
    ({"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"},
     "the run timed out"),
    ({"errorType": "Runtime.OutOfMemory", "errorMessage": "Runtime exited with error: signal: "
      "killed (used 1031 MB of 1024 MB)"}, "the run ran out of memory"),
    ({"errorType": "KeyError", "errorMessage": "'inputs'", "stackTrace": ["..."]},
     "the run failed"),
    (None, "the run failed"),
])
def test_the_reason_says_what_happened_in_lambdas_words(payload: object, head: str) -> None:
    text = why({**TIMED_OUT, "responsePayload": payload})
    assert text.startswith(f"{head} before writing its report: ")
    assert "(RetriesExhausted, 1 attempt, request c0ffee)" in text
    if isinstance(payload, dict):
        assert payload["errorMessage"] in text


def test_a_timed_out_run_is_a_failure_report_mail_and_metric() -> None:
    store = store_with_reference()
    with mock_aws():
        ses = boto3.client("ses", region_name="eu-west-1")
        ses.verify_email_identity(EmailAddress="ops@example.com")
        cw = boto3.client("cloudwatch", region_name="eu-west-1")
        report = report_failure(spec(), store, TIMED_OUT, Clients(ses=ses, cloudwatch=cw),
                                now=datetime(2024, 5, 2, 0, 1, tzinfo=UTC))
        assert report["status"] == "failure"
        assert report["subject"].startswith("[FAILURE] m-drift: the run timed out before "
                                            "writing its report: Sandbox.Timedout: Task timed "
                                            "out after 1.00 seconds")
        assert report["window"] == {"start": "2024-05-01T00:00:00Z",
                                    "end": "2024-05-02T00:00:00Z"}
        assert report["notification"]["sent"] is True
        assert report["failure_metric"]["published"] is True
        got = cw.get_metric_statistics(
            Namespace="mlops/proj", MetricName=METRIC, Statistics=["Sum"], Period=60,
            StartTime=datetime(2024, 5, 2, tzinfo=UTC), EndTime=datetime(2024, 5, 2, 1, tzinfo=UTC),
            Dimensions=[{"Name": "Monitor", "Value": "m-drift"},
                        {"Name": "Endpoint", "Value": "score"}])
        assert [p["Sum"] for p in got["Datapoints"]] == [1.0]
    history = json.loads(store.get(history_key("m-drift")) or b"[]")
    assert [h["status"] for h in history] == ["failure"]
    assert store.get(report["report_key"]) is not None


def test_memory_timeout_and_the_failure_destination_are_compiled_from_mlops_yaml() -> None:
    from framework.compile import compile_config
    from framework.config.models import Config
    from tests.compile.test_compile import SPEC, context

    spec = json.loads(json.dumps(SPEC))
    spec["monitors"]["fraud-drift"].update(memory=3008, timeout=600)
    graph = compile_config(Config.model_validate(spec), context())
    fn = graph.resources["function.mon-fraud-drift"].props
    assert (fn["memory"], fn["timeout"]) == (3008, 600)
    notifier = graph.resources["function.mon-fraud-drift-failed"].props
    assert notifier["handler"] == "handlers.monitor_failure.handler"
    assert notifier["environment"]["MLOPS_MONITOR"] == fn["environment"]["MLOPS_MONITOR"]
    config = graph.resources["on-failure.mon-fraud-drift"].props
    assert config == {"function_name": "fraud-dev-mon-fraud-drift", "qualifier": "live",
                      "maximum_retry_attempts": 0, "maximum_event_age_s": 21600,
                      "on_failure": "arn:aws:lambda:us-east-1:123456789012:function:"
                                    "fraud-dev-mon-fraud-drift-failed:live"}
    role = graph.resources["role.mon-fraud-drift"].props["policy"]["Statement"]
    invoke = [s for s in role if s["Sid"] == "SendFailedRunsToTheNotifier"]
    assert invoke and config["on_failure"] in invoke[0]["Resource"]
    defaults = compile_config(Config.model_validate(SPEC), context())
    fn = defaults.resources["function.mon-fraud-drift"].props
    assert (fn["memory"], fn["timeout"]) == (1024, 300)
    spec["monitors"]["fraud-drift"]["timeout"] = 901
    with pytest.raises(ValueError, match="timeout"):
        Config.model_validate(spec)
