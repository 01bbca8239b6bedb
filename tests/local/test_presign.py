"""Presigned S3 links on the local AWS open, expire and break as on S3."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from framework import local
from framework.local.presign import check
from framework.runtime.clients import Connection

BUCKET = "presign-test"
KEY = "site/a b+c/index.html"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def s3(aws: local.LocalAWS) -> object:
    client = local.connection(aws, "eu-west-1").client("s3")  # the client the product signs with
    client.create_bucket(Bucket=BUCKET,
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    client.put_object(Bucket=BUCKET, Key=KEY, Body=b"<h1>page</h1>")
    return client


def test_a_presigned_link_opens_until_it_expires(s3: object) -> None:
    url = s3.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=2)
    assert _get(url) == (200, b"<h1>page</h1>")
    time.sleep(3.1)
    status, body = _get(url)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    assert b"Request has expired" in body


@pytest.mark.parametrize("edit", [
    lambda u: u.replace("index.html", "other.html"),  # another key under the same signature
    lambda u: u.replace("X-Amz-Expires=600", "X-Amz-Expires=604800"),  # a longer life
    lambda u: u[:-1] + ("0" if u[-1] != "0" else "1"),  # the signature itself
])
def test_an_edited_link_is_refused(s3: object, edit: object) -> None:
    url = s3.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=600)
    status, body = _get(edit(url))  # type: ignore[operator]
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, body


def test_sdk_requests_signed_in_headers_pass(s3: object) -> None:
    got = s3.get_object(Bucket=BUCKET, Key=KEY)  # type: ignore[attr-defined]
    assert got["Body"].read() == b"<h1>page</h1>"


def test_the_rules_without_a_server() -> None:
    conn = Connection(region="eu-west-1", endpoint_url="http://127.0.0.1:9", dummy_credentials=True)
    url = conn.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60)
    path, _, query = url.split("127.0.0.1:9", 1)[1].partition("?")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"{path}?{query}", "QUERY_STRING": query,
               "HTTP_HOST": "127.0.0.1:9"}
    now = datetime.now(UTC)
    assert check(environ, now) is None
    assert check(environ, now + timedelta(seconds=61)) == ("AccessDenied", "Request has expired")
    assert check({**environ, "HTTP_HOST": "localhost:9"}, now)[0] == "SignatureDoesNotMatch"
    assert check({**environ, "QUERY_STRING": "X-Amz-Signature=x"}, now)[0] == \
        "AuthorizationQueryParametersError"
    assert check({**environ, "QUERY_STRING": "a=b"}, now) is None  # not presigned


def test_a_legacy_link_is_checked_for_expiry() -> None:
    now = datetime.now(UTC)
    query = f"AWSAccessKeyId=testing&Signature=x&Expires={int(now.timestamp()) + 60}"
    assert check({"QUERY_STRING": query}, now) is None
    assert check({"QUERY_STRING": query}, now + timedelta(seconds=61)) == (
        "AccessDenied", "Request has expired")
