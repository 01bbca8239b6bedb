"""Capture delivery is at least once (CloudWatch Logs subscriptions, Firehose): a record
delivered twice, in the same object or another, is read once."""

from __future__ import annotations

import numpy as np

from framework.monitoring.capture import CaptureCache, ReadLog, read_captures
from framework.monitoring.spec import Window
from framework.monitoring.store import MemoryStore
from tests.monitoring.support import START, put_capture, records


def test_a_record_delivered_twice_is_read_once() -> None:
    store = MemoryStore()
    rows = records(np.random.default_rng(1), 20)
    put_capture(store, rows[:15], name="a")
    put_capture(store, rows[10:] + rows[:1], name="b")  # 5 + 1 delivered again
    window = Window(START, START.replace(hour=23))
    for read in (lambda log: read_captures(store, "score", window, log),
                 lambda log: CaptureCache(store, "score").read(window, log)):
        log = ReadLog()
        got = [(r["request_id"], r["row"]) for r in read(log)]
        assert sorted(got) == sorted((r["request_id"], r["row"]) for r in rows)
        assert log.records == 20 and log.repeated == 6
