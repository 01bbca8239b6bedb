"""The column decoder and partial profiles: the typed decoder and the general one read every
object alike, merged partial profiles equal the profile of the records read one by one, a
second run reads no capture object, and objects that straddle the window are cut."""

from __future__ import annotations

import functools
import gzip
import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from framework.monitoring import columns, partial
from framework.monitoring.capture import ReadLog, read_captures
from framework.monitoring.check import load_reference, profile_window, unusable
from framework.monitoring.profile import NumericProfile, Profile, ProfileBuilder
from framework.monitoring.spec import Window
from framework.monitoring.store import MemoryStore
from tests.monitoring.support import (
    FEATURES,
    START,
    WINDOW,
    put_capture,
    records,
    spec,
    store_with_reference,
)


class CountingStore(MemoryStore):
    def __init__(self, base: MemoryStore) -> None:
        super().__init__()
        self.objects = dict(base.objects)
        self.gets: list[str] = []

    def get(self, key: str) -> bytes | None:
        self.gets.append(key)
        return super().get(key)


def canonical_rows(rows: list[dict[str, Any]], tag: str = "") -> list[dict[str, Any]]:
    """Records with times as the handler writes them (microseconds, Z), request ids tagged."""
    for r in rows:
        r["time"] = r["time"].replace("Z", ".000000Z")
        r["request_id"] = f"{tag}{r['request_id']}"
    return rows


def expected(store: MemoryStore, window: Window, task: str = "classification") -> Profile:
    """The window's profile from its records read one by one (the general path of old)."""
    reference = load_reference(store, spec())[0]
    builder = ProfileBuilder(reference)
    for rec in read_captures(store, "score", window, ReadLog()):
        if unusable(rec, task) is None:
            builder.add(rec["inputs"])
    return builder.result()


def same(a: Profile, b: Profile) -> None:
    assert a.rows == b.rows
    for name, pa in a.features.items():
        da, db = pa.to_dict(), b.features[name].to_dict()
        if isinstance(pa, NumericProfile):
            for k in ("sum", "sum_sq"):
                assert da.pop(k) == pytest.approx(db.pop(k), rel=1e-12, abs=1e-9)
            da.pop("exact_limit"), db.pop("exact_limit")
        assert da == db, name


def test_typed_and_general_decoders_agree_on_a_clean_object() -> None:
    rows = canonical_rows(records(np.random.default_rng(3), 200))
    data = gzip.compress("\n".join(json.dumps(r) for r in rows).encode())
    typed = columns.decode(data, "a.jsonl.gz", FEATURES, "classification")
    general = columns.decode(data, "a.jsonl.gz", FEATURES, "classification", typed=False)
    assert typed.typed and not general.typed
    for name in ("times", "request_ids", "rows", "versions", "errors", "predictions",
                 "classes", "unusable", "categorical"):
        assert getattr(typed, name) == getattr(general, name), name
    assert [columns.probabilities_of(p) for p in typed.probabilities] == general.probabilities
    np.testing.assert_array_equal(typed.latencies, general.latencies)
    for name, (values, missing) in general.numeric.items():
        np.testing.assert_array_equal(typed.numeric[name][0], values)
        np.testing.assert_array_equal(typed.numeric[name][1], missing)


MESSY = [
    ("null input", lambda r: r["inputs"].update(x1=None)),
    ("text number", lambda r: r["inputs"].update(x2="1.5")),
    ("not a number", lambda r: r["inputs"].update(x2="abc")),
    ("bool input", lambda r: r["inputs"].update(x3=True)),
    ("absent input", lambda r: r["inputs"].pop("x4")),
    ("no time", lambda r: r.pop("time")),
    ("other time format", lambda r: r.update(time=r["time"][:19])),
    ("negative row", lambda r: r.update(row=-1)),
    ("null prediction", lambda r: r.update(prediction=None)),
    ("no inputs", lambda r: r.update(inputs=[1, 2])),
    ("text probabilities", lambda r: r.update(probabilities=["a", "b"])),
]


@pytest.mark.parametrize("what,damage", MESSY, ids=[m[0] for m in MESSY])
def test_an_object_the_typed_decoder_refuses_is_read_generally_with_the_same_profile(
        what: str, damage: Any) -> None:
    store = store_with_reference()
    rows = canonical_rows(records(np.random.default_rng(4), 120))
    for r in rows[5:9]:
        damage(r)
    put_capture(store, rows)
    lines = store.get(store.list("capture/")[0])
    assert lines is not None
    batch = columns.decode(lines, "a.jsonl.gz", FEATURES, "classification")
    assert not batch.typed
    log = ReadLog()
    got, facts = profile_window(store, spec(), WINDOW, load_reference(store, spec())[0], log,
                                None, reference_bytes=b"r")
    same(got, expected(store, WINDOW))
    assert facts.profiles["built"] == 1


def test_a_bad_line_is_counted_like_the_record_reader_counts_it() -> None:
    store = store_with_reference()
    rows = canonical_rows(records(np.random.default_rng(5), 50))
    text = "\n".join(json.dumps(r) for r in rows) + "\n{not json\n[1, 2]\n"
    store.put("capture/score/dt=2024-05-01/a.jsonl.gz", gzip.compress(text.encode()), "")
    log = ReadLog()
    got, _ = profile_window(store, spec(), WINDOW, load_reference(store, spec())[0], log,
                            None, reference_bytes=b"r")
    assert got.rows == 50
    assert [i["kind"] for i in log.issues] == ["corrupt_records"]
    assert log.issues[0]["lines"] == 2


def test_a_second_run_merges_stored_partials_and_reads_no_capture_object() -> None:
    base = store_with_reference()
    rng = np.random.default_rng(6)
    for i in range(4):
        put_capture(base, canonical_rows(
            records(rng, 300, start=START + timedelta(hours=2 * i + 1)), f"o{i}"), name=f"o{i}")
    store = CountingStore(base)
    reference = load_reference(store, spec())[0]
    first, facts1 = profile_window(store, spec(), WINDOW, reference, ReadLog(), None,
                                   reference_bytes=b"r")
    assert facts1.profiles["built"] == 4 and facts1.profiles["typed"] == 4
    stored = store.list("capture-profiles/score/")
    assert len(stored) == 4 and all(k.endswith(".jsonl.gz.profile.gz") for k in stored)
    store.gets.clear()
    second, facts2 = profile_window(store, spec(), WINDOW, reference, ReadLog(), None,
                                    reference_bytes=b"r")
    assert facts2.profiles["cached"] == 4 and facts2.profiles["built"] == 0
    assert not [k for k in store.gets if k.startswith("capture/")]
    same(first, second)
    same(first, expected(store, WINDOW))
    assert facts1.versions == facts2.versions == {"1": 1200}
    # another reference: other partials, never merged with these
    _, facts3 = profile_window(store, spec(), WINDOW, reference, ReadLog(), None,
                               reference_bytes=b"another reference")
    assert facts3.profiles["built"] == 4


def test_objects_that_straddle_the_window_are_cut_and_outside_ones_skipped() -> None:
    store = store_with_reference()
    rng = np.random.default_rng(7)
    put_capture(store, canonical_rows(records(rng, 400, start=START)), name="a")  # 0h..3h20
    put_capture(store, canonical_rows(records(rng, 100, start=START + timedelta(hours=5)), "b"),
                name="b")
    window = Window(START + timedelta(hours=1), START + timedelta(hours=4))
    reference = load_reference(store, spec())[0]
    profile_window(store, spec(), WINDOW, reference, ReadLog(), None, reference_bytes=b"r")
    log = ReadLog()
    got, facts = profile_window(store, spec(), window, reference, log, None,
                                reference_bytes=b"r")
    same(got, expected(store, window))
    assert facts.profiles["boundary"] == 1 and facts.profiles["outside"] == 1
    assert log.outside == 120 + 100


def test_the_accumulator_equals_profile_merge_over_the_partials() -> None:
    store = store_with_reference()
    reference = load_reference(store, spec())[0]
    settings = partial.Settings(reference=reference, features=FEATURES, task="classification",
                                positive=None, answers_edges=None, predictions=False, tag="t")
    rng = np.random.default_rng(8)
    payloads, profiles = [], []
    for n in (10, 900, 1500):  # the last keeps no exact values
        rows = canonical_rows(records(rng, n, shift={"x0": 0.5}))
        data = gzip.compress("\n".join(json.dumps(r) for r in rows).encode())
        batch = columns.decode(data, "o.jsonl.gz", FEATURES, "classification")
        p = partial.decode(partial.encode(partial.build(batch, settings, "o")))
        assert p is not None
        payloads.append(p)
        one = partial.Accumulator(settings)
        one.add(p)
        profiles.append(one.profile())
    acc = partial.Accumulator(settings)
    for p in payloads:
        acc.add(p)
    same(acc.profile(), functools.reduce(Profile.merge, profiles))
    assert acc.profile().features["x0"].values is None  # type: ignore[union-attr]
    small = partial.Accumulator(settings)
    for p in payloads[:2]:
        small.add(p)
    assert len(small.profile().features["x0"].values or []) == 910  # type: ignore[union-attr]


def test_latency_percentiles_from_the_sketch_are_within_its_bin_width() -> None:
    lat = np.random.default_rng(9).lognormal(1.5, 0.6, 50_000)
    sketch = NumericProfile.empty(partial.LATENCY_EDGES, exact_limit=0)
    sketch.add_array(lat)
    for q in (50, 99):
        want = float(np.percentile(lat, q))
        assert partial.percentile(sketch, q) == pytest.approx(want, rel=0.03)


def test_an_object_delivered_twice_counts_once_and_a_failed_write_is_an_issue() -> None:
    class ReadOnly(MemoryStore):
        def put(self, key: str, data: bytes, content_type: str) -> None:
            if key.startswith("capture-profiles/"):
                raise PermissionError("AccessDenied")
            super().put(key, data, content_type)

    base = store_with_reference()
    store = ReadOnly()
    store.objects = dict(base.objects)
    rows = canonical_rows(records(np.random.default_rng(10), 80))
    put_capture(store, rows, name="a")
    put_capture(store, rows, name="b")  # the same batch, delivered again
    log = ReadLog()
    got, facts = profile_window(store, spec(), WINDOW, load_reference(store, spec())[0], log,
                                None, reference_bytes=b"r")
    assert got.rows == 80 and log.repeated == 80 and facts.profiles["duplicates"] == 1
    assert [i["kind"] for i in log.issues] == ["profiles_not_stored"]
    assert not store.list("capture-profiles/")


# -- packed inputs (the handler's float features as one base64 of float64s) -------------------
def packed(rec: dict[str, Any], names: tuple[str, ...] = ("x0", "x1", "x2", "x3", "x4")
           ) -> dict[str, Any]:
    """``rec`` as the handler writes it: its float inputs packed, the rest in ``inputs``."""
    from framework.runtime.capture import packed as pack

    inputs = dict(rec["inputs"])
    values = [inputs.pop(n) for n in names]
    return {**rec, "inputs": inputs, "input_names": list(names), "input_f64": pack(values)}


def agree(data: bytes) -> columns.Batch:
    """The typed decoder's batch of ``data``, checked against the general decoder's."""
    typed = columns.decode(data, "a.jsonl.gz", FEATURES, "classification")
    general = columns.decode(data, "a.jsonl.gz", FEATURES, "classification", typed=False)
    for name in ("times", "request_ids", "rows", "versions", "errors", "predictions",
                 "classes", "unusable", "categorical", "no_time", "bad_lines"):
        assert getattr(typed, name) == getattr(general, name), name
    np.testing.assert_array_equal(typed.latencies, general.latencies)
    assert typed.numeric.keys() == general.numeric.keys()
    for name, (values, missing) in general.numeric.items():
        np.testing.assert_array_equal(typed.numeric[name][0], values)
        np.testing.assert_array_equal(typed.numeric[name][1], missing)
    return typed


def test_packed_inputs_are_read_typed_and_unpack_to_the_inputs_object() -> None:
    rows = canonical_rows(records(np.random.default_rng(6), 150))
    plain = [json.loads(json.dumps(r)) for r in rows]
    lines = [json.dumps(packed(r)) for r in rows]
    assert [columns.unpack(json.loads(line)) for line in lines] == plain  # exact values
    batch = agree(gzip.compress("\n".join(lines).encode()))
    assert batch.typed
    assert batch.numeric["x3"][0].tolist() == [r["inputs"]["x3"] for r in plain]
    assert batch.categorical["colour"] == [r["inputs"]["colour"] for r in plain]


def test_a_packed_null_is_missing_in_both_decoders() -> None:
    rows = canonical_rows(records(np.random.default_rng(7), 40))
    for r in rows[3:6]:
        r["inputs"]["x2"] = None
    lines = [json.dumps(packed(r)) for r in rows]
    assert columns.unpack(json.loads(lines[4]))["inputs"]["x2"] is None
    batch = agree(gzip.compress("\n".join(lines).encode()))
    assert batch.typed and batch.numeric["x2"][1].tolist() == [3 <= i < 6 for i in range(40)]


def _damaged_b64(r: dict[str, Any]) -> None:
    r["input_f64"] = r["input_f64"][:-4]


PACKED_MESSY = [
    ("lines of the earlier shape among packed ones", None),
    ("other names", lambda r: r.update(input_names=["x1", "x0", "x2", "x3", "x4"])),
    ("names of another length", lambda r: r.update(input_names=["x0", "x1"])),
    ("values cut short", _damaged_b64),
    ("not base64", lambda r: r.update(input_f64="*" * len(r["input_f64"]))),
    ("names not a list", lambda r: r.update(input_names="x0")),
    ("values not text", lambda r: r.update(input_f64=1.5)),
    ("an infinite value", lambda r: r.update(input_f64=packed(
        {"inputs": {**dict.fromkeys(("x0", "x1", "x2", "x3"), 0.0), "x4": float("inf")}})[
        "input_f64"])),
    ("a category packed", lambda r: r.update(input_names=["x0", "x1", "x2", "x3", "colour"])),
]


@pytest.mark.parametrize("what,damage", PACKED_MESSY, ids=[m[0] for m in PACKED_MESSY])
def test_packed_objects_the_typed_decoder_refuses_are_read_generally_alike(
        what: str, damage: Any) -> None:
    rows = canonical_rows(records(np.random.default_rng(8), 60))
    recs = [packed(r) for r in rows]
    for i in range(5, 9):
        if damage is None:
            recs[i] = rows[i]
        else:
            damage(recs[i])
    batch = agree(gzip.compress("\n".join(json.dumps(r) for r in recs).encode()))
    assert not batch.typed
    if what not in ("lines of the earlier shape among packed ones", "other names",
                    "an infinite value", "a category packed"):  # these records are usable
        assert batch.unusable[5:9] == ["without an inputs object"] * 4
    store = store_with_reference()
    put_capture(store, recs)
    got, _ = profile_window(store, spec(), WINDOW, load_reference(store, spec())[0], ReadLog(),
                            None, reference_bytes=b"r")
    same(got, expected(store, WINDOW))


def test_the_handlers_lines_round_trip_through_both_decoders() -> None:
    """Lines from the handler's two encoders (floats packed, an int and a category as they
    are) decode to the values served."""
    from framework.runtime import capture
    from framework.runtime.features import FeatureSpec
    from framework.runtime.inference import Prediction

    feats = [FeatureSpec(name="a"), FeatureSpec(name="n", type="int"),
             FeatureSpec(name="b", nullable=True), FeatureSpec(name="c", type="category",
                                                               values=("u", "v"))]
    rows: list[list[Any]] = [[0.1, 3, None, "u"], [-2.5e-300, -7, 1e300, "v"]]
    text = capture.capture_lines(
        request_id="r1", ts=1.7e9, endpoint="ep", model="m", version="1", lambda_version="1",
        latency_ms=2.0, features=feats, rows=rows,
        prediction=Prediction(["x", "y"], None, None))
    got = [columns.unpack(json.loads(line)) for line in text.splitlines()]
    assert [r["inputs"] for r in got] == [dict(zip("anbc", row, strict=True)) for row in rows]
    assert all(json.loads(line)["input_names"] == ["a", "b"] for line in text.splitlines())
    specs = [{"name": "a", "type": "float"}, {"name": "n", "type": "int"},
             {"name": "b", "type": "float"}, {"name": "c", "type": "category"}]
    typed = columns.decode(text.encode(), "a.jsonl", specs, "classification")
    assert typed.typed and typed.numeric["b"][1].tolist() == [True, False]
    assert typed.numeric["n"][0].tolist() == [3.0, -7.0]


def test_packed_texts_decoded_at_once_keep_rows_apart() -> None:
    """Three float features pack into unpadded texts that the typed decoder decodes at once;
    a row padded inside the run, or of another length, is refused and read generally."""
    feats = [{"name": n, "type": "float"} for n in ("x0", "x1", "x2")]
    rows = canonical_rows(records(np.random.default_rng(9), 30))
    recs = [packed(r, ("x0", "x1", "x2")) for r in rows]
    clean = gzip.compress("\n".join(json.dumps(r) for r in recs).encode())
    typed = columns.decode(clean, "a.jsonl.gz", feats, "classification")
    assert typed.typed and typed.numeric["x1"][0].tolist() == [r["inputs"]["x1"] for r in rows]
    for bad in (recs[4]["input_f64"][:-4] + "AAA=", recs[4]["input_f64"][4:]):
        recs_bad = [*recs[:4], {**recs[4], "input_f64": bad}, *recs[5:]]
        data = gzip.compress("\n".join(json.dumps(r) for r in recs_bad).encode())
        typed = columns.decode(data, "a.jsonl.gz", feats, "classification")
        general = columns.decode(data, "a.jsonl.gz", feats, "classification", typed=False)
        assert not typed.typed and general.unusable[4] == "without an inputs object"


def test_counts_are_packed_narrow_and_int64_partials_still_merge() -> None:
    small = partial._pack_counts(np.array([0, 3, 255], dtype=np.int64))
    wide = partial._pack_counts(np.array([0, 70_000], dtype=np.int64))
    huge = partial._pack_counts(np.array([1 << 40], dtype=np.int64))
    assert (small["counts_type"], wide["counts_type"], huge["counts_type"]) == ("u1", "<u4", "<i8")
    assert partial._unpack_counts(wide).tolist() == [0, 70_000]
    assert partial._unpack_counts(huge).tolist() == [1 << 40]
    store = store_with_reference()
    reference = load_reference(store, spec())[0]
    settings = partial.Settings(reference=reference, features=FEATURES, task="classification",
                                positive=None, answers_edges=None, predictions=False, tag="t")
    rows = canonical_rows(records(np.random.default_rng(3), 1200))
    batch = columns.decode(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()),
                           "o.jsonl.gz", FEATURES, "classification")
    p = partial.decode(partial.encode(partial.build(batch, settings, "o")))
    assert p is not None and p["features"]["x0"]["counts_type"] == "u1"
    old = json.loads(json.dumps(p))  # as a partial stored before counts were packed narrow
    for f in [*old["features"].values(), old["latency"]]:
        if f["kind"] == "numeric":
            f["counts"] = partial._pack(partial._unpack_counts(f), "<i8")
            del f["counts_type"]
    new_acc, old_acc = partial.Accumulator(settings), partial.Accumulator(settings)
    new_acc.add(p)
    old_acc.add(old)
    same(new_acc.profile(), old_acc.profile())


def test_partials_are_fetched_ahead_in_order_and_never_more_than_ahead() -> None:
    from concurrent.futures import ThreadPoolExecutor

    for n, ahead in ((0, 4), (1, 4), (4, 4), (5, 4), (200, 64)):
        fetched: list[int] = []
        handed = 0
        with ThreadPoolExecutor(8) as pool:
            for item, value in partial._ahead(pool, list(range(n)),
                                              lambda x, got=fetched: got.append(x) or x * 2,
                                              ahead=ahead):
                assert (item, value) == (handed, 2 * handed)
                assert len(fetched) <= handed + ahead + 1  # memory: `ahead` beyond this one
                handed += 1
        assert handed == n
