"""Parse a prediction request and validate it against the declared features.

Accepted bodies (a JSON object with exactly one of these keys):

- ``{"instances": [{"feature": value, ...}, ...]}`` — records by feature name;
- ``{"instances": {"feature": value, ...}}`` — one record (answered as a batch of one);
- ``{"inputs": [[v1, v2, ...], ...]}`` — rows with values in declared feature order;
- ``{"inputs": [v1, v2, ...]}`` — one row.

Value rules: ``float`` takes JSON numbers (not booleans), finite; ``int`` takes integral
numbers (``3`` or ``3.0``); ``bool`` takes ``true``/``false`` only; ``category`` takes one of
the declared strings. ``null`` or an absent key is accepted only for ``nullable`` features.
A number must also fit the element type of the model input the feature feeds (``dtype``, set
when a model is loaded: float32 holds at most 3.4028234663852886e38 in magnitude, int32
holds -2**31..2**31-1, ...); without one, floats must be finite 64-bit floats and ints fit
in 64 bits. Numbers too long to convert (``OversizedNumber``) are out of every range.
Shape problems answer 400, too many rows 413, invalid values 422 with per-row details.

Works from metadata.json feature dicts, not from config models: this module ships in Lambda.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import ge, itemgetter, le
from typing import Any

from framework.runtime.errors import MAX_DETAILS, RequestError

DEFAULT_MAX_ROWS = 1000
FEATURE_TYPES = ("float", "int", "bool", "category")

Value = float | int | bool | str | None
Rows = list[list[Value]]


class _Invalid(Exception):
    """One bad value; the message is the problem text shown to callers."""


class OversizedNumber(float):
    """A JSON number with too many digits to convert (its digits are not kept).

    It stands for +/-infinity, so it fails every range check; it says how long it was."""

    digits: int

    def __new__(cls, text: str) -> OversizedNumber:
        negative = text.startswith("-")
        value = super().__new__(cls, "-inf" if negative else "inf")
        value.digits = len(text) - negative
        return value

    def __repr__(self) -> str:
        return f"a number of {self.digits} digits"

    __str__ = __repr__


_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT64_MAX = 1.7976931348623157e308
# What each ONNX element type holds: (shown name, lowest, highest).
DTYPE_RANGES: dict[str, tuple[str, float, float]] = {
    "float": ("float32", -_FLOAT32_MAX, _FLOAT32_MAX),
    "double": ("float64", -_FLOAT64_MAX, _FLOAT64_MAX),
    "float16": ("float16", -65504.0, 65504.0),
    **{f"int{b}": (f"int{b}", -(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"uint{b}": (f"uint{b}", 0, 2**b - 1) for b in (8, 16, 32, 64)},
}
_DEFAULT_DTYPE = {"float": "double", "int": "int64"}


def _range_text(low: float, high: float) -> str:
    if isinstance(high, float) and low == -high:
        return f"±{high!r}"
    return f"{low}..{high}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _kind(v: object) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _show(v: object) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class FeatureSpec:
    """One declared feature, as recorded in metadata.json."""

    name: str
    type: str = "float"
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    nullable: bool = False
    dtype: str | None = None  # ONNX element type of the model input it feeds, once loaded

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        ftype = str(d.get("type") or "float")
        if ftype not in FEATURE_TYPES:
            raise ValueError(f"feature {d.get('name')!r} has unknown type {ftype!r}")
        values = d.get("values")
        return cls(
            name=str(d["name"]),
            type=ftype,
            min=None if d.get("min") is None else float(d["min"]),
            max=None if d.get("max") is None else float(d["max"]),
            values=None if values is None else tuple(str(v) for v in values),
            nullable=bool(d.get("nullable", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "min": self.min,
            "max": self.max,
            "values": None if self.values is None else list(self.values),
            "nullable": self.nullable,
        }

    def domain(self) -> tuple[str, float, float] | None:
        """(type name, lowest, highest) a number must lie in for the model input; None for
        category and bool features."""
        if self.type not in _DEFAULT_DTYPE:
            return None
        dtype = self.dtype if self.dtype in DTYPE_RANGES else _DEFAULT_DTYPE[self.type]
        return DTYPE_RANGES[dtype]

    def bounds(self) -> tuple[float | None, float | None]:
        """The tightest (lowest, highest) of the declared min/max and the input's range."""
        domain = self.domain()
        if domain is None:
            return self.min, self.max
        _, low, high = domain
        lo = low if self.min is None else max(self.min, low)
        hi = high if self.max is None else min(self.max, high)
        return lo, hi

    def check(self, v: object) -> Value:
        """Return the normalized value or raise ``_Invalid`` with the problem."""
        if v is None:
            if self.nullable:
                return None
            raise _Invalid("must not be null")
        if self.type == "category":
            if isinstance(v, str) and self.values is not None and v in self.values:
                return v
            allowed = ", ".join(repr(x) for x in (self.values or ())[:10])
            more = ", ..." if self.values and len(self.values) > 10 else ""
            raise _Invalid(f"must be one of {allowed}{more}; got {_show(v)}")
        if self.type == "bool":
            if isinstance(v, bool):
                return v
            raise _Invalid(f"must be true or false, got {_kind(v)}")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _Invalid(f"must be a number, got {_kind(v)}")
        oversized = type(v) is OversizedNumber
        if isinstance(v, float) and not oversized and not math.isfinite(v):
            raise _Invalid(f"must be a finite number, got {v}")
        given = v
        if self.type == "int" and isinstance(v, float) and not oversized:
            if not v.is_integer():
                raise _Invalid(f"must be an integer, got {v}")
            v = int(v)
        if self.min is not None and v < self.min:
            raise _Invalid(f"must be >= {_num(self.min)}, got {_show(given)}")
        if self.max is not None and v > self.max:
            raise _Invalid(f"must be <= {_num(self.max)}, got {_show(given)}")
        domain = self.domain()
        assert domain is not None
        name, low, high = domain
        if oversized or not low <= v <= high:
            whose = " of the model's input" if self.dtype else ""
            raise _Invalid(f"is outside the {name} range{whose} "
                           f"({_range_text(low, high)}), got {_show(given)}")
        return v if self.type == "int" else float(v)


def parse_payload(
    payload: object, features: Sequence[FeatureSpec], max_rows: int = DEFAULT_MAX_ROWS
) -> Rows:
    """Validate a decoded JSON body; return rows of normalized values in feature order."""
    if not isinstance(payload, dict):
        raise RequestError.bad_request(
            f"the body must be a JSON object with 'instances' or 'inputs', got {_kind(payload)}"
        )
    keys = sorted(payload)
    if keys == ["instances"]:
        records = payload["instances"]
        if isinstance(records, dict):
            records = [records]
        _check_batch(records, "instances", max_rows)
        return _from_records(records, features)
    if keys == ["inputs"]:
        rows = payload["inputs"]
        if isinstance(rows, list) and rows and not any(isinstance(r, list) for r in rows):
            rows = [rows]
        _check_batch(rows, "inputs", max_rows)
        return _from_rows(rows, features)
    found = ", ".join(repr(k) for k in keys[:5]) or "none"
    raise RequestError.bad_request(
        f"the body must have exactly one of the keys 'instances' or 'inputs'; found {found}"
    )


def _check_batch(batch: object, key: str, max_rows: int) -> None:
    if not isinstance(batch, list):
        raise RequestError.bad_request(f"'{key}' must be an array, got {_kind(batch)}")
    if not batch:
        raise RequestError.bad_request(f"'{key}' is empty; send at least one row")
    if len(batch) > max_rows:
        raise RequestError(
            413,
            "payload_too_large",
            f"{len(batch)} rows in one request; the limit is {max_rows}, split the batch",
        )


class _Problems:
    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []
        self.total = 0

    def add(self, row: int, field: str, problem: str) -> None:
        self.total += 1
        if len(self.details) < MAX_DETAILS:
            self.details.append({"row": row, "field": field, "problem": problem})

    def raise_if_any(self) -> None:
        if self.total:
            raise RequestError.invalid(self.details, self.total)


def _from_records(records: list[Any], features: Sequence[FeatureSpec]) -> Rows:
    shape = [i for i, r in enumerate(records) if not isinstance(r, dict)]
    if shape:
        details = [
            {"row": i, "problem": f"must be an object of feature values, got {_kind(records[i])}"}
            for i in shape[:MAX_DETAILS]
        ]
        raise RequestError.bad_request(
            f"{len(shape)} row(s) of 'instances' are not objects", details
        )
    plan = _plan_for(features)
    quick_row = plan.quick_row
    width = plan.width
    problems: _Problems | None = None  # once a record needs the precise checks
    out: Rows = []
    for i, rec in enumerate(records):
        if len(rec) == width:
            quick = quick_row(rec)
            if quick is not None:
                out.append(quick)
                continue
        if problems is None:
            problems = _Problems()
        out.append(_check_record(i, rec, features, plan.names, problems))
    if problems is not None:
        problems.raise_if_any()
    return out


def _check_record(
    i: int,
    rec: dict[Any, Any],
    features: Sequence[FeatureSpec],
    names: frozenset[str],
    problems: _Problems,
) -> list[Value]:
    row: list[Value] = []
    for f in features:
        if f.name in rec:
            try:
                row.append(f.check(rec[f.name]))
            except _Invalid as e:
                problems.add(i, f.name, str(e))
                row.append(None)
        elif f.nullable:
            row.append(None)
        else:
            problems.add(i, f.name, "is required")
            row.append(None)
    if len(rec) > len(features) or any(k not in names for k in rec):
        for k in rec:
            if k not in names:
                problems.add(i, str(k)[:64], "is not a declared feature")
    return row


FastPlan = tuple[tuple[str, float, float, FeatureSpec | None], ...]
_INF = float("inf")
_FLOATS = frozenset({float})
_NUMBERS = frozenset({float, int})


@lru_cache(maxsize=32)
def _fast_plan(features: tuple[FeatureSpec, ...]) -> FastPlan:
    """Per feature: (name, lo, hi, None) for plain float features, else (..., spec)."""
    plan: list[tuple[str, float, float, FeatureSpec | None]] = []
    for f in features:
        if f.type == "float" and not f.nullable:
            lo, hi = f.bounds()
            assert lo is not None and hi is not None
            plan.append((f.name, lo, hi, None))
        else:
            plan.append((f.name, -_INF, _INF, f))
    return tuple(plan)


def _fast_row(rec: dict[str, Any], plan: FastPlan) -> list[Value] | None:
    """The row when every value is plainly valid; None sends it to the precise slow path."""
    row: list[Value] = []
    append = row.append
    try:
        for name, lo, hi, spec in plan:
            v = rec[name]
            if spec is None:
                t = type(v)
                if (t is float or t is int) and v - v == 0 and lo <= v <= hi:
                    append(float(v))
                    continue
                return None
            append(spec.check(v))
    except (KeyError, _Invalid, OverflowError, TypeError):
        return None
    return row


class _RecordPlan:
    """What validating records against one feature tuple needs, computed once.

    ``quick_row(record)`` returns the normalized row when every value is plainly valid and
    None otherwise (the record then goes through ``FeatureSpec.check`` for exact messages).
    When every feature is a non-nullable float, the check runs over the whole row at once.
    """

    def __init__(self, features: tuple[FeatureSpec, ...]) -> None:
        self.width = len(features)
        self.names = frozenset(f.name for f in features)
        fast = _fast_plan(features)
        self._fast = fast
        self.quick_row = self._per_value
        if self.width > 1 and all(spec is None for _, _, _, spec in fast):
            self._values = itemgetter(*(name for name, _, _, _ in fast))
            los = tuple(lo for _, lo, _, _ in fast)
            his = tuple(hi for _, _, hi, _ in fast)
            self._lo: float | tuple[float, ...] | None = _bound(los, -_INF)
            self._hi: float | tuple[float, ...] | None = _bound(his, _INF)
            self.quick_row = self._all_floats

    def _per_value(self, rec: dict[str, Any]) -> list[Value] | None:
        return _fast_row(rec, self._fast)

    def _all_floats(self, rec: dict[str, Any]) -> list[Value] | None:
        try:
            values = self._values(rec)
        except KeyError:
            return None
        kinds = set(map(type, values))
        row: list[Any]  # floats only, once past the checks below
        if kinds == _FLOATS:
            row = list(values)
        elif kinds <= _NUMBERS:
            try:
                row = list(map(float, values))
            except OverflowError:
                return None
        else:
            return None
        total = sum(row)
        if total - total != 0:  # an inf or nan among them (or an overflowing sum)
            return None
        lo, hi = self._lo, self._hi
        if lo is not None:
            if isinstance(lo, float):
                if min(row) < lo:
                    return None
            elif not all(map(le, lo, row)):
                return None
        if hi is not None:
            if isinstance(hi, float):
                if max(row) > hi:
                    return None
            elif not all(map(ge, hi, row)):
                return None
        return row


def _bound(bounds: tuple[float, ...], unbounded: float) -> float | tuple[float, ...] | None:
    """None when no feature is bounded, one float when all share the bound, else all of them."""
    if all(b == unbounded for b in bounds):
        return None
    if len(set(bounds)) == 1:
        return bounds[0]
    return bounds


_PLANS: dict[int, tuple[tuple[FeatureSpec, ...], _RecordPlan]] = {}


def _plan_for(features: Sequence[FeatureSpec]) -> _RecordPlan:
    """The plan of ``features``, looked up by identity for tuples (a bundle's own tuple)."""
    if type(features) is tuple:
        hit = _PLANS.get(id(features))
        if hit is not None and hit[0] is features:
            return hit[1]
        plan = _cached_plan(features)
        if len(_PLANS) >= 32:
            _PLANS.clear()
        _PLANS[id(features)] = (features, plan)  # the tuple is kept, so its id stays unique
        return plan
    return _cached_plan(tuple(features))


@lru_cache(maxsize=32)
def _cached_plan(features: tuple[FeatureSpec, ...]) -> _RecordPlan:
    return _RecordPlan(features)


def validate_rows(rows: list[Any], features: Sequence[FeatureSpec]) -> Rows:
    """Validate rows of values in feature order (400 for shape, 422 for values)."""
    return _from_rows(rows, features)


def _from_rows(rows: list[Any], features: Sequence[FeatureSpec]) -> Rows:
    width = len(features)
    bad = [i for i, r in enumerate(rows) if not isinstance(r, list) or len(r) != width]
    if bad:
        details = [{"row": i, "problem": _row_shape(rows[i], width)} for i in bad[:MAX_DETAILS]]
        raise RequestError.bad_request(
            f"each row of 'inputs' must be an array of {width} values in feature order "
            f"({', '.join(f.name for f in features[:5])}{', ...' if width > 5 else ''})",
            details,
        )
    problems = _Problems()
    out: Rows = []
    for i, r in enumerate(rows):
        row: list[Value] = []
        for f, v in zip(features, r, strict=True):
            try:
                row.append(f.check(v))
            except _Invalid as e:
                problems.add(i, f.name, str(e))
                row.append(None)
        out.append(row)
    problems.raise_if_any()
    return out


def _row_shape(r: object, width: int) -> str:
    if isinstance(r, list):
        return f"has {len(r)} values, expected {width}"
    return f"must be an array of {width} values, got {_kind(r)}"
