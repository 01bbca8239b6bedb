"""Encode validated rows into the model's input tensors, following an ``InputPlan``.

In a numeric tensor: category → index in the declared ``values``, bool → 0/1, missing → NaN.
In a string tensor (per-column layout): category → the string itself, missing → "".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from framework.runtime.features import FeatureSpec, Rows, Value
from framework.runtime.signature import InputPlan, TensorInfo

Feeds = dict[str, np.ndarray]
Encoder = Callable[[Rows], Feeds]

DTYPES: dict[str, type] = {
    "float": np.float32,
    "double": np.float64,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint64": np.uint64,
    "uint32": np.uint32,
    "uint16": np.uint16,
    "uint8": np.uint8,
    "bool": np.bool_,
    "string": np.object_,
}

Convert = Callable[[Any], object]


def _numeric(f: FeatureSpec) -> Convert | None:
    """A converter into a numeric cell, or None when the value can be used as it is."""
    if f.type == "category":
        codes = {v: float(i) for i, v in enumerate(f.values or ())}
        return lambda v: float("nan") if v is None else codes[str(v)]
    if f.type == "bool":
        return lambda v: float("nan") if v is None else (1.0 if v else 0.0)
    if f.nullable:
        return lambda v: float("nan") if v is None else v
    return None


def _string(v: Value) -> object:
    return "" if v is None else str(v)


def make_encoder(plan: InputPlan, features: Sequence[FeatureSpec]) -> Encoder:
    if plan.layout == "tensor":
        return _tensor_encoder(plan.inputs[0], features)
    return _columns_encoder(plan.inputs, features)


def _tensor_encoder(t: TensorInfo, features: Sequence[FeatureSpec]) -> Encoder:
    dtype = DTYPES[t.type]
    name = t.name
    converters = [_numeric(f) for f in features]
    if all(c is None for c in converters):
        return lambda rows: {name: np.asarray(rows, dtype=dtype)}
    convs = [(i, c) for i, c in enumerate(converters) if c is not None]

    def encode(rows: Rows) -> Feeds:
        cooked = []
        for row in rows:
            r: list[object] = list(row)
            for i, c in convs:
                r[i] = c(r[i])
            cooked.append(r)
        return {name: np.asarray(cooked, dtype=dtype)}

    return encode


def _columns_encoder(inputs: Sequence[TensorInfo], features: Sequence[FeatureSpec]) -> Encoder:
    specs: list[tuple[int, str, type, bool, Convert | None]] = []
    for i, (t, f) in enumerate(zip(inputs, features, strict=True)):
        rank2 = t.shape is not None and len(t.shape) == 2
        if t.type == "string":
            conv: Convert | None = _string
        elif t.type == "bool":
            conv = None
        else:
            conv = _numeric(f)
        specs.append((i, t.name, DTYPES[t.type], rank2, conv))

    def encode(rows: Rows) -> Feeds:
        feeds: Feeds = {}
        for i, name, dtype, rank2, conv in specs:
            col = [r[i] for r in rows] if conv is None else [conv(r[i]) for r in rows]
            arr: np.ndarray = np.asarray(col, dtype=dtype)
            feeds[name] = arr.reshape(-1, 1) if rank2 else arr
        return feeds

    return encode
