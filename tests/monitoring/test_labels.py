"""The label join (framework.monitoring.labels): the same answer as a join through dicts,
latest label wins, one match per key, partitions, per-version metrics and late labels."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from support import (
    START,
    WINDOW,
    put_capture,
    put_jsonl,
    records,
    spec,
    store_with_reference,
)

from framework.monitoring import labels, performance
from framework.monitoring.capture import FEEDBACK_LAG_DAYS, ReadLog, read_feedback
from framework.monitoring.check import run_check
from framework.monitoring.profile import category_key
from framework.monitoring.store import MemoryStore


def _fb(rid: str, label: Any, time: str = "2024-05-01T10:00:00.000000Z", row: int = 0,
        ) -> dict[str, Any]:
    return {"msg": "feedback", "endpoint": "score", "request_id": rid, "row": row,
            "label": label, "time": time}


def _labels(store: MemoryStore, regression: bool = False) -> labels.Labels:
    return labels.read_labels(store, "score", WINDOW, ReadLog(), regression)


def test_the_join_is_the_dict_join_and_the_latest_label_wins() -> None:
    rng = random.Random(3)
    store = MemoryStore()
    truth: dict[tuple[str, int], tuple[str, str]] = {}  # key -> (time, label)
    n_objects = 7
    for o in range(n_objects):
        lines = []
        for _ in range(400):
            rid, row = f"req-{rng.randrange(1500)}", rng.randrange(3)
            label = rng.choice(["a", "b", "c"])
            hh, mm, us = rng.randrange(24), rng.randrange(60), rng.randrange(10**6)
            t = f"2024-05-01T{hh:02d}:{mm:02d}:00.{us:06d}Z"
            lines.append(_fb(rid, label, t, row))
            if (rid, row) not in truth or t >= truth[(rid, row)][0]:
                truth[(rid, row)] = (t, label)
        put_jsonl(store, f"feedback/score/dt=2024-05-0{1 + o % 3}/o{o}.jsonl.gz", lines)
    read = _labels(store)
    assert read.records == 400 * n_objects and len(read) == len(truth)
    assert np.all(np.diff(read.keys.astype(np.float64)) >= 0)  # sorted: partitions in order
    tops = (read.keys >> np.uint64(labels.SHIFT)).astype(int)
    assert len(set(tops.tolist())) > labels.PARTITIONS // 2  # spread over the partitions
    # the dict reader (the data export's) agrees
    assert read_feedback(store, "score", WINDOW, ReadLog()) == {k: v for k, (_, v) in
                                                                 truth.items()}

    # predictions in three blocks; a key repeated in a later block is matched once
    preds = [(f"req-{i}", r, rng.choice(["1", "2"]), rng.choice(["a", "b", "c"]),
              rng.random()) for i in range(1200) for r in range(3)]
    blocks = [preds[:1500], preds[1500:], preds[:100]]
    join = labels.Join(read)
    for block in blocks:
        join.add({"ids": [p[0] for p in block], "rows": [p[1] for p in block],
                  "versions": [p[2] for p in block], "labels": [p[3] for p in block],
                  "scores": [p[4] for p in block]})
    got = join.result()
    expect = [(p, truth[(p[0], p[1])][1]) for p in preds if (p[0], p[1]) in truth]
    assert len(got) == len(expect)
    want = performance.classification_metrics(
        [lab for _, lab in expect], [p[3] for p, _ in expect], [p[4] for p, _ in expect], "a")
    assert got.metrics("a") == pytest.approx(want)
    by_version = got.by_version("a")
    for v in ("1", "2"):
        rows = [(p, lab) for p, lab in expect if p[2] == v]
        assert by_version[v]["labelled"] == len(rows)
        assert by_version[v] == pytest.approx({**performance.classification_metrics(
            [lab for _, lab in rows], [p[3] for p, _ in rows], [p[4] for p, _ in rows], "a"),
            "labelled": len(rows)})


def test_unusable_feedback_is_counted_and_regression_labels_must_be_numbers() -> None:
    store = MemoryStore()
    put_jsonl(store, "feedback/score/dt=2024-05-01/a.jsonl.gz", [
        _fb("r1", 1.5), _fb("r2", "2.5"), _fb("r3", "many"), _fb("r4", True),
        {"request_id": "r5"}, {"request_id": "r6", "row": -1, "label": 1},
        {"row": 0, "label": 2}])
    store.put("feedback/score/dt=2024-05-01/b.jsonl.gz", b"not gzip", "application/gzip")
    log = ReadLog()
    read = labels.read_labels(store, "score", WINDOW, log, True)
    assert len(read) == 4 and log.files == 1
    assert log.skipped == {"feedback records without a request id or a label": 2,
                           "feedback records whose row is not a non-negative integer": 1}
    assert [i["kind"] for i in log.issues] == ["corrupt_file"]
    join = labels.Join(read)
    join.add({"ids": ["r1", "r2", "r3", "r4", "r9"], "rows": [0] * 5,
              "versions": ["1"] * 5, "labels": [1.0, 2.0, 3.0, 4.0, 5.0],
              "scores": [None] * 5})
    joined = join.result().usable(log)
    assert len(joined) == 2  # r3's label is not a number, r4's a boolean; r9 has none
    assert log.skipped["feedback records whose label is not a finite number"] == 2
    assert joined.metrics(None)["mae"] == pytest.approx(0.5)


def test_micros_parses_our_times_and_others() -> None:
    ours = labels.micros("2024-05-01T10:00:00.000250Z")
    assert ours == labels.micros("2024-05-01T10:00:00.00025+00:00") == \
        int(START.timestamp() + 36000) * 1_000_000 + 250
    assert labels.micros("") == 0 and labels.micros("yesterday") == 0


def _window_run(store: MemoryStore) -> dict[str, Any]:
    s = spec(drift={"prediction": False}, performance={"metric": "accuracy", "min_labels": 1})
    body = run_check(s, store, WINDOW)
    assert body["performance"] is not None
    return dict(body["performance"])


def test_late_labels_count_in_their_requests_window_until_the_lag_runs_out() -> None:
    """A label counts in the window of the prediction it labels if it arrives by the end of
    the FEEDBACK_LAG_DAYS-th day after the window's last day; one that arrives after the
    window was reported counts when that window is run again."""
    store = store_with_reference()
    rows = records(np.random.default_rng(2), 60)  # all on 2024-05-01, the window's day
    put_capture(store, rows)
    last_day = (WINDOW.end + timedelta(days=FEEDBACK_LAG_DAYS)).date()

    def label(i: int, day: Any, right: bool = True) -> None:
        r = rows[i]
        wrong = "no" if r["prediction"] == "yes" else "yes"
        put_jsonl(store, f"feedback/score/dt={day.isoformat()}/late-{i}.jsonl.gz",
                  [_fb(r["request_id"], r["prediction"] if right else wrong,
                       f"{day.isoformat()}T08:00:00.000000Z")])

    label(0, START.date())  # on time
    first = _window_run(store)
    assert first["labelled"] == 1 and first["overall"]["accuracy"] == 1.0
    assert first["feedback_days"] == {"first": "2024-05-01", "last": last_day.isoformat()}
    # after the report: a wrong label on the last lag day, and one a day too late
    label(1, last_day, right=False)
    label(2, last_day + timedelta(days=1))
    again = _window_run(store)
    assert again["labelled"] == 2 and again["overall"]["accuracy"] == 0.5
    assert again["by_version"] == {"1": {**again["overall"], "labelled": 2}}


def test_a_corrected_label_replaces_the_first_and_versions_are_judged_apart() -> None:
    store = store_with_reference()
    old = records(np.random.default_rng(4), 40, version="1")
    new = [{**r, "request_id": f"n{i}", "version": "2"}
           for i, r in enumerate(records(np.random.default_rng(5), 40))]
    put_capture(store, old, "old")
    put_capture(store, new, "new")
    fb = [_fb(r["request_id"], r["prediction"]) for r in old + new]
    put_jsonl(store, "feedback/score/dt=2024-05-01/a.jsonl.gz", fb)
    flip = [_fb(r["request_id"], "no" if r["prediction"] == "yes" else "yes",
                "2024-05-02T00:00:00.000000Z") for r in new[:10]]
    put_jsonl(store, "feedback/score/dt=2024-05-02/b.jsonl.gz", flip)
    put_jsonl(store, "feedback/score/dt=2024-05-02/c.jsonl.gz", flip[:3])  # delivered again
    perf = _window_run(store)
    assert perf["labelled"] == 80 and perf["labels"] == 80 and perf["feedback_records"] == 93
    assert perf["by_version"]["1"]["accuracy"] == 1.0
    assert perf["by_version"]["2"]["accuracy"] == pytest.approx(0.75)
    assert perf["by_version"]["2"]["labelled"] == 40


def test_codes_keep_the_category_keys_of_labels() -> None:
    codes = labels.Codes()
    assert codes.code(1.0) == codes.code(1) == codes.code("1")
    assert codes.code(True) == codes.code("true") != codes.code(1)
    assert set(codes.index) == {category_key(1), "true"}
