"""What AWS does that moto hides, answered the way AWS answers: botocore ``Stubber``s on real
clients, so every request is checked against the service model, and a fake clock, so the
waits cost nothing.

- a role created moments ago cannot be assumed yet (Lambda, Firehose);
- Firehose deletes and creates streams asynchronously (DELETING, CREATING, CREATING_FAILED);
- a Lambda function is Pending after create and InProgress during an update;
- reserved concurrency must leave 10 unreserved executions;
- list calls come in pages;
- a new SES identity stays Pending until a person clicks the link.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from framework.errors import DeployError
from framework.plan.state import Entry
from framework.providers.aws import AwsProvider

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/fraud-dev-score-fn"
FN = "fraud-dev-score"
FN_ARN = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{FN}"
LAMBDA_ROLE_ERROR = "The role defined for the function cannot be assumed by Lambda."
IN_PROGRESS = ("The operation cannot be performed at this time. An update is in progress for "
               f"resource: {FN_ARN}")
TOO_MUCH = ("Specified ReservedConcurrentExecutions for function decreases account's "
            "UnreservedConcurrentExecution below its minimum value of [10].")


@dataclass
class FakeConn:
    """Where the provider gets its clients: real botocore clients, each under a Stubber."""

    region: str = "eu-west-1"
    endpoint_url: str | None = None  # real AWS
    clients: dict[str, Any] = field(default_factory=dict)
    stubs: dict[str, Stubber] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            client = boto3.client(service, region_name=self.region, aws_access_key_id="k",
                                  aws_secret_access_key="s")
            self.clients[service] = client
            self.stubs[service] = Stubber(client)
            self.stubs[service].activate()
        return self.clients[service]

    def stub(self, service: str) -> Stubber:
        self.client(service)
        return self.stubs[service]


@dataclass
class Clock:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[tuple[AwsProvider, FakeConn, Clock]]:
    conn, clock = FakeConn(), Clock()
    provider = AwsProvider(conn, tmp_path, sleep=clock.sleep, clock=clock)  # type: ignore[arg-type]
    yield provider, conn, clock
    for stub in conn.stubs.values():
        stub.assert_no_pending_responses()


def function_props(**changes: Any) -> dict[str, Any]:
    return {"function_name": FN, "runtime": "python3.11", "handler": "handlers.inference.handler",
            "role_arn": ROLE,
            "code": {"bucket": "fraud-models", "key": "code/x.zip", "sha256": "0" * 64},
            "memory": 1024, "timeout": 15, "concurrency": 4, "description": "score",
            "environment": {"A": "1"}, "tags": {"mlops:project": "fraud"}, **changes}


def config(state: str = "Active", update: str = "Successful", **more: Any) -> dict[str, Any]:
    return {"FunctionName": FN, "FunctionArn": FN_ARN, "State": state,
            "LastUpdateStatus": update, **more}


def created() -> dict[str, Any]:
    return {"FunctionName": FN, "FunctionArn": FN_ARN, "State": "Pending"}


# -- 1. IAM role propagation ----------------------------------------------------------------


def test_create_function_retries_until_the_new_role_can_be_assumed(aws: Any) -> None:
    provider, conn, clock = aws
    lam = conn.stub("lambda")
    for _ in range(3):
        lam.add_client_error("create_function", "InvalidParameterValueException",
                             LAMBDA_ROLE_ERROR, 400)
    lam.add_response("create_function", created())
    lam.add_response("get_function_configuration", config("Pending"))
    lam.add_response("get_function_configuration", config("Active"))
    lam.add_response("get_function_configuration", config())  # nothing in progress
    lam.add_response("put_function_concurrency", {"ReservedConcurrentExecutions": 4},
                     {"FunctionName": FN, "ReservedConcurrentExecutions": 4})
    out = provider.create("lambda_function", function_props())
    assert out == {"arn": FN_ARN, "function_name": FN}
    assert clock.slept == [1.0, 2.0, 4.0, 1.0]  # three role retries, one Pending poll


def test_a_role_that_never_becomes_assumable_is_a_clear_error(aws: Any) -> None:
    provider, conn, clock = aws
    lam = conn.stub("lambda")
    for _ in range(10):  # 1+2+4+8+8+8+8+8+8 = 55 s of waiting, then 8 more would pass 60
        lam.add_client_error("create_function", "InvalidParameterValueException",
                             LAMBDA_ROLE_ERROR, 400)
    with pytest.raises(DeployError, match="Lambda still cannot assume .*fraud-dev-score-fn "
                                          "after 60 s") as info:
        provider.create("lambda_function", function_props())
    assert "trust policy" in info.value.hint
    assert clock.now == 55 and len(clock.slept) == 9  # ten attempts within the minute


def test_other_invalid_parameters_are_not_retried(aws: Any) -> None:
    provider, conn, clock = aws
    conn.stub("lambda").add_client_error("create_function", "InvalidParameterValueException",
                                         "Unzipped size must be smaller than 262144000 bytes",
                                         400)
    with pytest.raises(Exception, match="Unzipped size"):
        provider.create("lambda_function", function_props())
    assert clock.slept == []


def test_update_configuration_with_a_new_role_retries_too(aws: Any) -> None:
    provider, conn, clock = aws
    lam = conn.stub("lambda")
    lam.add_response("get_function_configuration", config())  # settled before the change
    lam.add_client_error("update_function_configuration", "InvalidParameterValueException",
                         LAMBDA_ROLE_ERROR, 400)
    lam.add_response("update_function_configuration", config(update="InProgress"))
    lam.add_response("get_function_configuration", config(update="InProgress"))
    lam.add_response("get_function_configuration", config())
    lam.add_response("tag_resource", {})
    lam.add_response("get_function_configuration", config())
    lam.add_response("put_function_concurrency", {"ReservedConcurrentExecutions": 4})
    before = Entry("lambda_function", function_props(), {})
    provider.update("lambda_function", function_props(memory=2048), before)
    assert clock.slept == [1.0, 1.0]


def test_firehose_retries_until_it_may_assume_the_role(aws: Any) -> None:
    provider, conn, clock = aws
    fh = conn.stub("firehose")
    fh.add_client_error("create_delivery_stream", "InvalidArgumentException",
                        f"Role {ROLE} is not authorized to perform: sts:AssumeRole on resource "
                        f"{ROLE}", 400)
    fh.add_client_error("create_delivery_stream", "InvalidArgumentException",
                        f"Firehose is unable to assume role {ROLE}. Please check the role "
                        "provided.", 400)
    fh.add_response("create_delivery_stream", {"DeliveryStreamARN": STREAM_ARN})
    fh.add_response("describe_delivery_stream", stream("CREATING"))
    fh.add_response("describe_delivery_stream", stream("ACTIVE"))
    out = provider.create("firehose_stream", stream_props())
    assert out == {"arn": STREAM_ARN, "stream_name": STREAM}
    assert clock.slept == [1.0, 2.0, 1.0]


def test_a_subscription_retries_until_logs_can_deliver_through_the_new_role(aws: Any) -> None:
    provider, conn, clock = aws
    logs = conn.stub("logs")
    message = ("Could not deliver test message to specified Firehose stream. Check if the given "
               "Firehose stream is in ACTIVE state.")
    logs.add_client_error("put_subscription_filter", "InvalidParameterException", message, 400)
    logs.add_client_error("put_subscription_filter", "InvalidParameterException", message, 400)
    logs.add_response("put_subscription_filter", {})
    props = {"log_group": f"/aws/lambda/{FN}", "filter_name": "mlops-capture",
             "filter_pattern": '{ $.msg = "capture" }', "destination_arn": STREAM_ARN,
             "role_arn": ROLE}
    out = provider.create("log_subscription", props)
    assert out == {"log_group": f"/aws/lambda/{FN}", "filter_name": "mlops-capture"}
    assert clock.slept == [1.0, 2.0]


def test_a_subscription_that_never_delivers_is_a_clear_error(aws: Any) -> None:
    provider, conn, clock = aws
    logs = conn.stub("logs")
    for _ in range(10):  # ten attempts within the minute, as for a role Lambda cannot assume
        logs.add_client_error("put_subscription_filter", "InvalidParameterException",
                              "Could not deliver test message to specified Firehose stream.",
                              400)
    props = {"log_group": f"/aws/lambda/{FN}", "filter_name": "mlops-capture",
             "filter_pattern": '{ $.msg = "capture" }', "destination_arn": STREAM_ARN,
             "role_arn": ROLE}
    with pytest.raises(DeployError, match="CloudWatch Logs still cannot send") as info:
        provider.create("log_subscription", props)
    assert "logs.amazonaws.com" in (info.value.hint or "")
    assert clock.now == 55


# -- 2. Firehose: asynchronous delete and create ---------------------------------------------

STREAM = "fraud-dev-score-capture"
STREAM_ARN = f"arn:aws:firehose:eu-west-1:{ACCOUNT}:deliverystream/{STREAM}"


def stream_props(**changes: Any) -> dict[str, Any]:
    return {"stream_name": STREAM, "bucket": "fraud-models", "role_arn": ROLE,
            "prefix": "capture/score/dt=!{timestamp:yyyy-MM-dd}/",
            "error_prefix": "capture-errors/score/!{firehose:error-output-type}/",
            "buffer_seconds": 60, "buffer_mb": 5, "compression": "GZIP",
            "extension": ".jsonl.gz", "tags": {"mlops:project": "fraud"}, **changes}


def stream(status: str, **more: Any) -> dict[str, Any]:
    return {"DeliveryStreamDescription": {
        "DeliveryStreamName": STREAM, "DeliveryStreamARN": STREAM_ARN,
        "DeliveryStreamStatus": status, "DeliveryStreamType": "DirectPut", "VersionId": "1",
        "Destinations": [], "HasMoreDestinations": False, **more}}


def test_replace_waits_for_the_old_stream_to_be_gone_then_for_active(aws: Any) -> None:
    provider, conn, clock = aws
    fh = conn.stub("firehose")
    fh.add_response("delete_delivery_stream", {}, {"DeliveryStreamName": STREAM})
    fh.add_response("describe_delivery_stream", stream("DELETING"))
    fh.add_response("describe_delivery_stream", stream("DELETING"))
    fh.add_client_error("describe_delivery_stream", "ResourceNotFoundException",
                        f"Firehose {STREAM} under account {ACCOUNT} not found.", 400)
    fh.add_response("create_delivery_stream", {"DeliveryStreamARN": STREAM_ARN})
    fh.add_response("describe_delivery_stream", stream("CREATING"))
    fh.add_response("describe_delivery_stream", stream("CREATING"))
    fh.add_response("describe_delivery_stream", stream("ACTIVE"))
    before = Entry("firehose_stream", stream_props(), {"arn": STREAM_ARN})
    out = provider.replace("firehose_stream", stream_props(buffer_seconds=120), before)
    assert out["arn"] == STREAM_ARN
    assert clock.slept == [1.0, 2.0, 1.0, 2.0]


def test_a_deleting_stream_is_never_adopted(aws: Any) -> None:
    provider, conn, _ = aws
    fh = conn.stub("firehose")
    fh.add_client_error("create_delivery_stream", "ResourceInUseException",
                        f"Firehose {STREAM} under accountId {ACCOUNT} already exists", 400)
    fh.add_response("describe_delivery_stream", stream("DELETING"))  # what create met
    fh.add_response("describe_delivery_stream", stream("DELETING"))  # waiting...
    fh.add_client_error("describe_delivery_stream", "ResourceNotFoundException", "gone", 400)
    fh.add_response("create_delivery_stream", {"DeliveryStreamARN": STREAM_ARN})
    fh.add_response("describe_delivery_stream", stream("ACTIVE"))
    assert provider.create("firehose_stream", stream_props())["arn"] == STREAM_ARN


def test_an_active_stream_of_a_crashed_deploy_is_adopted(aws: Any) -> None:
    provider, conn, clock = aws
    fh = conn.stub("firehose")
    fh.add_client_error("create_delivery_stream", "ResourceInUseException", "exists", 400)
    fh.add_response("describe_delivery_stream", stream("CREATING"))
    fh.add_response("describe_delivery_stream", stream("ACTIVE"))
    assert provider.create("firehose_stream", stream_props())["arn"] == STREAM_ARN
    assert clock.slept == []  # adopted as CREATING, found ACTIVE at the first look


def test_creating_failed_is_an_error_with_the_reason(aws: Any) -> None:
    provider, conn, _ = aws
    fh = conn.stub("firehose")
    fh.add_response("create_delivery_stream", {"DeliveryStreamARN": STREAM_ARN})
    fh.add_response("describe_delivery_stream", stream("CREATING"))
    fh.add_response("describe_delivery_stream", stream("CREATING_FAILED", FailureDescription={
        "Type": "S3_ACCESS_DENIED", "Details": "Access was denied to bucket b"}))
    with pytest.raises(DeployError, match="S3_ACCESS_DENIED: Access was denied to bucket b"):
        provider.create("firehose_stream", stream_props())


def test_a_failed_stream_left_behind_is_deleted_and_created_anew(aws: Any) -> None:
    provider, conn, _ = aws
    fh = conn.stub("firehose")
    fh.add_client_error("create_delivery_stream", "ResourceInUseException", "exists", 400)
    fh.add_response("describe_delivery_stream", stream("CREATING_FAILED"))
    fh.add_response("delete_delivery_stream", {})
    fh.add_client_error("describe_delivery_stream", "ResourceNotFoundException", "gone", 400)
    fh.add_response("create_delivery_stream", {"DeliveryStreamARN": STREAM_ARN})
    fh.add_response("describe_delivery_stream", stream("ACTIVE"))
    assert provider.create("firehose_stream", stream_props())["arn"] == STREAM_ARN


def test_a_deleting_stream_does_not_exist(aws: Any) -> None:
    provider, conn, _ = aws
    conn.stub("firehose").add_response("describe_delivery_stream", stream("DELETING"))
    assert not provider.exists(Entry("firehose_stream", stream_props(), {}))


# -- 3. Lambda function states --------------------------------------------------------------


def test_updates_wait_for_a_function_a_crashed_deploy_left_in_progress(aws: Any) -> None:
    provider, conn, clock = aws
    lam = conn.stub("lambda")
    lam.add_response("get_function_configuration", config(update="InProgress"))
    lam.add_response("get_function_configuration", config())
    # the code update meets another update in progress all the same: retried
    lam.add_client_error("update_function_code", "ResourceConflictException", IN_PROGRESS, 409)
    lam.add_response("get_function_configuration", config())
    lam.add_response("update_function_code", config(update="InProgress"))
    lam.add_response("get_function_configuration", config())
    lam.add_response("get_function_configuration", config())
    lam.add_response("update_function_configuration", config(update="InProgress"))
    lam.add_response("get_function_configuration", config())
    lam.add_response("tag_resource", {})
    lam.add_response("get_function_configuration", config())
    lam.add_response("put_function_concurrency", {"ReservedConcurrentExecutions": 4})
    old = {"bucket": "fraud-models", "key": "old.zip", "sha256": "1" * 64}
    before = Entry("lambda_function", function_props(code=old), {})
    provider.update("lambda_function", function_props(), before)
    assert clock.slept == [1.0, 1.0]


def test_a_failed_update_is_an_error_with_the_reason(aws: Any) -> None:
    provider, conn, _ = aws
    lam = conn.stub("lambda")
    lam.add_response("get_function_configuration", config())
    lam.add_response("update_function_configuration", config(update="InProgress"))
    lam.add_response("get_function_configuration", config(
        update="Failed", LastUpdateStatusReasonCode="InvalidZipFileException",
        LastUpdateStatusReason="Could not unzip uploaded file."))
    before = Entry("lambda_function", function_props(), {})
    with pytest.raises(DeployError, match="InvalidZipFileException Could not unzip"):
        provider.update("lambda_function", function_props(memory=512), before)


def test_publish_waits_for_pending_and_retries_a_conflict(aws: Any) -> None:
    provider, conn, clock = aws
    lam = conn.stub("lambda")
    lam.add_response("get_function_configuration", config("Pending"))
    lam.add_response("get_function_configuration", config())
    lam.add_client_error("publish_version", "ResourceConflictException", IN_PROGRESS, 409)
    lam.add_response("get_function_configuration", config())
    lam.add_response("publish_version", {"Version": "3", "FunctionArn": FN_ARN + ":3",
                                         "CodeSha256": "abc"})
    out = provider.create("lambda_version", {"function_name": FN, "function_digest": "d" * 64})
    assert out["version"] == "3"
    assert clock.slept == [1.0, 1.0]


def test_a_function_that_stays_busy_gives_up_with_a_hint(aws: Any) -> None:
    provider, conn, clock = aws
    provider.settle_seconds = 20
    lam = conn.stub("lambda")
    for _ in range(5):  # 1+2+4+8 = 15 s, then 8 more would pass 20
        lam.add_response("get_function_configuration", config(update="InProgress"))
    with pytest.raises(DeployError, match="gave up after 20 s waiting for function"):
        provider.create("lambda_version", {"function_name": FN, "function_digest": "d" * 64})
    assert clock.now == 15


# -- 4. Reserved concurrency ----------------------------------------------------------------


def test_reserving_below_the_unreserved_minimum_says_what_to_do(aws: Any) -> None:
    provider, conn, _ = aws
    lam = conn.stub("lambda")
    lam.add_response("create_function", created())
    lam.add_response("get_function_configuration", config())
    lam.add_response("get_function_configuration", config())
    lam.add_client_error("put_function_concurrency", "InvalidParameterValueException", TOO_MUCH,
                         400)
    with pytest.raises(DeployError, match="refused to reserve 4 concurrent") as info:
        provider.create("lambda_function", function_props())
    assert "Service Quotas" in info.value.hint and "`concurrency`" in info.value.hint


# -- 5. Pagination --------------------------------------------------------------------------


def test_an_api_on_the_second_page_is_adopted(aws: Any) -> None:
    provider, conn, _ = aws
    api = conn.stub("apigatewayv2")
    tags = {"mlops:project": "fraud"}
    other = {"ApiId": "a1", "Name": "other", "ProtocolType": "HTTP", "RouteSelectionExpression":
             "$request.method $request.path", "Tags": {}}
    mine = {**other, "ApiId": "a2", "Name": "fraud-dev", "Tags": tags,
            "ApiEndpoint": "https://a2.execute-api.eu-west-1.amazonaws.com"}
    api.add_response("get_apis", {"Items": [other], "NextToken": "p2"})
    api.add_response("get_apis", {"Items": [mine]}, {"NextToken": "p2"})
    props = {"name": "fraud-dev", "protocol": "HTTP", "stage": "$default", "tags": tags}
    assert provider.create("http_api", props)["api_id"] == "a2"


def test_a_schedule_target_on_the_second_page_exists(aws: Any) -> None:
    provider, conn, _ = aws
    events = conn.stub("events")
    arn = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:x"
    events.add_response("list_targets_by_rule", {"Targets": [{"Id": "other", "Arn": arn}],
                                                 "NextToken": "p2"})
    events.add_response("list_targets_by_rule", {"Targets": [{"Id": "monitor", "Arn": arn}]},
                        {"Rule": "r", "NextToken": "p2"})
    assert provider.exists(Entry("schedule_target", {"rule_name": "r", "target_id": "monitor"},
                                 {}))


def test_a_log_group_on_the_second_page_exists(aws: Any) -> None:
    provider, conn, _ = aws
    logs = conn.stub("logs")
    name = "/aws/lambda/fraud-dev-score"
    logs.add_response("describe_log_groups", {"logGroups": [{"logGroupName": name + "-x"}],
                                              "nextToken": "p2"})
    logs.add_response("describe_log_groups", {"logGroups": [{"logGroupName": name}]})
    assert provider.exists(Entry("log_group", {"name": name}, {}))


# -- 7. SES: a person must click the link --------------------------------------------------


def test_a_pending_identity_is_a_warning_that_says_who_must_click(aws: Any) -> None:
    provider, conn, _ = aws
    ses = conn.stub("ses")
    ses.add_response("verify_email_identity", {}, {"EmailAddress": "ops@example.com"})
    ses.add_response("get_identity_verification_attributes", {"VerificationAttributes": {
        "ops@example.com": {"VerificationStatus": "Pending"}}})
    provider.create("ses_identity", {"email": "ops@example.com"})
    assert len(provider.warnings) == 1
    assert "click the verification link SES just e-mailed to ops@example.com" in \
        provider.warnings[0]


def test_an_identity_whose_link_expired_is_sent_again(aws: Any) -> None:
    provider, conn, _ = aws
    ses = conn.stub("ses")
    ses.add_response("get_identity_verification_attributes", {"VerificationAttributes": {
        "ops@example.com": {"VerificationStatus": "Failed"}}})
    ses.add_response("get_identity_verification_attributes", {"VerificationAttributes": {}})
    entry = Entry("ses_identity", {"email": "ops@example.com"}, {})
    assert not provider.exists(entry)  # Failed: the plan creates it again (a new link)
    assert not provider.exists(entry)  # never created
