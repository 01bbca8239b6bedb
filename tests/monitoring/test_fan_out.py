"""Fan-out: a window with more objects lacking a partial profile than fan_out.objects hands
them to parallel workers in shares of that many, then merges every partial itself; the
profile is the one a single run makes, and a worker that fails leaves its share to the run."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np

from framework.monitoring.capture import ReadLog
from framework.monitoring.check import load_settings, profile_with
from framework.monitoring.partial import profile_objects
from framework.monitoring.run import Clients, run_monitor
from framework.monitoring.store import MemoryStore
from tests.monitoring.support import START, WINDOW, put_capture, records, spec, store_with_reference
from tests.monitoring.test_columns import canonical_rows, same


def _store(objects: int = 9) -> MemoryStore:
    store = store_with_reference()
    rng = np.random.default_rng(11)
    for i in range(objects):
        put_capture(store, canonical_rows(records(rng, 40, start=START + timedelta(hours=2 * i)),
                                          f"o{i}-"), name=f"o{i}")
    return store


def test_many_objects_are_profiled_by_workers_then_merged() -> None:
    alone = _store()
    s = spec(fan_out={"objects": 2, "workers": 3})
    settings = load_settings(alone, s)[0]
    want, _ = profile_with(alone, s, WINDOW, settings, ReadLog())  # no fan: the run alone

    store = _store()
    shares: list[list[str]] = []
    lock = threading.Lock()

    def fan(keys: list[str]) -> dict[str, Any]:  # a worker: the same function, its share
        with lock:
            shares.append(keys)
        return profile_objects(store, keys, load_settings(store, s)[0])

    log = ReadLog()
    got, facts = profile_with(store, s, WINDOW, settings, log, fan)
    same(got, want)
    assert sorted(len(k) for k in shares) == [1, 2, 2, 2, 2]  # 9 objects, shares of 2
    assert facts.profiles["workers"] == 5 and facts.profiles["fanned"] == 9
    assert facts.profiles["built"] == 0 and facts.profiles["cached"] == 9  # merged, not read
    assert not log.issues


def test_few_objects_or_one_worker_do_not_fan_out() -> None:
    for fan_out in ({"objects": 9, "workers": 4}, {"objects": 1, "workers": 1}):
        store = _store()
        s = spec(fan_out=fan_out)

        def fan(keys: list[str]) -> dict[str, Any]:
            raise AssertionError("no fan-out expected")

        _, facts = profile_with(store, s, WINDOW, load_settings(store, s)[0], ReadLog(), fan)
        assert facts.profiles["workers"] == 0 and facts.profiles["built"] == 9


def test_a_failed_worker_leaves_its_share_to_the_run() -> None:
    store = _store()
    s = spec(fan_out={"objects": 4, "workers": 2})
    calls = []

    def fan(keys: list[str]) -> dict[str, Any]:
        calls.append(keys)
        if keys[0].endswith("o0.jsonl.gz"):
            raise RuntimeError("Task timed out after 900.00 seconds")
        return profile_objects(store, keys, load_settings(store, s)[0])

    report = run_monitor(s, store, WINDOW, Clients(fan=fan))
    issues = [i for i in report["issues"] if i["kind"] == "fan_out_failed"]
    assert len(issues) == 1 and issues[0]["objects"] == 4
    assert "Task timed out" in issues[0]["message"]
    profiles = report["data"]["profiles"]
    assert profiles["fanned"] == 5 and profiles["built"] == 4  # the failed share, read here
    assert report["data"]["rows"] == 9 * 40
