"""Pure parts: request classification, route matching, v2.0 response rules, ARN parsing."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest

from framework.local import journal
from framework.local.apigw import BadIntegrationResponse, Route, RouteTable, translate_result
from framework.local.gateway import lambda_arn_of
from framework.local.journal import Journal, JournalMiddleware, is_unjournaled, is_write
from framework.local.runner import parse_function, pick_version


def _env(method: str, **extra: str) -> dict[str, object]:
    return {"REQUEST_METHOD": method, "wsgi.input": io.BytesIO(), **extra}


@pytest.mark.parametrize(
    ("environ", "body", "write"),
    [
        (_env("GET"), b"", False),
        (_env("HEAD"), b"", False),
        (_env("PUT"), b"", True),
        (_env("DELETE"), b"", True),
        (_env("POST", HTTP_X_AMZ_TARGET="AWSEvents.ListRules"), b"", False),
        (_env("POST", HTTP_X_AMZ_TARGET="AWSEvents.PutRule"), b"", True),
        (
            _env("POST", CONTENT_TYPE="application/x-www-form-urlencoded"),
            b"Action=GetCallerIdentity&Version=2011-06-15",
            False,
        ),
        (
            _env("POST", CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8"),
            b"Action=CreateRole&RoleName=r",
            True,
        ),
        (_env("POST", QUERY_STRING="Action=DescribeAlarms"), b"", False),
        (_env("POST"), b"{}", True),  # rest-json POST: e.g. CreateFunction
    ],
)
def test_read_write_classification(environ: dict[str, object], body: bytes, write: bool) -> None:
    assert is_write(environ, body) is write


def test_log_shipping_writes_are_not_journaled() -> None:
    shipped = _env("POST", HTTP_X_AMZ_TARGET="Logs_20140328.PutLogEvents")
    assert is_write(shipped, b"{}") and is_unjournaled(shipped)
    assert is_unjournaled(_env("POST", HTTP_X_AMZ_TARGET="Logs_20140328.CreateLogStream"))
    assert not is_unjournaled(_env("POST", HTTP_X_AMZ_TARGET="Logs_20140328.CreateLogGroup"))
    assert not is_unjournaled(_env("POST", HTTP_X_AMZ_TARGET="AWSEvents.PutRule"))


def test_route_priority() -> None:
    table = RouteTable()
    for key in ["$default", "ANY /a/{proxy+}", "GET /a/{id}", "GET /a/b", "ANY /a/b"]:
        table.add(Route.build("api", key, "arn"))

    def key(method: str, path: str) -> str:
        found = table.find("api", method, path)
        assert found is not None
        return found[0].route_key

    assert key("GET", "/a/b") == "GET /a/b"
    assert key("POST", "/a/b") == "ANY /a/b"
    assert key("GET", "/a/c") == "GET /a/{id}"
    assert key("GET", "/a/c/d") == "ANY /a/{proxy+}"
    assert key("GET", "/zzz") == "$default"
    assert table.find("other", "GET", "/a/b") is None


def test_translate_result_rules() -> None:
    bare = translate_result([1, 2])
    assert (bare.status, bare.body) == (200, b"[1, 2]")
    text = translate_result("hello")
    assert text.body == b'"hello"'
    empty = translate_result({"statusCode": 204})
    assert (empty.status, empty.body, empty.headers) == (204, b"", [])
    with pytest.raises(BadIntegrationResponse):
        translate_result({"statusCode": "200"})


def test_lambda_arn_forms() -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:score:live"
    assert lambda_arn_of(arn) == arn
    wrapped = f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{arn}/invocations"
    assert lambda_arn_of(wrapped) == arn
    assert parse_function(arn, None, "us-east-1") == ("score", "eu-west-1", "live")
    assert parse_function("score", None, "us-east-1") == ("score", "us-east-1", "$LATEST")
    assert parse_function("score:3", None, "us-east-1") == ("score", "us-east-1", "3")


def test_pick_version_weights() -> None:
    rng = random.Random(0)
    picks = [pick_version("1", {"2": 0.25}, rng) for _ in range(4000)]
    assert 0.2 < picks.count("2") / len(picks) < 0.3


def test_a_replay_says_how_far_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal replayed through a plain WSGI app: each write reaches it once, in order, and
    the progress callback hears of the start and of every write while it moves (so a starter
    waiting on a long replay knows it is alive)."""
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    writer = JournalMiddleware(app, Journal(tmp_path / "journal.jsonl"), lambda seq: None)
    for i in range(5):
        environ = _env("PUT", PATH_INFO=f"/bucket/{i}", CONTENT_LENGTH="1")
        environ["wsgi.input"] = io.BytesIO(b"x")
        list(writer(environ, lambda *a: None))
    assert seen == [f"/bucket/{i}" for i in range(5)]

    monkeypatch.setattr(journal, "PROGRESS_EVERY_S", 0.0)  # every write
    heard: list[tuple[int, int]] = []
    replayer = JournalMiddleware(app, Journal(tmp_path / "journal.jsonl"), lambda seq: None)
    assert replayer.replay(lambda done, total: heard.append((done, total))) == 5
    assert seen[5:] == seen[:5]
    assert heard == [(i, 5) for i in range(5)]
    assert replayer.journal.seq == 5  # new writes continue the sequence
