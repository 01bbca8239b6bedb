"""Prediction capture and feedback records.

Capture: for a sampled request, one JSON line per row::

    {"msg": "capture", "request_id", "row", "time", "endpoint", "model", "version",
     "lambda_version", "latency_ms", "inputs": {feature: value}, "input_names": [feature],
     "input_f64": "<base64>", "prediction", "probabilities", "classes"}

The inputs of ``float`` features are packed (``packed``): ``input_names`` lists them in the
contract's order and ``input_f64`` holds their values as little-endian IEEE 754 doubles in
base64 (a null is NaN; a validated value is never NaN). The monitor turns an object's packed
inputs into columns with one base64 decode instead of parsing 17-digit decimals one by one
(``framework.monitoring.columns``), and the line is shorter. Every other input (``int``,
``bool``, ``category``) stays in the ``inputs`` object, which is ``{}`` when every feature is
a float; a line without float features has no packed fields (the earlier shape). Readers turn
a line back into one ``inputs`` object with ``framework.monitoring.columns.unpack``.

Sampling is a deterministic function of the request id (``sampled``), so the set of captured
requests is reproducible: exactly those whose id hashes below the sample rate.

Where the lines go (``MLOPS_CAPTURE_SINK``): ``log`` — written to stdout before the answer,
so each row is one event of the function's CloudWatch Logs log group (Lambda splits stdout on
newlines). The group's subscription filter ``{ $.msg = "capture" }`` (see
``framework.compile.compiler.CAPTURE_FILTER_PATTERN``) sends them to the endpoint's Firehose
stream, which decompresses CloudWatch Logs' envelopes, extracts the messages and writes gzip
objects under ``capture/<endpoint>/dt=YYYY-MM-DD/``.
Delivery is at least once (as Firehose's is): readers drop repeated (request_id, row) pairs.
``off`` — nothing.

Redaction (``MLOPS_CAPTURE_REDACT``, comma-separated input names, compiled from the
endpoint's ``capture.redact``): those inputs are left out of every capture line before it is
written; they never reach the log, the stream or the bucket.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from framework.runtime.features import FeatureSpec, Rows, Value
from framework.runtime.http import finite
from framework.runtime.inference import Prediction, PredictionText


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` falls in the sample (stable across processes)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "big")
    return h < rate * 2**64


def iso_utc(ts: float) -> str:
    """``ts`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (what ``datetime.fromtimestamp`` gives).

    The date and time of day are formatted once per second; the microseconds are rounded
    like ``datetime.fromtimestamp`` rounds them (half to even, carried into the seconds).
    """
    global _last_second
    if not 0.0 <= ts < _YEAR_10000:  # NaN included: let datetime say what is wrong
        return _iso_utc(ts)
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    second, prefix = _last_second
    if whole != second:
        prefix = _iso_utc(whole)[:20]  # "YYYY-MM-DDTHH:MM:SS."
        _last_second = (whole, prefix)
    return f"{prefix}{micros:06d}Z"


def ms_text(ms: float) -> str:
    """``repr(round(ms, 3))``, faster for the usual 0 <= ms < 1e12.

    Both round the exact binary value to 3 decimals (half to even); below 1e12 the shortest
    repr of that rounded value is its decimal digits without trailing zeros.
    """
    if 0.0 <= ms < 1e12:
        text = f"{ms:.3f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    return repr(round(ms, 3))


_YEAR_10000 = 253402300800.0
_last_second: tuple[float, str] = (-1.0, "")  # a whole second, its iso_utc up to the micros


def _iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


REDACT_ENV = "MLOPS_CAPTURE_REDACT"


def redacted() -> frozenset[str]:
    """The inputs the endpoint's captures leave out (``MLOPS_CAPTURE_REDACT``)."""
    return _redacted(os.environ.get(REDACT_ENV, ""))


@functools.lru_cache(maxsize=8)
def _redacted(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


PACKED_TYPE = "float"  # the feature type whose inputs a capture line packs


def packed(values: Sequence[Value]) -> str:
    """``values`` (numbers, or None for null) as the base64 of little-endian float64s;
    raises ``struct.error``/``TypeError``/``OverflowError`` for anything else."""
    doubles = [math.nan if v is None else v for v in values]
    return base64.b64encode(struct.pack(f"<{len(doubles)}d", *doubles)).decode("ascii")


def _split(features: Sequence[FeatureSpec], hidden: frozenset[str]) -> tuple[list[int],
                                                                             list[int]]:
    """Indices of the kept features written in the ``inputs`` object, and of the packed ones."""
    kept = [i for i, f in enumerate(features) if f.name not in hidden]
    return ([i for i in kept if features[i].type != PACKED_TYPE],
            [i for i in kept if features[i].type == PACKED_TYPE])


def capture_lines(*, request_id: str, ts: float, endpoint: str, model: str, version: str,
                  lambda_version: str, latency_ms: float, features: Sequence[FeatureSpec],
                  rows: Rows, prediction: Prediction) -> str:
    """The JSON lines (one per row, newline-terminated) of one request, redacted inputs left
    out."""
    names = [f.name for f in features]
    plain, pack = _split(features, redacted())
    packed_names = [names[k] for k in pack]
    time_text = iso_utc(ts)
    probs = prediction.probabilities
    lines = []
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    for i, row in enumerate(rows):
        record: dict[str, Any] = {
            "msg": "capture", "request_id": request_id, "row": i, "time": time_text,
            "endpoint": endpoint,
            "model": model, "version": version, "lambda_version": lambda_version,
            "latency_ms": round(latency_ms, 3),
            "inputs": {names[k]: row[k] for k in plain},
        }
        try:
            if pack:
                record["input_names"] = packed_names
                record["input_f64"] = packed([row[k] for k in pack])
        except (struct.error, TypeError, OverflowError):  # not numbers: written as they are
            record["inputs"] = {names[k]: row[k] for k in sorted(plain + pack)}
            record.pop("input_names", None)
        record["prediction"] = prediction.labels[i]
        record["probabilities"] = probs[i] if probs is not None else None
        record["classes"] = prediction.classes
        try:
            lines.append(dumps(record))
        except ValueError:  # NaN/inf (e.g. probabilities of a row with missing values) → null
            lines.append(dumps(finite(record)))
    return "\n".join(lines) + "\n"


class LineFormat:
    """``capture_lines`` for one endpoint and model, with the constant parts encoded once.

    ``lines`` writes exactly what ``capture_lines`` writes for rows validated against
    ``features`` (by ``parse_payload``/``validate_rows``), given the prediction's JSON texts
    (``ModelBundle.texts``). It answers None when it cannot (the caller then uses
    ``capture_lines``): the inputs are formatted here only when every feature is a
    non-nullable ``float`` or ``int`` (validated values are then finite floats or ints: the
    floats packed, the ints' ``repr`` their JSON) and the names are distinct.
    """

    def __init__(self, *, endpoint: str, model: str, version: str, lambda_version: str,
                 features: Sequence[FeatureSpec]) -> None:
        self.constants = (f',"endpoint":{_json(endpoint)},"model":{_json(model)},'
                          f'"version":{_json(version)},"lambda_version":{_json(lambda_version)},'
                          '"latency_ms":')
        names = [f.name for f in features]
        self.width = len(names)
        self.plain, self.pack = _split(features, redacted())
        self.inputs: str | None = None  # a %-template of the "inputs" object
        self.packed_names = (',"input_names":' + _json([names[k] for k in self.pack])
                             + ',"input_f64":"') if self.pack else ""
        if len(set(names)) == len(names) and all(
                f.type in ("float", "int") and not f.nullable for f in features):
            self.inputs = "{" + ",".join(
                encode_basestring_ascii(names[k]).replace("%", "%%") + ":%r"
                for k in self.plain) + "}"

    def lines(self, request_id: str, time_text: str, latency_ms: float, rows: Rows,
              text: PredictionText) -> str | None:
        inputs = self.inputs
        latency = ms_text(latency_ms)
        if inputs is None or "n" in latency or type(request_id) is not str:  # "inf"/"nan"
            return None
        head = ('{"msg":"capture","request_id":' + encode_basestring_ascii(request_id)
                + ',"row":')
        middle = ',"time":"' + time_text + '"' + self.constants + latency + ',"inputs":'
        tail = ',"classes":' + text.classes + "}\n"
        labels, probabilities = text.labels, text.probabilities
        width, plain, pack, packed_names = self.width, self.plain, self.pack, self.packed_names
        out = []
        for i, row in enumerate(rows):
            if len(row) != width:
                return None
            p = "null" if probabilities is None else probabilities[i]
            values = inputs % tuple([row[k] for k in plain])
            if pack:
                try:
                    values += packed_names + packed([row[k] for k in pack]) + '"'
                except (struct.error, TypeError, OverflowError):
                    return None
            out.append(f'{head}{i}{middle}{values},"prediction":{labels[i]},'
                       f'"probabilities":{p}{tail}')
        return "".join(out)


_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


# -- feedback -----------------------------------------------------------------------------

MAX_FEEDBACK = 1000
