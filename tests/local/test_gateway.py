"""The gateway + runner over real HTTP, against a real daemon."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import subprocess
import sys
import time

import pytest

from framework.local.daemon import FD_RESERVE, gateway_limits
from framework.local.gateway import Limits

from .conftest import Deployed
from .support import request


def test_event_shape_seen_by_handler(deployed: Deployed) -> None:
    reply = request(
        deployed.url("/items/42?x=1&x=2&y=z"),
        headers={"X-Test": "abc", "Cookie": "c1=v1; c2=v2", "User-Agent": "pytest-agent"},
    )
    assert reply.status == 200, reply.body
    seen = reply.json()
    event = seen["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{id}"
    # The gateway is the API's custom domain, mapped under its id: the base path stays.
    assert event["rawPath"] == f"/{deployed.api_id}/items/42"
    assert event["rawQueryString"] == "x=1&x=2&y=z"
    assert event["queryStringParameters"] == {"x": "1,2", "y": "z"}
    assert event["pathParameters"] == {"id": "42"}
    assert event["headers"]["x-test"] == "abc"
    assert all(k == k.lower() for k in event["headers"])
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "GET",
        "path": f"/{deployed.api_id}/items/42",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest-agent",
    }
    assert ctx["apiId"] == deployed.api_id
    assert ctx["domainName"] == event["headers"]["host"]
    assert ctx["stage"] == "$default"
    assert ctx["routeKey"] == "GET /items/{id}"
    assert ctx["requestId"] == reply.headers["apigw-requestid"]
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 60
    assert ctx["time"].endswith("+0000")
    # the Lambda environment contract
    env = seen["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "1"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL"] == deployed.aws.control_url
    assert env["MODEL_NAME"] == "fraud-clf"
    assert seen["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert seen["framework_file"].startswith(env["LAMBDA_TASK_ROOT"])  # the zip's, not the repo's
    assert seen["tag"] == "v1"
    context = seen["context"]
    assert context["function_name"] == "echo"
    assert context["function_version"] == "1"
    assert context["invoked_function_arn"] == f"{deployed.function_arn}:stable"
    assert context["memory_limit_in_mb"] == "256"
    assert 0 < context["remaining_ms"] <= 2000
    assert context["log_group_name"] == "/aws/lambda/echo"
    assert context["aws_request_id"]
    assert reply.json()["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "1"


def test_post_body_and_greedy_path(deployed: Deployed) -> None:
    payload = json.dumps({"amount": 12.5}).encode()
    reply = request(deployed.url("/v2/a/b/c"), "PUT", payload, {"Content-Type": "application/json"})
    assert reply.status == 200
    event = reply.json()["event"]
    assert event["routeKey"] == "ANY /v2/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c"}
    assert json.loads(event["body"]) == {"amount": 12.5}
    assert reply.json()["context"]["function_version"] == "2"
    assert reply.json()["tag"] == "v2"

    binary = bytes(range(256))
    reply = request(
        deployed.url("/v2/bin"), "POST", binary, {"Content-Type": "application/octet-stream"}
    )
    event = reply.json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == binary


def test_response_translation(deployed: Deployed) -> None:
    raw = request(deployed.url("/items/1?mode=raw"))
    assert raw.status == 201
    assert raw.body == b"created"
    assert raw.headers["x-custom"] == "yes"
    assert raw.headers["content-type"] == "text/plain"
    assert [v for k, v in raw.header_list if k == "set-cookie"] == ["a=1", "b=2"]
    assert raw.headers["apigw-requestid"]

    bare = request(deployed.url("/items/1?mode=bare"))
    assert bare.status == 200
    assert bare.headers["content-type"] == "application/json"
    assert bare.json() == {"hello": "world"}

    binary = request(deployed.url("/items/1?mode=binary"))
    assert binary.status == 200
    assert binary.body == b"\x00\x01\x02"


def test_not_found(deployed: Deployed) -> None:
    assert request(deployed.url("/nope")).status == 404
    assert request(deployed.url("/items/1"), "POST").status == 404  # method mismatch
    missing = request(deployed.url("/items/1", api_id="unknownapi"))
    assert missing.status == 404
    assert missing.json() == {"message": "Not Found"}
    # $default catches everything
    reply = request(deployed.url("/any/thing?q=1", api_id=deployed.default_api_id))
    assert reply.status == 200
    assert reply.json()["event"]["routeKey"] == "$default"


def test_handler_exception_is_502_and_pool_survives(deployed: Deployed) -> None:
    reply = request(deployed.url("/items/7?mode=raise"))
    assert reply.status == 502
    assert reply.json() == {"message": "Internal Server Error"}
    assert request(deployed.url("/items/7")).status == 200


def test_init_once_invoke_many(deployed: Deployed) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(deployed.aws.gateway_url.rsplit(":", 1)[1]))
    seen = [request(deployed.url("/latest"), conn=conn) for _ in range(5)]
    conn.close()
    bodies = [r.json() for r in seen]
    assert all(b["init_count"] == 1 for b in bodies)
    assert len({b["pid"] for b in bodies}) == 1  # sequential requests reuse one warm worker
    calls = [b["calls"] for b in bodies]
    assert calls == sorted(calls) and calls[-1] - calls[0] == 4
    assert all(b["context"]["function_version"] == "$LATEST" for b in bodies)


def test_timeout_is_504_and_worker_replaced(deployed: Deployed) -> None:
    before = request(deployed.url("/items/9")).json()["pid"]
    started = time.monotonic()
    reply = request(deployed.url("/items/9?mode=sleep&s=5"))
    assert reply.status == 504
    assert time.monotonic() - started > 1.9  # not before its Timeout (2 s)...
    logs = "".join(p.read_text() for p in (deployed.aws.home / "logs").rglob("*") if p.is_file())
    assert "Task timed out after 2.00 seconds" in logs  # ...and cut there, not at the sleep's end
    after = request(deployed.url("/items/9"))
    assert after.status == 200
    body = after.json()
    assert body["pid"] != before  # the timed-out worker was killed and replaced


def test_weighted_alias(deployed: Deployed) -> None:
    versions = [
        request(deployed.url("/diagnosis/predict"), "POST", b"{}").json()["context"][
            "function_version"]
        for _ in range(60)
    ]
    assert set(versions) == {"1", "2"}
    share = versions.count("2") / len(versions)
    assert 0.1 < share < 0.5  # weight 0.3


def test_health_and_refresh(deployed: Deployed) -> None:
    health = request(f"{deployed.aws.gateway_url}/_mlops/health")
    assert health.status == 200
    assert health.json()["pid"] == deployed.aws.pid
    refreshed = request(f"{deployed.aws.gateway_url}/_mlops/refresh", "POST")
    assert refreshed.status == 200
    assert "GET /items/{id}" in refreshed.json()["routes"][deployed.api_id]


def test_body_too_large(deployed: Deployed) -> None:
    reply = request(deployed.url("/v2/big"), "POST", b"x" * (6 * 1024 * 1024 + 1))
    assert reply.status == 413


def test_methods_api_gateway_does_not_route_are_405(deployed: Deployed) -> None:
    for path in ("/v2/anything", "/nope"):
        reply = request(deployed.url(path), "TRACE")
        assert reply.status == 405
        assert reply.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
        assert reply.json() == {"message": "Method Not Allowed"}
    assert request(deployed.url("/v2/anything"), "PATCH").status == 200  # ANY: routed methods


def test_a_compressed_body_reaches_the_function_as_sent(deployed: Deployed) -> None:
    """API Gateway does not decompress request bodies: neither does the gateway."""
    packed = gzip.compress(b'{"amount": 1}')
    reply = request(deployed.url("/v2/gz"), "POST", packed,
                    {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    event = reply.json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == packed
    assert event["headers"]["content-encoding"] == "gzip"


def test_limits_from_the_environment() -> None:
    assert Limits.from_env({}) == Limits()
    limits = Limits.from_env({"MLOPS_LOCAL_HEADER_TIMEOUT_S": "2.5",
                              "MLOPS_LOCAL_MAX_CONNECTIONS": "300"})
    assert (limits.header_timeout_s, limits.max_connections) == (2.5, 300)
    for var, value in (("MLOPS_LOCAL_IDLE_TIMEOUT_S", "soon"), ("MLOPS_LOCAL_BODY_TIMEOUT_S", "0"),
                       ("MLOPS_LOCAL_MAX_CONNECTIONS", "1.5")):
        with pytest.raises(ValueError, match=var):
            Limits.from_env({var: value})


def test_connections_stay_below_the_descriptor_limit() -> None:
    assert gateway_limits({}, 1 << 20).max_connections == Limits().max_connections
    assert gateway_limits({}, 1024).max_connections == 1024 - FD_RESERVE
    assert gateway_limits({"MLOPS_LOCAL_MAX_CONNECTIONS": "50"}, 1024).max_connections == 50
    assert gateway_limits({}, 256).max_connections == 64  # a floor, however low the limit


def test_the_daemon_raises_its_descriptor_limit() -> None:
    script = ("import resource\n"
              "from framework.local.daemon import raise_descriptor_limit\n"
              "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
              "now = raise_descriptor_limit()\n"
              "assert resource.getrlimit(resource.RLIMIT_NOFILE) == (now, hard), now\n"
              "assert hard == resource.RLIM_INFINITY or now == hard, (now, hard)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
