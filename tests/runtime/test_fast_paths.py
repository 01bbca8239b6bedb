"""The request path's shortcuts give exactly what the general code gives.

Validation of plainly valid records, the answer and capture lines written from pre-encoded
parts, the capture timestamp, the latency text, JSON bodies decoded from the event's text and
the handler's environment fingerprint.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinymodels import tensor_classifier

from framework.runtime import capture, features, http
from framework.runtime.errors import RequestError
from framework.runtime.features import FeatureSpec, parse_payload
from framework.runtime.inference import ModelBundle, ModelOutputError, Prediction

PLAIN = [
    {"name": "a", "type": "float", "min": 0.0, "max": 10.0, "values": None, "nullable": False},
    {"name": "b\u00e9 %s", "type": "float", "min": -1.0, "max": None, "values": None,
     "nullable": False},
    {"name": "c", "type": "int", "min": None, "max": None, "values": None, "nullable": False},
]


@pytest.fixture(scope="module")
def plain_bundle() -> ModelBundle:
    """All features non-nullable float/int: capture lines are written without json.dumps."""
    raw, meta = tensor_classifier()
    return ModelBundle.from_bytes({**meta, "features": PLAIN}, raw, str(meta["sha256"]))


# -- validation -----------------------------------------------------------------------------

VALUES: st.SearchStrategy[Any] = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -0.0, 1e308, 10**400, True, False, None, "1.5", [], {}, 2**63]),
)
SPECS = [
    FeatureSpec("x", "float", min=0.0, max=100.0),
    FeatureSpec("y", "float", min=-5.5),
    FeatureSpec("z", "float", max=1e300),
    FeatureSpec("w", "float"),
]


BOUNDS = {  # bounds per feature, one shared lower bound, none at all
    "each": tuple(SPECS),
    "shared": tuple(FeatureSpec(f.name, "float", min=0.0) for f in SPECS),
    "none": tuple(FeatureSpec(f.name, "float") for f in SPECS),
}


@settings(max_examples=600, deadline=None)
@given(st.lists(VALUES, min_size=4, max_size=4), st.sampled_from(sorted(BOUNDS)))
def test_quick_rows_are_what_the_precise_checks_accept(values: list[Any], bounds: str) -> None:
    specs = BOUNDS[bounds]
    rec = dict(zip([f.name for f in specs], values, strict=True))
    plan = features._plan_for(specs)
    quick = plan.quick_row(rec)
    problems = features._Problems()
    precise = features._check_record(0, rec, specs, plan.names, problems)
    if quick is not None:
        assert problems.total == 0
        assert quick == precise and [type(v) for v in quick] == [type(v) for v in precise]
    elif problems.total == 0:  # declined a valid row: it took the precise path, same answer
        assert parse_payload({"instances": [rec]}, specs) == [precise]


def test_a_list_of_features_and_the_bundle_tuple_validate_alike() -> None:
    rec = {"x": 1, "y": 2.5, "z": -3.0, "w": 4.0}
    assert parse_payload({"instances": [rec]}, SPECS) == [[1.0, 2.5, -3.0, 4.0]]
    assert parse_payload({"instances": [rec]}, tuple(SPECS)) == [[1.0, 2.5, -3.0, 4.0]]
    with pytest.raises(RequestError) as info:
        parse_payload({"instances": [rec, rec | {"x": -1}, rec | {"v": 1}]}, tuple(SPECS))
    assert [(d["row"], d["field"]) for d in info.value.details] == [(1, "x"), (2, "v")]


# -- answers and capture lines ----------------------------------------------------------------


def _rows(bundle: ModelBundle, rng: random.Random) -> list[list[Any]]:
    rows = []
    for _ in range(rng.randint(1, 3)):
        record: dict[str, Any] = {}
        for f in bundle.features:
            if f.type == "category":
                record[f.name] = rng.choice(f.values or ())
            elif f.type == "int":
                record[f.name] = rng.randint(-5, 5)
            elif f.nullable and rng.random() < 0.3:
                record[f.name] = None
            else:
                lo = f.min if f.min is not None else -3.0
                hi = f.max if f.max is not None else lo + 10
                record[f.name] = rng.choice([lo, hi, rng.uniform(lo, hi), int(rng.uniform(lo, hi))])
        rows.append(record)
    return parse_payload({"instances": rows}, bundle.features)


@pytest.mark.parametrize("name", ["plain", "clf", "zipmap", "reg", "cols"])
def test_answer_and_capture_texts_match_the_general_encoding(
    name: str, request: pytest.FixtureRequest
) -> None:
    bundle: ModelBundle = request.getfixturevalue(f"{name}_bundle")
    fmt = capture.LineFormat(endpoint="ep\u00e9", model=bundle.name, version=bundle.version,
                             lambda_version="$LATEST", features=bundle.features)
    rng = random.Random(name)
    fast_lines = 0
    for i in range(40):
        rows = _rows(bundle, rng)
        try:
            prediction = bundle.run(rows)
        except ModelOutputError:  # the tiny models answer NaN for a missing value
            assert any(v is None for row in rows for v in row)
            continue
        text = bundle.texts(prediction)
        request_id = ["r-1", "", 'q"\u00e9\\', None][i % 4]
        expected = http.json_response(200, bundle.answer(prediction, request_id))["body"]
        if text is None:
            continue
        assert bundle.answer_json(text, request_id) == expected
        latency = rng.choice([0.0, 0.0005, 1.23456, rng.uniform(0, 100)])
        ts = rng.uniform(1.6e9, 1.8e9)
        lines = fmt.lines(request_id or "", capture.iso_utc(ts), latency, rows, text)
        if lines is not None:
            fast_lines += 1
            assert lines == capture.capture_lines(
                request_id=request_id or "", ts=ts, endpoint="ep\u00e9", model=bundle.name,
                version=bundle.version, lambda_version="$LATEST", latency_ms=latency,
                features=bundle.features, rows=rows, prediction=prediction)
    if name == "plain":
        assert fast_lines == 40
    if name in ("clf", "cols"):  # a nullable feature / a category: the general lines
        assert fast_lines == 0


def test_texts_decline_what_only_the_general_encoding_handles(clf_bundle: ModelBundle) -> None:
    prediction = clf_bundle.run([[1.0, 0.5, 0.5]])
    nan = Prediction(prediction.labels, [[math.nan, 0.5]], prediction.classes)
    assert clf_bundle.texts(nan) is None
    assert clf_bundle.texts(Prediction([object()], None, None)) is None
    assert clf_bundle.texts(Prediction([1], [[1, 0]], None)) is None  # int probabilities
    text = clf_bundle.texts(prediction)
    assert text is not None and clf_bundle.answer_json(text, 42) is None  # type: ignore[arg-type]


def test_iso_utc_rounds_like_datetime() -> None:
    rng = random.Random(0)
    stamps = [0.0, 1.0, 0.9999995, 1764287999.9999999, 946684799.9999995]
    stamps += [w + j / 128 for w in (0, 1764201600) for j in range(1, 128, 2)]  # exact ties
    stamps += [rng.uniform(0, 2e9) for _ in range(5000)]
    stamps += [rng.randrange(0, 2**53) * 2.0**-22 for _ in range(5000)]
    for ts in stamps:
        expected = datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")
        assert capture.iso_utc(ts) == expected.replace("+00:00", "Z"), ts


def test_ms_text_is_repr_of_round() -> None:
    rng = random.Random(1)
    values = [0.0, 0.0005, 0.0015, 0.9995, 2.675, 1e-9, 999999999999.9995, 1e12, 5e15, -1.5]
    values += [rng.uniform(0, 10) for _ in range(5000)]
    values += [10 ** rng.uniform(-8, 13) for _ in range(5000)]
    values += [rng.randrange(0, 10**9) / 1000 + rng.choice([0.0, 0.0005, -0.0005])
               for _ in range(5000)]
    for v in values:
        assert capture.ms_text(v) == repr(round(v, 3)), v


# -- request bodies ---------------------------------------------------------------------------

GOOD = '{"instances": [{"a": 1.5}]}'


@pytest.mark.parametrize("body", [
    GOOD, " " + GOOD + "\n", "\ufeff" + GOOD, "\x00" + GOOD, "{\x00}", GOOD + "\x00", "{",
    "\u3000", "[1, 2", '"\u00e9"', "\x00", "\x00\x00", "a\x00", "nul", "1",
])
def test_bodies_decode_from_the_text_as_from_the_bytes(body: str) -> None:
    ev = {"body": body, "headers": {"content-type": "application/json"},
          "requestContext": {"http": {"method": "POST"}}}
    request = http.parse_event(ev)
    assert request.text == body

    def outcome(req: http.Request) -> Any:
        try:
            return ("ok", http.json_body(req))
        except RequestError as e:
            return ("error", e.status, e.message)

    assert outcome(request) == outcome(http.Request("POST", "/", request.headers, request.body))


# -- the handler's environment fingerprint ----------------------------------------------------


def test_handler_fingerprint_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import handlers.inference as inference
    from framework.runtime.service import Settings

    def absent() -> list[bool]:
        return [os.environ.get(n) is None for n in Settings.ENV]

    monkeypatch.delenv("MLOPS_ROUTE", raising=False)
    before = inference._fingerprint()
    assert [v is None for v in before] == absent()
    monkeypatch.setenv("MLOPS_ROUTE", "POST /x")
    first = inference._fingerprint()
    assert first != before and [v is None for v in first] == absent()
    monkeypatch.setenv("MLOPS_ROUTE", "POST /y")
    assert inference._fingerprint() not in (before, first)
    monkeypatch.delenv("MLOPS_ROUTE")
    assert inference._fingerprint() == before
