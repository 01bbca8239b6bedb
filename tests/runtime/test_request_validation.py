from __future__ import annotations

from typing import Any

import pytest

from framework.runtime.errors import MAX_DETAILS, RequestError
from framework.runtime.features import FeatureSpec, parse_payload

FEATURES = [
    FeatureSpec("radius", "float", min=0.0, max=100.0),
    FeatureSpec("count", "int", min=0),
    FeatureSpec("flag", "bool"),
    FeatureSpec("color", "category", values=("red", "green")),
    FeatureSpec("note", "float", nullable=True),
]
GOOD = {"radius": 1.5, "count": 3, "flag": True, "color": "red", "note": None}


def _err(payload: object, max_rows: int = 1000) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_payload(payload, FEATURES, max_rows)
    return info.value


def _detail(payload: object) -> dict[str, Any]:
    err = _err(payload)
    assert err.status == 422
    assert err.body()["error"] == "invalid_input"
    return err.details[0]


def test_records_rows_and_single_record_agree() -> None:
    expected = [[1.5, 3, True, "red", None]]
    assert parse_payload({"instances": [GOOD]}, FEATURES) == expected
    assert parse_payload({"instances": GOOD}, FEATURES) == expected
    assert parse_payload({"inputs": [[1.5, 3, True, "red", None]]}, FEATURES) == expected
    assert parse_payload({"inputs": [1.5, 3, True, "red", None]}, FEATURES) == expected


def test_absent_nullable_is_none_and_ints_are_floats() -> None:
    rec = {k: v for k, v in GOOD.items() if k != "note"} | {"radius": 2}
    [row] = parse_payload({"instances": [rec]}, FEATURES)
    assert row[0] == 2.0 and isinstance(row[0], float) and row[4] is None
    [row] = parse_payload({"instances": [GOOD | {"count": 4.0}]}, FEATURES)
    assert row[1] == 4 and isinstance(row[1], int)


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"radius": -1.5}, "radius", "must be >= 0, got -1.5"),
        ({"radius": 100.5}, "radius", "must be <= 100, got 100.5"),
        ({"radius": "big"}, "radius", "must be a number, got a string"),
        ({"radius": True}, "radius", "must be a number, got a boolean"),
        ({"radius": float("nan")}, "radius", "must be a finite number, got nan"),
        ({"radius": float("inf")}, "radius", "must be a finite number, got inf"),
        ({"radius": None}, "radius", "must not be null"),
        ({"count": 1.5}, "count", "must be an integer, got 1.5"),
        ({"count": -1}, "count", "must be >= 0, got -1"),
        ({"count": 2**70}, "count", "is outside the int64 range (-9223372036854775808.."),
        ({"flag": 1}, "flag", "must be true or false, got a number"),
        ({"color": "blue"}, "color", "must be one of 'red', 'green'; got 'blue'"),
        ({"color": 3}, "color", "must be one of 'red', 'green'; got 3"),
    ],
)
def test_invalid_values_name_row_and_field(
    change: dict[str, Any], field: str, problem: str
) -> None:
    detail = _detail({"instances": [GOOD, GOOD | change]})
    assert detail["row"] == 1
    assert detail["field"] == field
    assert detail["problem"].startswith(problem)


def test_missing_and_unknown_fields() -> None:
    rec = {k: v for k, v in GOOD.items() if k != "radius"} | {"radus": 1.0}
    err = _err({"instances": [rec]})
    assert err.status == 422
    problems = {(d["field"], d["problem"]) for d in err.details}
    assert ("radius", "is required") in problems
    assert ("radus", "is not a declared feature") in problems
    assert err.body()["message"].startswith("2 invalid values; first: row 0, radius is required")


def test_details_are_capped() -> None:
    err = _err({"instances": [GOOD | {"radius": -1.0}] * 50})
    body = err.body()
    assert len(body["details"]) == MAX_DETAILS
    assert body["truncated"] is True
    assert body["message"].startswith("50 invalid values")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([GOOD], "must be a JSON object"),
        ({}, "exactly one of the keys"),
        ({"instances": [GOOD], "inputs": [[1]]}, "exactly one of the keys"),
        ({"instances": [GOOD], "extra": 1}, "exactly one of the keys"),
        ({"instances": []}, "is empty"),
        ({"instances": "x"}, "must be an array"),
        ({"instances": [GOOD, 3]}, "are not objects"),
        ({"inputs": [[1.5, 3]]}, "must be an array of 5 values"),
    ],
)
def test_shape_errors_are_400(payload: object, fragment: str) -> None:
    err = _err(payload)
    assert err.status == 400
    assert err.body()["error"] == "invalid_request"
    assert fragment in err.message


def test_row_shape_details() -> None:
    err = _err({"inputs": [[1.5, 3, True, "red", None], [1.5, 3]]})
    assert err.details == [{"row": 1, "problem": "has 2 values, expected 5"}]


def test_too_many_rows_is_413() -> None:
    err = _err({"instances": [GOOD] * 11}, max_rows=10)
    assert err.status == 413
    assert err.body()["error"] == "payload_too_large"
    assert "limit is 10" in err.message


def test_feature_spec_round_trips_metadata() -> None:
    d = {
        "name": "c",
        "type": "category",
        "min": None,
        "max": None,
        "values": ["x"],
        "nullable": True,
    }
    assert FeatureSpec.from_dict(d).to_dict() == d
    with pytest.raises(ValueError, match="unknown type"):
        FeatureSpec.from_dict({"name": "c", "type": "complex"})


def test_problem_shows_the_value_as_sent() -> None:
    detail = _detail({"instances": [GOOD | {"radius": -1}]})
    assert detail["problem"] == "must be >= 0, got -1"
