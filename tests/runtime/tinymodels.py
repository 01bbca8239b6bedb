"""Tiny ONNX models built with scikit-learn + skl2onnx for the runtime, handler and artifact
tests (cached per test session; each takes a few milliseconds to train).

Each builder returns ``(model_bytes, metadata)`` where metadata is a metadata.json dict.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import numpy as np

FLOAT3 = [
    {"name": "a", "type": "float", "min": 0.0, "max": 10.0, "values": None, "nullable": False},
    {"name": "b", "type": "float", "min": None, "max": None, "values": None, "nullable": True},
    {"name": "c", "type": "float", "min": None, "max": None, "values": None, "nullable": False},
]
COLUMNS = [
    {
        "name": "color",
        "type": "category",
        "min": None,
        "max": None,
        "values": ["red", "green", "blue"],
        "nullable": False,
    },
    {"name": "size", "type": "float", "min": None, "max": None, "values": None, "nullable": False},
]


def _data(n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(0, 10, n), rng.normal(size=n), rng.normal(size=n)])
    y = (x[:, 0] + 2 * x[:, 1] > 5).astype(np.int64)
    return x, y


def metadata(
    name: str,
    model_bytes: bytes,
    features: list[dict[str, Any]],
    task: str = "classification",
    classes: list[Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "task": task,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "size": len(model_bytes),
        "features": features,
        "signature": {"inputs": [], "outputs": []},
        "classes": classes,
        "metrics": {},
        "tags": {},
    }


@cache
def tensor_classifier(
    zipmap: bool = False, string_labels: bool = False
) -> tuple[bytes, dict[str, Any]]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    labels: np.ndarray = np.array(["no", "yes"])[y] if string_labels else y
    clf = LogisticRegression().fit(x, labels)
    onx = convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, 3]))],
        options={id(clf): {"zipmap": zipmap}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    raw = onx.SerializeToString()
    classes = [str(c) if string_labels else int(c) for c in clf.classes_]
    return raw, metadata("tiny", raw, FLOAT3, classes=None if zipmap else classes)


@cache
def regressor() -> tuple[bytes, dict[str, Any]]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression

    x, _ = _data()
    reg = LinearRegression().fit(x, x[:, 0] * 2 + 1)
    onx = convert_sklearn(
        reg, initial_types=[("input", FloatTensorType([None, 3]))], target_opset={"": 17}
    )
    raw = onx.SerializeToString()
    return raw, metadata("tiny-reg", raw, FLOAT3, task="regression")


@cache
def columns_classifier() -> tuple[bytes, dict[str, Any]]:
    """One input per feature: a string column 'color' and a float column 'size'."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 60
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    x = np.empty((n, 2), dtype=object)
    x[:, 0], x[:, 1] = color, size
    y = ((color == "red") ^ (size > 0)).astype(np.int64)
    onehot = OneHotEncoder(categories=[["red", "green", "blue"]])
    ct = ColumnTransformer([("oh", onehot, [0]), ("num", "passthrough", [1])])
    clf = LogisticRegression()
    pipe = Pipeline([("ct", ct), ("clf", clf)]).fit(x, y)
    onx = convert_sklearn(
        pipe,
        initial_types=[
            ("color", StringTensorType([None, 1])),
            ("size", FloatTensorType([None, 1])),
        ],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    raw = onx.SerializeToString()
    return raw, metadata("tiny-cols", raw, COLUMNS, classes=[0, 1])
