"""A shadow version captures its answers to copies of the endpoint's requests under the
primary's request ids, marked ``"shadow": true``: monitors and data exports read the traffic
the endpoint served and leave those rows out; a reader that wants both (a rollout comparing
answers) sees a shadow row and its primary's as two records, not one delivered twice."""

from __future__ import annotations

import numpy as np

from framework.monitoring.capture import CaptureCache, ReadLog, read_captures
from framework.monitoring.spec import Window
from framework.monitoring.store import MemoryStore
from tests.monitoring.support import START, put_capture, records


def test_shadow_rows_are_not_the_endpoints_traffic() -> None:
    store = MemoryStore()
    rows = records(np.random.default_rng(2), 12)
    copies = [{**r, "shadow": True, "primary_version": "1", "version": "9.9.9"}
              for r in rows[:5]]
    put_capture(store, rows, name="primary")
    put_capture(store, copies, name="shadow")
    window = Window(START, START.replace(hour=23))
    log = ReadLog()
    got = list(read_captures(store, "score", window, log))
    assert len(got) == 12 and not any(r.get("shadow") for r in got)
    assert (log.records, log.shadow, log.repeated) == (12, 5, 0)
    cache_log = ReadLog()
    both = list(CaptureCache(store, "score").read(window, cache_log))
    assert len(both) == 17 and cache_log.repeated == 0
