"""Helpers for the local AWS tests: free ports, code zips, a deployed echo function, HTTP."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from framework.runtime.clients import Connection

REGION = "us-east-1"
BUCKET = "local-test-registry"
ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

ECHO = """
import json
import os
import sys
import time

import framework

INIT_COUNT = 0
INIT_COUNT += 1  # module level: runs once per worker (init once, invoke many)
CALLS = 0
CODE_TAG = "{tag}"


def handler(event, context):
    global CALLS
    CALLS += 1
    print("a print from the handler must not corrupt the protocol")
    sys.stdout.write("and neither must raw stdout writes\\n")
    query = event.get("queryStringParameters") or {{}}
    headers = event.get("headers") or {{}}
    mode = query.get("mode") or headers.get("x-echo-mode", "")
    if mode == "raise":
        raise ValueError("boom")
    if mode == "sleep":
        time.sleep(float(query.get("s") or headers.get("x-echo-sleep") or "5"))
    if mode == "bare":
        return {{"hello": "world"}}
    if mode == "raw":
        return {{
            "statusCode": 201,
            "headers": {{"X-Custom": "yes", "Content-Type": "text/plain"}},
            "cookies": ["a=1", "b=2"],
            "body": "created",
        }}
    if mode == "binary":
        return {{"statusCode": 200, "headers": {{"content-type": "application/octet-stream"}},
                "body": "AAEC", "isBase64Encoded": True}}
    body = {{
        "event": event,
        "tag": CODE_TAG,
        "init_count": INIT_COUNT,
        "calls": CALLS,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "framework_file": framework.__file__,
        "env": {{k: os.environ.get(k) for k in (
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL", "LAMBDA_TASK_ROOT", "MODEL_NAME")}},
        "context": {{
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
        }},
    }}
    return {{"statusCode": 200, "headers": {{"content-type": "application/json"}},
            "body": json.dumps(body)}}
"""


def make_zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in sorted(files.items()):
            archive.writestr(name, text)
    return buf.getvalue()


def code_zip(tag: str) -> bytes:
    return make_zip(
        {
            "framework/__init__.py": '"""The zip\'s own framework."""\n',
            "handlers/__init__.py": "",
            "handlers/echo.py": ECHO.format(tag=tag),
        }
    )


def upload_code(conn: Connection, data: bytes) -> str:
    key = f"code/{hashlib.sha256(data).hexdigest()}.zip"
    conn.client("s3").put_object(Bucket=BUCKET, Key=key, Body=data)
    return key


def ensure_registry(conn: Connection) -> str:
    """The registry bucket and the execution role; returns the role ARN."""
    s3 = conn.client("s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    iam = conn.client("iam")
    try:
        return str(iam.get_role(RoleName="echo-role")["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="echo-role", AssumeRolePolicyDocument=ROLE_POLICY)
        return str(role["Role"]["Arn"])


def create_function(
    conn: Connection, name: str, tag: str, timeout: int = 3, data: bytes | None = None
) -> dict[str, Any]:
    role = ensure_registry(conn)
    key = upload_code(conn, data if data is not None else code_zip(tag))
    resp: dict[str, Any] = conn.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="handlers.echo.handler",
        Code={"S3Bucket": BUCKET, "S3Key": key},
        Timeout=timeout,
        MemorySize=256,
        Environment={"Variables": {"MODEL_NAME": "fraud-clf"}},
        Tags={"mlops:registry": BUCKET},
    )
    return resp


def update_code(conn: Connection, name: str, tag: str) -> None:
    key = upload_code(conn, code_zip(tag))
    conn.client("lambda").update_function_code(FunctionName=name, S3Bucket=BUCKET, S3Key=key)


def create_http_api(conn: Connection, name: str, routes: dict[str, str]) -> str:
    """An HTTP API whose routes (route key → Lambda ARN) are AWS_PROXY integrations."""
    gw = conn.client("apigatewayv2")
    api_id = str(gw.create_api(Name=name, ProtocolType="HTTP")["ApiId"])
    for route_key, arn in routes.items():
        integration = gw.create_integration(
            ApiId=api_id,
            IntegrationType="AWS_PROXY",
            IntegrationUri=arn,
            PayloadFormatVersion="2.0",
        )
        gw.create_route(
            ApiId=api_id, RouteKey=route_key, Target=f"integrations/{integration['IntegrationId']}"
        )
    gw.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    return api_id


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]]

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Reply:
    parts = urlsplit(url)
    own = conn is None
    conn = conn or http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        pairs = [(k.lower(), v) for k, v in resp.getheaders()]
        return Reply(resp.status, dict(pairs), data, pairs)
    finally:
        if own:
            conn.close()
