"""CaptureCache: a growing window asked about again and again reads each object once, and
yields exactly what read_captures yields."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from framework.monitoring.capture import CaptureCache, ReadLog, read_captures
from framework.monitoring.spec import Window
from framework.monitoring.store import MemoryStore
from tests.monitoring.support import START, put_capture, records


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str) -> bytes | None:
        self.gets += 1
        return super().get(key)


def test_each_object_is_read_once_and_the_window_still_filters() -> None:
    store = CountingStore()
    rng = np.random.default_rng(3)
    cache = CaptureCache(store, "score")
    seen = []
    for tick in range(5):  # a new capture object between ticks, the window's end moving on
        put_capture(store, records(rng, 10, start=START + timedelta(minutes=10 * tick)),
                    name=f"b{tick}")
        window = Window(START + timedelta(minutes=2), START + timedelta(minutes=10 * tick + 3))
        got = [r["time"] for r in cache.read(window, ReadLog())]
        want = [r["time"] for r in read_captures(store, "score", window, ReadLog())]
        assert got == want
        seen.append(len(got))
    assert seen == sorted(seen) and seen[-1] > 0
    assert cache.reads == 5  # one fetch per object over the five ticks

