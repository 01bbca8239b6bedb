"""The local control plane's HTTP server keeps a client's connection between calls, as AWS's
endpoints do, and keeps S3 metadata names with underscores as moto's own server does."""

from __future__ import annotations

import http.client

from framework import local

from .support import REGION


def test_one_connection_serves_many_calls(aws: local.LocalAWS) -> None:
    s3 = local.connection(aws, REGION).client("s3")
    s3.create_bucket(Bucket="keep-alive")
    s3.put_object(Bucket="keep-alive", Key="k", Body=b"x" * 100_000, ACL="public-read")
    host, port = aws.control_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.connect()
    sock = conn.sock
    for _ in range(20):  # unsigned GETs: each answered whole, the connection kept
        conn.request("GET", "/keep-alive/k")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and len(body) == 100_000
        assert (resp.getheader("Connection") or "").lower() != "close"
    assert conn.sock is sock  # never reopened
    conn.request("POST", "/", body=b"Action=ListUsers&Version=2010-05-08",  # a body, read
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    conn.request("GET", "/keep-alive/k")  # the next call on the same connection
    resp = conn.getresponse()
    assert resp.status == 200 and len(resp.read()) == 100_000
    conn.close()


def test_metadata_names_with_underscores_are_kept(aws: local.LocalAWS) -> None:
    s3 = local.connection(aws, REGION).client("s3")
    s3.create_bucket(Bucket="meta-names")
    s3.put_object(Bucket="meta-names", Key="k", Body=b"x",
                  Metadata={"model_version": "1.2.0", "run-id": "r1"})
    got = s3.head_object(Bucket="meta-names", Key="k")["Metadata"]
    assert got == {"model_version": "1.2.0", "run-id": "r1"}
