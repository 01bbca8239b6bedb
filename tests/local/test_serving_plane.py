"""Local data plane pieces of serving: Firehose delivery, metrics, log shipping, SigV4 check."""

from __future__ import annotations

import dataclasses
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from framework.local.firehose import DEFAULT_SIZE_MB, FirehoseEngine, Stream, lookup_stream
from framework.local.gateway import check_sigv4
from framework.local.logship import LogShipper, compile_pattern, envelopes
from framework.local.metrics import Metrics


class NoSuchBucket(Exception):
    response = {"Error": {"Code": "NoSuchBucket"}}  # the shape of botocore's ClientError


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.fail = False
        self.gone = False
        self.calls = 0

    def upload(self, region: str, bucket: str, key: str, data: bytes) -> None:
        self.calls += 1
        if self.gone:
            raise NoSuchBucket("The specified bucket does not exist")
        if self.fail:
            raise OSError("control plane down")
        self.objects[(bucket, key)] = data

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for data in self.objects.values()
                for line in gzip.decompress(data).decode().splitlines()]


STREAM = Stream("cap-ep", "1", "b", "capture/ep/dt=!{timestamp:yyyy-MM-dd}/", gzip=True)


def _records(n: int, rid: str) -> list[bytes]:
    return [(json.dumps({"request_id": rid, "row": i}) + "\n").encode() for i in range(n)]


def test_object_keys_follow_firehose_naming() -> None:
    when = 1767323045.0  # 2026-01-02T03:04:05Z
    assert STREAM.object_key(when, "abc") == (
        "capture/ep/dt=2026-01-02/cap-ep-1-2026-01-02-03-04-05-abc.gz")
    plain = Stream("s", "2", "b", "raw/", gzip=False)
    assert plain.object_key(when, "x") == "raw/2026/01/02/03/s-2-2026-01-02-03-04-05-x"


def test_batches_by_size_and_flush(tmp_path: Path) -> None:
    s3 = FakeS3()
    store = FirehoseEngine(tmp_path / "spool", s3.upload, max_age_s=60)
    small = dataclasses.replace(STREAM, size_bytes=150)  # SizeInMBs, scaled down: 5 records
    assert len(b"".join(_records(5, "r0"))) == 155
    for i in range(7):
        store.add("us-east-1", small, _records(2, f"r{i}"))
    store.flush(only_old=True)  # seals nothing young, uploads the full ones
    assert len(s3.rows()) == 12 and store.pending() == 2
    store.add("us-east-1", small, _records(1, "more"))
    assert store.flush() == 3
    keys = sorted(k for _, k in s3.objects)
    assert all(k.startswith("capture/ep/dt=20") and k.endswith(".gz") for k in keys)
    assert len(keys) == 3  # two full batches of 6 rows and the rest
    assert len(s3.rows()) == 15 and not list((tmp_path / "spool").iterdir())


def test_a_stream_seals_at_its_own_buffer_size() -> None:
    """The engine seals a batch at the stream's BufferingHints.SizeInMBs as moto stored it
    (5 MiB, Firehose's default, when the stream says none)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bkt")
        fh = boto3.client("firehose", region_name="us-east-1")
        for name, hints in (("big", {"SizeInMBs": 64, "IntervalInSeconds": 300}), ("plain", None)):
            fh.create_delivery_stream(
                DeliveryStreamName=name, DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::bkt",
                    "Prefix": "capture/ep/", "CompressionFormat": "GZIP",
                    **({"BufferingHints": hints} if hints else {})})
        big = lookup_stream("123456789012", "us-east-1", "big")
        plain = lookup_stream("123456789012", "us-east-1", "plain")
    assert big is not None and big.size_bytes == 64 << 20 and big.gzip
    assert plain is not None and plain.size_bytes == DEFAULT_SIZE_MB << 20 == 5 << 20


def test_crash_recovery_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    s3 = FakeS3()
    spool = tmp_path / "spool"
    first = FirehoseEngine(spool, s3.upload, max_age_s=60)
    first.add("us-east-1", STREAM, _records(3, "a"))
    first.add("us-east-1", STREAM, _records(2, "b"))
    # the daemon dies: a torn last line, nothing uploaded
    open_file = next(spool.glob("*.open"))
    with open_file.open("ab") as fh:
        fh.write(b'{"request_id": "torn"')
    second = FirehoseEngine(spool, s3.upload)
    assert second.recover() == 5
    assert [r["request_id"] for r in s3.rows()] == ["a", "a", "a", "b", "b"]
    # an upload that succeeded before the crash deleted its spool: re-upload overwrites
    third = FirehoseEngine(spool, s3.upload, max_age_s=60)
    third.add("us-east-1", dataclasses.replace(STREAM, size_bytes=1), _records(1, "c"))
    sealed = next(spool.glob("*.sealed"))
    data = sealed.read_bytes()
    third.flush()
    sealed.write_bytes(data)
    FirehoseEngine(spool, s3.upload).recover()
    assert [r["request_id"] for r in s3.rows()].count("c") == 1


def test_failed_upload_is_retried(tmp_path: Path) -> None:
    s3 = FakeS3()
    store = FirehoseEngine(tmp_path / "spool", s3.upload)
    store.add("us-east-1", STREAM, _records(2, "x"))
    s3.fail = True
    assert store.flush() == 0 and store.failures == 1
    s3.fail = False
    assert store.flush() == 2


def test_failed_upload_backs_off_and_a_gone_bucket_is_dead_lettered(tmp_path: Path) -> None:
    s3 = FakeS3()
    store = FirehoseEngine(tmp_path / "spool", s3.upload, max_age_s=0)
    store.add("us-east-1", STREAM, _records(2, "x"))
    s3.fail = True
    store.flush(only_old=True)
    assert s3.calls == 1
    for _ in range(5):  # the background loop's ticks: the batch waits out its backoff
        store.flush(only_old=True)
    assert s3.calls == 1 and store.failures == 1
    s3.fail, s3.gone = False, True
    for _ in range(4):  # explicit flushes try at once
        assert store.flush() == 0
    assert s3.calls == 5 and store.dead == 1
    assert not list((tmp_path / "spool").glob("*.sealed"))
    dead = list((tmp_path / "spool" / "dead").iterdir())
    assert len(dead) == 1 and b'"request_id": "x"' in dead[0].read_bytes()
    store.flush()
    assert s3.calls == 5  # never tried again


def test_metrics_render() -> None:
    m = Metrics()
    m.request("ep", "2", 200, 0.0007, True, None, init_s=0.3)
    m.request("ep", "2", 422, 0.002, False, "client")
    m.callbacks["mlops_capture_pending"] = ("gauge", lambda: 3)
    text = m.render()
    assert 'mlops_requests_total{endpoint="ep",version="2",code="200"} 1' in text
    assert 'mlops_errors_total{endpoint="ep",version="2",kind="client"} 1' in text
    assert 'mlops_request_duration_seconds_bucket{endpoint="ep",version="2",le="0.001"} 1' in text
    assert 'mlops_request_duration_seconds_count{endpoint="ep",version="2"} 2' in text
    assert 'mlops_invocations_total{endpoint="ep",version="2",start="cold"} 1' in text
    assert 'mlops_init_duration_seconds_bucket{endpoint="ep",version="2",le="0.5"} 1' in text
    assert "# TYPE mlops_capture_pending gauge\nmlops_capture_pending 3" in text
    assert m.value("mlops_requests_total", endpoint="ep") == 2


class FakeLogs:
    class exceptions:  # noqa: N801  (boto3's shape)
        class ResourceAlreadyExistsException(Exception):
            pass

        class ResourceNotFoundException(Exception):
            pass

    def __init__(self, filters: list[dict[str, Any]] | None = None) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.streams: set[tuple[str, str]] = set()
        self.filters = filters or []

    def describe_subscription_filters(self, logGroupName: str) -> dict[str, Any]:  # noqa: N803
        return {"subscriptionFilters": [f for f in self.filters
                                        if f["logGroupName"] == logGroupName]}

    def create_log_stream(self, logGroupName: str, logStreamName: str) -> None:  # noqa: N803
        self.streams.add((logGroupName, logStreamName))

    def put_log_events(self, logGroupName: str, logStreamName: str,  # noqa: N803
                       logEvents: list[dict[str, Any]]) -> None:  # noqa: N803
        self.events += [(logGroupName, logStreamName, e["message"]) for e in logEvents]


def test_log_shipper_sends_complete_lines_once(tmp_path: Path) -> None:
    logs = FakeLogs()
    shipper = LogShipper(lambda service, region: logs)
    path = tmp_path / "fn.log"
    path.write_text("before registration\n")  # a daemon's earlier life: its tail goes again
    shipper.register(path, "us-east-1", "fn")
    with path.open("a") as fh:
        fh.write('{"msg":"request"}\nSTART RequestId: 1\npartial')
    assert shipper.ship() == 2  # "before registration" went at registration
    assert shipper.ship() == 0
    with path.open("a") as fh:
        fh.write(" line\n")
    assert shipper.ship() == 1
    assert [e[2] for e in logs.events] == ["before registration", '{"msg":"request"}',
                                           "START RequestId: 1", "partial line"]
    assert {e[0] for e in logs.events} == {"/aws/lambda/fn"}


def test_log_shipper_resends_only_the_recent_whole_lines(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import framework.local.logship as logship

    monkeypatch.setattr(logship, "RESHIP_BYTES", 20)
    logs = FakeLogs()
    shipper = LogShipper(lambda service, region: logs)
    path = tmp_path / "fn.log"
    path.write_text("".join(f"line number {i}\n" for i in range(100)))
    shipper.register(path, "us-east-1", "fn")
    assert shipper.ship() == 0  # the tail went at registration, to the group only
    assert [e[2] for e in logs.events] == ["line number 99"]


class EngineFirehose:
    """The Firehose API in front of a real local engine (what the middleware does)."""

    def __init__(self, engine: FirehoseEngine, stream: Stream) -> None:
        self.engine = engine
        self.stream = stream
        self.fail = False

    def put_record_batch(self, DeliveryStreamName: str,  # noqa: N803
                         Records: list[dict[str, bytes]]) -> dict[str, Any]:  # noqa: N803
        if self.fail:
            raise OSError("control plane down")
        assert DeliveryStreamName == self.stream.name
        self.engine.add("us-east-1", self.stream, [r["Data"] for r in Records])
        return {"FailedPutCount": 0}


LOGS_STREAM = Stream("cap-ep", "1", "b", "capture/ep/dt=!{timestamp:yyyy-MM-dd}/", gzip=True,
                     error_prefix="capture-errors/ep/!{firehose:error-output-type}/",
                     logs_extraction=True)
CAPTURE_FILTER = {"logGroupName": "/aws/lambda/fn", "filterName": "mlops-capture",
                  "filterPattern": '{ $.msg = "capture" }',
                  "destinationArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/"
                                    "cap-ep"}


def _subscribed(tmp_path: Path) -> tuple[LogShipper, FakeLogs, EngineFirehose, FakeS3, Path]:
    s3 = FakeS3()
    firehose = EngineFirehose(FirehoseEngine(tmp_path / "spool", s3.upload, max_age_s=60),
                              LOGS_STREAM)
    logs = FakeLogs([CAPTURE_FILTER])
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    shipper = LogShipper(lambda service, region: firehose if service == "firehose" else logs,
                         home)
    return shipper, logs, firehose, s3, home


def test_subscription_sends_matching_lines_to_firehose_unwrapped(tmp_path: Path) -> None:
    shipper, logs, firehose, s3, _ = _subscribed(tmp_path)
    path = tmp_path / "fn.log"
    path.touch()
    shipper.register(path, "us-east-1", "fn")
    with path.open("a") as fh:
        fh.write('START RequestId: 1 Version: 3\n'
                 '{"msg":"capture","request_id":"a","row":0}\n'
                 '{"msg":"capture","request_id":"a","row":1}\n'
                 '{"msg":"request","request_id":"a","status":200}\n'
                 'END RequestId: 1\n')
    assert shipper.ship() == 5 and len(logs.events) == 5  # the group gets every line
    firehose.engine.flush()
    assert s3.rows() == [{"msg": "capture", "request_id": "a", "row": 0},
                         {"msg": "capture", "request_id": "a", "row": 1}]
    [key] = [k for _, k in s3.objects]
    assert key.startswith("capture/ep/dt=20")


def test_a_failing_destination_holds_back_nothing_and_loses_nothing(tmp_path: Path) -> None:
    shipper, logs, firehose, s3, home = _subscribed(tmp_path)
    path = tmp_path / "fn.log"
    path.touch()
    shipper.register(path, "us-east-1", "fn")
    with path.open("a") as fh:
        fh.write('{"msg":"capture","request_id":"a","row":0}\n')
    firehose.fail = True
    assert shipper.ship() == 1 and len(logs.events) == 1  # the group is not held back
    firehose.fail = False
    shipper.ship()
    # A restarted shipper resumes from the saved offsets: nothing resent, nothing missed.
    with path.open("a") as fh:
        fh.write('{"msg":"capture","request_id":"b","row":0}\n')
    again = LogShipper(lambda service, region: firehose if service == "firehose" else logs, home)
    assert again.ship() == 1
    firehose.engine.flush()
    assert [r["request_id"] for r in s3.rows()] == ["a", "b"]
    assert [e[2] for e in logs.events].count('{"msg":"capture","request_id":"a","row":0}') == 1


def test_records_that_are_not_cloudwatch_logs_go_under_the_error_prefix(tmp_path: Path) -> None:
    s3 = FakeS3()
    engine = FirehoseEngine(tmp_path / "spool", s3.upload, max_age_s=60)
    control = gzip.compress(json.dumps({"messageType": "CONTROL_MESSAGE", "logEvents": [
        {"id": "", "timestamp": 0, "message": "CWL CONTROL MESSAGE: Checking health"}]}).encode())
    data = envelopes("1", "/aws/lambda/fn", "s", "f",
                     [{"id": "1", "timestamp": 0, "message": '{"x":1}'}])
    engine.add("us-east-1", LOGS_STREAM, [b"not gzip", control, *data])
    engine.flush()
    [good] = [k for _, k in s3.objects if k.startswith("capture/ep/dt=")]
    [bad] = [k for _, k in s3.objects if k != good]
    assert bad.startswith("capture-errors/ep/decompression-failed/")
    assert gzip.decompress(s3.objects[("b", good)]) == b'{"x":1}\n'  # no control message


@pytest.mark.parametrize(("pattern", "message", "matches"), [
    ('{ $.msg = "capture" }', '{"msg":"capture","x":1}', True),
    ('{ $.msg = "capture" }', '{"msg":"request"}', False),
    ('{ $.msg = "capture" }', 'START RequestId: 1', False),
    ('{ $.msg = "capture" }', '{"msg":"capture"', False),
    ('{ $.a.b = 3 && $.c != "x" }', '{"a":{"b":3},"c":"y"}', True),
    ('{ $.a.b = 3 && $.c != "x" }', '{"a":{"b":3},"c":"x"}', False),
    ('{ $.latency > 2.5 }', '{"latency":3}', True),
    ('{ $.latency > 2.5 }', '{"latency":"3"}', False),
    ('{ $.key = * }', '{"key":0}', True),
    ('', 'anything', True),
])
def test_filter_patterns(pattern: str, message: str, matches: bool) -> None:
    match = compile_pattern(pattern)
    assert match is not None and match(message) is matches


@pytest.mark.parametrize("pattern", ["ERROR", '{ $.a = "x" || $.b = 1 }', "[ip, user]",
                                     '{ $.a = %regex% }'])
def test_patterns_outside_the_subset_are_refused_not_guessed(pattern: str) -> None:
    assert compile_pattern(pattern) is None


def test_capture_lines_match_the_compiled_subscription_filter() -> None:
    from framework.compile.compiler import CAPTURE_FILTER_PATTERN
    from framework.runtime.capture import capture_lines
    from framework.runtime.features import FeatureSpec
    from framework.runtime.inference import Prediction

    features = [FeatureSpec(name="a", type="float")]
    lines = capture_lines(request_id="r", ts=0.0, endpoint="e", model="m", version="1.0.0",
                          lambda_version="1", latency_ms=1.0, features=features, rows=[[1.0]],
                          prediction=Prediction(labels=["x"], probabilities=None,
                                                classes=["x"]))
    match = compile_pattern(CAPTURE_FILTER_PATTERN)
    assert match is not None and all(match(line) for line in lines.splitlines())


@pytest.mark.parametrize(("header", "ok"), [
    ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/execute-api/aws4_request, "
     "SignedHeaders=host;x-amz-date, Signature=" + "a" * 64, True),
    ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, "
     "SignedHeaders=host;x-amz-date, Signature=" + "a" * 64, False),
    ("Bearer abc", False),
    ("", False),
])
def test_sigv4_structure(header: str, ok: bool) -> None:
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    identity = check_sigv4({"authorization": header, "x-amz-date": stamp}, now)
    assert (identity is not None) == ok
    late = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - 3600))
    assert check_sigv4({"authorization": header, "x-amz-date": late}, now) is None
