"""Daemon lifecycle and persistence: start/stop/status, busy ports, journal replay."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from framework import local
from framework.errors import TargetUnavailableError
from tests.ports import free_port_pair

from .conftest import start_daemon
from .support import (
    BUCKET,
    REGION,
    create_function,
    create_http_api,
    ensure_registry,
    request,
)


def _snapshot(aws: local.LocalAWS) -> dict[str, Any]:
    conn = local.connection(aws, REGION)
    gw = conn.client("apigatewayv2")
    lam = conn.client("lambda")
    apis = gw.get_apis()["Items"]
    api_id = apis[0]["ApiId"]
    alias = lam.get_alias(FunctionName="persist", Name="prod")
    integrations = gw.get_integrations(ApiId=api_id)["Items"]
    versions = lam.list_versions_by_function(FunctionName="persist")["Versions"]
    config = lam.get_function(FunctionName="persist", Qualifier="1")["Configuration"]
    s3 = conn.client("s3")
    blob = s3.get_object(Bucket=BUCKET, Key="data/blob.bin")["Body"].read()
    multi = s3.get_object(Bucket=BUCKET, Key="data/multi.bin")["Body"].read()
    return {
        "api_ids": sorted(a["ApiId"] for a in apis),
        "integration_ids": sorted(i["IntegrationId"] for i in integrations),
        "route_ids": sorted(r["RouteId"] for r in gw.get_routes(ApiId=api_id)["Items"]),
        "versions": [v["Version"] for v in versions],
        "alias": (alias["FunctionVersion"], alias["RevisionId"]),
        "code_sha": config["CodeSha256"],
        "role": conn.client("iam").get_role(RoleName="echo-role")["Role"]["RoleId"],
        "object": blob,
        "multipart_object": multi,
    }


def test_restart_replays_journal_with_identical_ids(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port_pair()
    aws = start_daemon(home, port)
    try:
        conn = local.connection(aws, REGION)
        ensure_registry(conn)
        blob = bytes(range(256)) * 10
        s3 = conn.client("s3")
        s3.put_object(Bucket=BUCKET, Key="data/blob.bin", Body=blob)
        large = os.urandom(200_000)  # over the journal's inline limit: kept as a file
        s3.put_object(Bucket=BUCKET, Key="data/large.bin", Body=large)
        # multipart: the upload id is random, later calls name it; replay must recreate it
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key="data/multi.bin")["UploadId"]
        part = s3.upload_part(
            Bucket=BUCKET, Key="data/multi.bin", UploadId=upload, PartNumber=1, Body=b"m" * 100
        )
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="data/multi.bin",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        fn = create_function(conn, "persist", "p1")
        lam = conn.client("lambda")
        lam.publish_version(FunctionName="persist")
        lam.create_alias(FunctionName="persist", Name="prod", FunctionVersion="1")
        api_id = create_http_api(conn, "persist-api", {"GET /hello": f"{fn['FunctionArn']}:prod"})
        conn.client("sts").get_caller_identity()  # a POST that reads: not journaled
        before = _snapshot(aws)
        served = request(f"{aws.gateway_url}/{api_id}/hello")
        assert served.status == 200
        worker_pid = served.json()["pid"]
    finally:
        assert local.stop(home)
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)  # SIGTERM took the runner's workers down too
    assert local.status(home) is None
    entries = [json.loads(line) for line in (home / "journal.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert not any("GetCallerIdentity" in str(e) for e in entries)
    [kept] = [e for e in entries if "body_file" in e]
    assert (home / "journal-blobs" / kept["body_file"]).read_bytes() == large

    aws = start_daemon(home, port)
    try:
        assert _snapshot(aws) == before
        assert not (home / "replay.json").exists()  # the replay's progress, gone once served
        s3 = local.connection(aws, REGION).client("s3")
        assert s3.get_object(Bucket=BUCKET, Key="data/large.bin")["Body"].read() == large
        reply = request(f"{aws.gateway_url}/{api_id}/hello")
        assert reply.status == 200
        assert reply.json()["tag"] == "p1"
        # new writes continue the sequence
        local.connection(aws, REGION).client("s3").put_object(Bucket=BUCKET, Key="k", Body=b"1")
        last = json.loads((home / "journal.jsonl").read_text().splitlines()[-1])
        assert last["seq"] == len(entries) + 1
    finally:
        local.stop(home)


def test_start_is_idempotent_stop_and_status(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert local.status(home) is None
    assert local.stop(home) is False
    aws = local.start(home, free_port_pair())
    try:
        assert local.start(home) == aws  # idempotent
        assert local.ensure_running(home) == aws
        assert local.status(home) == aws
        state = json.loads((home / "daemon.json").read_text())
        assert state["pid"] == aws.pid and state["gateway_url"] == aws.gateway_url
        assert os.getsid(aws.pid) == aws.pid  # detached: its own session
        ident = local.connection(aws, REGION).client("sts").get_caller_identity()
        assert ident["Account"] == "123456789012"
    finally:
        assert local.stop(home) is True
    assert local.status(home) is None
    assert not (home / "daemon.json").exists()
    assert local.stop(home) is False
    with pytest.raises(ProcessLookupError):
        os.kill(aws.pid, 0)


def test_busy_port_is_a_user_facing_error(tmp_path: Path) -> None:
    port = free_port_pair()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(TargetUnavailableError) as err:
            local.start(tmp_path / "home", port)
    assert "MLOPS_LOCAL_PORT" in err.value.hint


def test_a_groups_filter_is_replaced_by_name_even_when_it_has_two(deployed: Any) -> None:
    from botocore.exceptions import ClientError

    logs = deployed.conn.client("logs")
    group = "/aws/lambda/two-filters"
    logs.create_log_group(logGroupName=group)
    for name in ("capture", "feedback"):
        logs.put_subscription_filter(logGroupName=group, filterName=name,
                                     filterPattern=f'{{ $.msg = "{name}" }}',
                                     destinationArn=deployed.function_arn)
    # CloudWatch Logs replaces a filter put again under its name: no third filter
    logs.put_subscription_filter(logGroupName=group, filterName="feedback",
                                 filterPattern='{ $.msg = "label" }',
                                 destinationArn=deployed.function_arn)
    got = logs.describe_subscription_filters(logGroupName=group)["subscriptionFilters"]
    assert {f["filterName"]: f["filterPattern"] for f in got} == {
        "capture": '{ $.msg = "capture" }', "feedback": '{ $.msg = "label" }'}
    with pytest.raises(ClientError) as third:
        logs.put_subscription_filter(logGroupName=group, filterName="third", filterPattern="",
                                     destinationArn=deployed.function_arn)
    assert third.value.response["Error"]["Code"] == "LimitExceededException"
