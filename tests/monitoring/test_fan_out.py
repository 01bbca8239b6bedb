"""Fan-out: a window with more objects lacking a partial profile than fan_out.objects hands
them to parallel workers in shares of that many, then merges every partial itself; the
profile is the one a single run makes, and a worker that fails leaves its share to the run."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from framework.monitoring.capture import ReadLog
from framework.monitoring.check import load_settings, profile_with
from framework.monitoring.partial import in_time, profile_objects
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


def test_shares_not_handed_out_in_time_wait_for_the_next_run() -> None:
    """A window too big to profile in one run's time: the shares handed out in time are
    merged, the others are left out (said in an issue, never read by the run itself), and the
    next run profiles them and reports the whole window."""
    s = spec(fan_out={"objects": 2, "workers": 2})
    whole = run_monitor(s, _store(), WINDOW, Clients())  # the window profiled by one run
    store = _store()
    lock = threading.Lock()
    clock = {"left": 900_000}

    def remaining() -> int:  # ms left in the run; 200 s pass between two looks at the clock
        with lock:
            left = clock["left"]
            clock["left"] -= 200_000
            return left

    def fan(keys: list[str]) -> dict[str, Any]:
        return profile_objects(store, keys, load_settings(store, s)[0])

    first = run_monitor(s, store, WINDOW, Clients(fan=in_time(fan, remaining)))
    profiles = first["data"]["profiles"]
    # 900 s when the run starts; shares start with 700 and 500 s left; then less than half
    assert profiles["workers"] == 2 and profiles["fanned"] == 4
    assert profiles["deferred"] == 5 and profiles["built"] == 0 and profiles["cached"] == 4
    assert first["data"]["rows"] == 4 * 40
    (issue,) = [i for i in first["issues"] if i["kind"] == "window_incomplete"]
    assert issue["objects"] == 5
    assert "5 of the window's 9 objects without a partial profile were not profiled in " \
           "time (" in issue["message"] and "s of the run's 900 s left" in issue["message"]
    # the e-mail's subject says so, whatever the verdict on the objects profiled
    assert first["subject"].endswith(" (window incomplete: 5 objects left for the next run)")

    second = run_monitor(s, store, WINDOW, Clients(fan=in_time(fan, lambda: 900_000)))
    profiles = second["data"]["profiles"]
    assert profiles["deferred"] == 0 and profiles["fanned"] == 5 and profiles["cached"] == 9
    assert second["data"]["rows"] == 9 * 40
    assert not [i for i in second["issues"] if i["kind"] == "window_incomplete"]
    assert "incomplete" not in second["subject"]
    assert second["drift"] == whole["drift"]


def test_a_run_with_time_left_hands_out_every_share() -> None:
    store = _store()
    s = spec(fan_out={"objects": 2, "workers": 3})
    seen: list[list[str]] = []

    def fan(keys: list[str]) -> dict[str, Any]:
        seen.append(keys)
        return profile_objects(store, keys, load_settings(store, s)[0])

    report = run_monitor(s, store, WINDOW, Clients(fan=in_time(fan, lambda: 450_001)))
    assert len(seen) == 5 and report["data"]["profiles"]["deferred"] == 0
    assert report["data"]["rows"] == 9 * 40


def test_the_monitors_s3_client_keeps_a_connection_per_fetcher(
        caplog: pytest.LogCaptureFixture) -> None:
    """The merge fetches partials FETCHERS at a time: with botocore's default pool of 10 the
    threads beyond it open and drop a connection per fetch, each with a warning in the log."""
    from moto.server import ThreadedMotoServer

    from framework.monitoring.partial import FETCHERS
    from framework.monitoring.store import S3Store
    from framework.runtime.clients import Connection
    from handlers.monitor import s3_client
    from tests.ports import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        conn = Connection("us-east-1", f"http://127.0.0.1:{port}", dummy_credentials=True,
                          read_timeout=30.0)  # not the cached clients of other tests
        conn.client("s3").create_bucket(Bucket="partials")
        for i in range(FETCHERS):
            conn.client("s3").put_object(Bucket="partials", Key=f"k{i}", Body=b"x" * 1000)

        def pool_warnings(s3: Any) -> int:
            store = S3Store(s3, "partials")
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
                barrier = threading.Barrier(FETCHERS)  # FETCHERS fetches at once

                def fetch(key: str) -> bytes | None:
                    barrier.wait()
                    return store.get(key)

                with ThreadPoolExecutor(FETCHERS) as pool:
                    for _ in range(3):  # rounds of fetches, as the merge makes them
                        assert all(pool.map(fetch, [f"k{i}" for i in range(FETCHERS)]))
            return sum("Connection pool is full" in r.getMessage() for r in caplog.records)

        assert pool_warnings(s3_client(conn)) == 0
        assert pool_warnings(conn.client("s3")) > 0  # botocore's default: the bug it fixes
    finally:
        server.stop()
