"""Day rollups of partial profiles: a run that merged every partial of a day lying wholly in
its window stores the day's rollup; a later run merges the rollup instead of the day's
partials, with a report identical to merging every partial; a rollup that no longer covers
its day (an object delivered late, records timed outside the window, an object repeating one
of an earlier day) is not used, and the run rebuilds it."""

from __future__ import annotations

import gzip
import json
import math
import random
from datetime import timedelta
from typing import Any

import numpy as np

from framework.monitoring import partial
from framework.monitoring.check import run_check
from framework.monitoring.spec import Window
from framework.monitoring.store import MemoryStore
from tests.monitoring.support import START, put_jsonl, records, spec, store_with_reference

DAY = timedelta(days=1)
WINDOW = Window(START, START + 3 * DAY)  # three whole days: 2024-05-01 .. 05-03
SPEC = spec(performance=None)  # a drift monitor: partials without per-row predictions


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    def get(self, key: str) -> bytes | None:
        self.gets.append(key)
        return super().get(key)


def rows_at(rng: np.random.Generator, n: int, start: Any, tag: str,
            shift: dict[str, float] | None = None, version: str = "1") -> list[dict[str, Any]]:
    out = records(rng, n, shift=shift, start=start, version=version)
    for r in out:
        r["time"] = r["time"].replace("Z", ".000000Z")
        r["request_id"] = f"{tag}{r['request_id']}"
    return out


def put(store: MemoryStore, day: Any, name: str, rows: list[dict[str, Any]],
        extra: str = "") -> None:
    key = f"capture/score/dt={day.date().isoformat()}/{name}.jsonl.gz"
    if extra:
        text = "\n".join(json.dumps(r) for r in rows) + extra
        store.put(key, gzip.compress(text.encode()), "application/gzip")
    else:
        put_jsonl(store, key, rows)


def window_store() -> CountingStore:
    """Three days of objects: small ones (exact values kept) and big ones, two model
    versions, a bad line, a record without inputs, an object delivered twice in a day."""
    store = CountingStore()
    store.objects.update(store_with_reference().objects)
    rng = np.random.default_rng(11)
    for d in range(3):
        day = START + d * DAY
        for i in range(4):
            n = 40 if i % 2 else 1200
            rows = rows_at(rng, n, day + timedelta(hours=5 * i + 1), f"d{d}o{i}-",
                           shift={"x1": 0.3 * d}, version="1" if i < 3 else "2")
            if i == 1:
                rows[0]["inputs"] = "not an object"
            put(store, day, f"o{i}", rows, extra="\n{not json\n" if i == 2 else "")
            if i == 3:
                put(store, day, "o3-again", rows)  # delivered twice: counted once
    return store


def check(store: MemoryStore, window: Window = WINDOW) -> dict[str, Any]:
    body = run_check(SPEC, store, window)
    return body


def without_usage(body: dict[str, Any]) -> dict[str, Any]:
    """The report's body without ``data.profiles`` (how the profile was made)."""
    out = json.loads(json.dumps(body))
    out["data"].pop("profiles")
    return out


def drop_rollups(store: MemoryStore) -> None:
    for key in [k for k in store.objects if k.endswith(partial.ROLLUP)]:
        del store.objects[key]


def per_object(store: CountingStore, window: Window = WINDOW) -> dict[str, Any]:
    """The report merging every object's partial (the rollups set aside, then put back as
    they were rebuilt)."""
    kept = {k: v for k, v in store.objects.items() if k.endswith(partial.ROLLUP)}
    drop_rollups(store)
    body = check(store, window)
    assert body["data"]["profiles"]["rollups"] == 0
    drop_rollups(store)
    store.objects.update(kept)
    return body


def test_a_later_run_merges_day_rollups_with_the_same_report() -> None:
    store = window_store()
    first = check(store)  # profiles every object, stores its partial and each day's rollup
    assert first["data"]["profiles"]["built"] == 15
    assert first["data"]["profiles"]["rollups_stored"] == 3
    rollups = sorted(k for k in store.objects if k.endswith(partial.ROLLUP))
    assert rollups == [f"capture-profiles/score/{k}" for k in sorted(
        f"{tag}/dt=2024-05-0{d}/_day.rollup.gz" for d in (1, 2, 3)
        for tag in {k.split('/')[2] for k in store.objects
                    if k.startswith("capture-profiles/")})]
    store.gets.clear()
    later = check(store)
    p = later["data"]["profiles"]
    assert (p["rollups"], p["rolled"], p["cached"], p["built"], p["objects"]) == (3, 15, 0, 0, 15)
    assert not [k for k in store.gets if k.startswith("capture") and
                not k.endswith(partial.ROLLUP)]  # neither an object nor its partial read
    assert p["duplicates"] == 3
    assert without_usage(later) == without_usage(per_object(store))
    assert later["data"]["rows"] == 3 * (2 * 1200 + 2 * 40 - 1)
    assert later["data"]["versions"] == {"1": 3 * (2400 + 39), "2": 3 * 40}
    assert [i["kind"] for i in later["issues"]].count("corrupt_records") == 3
    assert later["data"]["skipped"] == 3


def test_exact_values_are_kept_alike_by_a_small_window() -> None:
    store = CountingStore()
    store.objects.update(store_with_reference().objects)
    rng = np.random.default_rng(12)
    for d in range(2):
        for i in range(3):
            put(store, START + d * DAY, f"o{i}",
                rows_at(rng, 30, START + d * DAY + timedelta(hours=i), f"{d}-{i}-"))
    window = Window(START, START + 2 * DAY)
    check(store, window)
    later = check(store, window)
    assert later["data"]["profiles"]["rollups"] == 2
    assert without_usage(later) == without_usage(per_object(store, window))
    assert later["data"]["latency_p50_ms"] is not None


def test_an_object_delivered_late_makes_its_day_rollup_stale_and_the_run_rebuilds_it() -> None:
    store = window_store()
    check(store)
    late = rows_at(np.random.default_rng(13), 500, START + DAY + timedelta(hours=20), "late-",
                   shift={"x0": 2.0})
    put(store, START + DAY, "o9-late", late)
    run = check(store)
    p = run["data"]["profiles"]
    assert (p["rollups"], p["built"], p["rollups_stored"]) == (2, 1, 1)  # 05-02 rebuilt
    again = check(store)
    assert again["data"]["profiles"]["rollups"] == 3
    assert without_usage(run) == without_usage(again) == without_usage(per_object(store))
    assert again["data"]["rows"] == 3 * (2 * 1200 + 2 * 40 - 1) + 500


def test_a_day_partly_in_the_window_is_merged_per_object() -> None:
    store = window_store()
    window = Window(START + timedelta(hours=3), START + 3 * DAY)  # 05-01 from 03:00
    first = check(store, window)
    assert first["data"]["profiles"]["rollups_stored"] == 2
    assert not any(k.endswith(f"dt=2024-05-01/{partial.ROLLUP}") for k in store.objects)
    later = check(store, window)
    p = later["data"]["profiles"]
    assert (p["rollups"], p["rolled"], p["cached"], p["boundary"]) == (2, 10, 5, 1)
    assert without_usage(later) == without_usage(per_object(store, window))


def test_records_timed_outside_the_window_keep_their_day_off_the_rollup() -> None:
    store = window_store()
    # delivered on 05-02, its records timed on 05-01 (a late delivery across midnight)
    put(store, START + DAY, "o8-yesterday",
        rows_at(np.random.default_rng(14), 100, START + timedelta(hours=22), "y-"))
    check(store)  # 05-01 .. 05-03: every record inside; 05-02's rollup stored
    window = Window(START + DAY, START + 3 * DAY)
    run = check(store, window)  # 05-02's rollup has records before this window: per object
    p = run["data"]["profiles"]
    assert p["rollups"] == 1 and p["outside"] == 1
    assert without_usage(run) == without_usage(per_object(store, window))
    assert run["data"]["records_outside_window"] == 100


def test_an_object_repeating_one_of_an_earlier_day_counts_once() -> None:
    store = window_store()
    again = rows_at(np.random.default_rng(15), 700, START + timedelta(hours=12), "x-")
    put(store, START, "o7", again)
    put(store, START + DAY, "o7-redelivered", again)  # the same records, the next day
    check(store)
    later = check(store)
    p = later["data"]["profiles"]
    assert p["rollups"] == 2  # 05-02 repeats an object of 05-01: merged per object
    assert p["duplicates"] == 4
    assert without_usage(later) == without_usage(per_object(store))
    assert later["data"]["rows"] == 3 * (2 * 1200 + 2 * 40 - 1) + 700
    # a window from 05-02: the redelivered object's records are timed before it
    window = Window(START + DAY, START + 3 * DAY)
    alone = check(store, window)
    assert alone["data"]["profiles"]["rollups"] == 1
    assert alone["data"]["records_outside_window"] == 700
    assert without_usage(alone) == without_usage(per_object(store, window))


def test_a_monitor_judging_performance_stores_no_rollup() -> None:
    store = window_store()
    run_check(spec(), store, WINDOW)  # performance: partials carry each row's prediction
    body = run_check(spec(), store, WINDOW)
    assert body["data"]["profiles"]["rollups"] == 0
    assert not any(k.endswith(partial.ROLLUP) for k in store.objects)


def test_a_rollup_of_other_objects_or_another_tag_is_not_used() -> None:
    store = window_store()
    check(store)
    key = next(k for k in store.objects if k.endswith(f"dt=2024-05-01/{partial.ROLLUP}"))
    r = json.loads(gzip.decompress(store.objects[key]))
    keys = store.list("capture/score/dt=2024-05-01/")
    day = START.date()
    s = partial.Settings(reference=None, features=[], task="classification",  # type: ignore
                         positive=None, answers_edges=None, predictions=False, tag=r["tag"])
    assert partial.current_rollup(store.objects[key], s, day, keys, WINDOW, set()) is not None
    assert partial.current_rollup(store.objects[key], s, day, keys[:-1], WINDOW, set()) is None
    s.tag = "another"
    assert partial.current_rollup(store.objects[key], s, day, keys, WINDOW, set()) is None
    assert partial.current_rollup(b"not gzip", s, day, keys, WINDOW, set()) is None


def test_exact_sums_do_not_depend_on_the_grouping() -> None:
    rnd = random.Random(16)
    terms = [rnd.uniform(-1, 1) * 10 ** rnd.randint(-12, 12) for _ in range(5000)]
    whole = partial._Exact()
    whole.add_all(terms)
    groups = []
    for start in range(0, len(terms), 700):
        g = partial._Exact()
        g.add_all(terms[start:start + 700])
        groups.append(g)
    merged = partial._Exact()
    for g in groups:
        merged.add_all(g.parts)
    assert whole.value() == merged.value() == math.fsum(terms)
    assert sum(terms) != math.fsum(terms)  # a plain sum would depend on the order
    odd = partial._Exact()
    odd.add_all([1.0, math.inf, 2.0])
    assert odd.value() == math.inf and not odd.finite()


# -- a day's merge fanned out -----------------------------------------------------------------
def merging_fan(store: MemoryStore, calls: list[tuple[str | None, list[str]]],
                fail: Any = None) -> partial.Fan:
    """Workers: the monitor function's own code for each share, its answer through JSON as
    Lambda returns it; ``fail(keys)`` may raise for a share (a worker that died)."""
    from framework.monitoring.check import load_settings

    def fan(keys: list[str], merge_day: str | None = None) -> dict[str, Any]:
        calls.append((merge_day, keys))
        if fail is not None:
            fail(keys)
        settings = load_settings(store, SPEC)[0]
        got = (partial.merge_partials(store, keys, merge_day, settings) if merge_day
               else partial.profile_objects(store, keys, settings))
        return dict(json.loads(json.dumps(got)))
    return fan


def fanned(store: MemoryStore, fan: partial.Fan, per_worker: int = 2,
           window: Window = WINDOW) -> dict[str, Any]:
    s = spec(performance=None, fan_out={"objects": 200, "workers": 3, "partials": per_worker})
    return run_check(s, store, window, fan=fan)


def test_a_days_merge_is_fanned_out_with_the_same_report_and_rollup() -> None:
    store = window_store()
    check(store)  # every object profiled and its partial stored
    want = per_object(store)
    drop_rollups(store)
    calls: list[tuple[str | None, list[str]]] = []
    got = fanned(store, merging_fan(store, calls))
    assert without_usage(got) == without_usage(want)
    # each day's 5 objects in key order (o0, o1, o2, o3-again, o3): shares of 2, 2 and 1;
    # the last one repeats o3-again (the same records), so the run merges it per object
    assert [(d, len(k)) for d, k in calls] == [
        (f"2024-05-0{d}", n) for d in (1, 2, 3) for n in (2, 2, 1)]
    p = got["data"]["profiles"]
    # merge_workers: the shares whose segment was merged (the repeating one was not)
    assert (p["merge_workers"], p["merged_there"], p["cached"], p["built"]) == (6, 12, 15, 0)
    assert p["duplicates"] == 3 and p["rollups_stored"] == 3
    store.gets.clear()
    later = check(store)  # the rollups the fanned merge stored stand for their days
    assert later["data"]["profiles"]["rollups"] == 3
    assert without_usage(later) == without_usage(want)


def test_a_merge_worker_that_fails_leaves_its_share_to_the_run() -> None:
    store = window_store()
    check(store)
    want = per_object(store)
    drop_rollups(store)

    def fail(keys: list[str]) -> None:
        if keys[0].endswith("dt=2024-05-02/o0.jsonl.gz"):
            raise RuntimeError("Task timed out after 900.00 seconds")

    got = fanned(store, merging_fan(store, [], fail))
    (issue,) = [i for i in got["issues"] if i["kind"] == "fan_out_failed"]
    assert "could not merge 2 partial profile(s) of 2024-05-02" in issue["message"]
    assert "Task timed out" in issue["message"] and issue["objects"] == 2
    got["issues"].remove(issue)
    assert without_usage(got) == without_usage(want)
    assert got["data"]["profiles"]["merge_workers"] == 5


def test_a_share_with_an_object_lacking_its_partial_is_merged_by_the_run() -> None:
    store = window_store()
    check(store)
    want = per_object(store)
    drop_rollups(store)
    gone = next(k for k in store.objects if k.startswith("capture-profiles/")
                and "/dt=2024-05-01/o1." in k)
    del store.objects[gone]  # the run profiles that object: its share is not handed out
    calls: list[tuple[str | None, list[str]]] = []
    got = fanned(store, merging_fan(store, calls))
    assert without_usage(got) == without_usage(want)
    assert [d for d, _ in calls].count("2024-05-01") == 2  # o0+o1 merged by the run
    p = got["data"]["profiles"]
    assert (p["built"], p["merge_workers"]) == (1, 5)


def test_a_segment_of_other_objects_is_not_used() -> None:
    """A worker's answer is checked like a stored rollup: the share's own objects, the
    run's settings; anything else and the run merges the share itself."""
    store = window_store()
    check(store)
    want = per_object(store)
    drop_rollups(store)
    inner = merging_fan(store, [])

    def fan(keys: list[str], merge_day: str | None = None) -> dict[str, Any]:
        return inner(keys[1:] or keys, merge_day)  # a segment missing one object

    got = fanned(store, fan)
    assert without_usage(got) == without_usage(want)
    assert got["data"]["profiles"]["merge_workers"] == 0


def test_a_day_of_few_partials_or_a_day_partly_in_the_window_is_not_fanned_out() -> None:
    store = window_store()
    check(store)
    drop_rollups(store)
    calls: list[tuple[str | None, list[str]]] = []
    fanned(store, merging_fan(store, calls), per_worker=5)  # one share a day: no fan-out
    drop_rollups(store)
    fanned(store, merging_fan(store, calls), window=Window(START + timedelta(hours=3),
                                                           START + DAY))
    assert calls == []
