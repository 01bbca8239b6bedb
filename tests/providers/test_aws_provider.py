"""Every resource kind round-trips against a real moto server: create, exists, update,
create again (adopt), delete, gone."""

from __future__ import annotations

import io
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from framework.compile.graph import KINDS
from framework.plan.state import Entry
from framework.providers.aws import AwsProvider
from framework.runtime.clients import Connection

BUCKET = "rt-registry"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsProvider]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from framework.local.codedeploy import patch_moto

    patch_moto()  # CodeDeploy's deployment configs and deletes, as the local AWS answers them
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    root = tmp_path_factory.mktemp("proj")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handlers/echo.py", "def handler(event, context):\n    return event\n")
    (root / "code.zip").write_bytes(buf.getvalue())
    conn = Connection(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                      dummy_credentials=True, max_attempts=1)
    yield AwsProvider(conn, root)
    server.stop()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def specs(root: Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind, props, changed props) in dependency order; refs already resolved."""
    code = (root / "code.zip").read_bytes()
    tags = {"mlops:project": "rt"}
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/rt-fn"
    fn = {"function_name": "rt-fn", "runtime": "python3.11", "handler": "handlers.echo.handler",
          "role_arn": role_arn, "code": {"bucket": BUCKET, "key": "code/x.zip",
                                         "sha256": _sha(code)},
          "memory": 256, "timeout": 5, "concurrency": 2, "description": "rt",
          "environment": {"A": "1"}, "tags": tags, "layers": "@layer"}
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]}]}
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
         "Action": "sts:AssumeRole"}]}
    return [
        ("s3_bucket", {"bucket": BUCKET, "versioning": True, "region": "us-east-1",
                       "tags": tags, "object_lock": True, "lifecycle": []},
         {"lifecycle": [{"id": "mlops-capture-rt", "prefix": "capture/rt/",
                         "expire_days": 7}]}),
        ("s3_object", {"bucket": BUCKET, "key": "code/x.zip", "sha256": _sha(code),
                       "size": len(code), "source": "code.zip",
                       "content_type": "application/zip", "immutable": False,
                       "retain": False}, {"content_type": "application/x-zip"}),
        ("model_version", {"bucket": BUCKET, "name": "rt-model", "version": "1.0.0",
                           "prefix": "models/rt-model/1.0.0", "sha256": _sha(code),
                           "size": len(code), "source": "code.zip", "reference": None,
                           "metadata": {"name": "rt-model", "version": "1.0.0",
                                        "sha256": _sha(code), "size": len(code)}}, {}),
        ("s3_bucket_policy", {"bucket": BUCKET, "policy": {"Version": "2012-10-17", "Statement": [
            {"Sid": "d", "Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject"],
             "Resource": [f"arn:aws:s3:::{BUCKET}/audit/*"]}]}},
         {"policy": {"Version": "2012-10-17", "Statement": [
             {"Sid": "d2", "Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject"],
              "Resource": [f"arn:aws:s3:::{BUCKET}/audit-chain/*"]}]}}),
        ("lambda_layer", {"layer_name": "rt-runtime", "bucket": BUCKET, "key": "code/x.zip",
                          "sha256": _sha(code), "runtimes": ["python3.11"],
                          "architectures": ["x86_64"], "description": "rt"},
         {"description": "rt 2"}),
        ("iam_role", {"role_name": "rt-fn", "trust_policy": trust, "policy_name": "rt-access",
                      "policy": policy, "tags": tags}, {"policy_name": "rt-access-2"}),
        ("firehose_stream", {"stream_name": "rt-capture", "bucket": BUCKET, "role_arn": role_arn,
                             "prefix": "capture/rt/dt=!{timestamp:yyyy-MM-dd}/",
                             "error_prefix": "capture-errors/rt/!{firehose:error-output-type}/",
                             "buffer_seconds": 60, "buffer_mb": 5, "compression": "GZIP",
                             "extension": ".jsonl.gz", "source": "cloudwatch_logs",
                             "tags": tags},
         {"buffer_seconds": 120}),
        ("log_group", {"name": "/aws/lambda/rt-fn", "retention_days": 30, "tags": tags},
         {"retention_days": 7}),
        ("log_subscription", {"log_group": "/aws/lambda/rt-fn", "filter_name": "mlops-capture",
                              "filter_pattern": '{ $.msg = "capture" }',
                              "destination_arn": f"arn:aws:firehose:us-east-1:{ACCOUNT}:"
                                                 "deliverystream/rt-capture",
                              "role_arn": role_arn},
         {"filter_pattern": '{ $.msg = "capture" && $.row = 0 }'}),
        ("lambda_function", fn, {"memory": 512}),
        ("lambda_version", {"function_name": "rt-fn", "function_digest": "d1"},
         {"function_digest": "d2"}),
        ("cloudwatch_alarm", {"alarm_name": "rt-errors", "description": "errors of rt",
                              "definition": {"Namespace": "mlops", "MetricName": "ServerErrors",
                                             "Statistic": "Sum", "Period": 60,
                                             "EvaluationPeriods": 1, "Threshold": 1.0,
                                             "ComparisonOperator": "GreaterThanThreshold"},
                              "tags": tags}, {"description": "errors of rt, again"}),
        ("codedeploy_app", {"application_name": "rt-dev", "compute_platform": "Lambda",
                            "tags": tags}, {}),
        ("codedeploy_deployment_config", {"config_name": "rt-dev-Canary10Percent2Minutes",
                                          "compute_platform": "Lambda",
                                          "routing": "TimeBasedCanary", "percentage": 10,
                                          "interval_s": 120}, {}),
        ("codedeploy_deployment_group", {
            "application_name": "rt-dev", "group_name": "rt-fn", "endpoint": "rt",
            "service_role_arn": role_arn, "config_name": "rt-dev-Canary10Percent2Minutes",
            "alarms": ["rt-errors"], "rollback_events": ["DEPLOYMENT_FAILURE"], "tags": tags},
         {"alarms": []}),
        ("lambda_alias", {"function_name": "rt-fn", "alias": "live", "function_version": "1"},
         {"function_version": "2"}),
        ("alias_deployment", {"endpoint": "rt", "application_name": "rt-dev",
                              "group_name": "rt-fn", "function_name": "rt-fn", "alias": "live",
                              "target_version": "2",
                              "config_name": "rt-dev-Canary10Percent2Minutes", "hooks": {},
                              "description": "canary 10% for 2m, then 100%"},
         {"description": "canary 10% for 2m, then 100%: rt 1.0.0 → 1.0.1"}),
        ("lambda_event_invoke_config", {"function_name": "rt-fn", "qualifier": "live",
                                        "maximum_retry_attempts": 0,
                                        "maximum_event_age_s": 21600,
                                        "on_failure": f"arn:aws:lambda:us-east-1:{ACCOUNT}:"
                                                      "function:rt-fn:live"},
         {"maximum_retry_attempts": 1}),
        ("http_api", {"name": "rt-dev", "protocol": "HTTP", "stage": "$default", "tags": tags},
         {"name": "rt-dev-2"}),
        ("api_integration", {"api_id": "@api", "integration_uri":
                             f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:rt-fn:live",
                             "payload_format_version": "2.0", "timeout_ms": 5000},
         {"timeout_ms": 6000}),
        ("api_route", {"api_id": "@api", "route_key": "POST /rt", "target": "@target",
                       "authorization": "none"}, {"route_key": "POST /rt2"}),
        ("api_stage", {"api_id": "@api", "stage": "$default", "auto_deploy": True,
                       "access_log": {"destination_arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:"
                                      "log-group:/aws/vendedlogs/apigateway/rt-dev",
                                      "format": '{"requestId":"$context.requestId"}'},
                       "throttle": None, "route_throttles": {}},
         {"throttle": {"rate": 100.0, "burst": 200},
          "route_throttles": {"POST /rt2": {"rate": 10.0, "burst": 20}}}),
        ("lambda_permission", {"function_name": "rt-fn", "qualifier": "live",
                               "statement_id": "s1", "principal": "apigateway.amazonaws.com",
                               "source_arn": f"arn:aws:execute-api:us-east-1:{ACCOUNT}:x/*/*"},
         {"statement_id": "s2"}),
        ("schedule_rule", {"rule_name": "rt-mon", "schedule_expression": "rate(1 day)",
                           "state": "ENABLED", "description": "m", "tags": tags},
         {"schedule_expression": "rate(2 days)"}),
        ("schedule_target", {"rule_name": "rt-mon", "target_id": "monitor",
                             "arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:rt-fn:live",
                             "input_transformer": {"InputPathsMap": {"time": "$.time"},
                                                   "InputTemplate": '{"time": "<time>"}'}},
         {"input_transformer": {"InputPathsMap": {"time": "$.time"},
                                "InputTemplate": '{"monitor": "m", "time": "<time>"}'}}),
        ("ses_identity", {"email": "ops@example.com"}, {}),
    ]


def _fill(props: dict[str, Any], outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = dict(props)
    if out.get("layers") == "@layer":
        out["layers"] = [outputs["lambda_layer"]["layer_version_arn"]]
    if out.get("api_id") == "@api":
        out["api_id"] = outputs["http_api"]["api_id"]
    if out.get("target") == "@target":
        out["target"] = f"integrations/{outputs['api_integration']['integration_id']}"
    return out


def test_every_kind_round_trips(provider: AwsProvider) -> None:
    table = specs(provider.root)
    assert [kind for kind, _, _ in table] == list(KINDS), "a kind lacks a round-trip spec"
    outputs: dict[str, dict[str, Any]] = {}
    entries: dict[str, Entry] = {}
    for kind, props, changed in table:
        props = _fill(props, outputs)
        out = provider.create(kind, props)
        entry = Entry(kind, props, out)
        assert provider.exists(entry), kind
        # Creating again adopts the existing resource (a crashed apply re-run).
        if kind not in {"lambda_version", "lambda_layer", "http_api", "api_integration",
                        "api_route"}:
            again = provider.create(kind, props)
            assert provider.exists(Entry(kind, props, again)), kind
        if changed:
            new_props = {**props, **changed}
            out = provider.update(kind, new_props, entry)
            entry = Entry(kind, new_props, out)
            assert provider.exists(entry), kind
        outputs[kind] = out
        entries[kind] = entry

    block = provider.client("s3").get_public_access_block(Bucket=BUCKET)
    assert all(block["PublicAccessBlockConfiguration"].values())
    [rule] = provider.client("s3").get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["ID"] == "mlops-capture-rt" and rule["Expiration"]["Days"] == 7
    lam = provider.client("lambda")
    stream = provider.client("firehose").describe_delivery_stream(
        DeliveryStreamName="rt-capture")["DeliveryStreamDescription"]
    dest = stream["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert dest["BufferingHints"]["IntervalInSeconds"] == 120
    assert stream["VersionId"] == "2"  # updated in place (UpdateDestination), not made anew
    assert dest["Prefix"] == "capture/rt/dt=!{timestamp:yyyy-MM-dd}/"
    assert [p["Type"] for p in dest["ProcessingConfiguration"]["Processors"]] == [
        "Decompression", "CloudWatchLogProcessing"]
    [sub] = provider.client("logs").describe_subscription_filters(
        logGroupName="/aws/lambda/rt-fn")["subscriptionFilters"]
    assert sub["filterPattern"] == '{ $.msg = "capture" && $.row = 0 }'
    cfg = lam.get_function_configuration(FunctionName="rt-fn")
    assert cfg["MemorySize"] == 512
    assert [layer["Arn"] for layer in cfg["Layers"]] == [
        outputs["lambda_layer"]["layer_version_arn"]]
    assert lam.get_alias(FunctionName="rt-fn", Name="live")["FunctionVersion"] == "2"
    invoke_config = lam.get_function_event_invoke_config(FunctionName="rt-fn", Qualifier="live")
    assert invoke_config["MaximumRetryAttempts"] == 1
    rule = provider.client("events").describe_rule(Name="rt-mon")
    assert rule["ScheduleExpression"] == "rate(2 days)"
    stage = provider.client("apigatewayv2").get_stage(ApiId=outputs["http_api"]["api_id"],
                                                      StageName="$default")
    assert stage["AccessLogSettings"]["DestinationArn"].endswith(":log-group:/aws/vendedlogs/"
                                                                 "apigateway/rt-dev")
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 200
    assert stage["RouteSettings"]["POST /rt2"]["ThrottlingRateLimit"] == 10.0
    policy = provider.client("iam").list_role_policies(RoleName="rt-fn")["PolicyNames"]
    assert policy == ["rt-access-2"]

    for kind in reversed(KINDS):
        entry = entries[kind]
        provider.delete(entry, destroying=True)
        # Versions go with their function; a deployment is history (the alias served the
        # target already: nothing was deployed).
        if kind not in ("lambda_version", "alias_deployment"):
            assert not provider.exists(entry), kind
    # moto's backends are the process's: another module's moto server may hold its own functions
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]
            if f["FunctionName"].startswith("rt-")] == []


def test_immutable_object_refuses_other_bytes(provider: AwsProvider, tmp_path: Path) -> None:
    from framework.errors import DeployError

    s3 = provider.client("s3")
    s3.create_bucket(Bucket="rt-immutable")
    (provider.root / "a.bin").write_bytes(b"first")
    (provider.root / "b.bin").write_bytes(b"second")
    base = {"bucket": "rt-immutable", "key": "models/m/1.0.0/model.onnx",
            "content_type": "application/octet-stream", "immutable": True, "retain": True}
    first = {**base, "source": "a.bin", "sha256": _sha(b"first"), "size": 5}
    provider.create("s3_object", first)
    provider.create("s3_object", first)  # identical bytes: a no-op
    with pytest.raises(DeployError, match="already exists with other content"):
        provider.create("s3_object", {**base, "source": "b.bin", "sha256": _sha(b"second"),
                                      "size": 6})
    body = s3.get_object(Bucket="rt-immutable", Key=base["key"])["Body"].read()
    assert body == b"first"


def test_changed_source_since_plan_is_refused(provider: AwsProvider) -> None:
    from framework.errors import DeployError

    (provider.root / "c.bin").write_bytes(b"planned")
    props = {"bucket": BUCKET + "-x", "key": "k", "source": "c.bin", "sha256": _sha(b"other"),
             "size": 5, "content_type": "x", "immutable": False, "retain": False}
    with pytest.raises(DeployError, match="changed since it was planned"):
        provider.create("s3_object", props)


def test_the_registry_sends_its_object_events_to_eventbridge_keeping_other_notifications(
        provider: AwsProvider) -> None:
    from framework.local import s3events

    s3events.patch_moto()  # moto answers the configuration without EventBridge's part
    s3, bucket = provider.client("s3"), "rt-events"
    props = {"bucket": bucket, "versioning": True, "region": "us-east-1", "tags": {},
             "object_lock": True, "lifecycle": [], "event_bridge": True}
    entry = Entry("s3_bucket", props, provider.create("s3_bucket", props))
    got = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert got["EventBridgeConfiguration"] == {}
    # someone's own notification beside it stays through mlops' updates
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:theirs"
    provider.client("sns").create_topic(Name="theirs")
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "TopicConfigurations": [{"Id": "theirs", "TopicArn": topic,
                                 "Events": ["s3:ObjectRemoved:*"]}],
        "EventBridgeConfiguration": {}})
    provider.update("s3_bucket", props, entry)  # enabled already: nothing to write
    off = {**props, "event_bridge": False}
    provider.update("s3_bucket", off, entry)  # no monitor left: no events
    got = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert "EventBridgeConfiguration" not in got
    assert [t["TopicArn"] for t in got["TopicConfigurations"]] == [topic]
    provider.update("s3_bucket", props, Entry("s3_bucket", off, {}))  # a monitor again
    got = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert got["EventBridgeConfiguration"] == {}
    assert [t["TopicArn"] for t in got["TopicConfigurations"]] == [topic]
