"""moto's log streams, indexed by time (``logship.index_moto_streams``): the same answers as
moto's full scans, on streams in time order and not."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from moto.logs.models import LogStream

from framework.local.logship import index_moto_streams


@pytest.fixture(scope="module", autouse=True)
def indexed() -> None:
    index_moto_streams()


def _stream(batches: list[list[int]]) -> LogStream:
    group = SimpleNamespace(account_id="123456789012", region="us-east-1", name="/g",
                            subscription_filters={})
    stream = LogStream(group, "s")  # type: ignore[arg-type]
    for n, batch in enumerate(batches):
        stream.put_log_events([{"timestamp": ts, "message": f"{n}:{i}"}
                               for i, ts in enumerate(batch)])
    return stream


def _pages(read: Any, stream: LogStream, start: int | None, end: int | None,
           limit: int | None) -> list[Any]:
    """Every page from the head, following the forward token, as moto answers them."""
    pages, token = [], None
    for _ in range(50):
        events, back, forward = read(stream, start, end, limit, token, True)
        pages.append((events, back, forward))
        if not events or forward == token:
            break
        token = forward
    return pages


def _both(stream: LogStream, start: int | None, end: int | None = None,
          limit: int | None = None) -> tuple[list[Any], list[Any]]:
    moto_read = LogStream.get_log_events.__wrapped__  # type: ignore[attr-defined]
    return (_pages(LogStream.get_log_events, stream, start, end, limit),
            _pages(moto_read, stream, start, end, limit))


def test_ordered_stream_reads_from_start_time_as_moto_does() -> None:
    batches = [[1000 + 10 * b + i for i in range(5)] for b in range(40)]
    batches.append([1395, 1395, 1395])  # equal timestamps at the edge
    stream = _stream(batches)
    for start in (None, 0, 1000, 1001, 1200, 1203, 1395, 1396, 5000):
        for limit in (None, 7):
            ours, moto = _both(stream, start, 1300 if start == 1200 else None, limit)
            assert ours == moto, (start, limit)
    assert stream._mlops_index[3] is True  # type: ignore[attr-defined]
    assert _both(stream, 1203)[0][0][0][0]["timestamp"] == 1203


def test_out_of_order_stream_falls_back_to_the_scan() -> None:
    stream = _stream([[100, 200, 300], [150, 400]])
    ours, moto = _both(stream, 160)
    assert ours == moto
    assert [e["timestamp"] for e in ours[0][0]] == [200, 300, 400]
    assert stream._mlops_index[3] is False  # type: ignore[attr-defined]


def test_describe_keeps_first_and_last_timestamps_as_events_arrive() -> None:
    rng = random.Random(7)
    stream = _stream([])
    assert stream.to_describe_dict().get("firstEventTimestamp") is None
    for _ in range(20):
        stream.put_log_events([{"timestamp": rng.randrange(10_000), "message": "m"}
                               for _ in range(rng.randrange(1, 6))])
        described = stream.to_describe_dict()
        stamps = [e.timestamp for e in stream.events]
        assert (described["firstEventTimestamp"], described["lastEventTimestamp"]) == (
            min(stamps), max(stamps))
    stream.events = stream.events[:3]  # not appended to: counted again
    stream.to_describe_dict()
    stamps = [e.timestamp for e in stream.events]
    assert (stream.first_event_timestamp, stream.last_event_timestamp) == (
        min(stamps), max(stamps))
