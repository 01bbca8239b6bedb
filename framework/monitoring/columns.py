"""One capture object (gzip JSON lines) decoded into columns, for profiling.

``decode`` turns an object's bytes into a ``Batch``: per record its time (as a canonical
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` string, which sorts as time does), request id, row, version,
error flag, latency, prediction and score, and per reference feature one column (numeric: a
float array with NaN for what is not a finite number, and a mask of absent or null values;
categorical: the raw values).

Two decoders give the same ``Batch``:

- **typed** (the fast path): ``msgspec`` decodes every line at once into typed structs whose
  input fields are exactly the reference's features (no dict per record), numeric inputs
  straight to floats, and ``numpy.fromiter`` turns them into columns; the gzip is inflated with
  ISA-L (``isal``) when the layer ships it. Anything it does not accept as clean — a line that
  is not JSON, a field of an unexpected type, a null or non-numeric input, a time in another
  format — makes it give up on the whole object;
- **general**: ``json.loads`` per line and a per-value loop, which says what is wrong with each
  record (the reasons the report counts). Every object the typed decoder gives up on is read
  this way, so the two agree on every object (``tests/monitoring/test_columns.py`` pins them).

Packed inputs (``framework.runtime.capture``): a line lists its float features in
``input_names`` and holds their values in ``input_f64`` (base64 of little-endian float64s, NaN
for null). The typed decoder joins an object's ``input_f64`` texts into one buffer of shape
rows × features (when every line packs the same names); ``unpack`` gives every other reader the
record with one ``inputs`` object, as lines were written before packing (such lines are still
read as they are).

Only the standard library, numpy and (optionally) msgspec and isal: this module runs in the
monitor Lambda.
"""

from __future__ import annotations

import binascii
import functools
import gzip
import itertools
import json
import math
import operator
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from framework.monitoring.profile import is_categorical

msgspec: Any
_igzip: Any
try:  # the monitor layer ships both; a checkout without them reads every object the general way
    import msgspec
except ImportError:  # pragma: no cover - exercised by the parity test with typed disabled
    msgspec = None
try:
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover
    _igzip = None

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

NO_TIME = "capture records without a valid time"
CANONICAL_TIME = re.compile(r"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\n)*")
_NUMBER = rb"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d{1,2})?"  # finite as a float
# Lists of JSON numbers (always finite), or null, one a line: what ``unusable`` accepts
PROBABILITIES = re.compile(rb"(?:(?:null|\[\s*(?:" + _NUMBER + rb"\s*(?:,\s*" + _NUMBER
                           + rb"\s*)*)?\])\n)*")


def canonical(when: datetime) -> str:
    """``when`` (aware) as the canonical capture time text, UTC, microseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Batch:
    """The timed records of one capture object, as columns (row ``i`` of every list/array)."""

    times: list[str] = field(default_factory=list)
    request_ids: list[Any] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    errors: list[bool] = field(default_factory=list)
    latencies: Floats = field(default_factory=lambda: np.empty(0))  # NaN: none
    predictions: list[Any] = field(default_factory=list)  # MISSING when the record has none
    probabilities: list[Any] = field(default_factory=list)  # see ``probabilities_of``
    classes: list[Any] = field(default_factory=list)  # per record, list or None
    unusable: list[str | None] = field(default_factory=list)  # why a record cannot be used
    numeric: dict[str, tuple[Floats, Bools]] = field(default_factory=dict)  # values, missing
    categorical: dict[str, list[Any]] = field(default_factory=dict)
    no_time: int = 0  # records skipped: no parseable time
    bad_lines: int = 0  # lines that are not JSON records
    typed: bool = False  # decoded by the typed decoder

    def __len__(self) -> int:
        return len(self.times)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a record without a "prediction" key


def inflate(data: bytes, key: str) -> bytes:
    """The object's bytes, gunzipped when its key says gzip (ISA-L when available)."""
    if not key.endswith(".gz"):
        return data
    if _igzip is not None:
        return bytes(_igzip.decompress(data))  # ISA-L: about 2.5x zlib's speed
    return gzip.decompress(data)


PACKED_NAMES = "input_names"
PACKED_VALUES = "input_f64"
_a2b = functools.partial(binascii.a2b_base64, strict_mode=True)


def _packed_values(names: Any, text: Any) -> list[float | None]:
    """The packed inputs' values (None for NaN); raises ``ValueError`` saying what is wrong."""
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{PACKED_NAMES} is not a list of names")
    if not isinstance(text, str):
        raise ValueError(f"{PACKED_VALUES} is not a base64 text")
    try:
        raw = _a2b(text)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{PACKED_VALUES} is not base64 ({e})") from e
    if len(raw) != 8 * len(names):
        raise ValueError(f"{PACKED_VALUES} holds {len(raw)} bytes, not 8 per name")
    return [None if v != v else v for v in struct.unpack(f"<{len(names)}d", raw)]


def unpack(rec: dict[str, Any]) -> dict[str, Any]:
    """A capture record with its packed inputs merged into its ``inputs`` object (the record
    as lines were written before packing); a record without packed inputs as it is. Packed
    inputs that cannot be read leave the record without an ``inputs`` object (unusable)."""
    if PACKED_NAMES not in rec and PACKED_VALUES not in rec:
        return rec
    names, text = rec.pop(PACKED_NAMES, None), rec.pop(PACKED_VALUES, None)
    inputs = rec.get("inputs", {})
    try:
        values = _packed_values(names, text)
        if not isinstance(inputs, dict):
            raise ValueError("inputs is not an object")
    except ValueError:
        rec.pop("inputs", None)
        return rec
    rec["inputs"] = {**inputs, **dict(zip(names, values, strict=True))}
    return rec


def decode(data: bytes, key: str, features: Sequence[Mapping[str, Any]], task: str,
           *, typed: bool = True) -> Batch:
    """The object's records as columns; raises ``ValueError`` when it cannot be read at all
    (bad gzip, not UTF-8)."""
    try:
        text = inflate(data, key)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"cannot be read ({type(e).__name__}: {e})") from e
    if typed and msgspec is not None:
        batch = _typed(text, features, task)
        if batch is not None:
            return batch
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"cannot be read ({type(e).__name__}: {e})") from e
    return _general(lines, features, task)


# -- the general decoder ----------------------------------------------------------------------
def numeric_value(v: Any) -> tuple[float, bool]:
    """(value, missing) of one numeric input: absent, null or "" are missing; a value that is
    not a finite number is NaN (counted invalid)."""
    if v is None or v == "":
        return math.nan, True
    try:
        return float(v), False
    except (TypeError, ValueError, OverflowError):
        return math.nan, False


def _general(lines: list[str], features: Sequence[Mapping[str, Any]], task: str) -> Batch:
    from framework.monitoring.check import finite_number, unusable
    from framework.monitoring.spec import parse_time

    batch = Batch()
    records: list[dict[str, Any]] = []
    latencies: list[float] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            batch.bad_lines += 1
            continue
        if not isinstance(rec, dict):
            batch.bad_lines += 1
            continue
        rec = unpack(rec)
        try:
            when = parse_time(str(rec["time"]))
        except (KeyError, ValueError, OverflowError):
            batch.no_time += 1
            continue
        records.append(rec)
        batch.times.append(canonical(when))
        batch.request_ids.append(rec.get("request_id"))
        batch.rows.append(rec.get("row", 0))
        batch.versions.append(str(rec.get("version", "?")))
        batch.errors.append(bool(rec.get("error")))
        lat: Any = rec.get("latency_ms")
        batch.predictions.append(rec.get("prediction", MISSING))
        batch.probabilities.append(rec.get("probabilities"))
        batch.classes.append(rec.get("classes") if isinstance(rec.get("classes"), list)
                             else None)
        batch.unusable.append(unusable(rec, task))
        latencies.append(float(lat) if finite_number(lat) else math.nan)
    batch.latencies = np.asarray(latencies, dtype=np.float64)
    for feat in features:
        name = str(feat["name"])
        raw = [r["inputs"].get(name) if isinstance(r.get("inputs"), dict) else None
               for r in records]
        if is_categorical(feat):
            batch.categorical[name] = raw
        else:
            pairs = [numeric_value(v) for v in raw]
            batch.numeric[name] = (np.asarray([p[0] for p in pairs], dtype=np.float64),
                                   np.asarray([p[1] for p in pairs], dtype=np.bool_))
    return batch


# -- the typed decoder ------------------------------------------------------------------------
def _classes(text: bytes) -> list[Any] | None:
    """A record's classes, when they are a list (anything else is not used)."""
    value = msgspec.json.decode(text)
    return value if isinstance(value, list) else None


_NULL = b"null"


def _get(name: str) -> Any:
    return operator.attrgetter(name)


def probabilities_of(value: Any) -> Any:
    """A ``Batch.probabilities`` item as the record had it (the typed decoder keeps the text,
    checked, and decodes it only when asked)."""
    if msgspec is not None and isinstance(value, msgspec.Raw):
        return json.loads(bytes(value))
    return value


_DECODERS: dict[tuple[tuple[str, bool], ...], Any] = {}


def _decoder(features: Sequence[Mapping[str, Any]]) -> Any:
    """A msgspec decoder of capture lines for these features (built once per feature list)."""
    sig = tuple((str(f["name"]), is_categorical(f)) for f in features)
    dec = _DECODERS.get(sig)
    if dec is None:
        scalar = str | int | float | bool
        fields = [(f"f{i}", (scalar | None) if cat else float, msgspec.field(name=name,
                   default=None if cat else math.nan))
                  for i, (name, cat) in enumerate(sig)]
        inputs = msgspec.defstruct("Inputs", fields, gc=False)
        record = msgspec.defstruct("Capture", [
            ("time", str),
            ("inputs", inputs),
            ("request_id", str | None, None),
            ("row", int, 0),
            ("version", str, "?"),
            ("error", Any, None),
            ("latency_ms", float | None, None),
            ("prediction", scalar | msgspec.UnsetType, msgspec.UNSET),
            ("probabilities", msgspec.Raw, None),  # checked by PROBABILITIES
            ("classes", msgspec.Raw, None),  # decoded once per distinct text
            (PACKED_NAMES, msgspec.Raw, None),  # the same text on every line, decoded once
            (PACKED_VALUES, str | None, None),
        ], gc=False)
        dec = _DECODERS[sig] = msgspec.json.Decoder(record)
    return dec


def _typed(text: bytes, features: Sequence[Mapping[str, Any]], task: str) -> Batch | None:
    """The batch, or None when anything in the object is not clean (then read generally)."""
    try:
        recs = _decoder(features).decode_lines(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    n = len(recs)
    times = list(map(_get("time"), recs))
    if not CANONICAL_TIME.fullmatch("\n".join(times) + "\n" if n else ""):
        return None
    rows = list(map(_get("row"), recs))
    if n and min(rows) < 0:
        return None
    predictions = [MISSING if p is msgspec.UNSET else p for p in map(_get("prediction"), recs)]
    if task == "regression" and any(  # what ``unusable`` refuses: a bool or text answer
            p is not MISSING and type(p) not in (int, float) for p in predictions):
        return None
    probabilities = list(map(_get("probabilities"), recs))
    if n and not PROBABILITIES.fullmatch(
            b"\n".join([_NULL if p is None else p for p in probabilities]) + b"\n"):
        return None
    classes = [None if c is None else bytes(c) for c in map(_get("classes"), recs)]
    try:
        known = {t: None if t is None else _classes(t) for t in set(classes)}  # usually one
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    latencies = np.fromiter((math.nan if v is None else v for v in map(_get("latency_ms"), recs)),
                            dtype=np.float64, count=n)
    batch = Batch(times=times, request_ids=list(map(_get("request_id"), recs)), rows=rows,
                  versions=list(map(_get("version"), recs)),
                  errors=list(map(bool, map(_get("error"), recs))), latencies=latencies,
                  predictions=predictions, probabilities=probabilities,
                  classes=[known[c] for c in classes], unusable=[None] * n, typed=True)
    inputs = [r.inputs for r in recs]
    packed = _packed_columns(recs, n)
    if packed is None:
        return None
    names, values = packed
    numeric = [i for i, f in enumerate(features) if not is_categorical(f)
               and str(f["name"]) not in names]
    for f in features:
        j = names.get(str(f["name"]))
        if j is None:
            continue
        if is_categorical(f):  # a packed float the reference takes as a category
            return None
        col = np.ascontiguousarray(values[:, j])
        missing = np.isnan(col)  # null (a JSON number is never NaN)
        if np.isinf(col).any():
            return None
        batch.numeric[str(f["name"])] = (col, missing)
    if numeric:
        width = len(features)
        flat = np.fromiter(itertools.chain.from_iterable(map(msgspec.structs.astuple, inputs)),
                           dtype=object if len(numeric) < width else np.float64,
                           count=n * width).reshape(n, width)
        nothing = np.zeros(n, dtype=np.bool_)
        for i in numeric:
            col = np.asarray(flat[:, i], dtype=np.float64)
            if not np.isfinite(col).all():  # an absent input (NaN default): read generally
                return None
            batch.numeric[str(features[i]["name"])] = (col, nothing)
    for i, f in enumerate(features):
        if is_categorical(f):
            batch.categorical[str(f["name"])] = [getattr(x, f"f{i}") for x in inputs]
    return batch


_NO_PACKED: tuple[dict[str, int], Floats] = ({}, np.empty((0, 0)))


def _packed_columns(recs: list[Any], n: int) -> tuple[dict[str, int], Floats] | None:
    """The packed inputs of every line as (name → column, rows × names values), nothing
    packed when no line packs; None when some lines pack and others do not, lines pack other
    names, or a packed text is not clean (the general decoder then says why)."""
    texts = list(map(_get(PACKED_VALUES), recs))
    names_texts = list(map(_get(PACKED_NAMES), recs))
    if texts.count(None) == n and names_texts.count(None) == n:
        return _NO_PACKED
    first = names_texts[0]
    if first is None or names_texts.count(first) != n:
        return None
    try:
        names = msgspec.json.decode(first, type=list[str])
        width = len(names)
        if texts.count(None) or len(set(names)) != width:
            return None
        if 8 * width % 3 == 0 and set(map(len, texts)) == {width * 32 // 3}:
            # unpadded texts of one length: decoded at once, each row's bytes where they go
            raw = _a2b("".join(texts))
            if len(raw) != 8 * width * n:  # padding inside cuts it short
                return None
        else:
            rows = list(map(_a2b, texts))
            if set(map(len, rows)) != {8 * width}:
                return None
            raw = b"".join(rows)
    except (msgspec.DecodeError, msgspec.ValidationError, binascii.Error, ValueError):
        return None
    values = np.frombuffer(raw, dtype="<f8").reshape(n, width)
    return {name: j for j, name in enumerate(names)}, values
