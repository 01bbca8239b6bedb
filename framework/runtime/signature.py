"""The model's ONNX signature and how declared features map onto it.

Two input layouts are supported:

- ``tensor``: one 2-D numeric input ``[N, n_features]`` fed in declared feature order
  (category values are encoded as their index in the declared ``values``, booleans as 0/1,
  missing values as NaN);
- ``columns``: one input per feature, named exactly like the features (skl2onnx models
  converted with per-column ``initial_types``); category features feed string inputs.

The same planning functions serve the runtime (from an onnxruntime session) and the deploy-side
artifact check (``framework.artifacts``), so both agree on what a model accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from framework.runtime.features import FeatureSpec

FLOAT_TYPES = frozenset({"float", "double", "float16"})
INT_TYPES = frozenset({"int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8"})
NUMERIC_TYPES = FLOAT_TYPES | INT_TYPES
LABEL_NAMES = ("output_label", "label", "labels", "prediction", "predictions", "variable")
PROBA_NAMES = ("output_probability", "probabilities", "probability", "proba", "scores")


class SignatureError(Exception):
    """The ONNX signature does not fit the declared features; ``problems`` says how."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, shape (None for dynamic dims), element type."""

    name: str
    shape: tuple[int | None, ...] | None
    type: str  # "float", "int64", "string", ... or e.g. "seq(map(int64,tensor(float)))"

    @property
    def is_tensor(self) -> bool:
        return self.shape is not None

    @classmethod
    def from_ort(cls, arg: Any) -> TensorInfo:
        """From an onnxruntime ``NodeArg`` (``name``, ``shape``, ``type``)."""
        kind = str(arg.type)
        if kind.startswith("tensor(") and kind.endswith(")"):
            shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape or ())
            return cls(str(arg.name), shape, kind[len("tensor(") : -1])
        return cls(str(arg.name), None, kind)

    def to_dict(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {"name": self.name, "shape": shape, "type": self.type}


@dataclass(frozen=True)
class InputPlan:
    layout: Literal["tensor", "columns"]
    inputs: tuple[TensorInfo, ...]  # tensor: the one input; columns: in feature order


@dataclass(frozen=True)
class OutputPlan:
    label: str
    probabilities: str | None


def plan_inputs(inputs: Sequence[TensorInfo], features: Sequence[FeatureSpec]) -> InputPlan:
    """Decide the input layout; raise ``SignatureError`` listing every mismatch."""
    by_name = {t.name: t for t in inputs}
    names = [f.name for f in features]
    if len(inputs) > 1 or (len(inputs) == 1 and inputs[0].name in names):
        return _plan_columns(by_name, features)
    if not inputs:
        raise SignatureError(["the model has no inputs"])
    return _plan_tensor(inputs[0], features)


def _plan_tensor(t: TensorInfo, features: Sequence[FeatureSpec]) -> InputPlan:
    problems: list[str] = []
    n = len(features)
    if t.shape is None or len(t.shape) != 2:
        problems.append(f"input '{t.name}' must be a 2-D tensor [N, {n}], got {_shape(t)}")
    elif t.shape[1] is not None and t.shape[1] != n:
        problems.append(
            f"input '{t.name}' takes {t.shape[1]} values per row but {n} features are declared"
        )
    if t.type not in NUMERIC_TYPES:
        problems.append(f"input '{t.name}' has element type {t.type}; a numeric tensor is needed")
    elif t.type in INT_TYPES:
        floats = [f.name for f in features if f.type == "float"]
        if floats:
            problems.append(f"input '{t.name}' is {t.type} but features {_names(floats)} are float")
    if t.type not in FLOAT_TYPES:
        nullable = [f.name for f in features if f.nullable]
        if nullable:
            problems.append(
                f"input '{t.name}' is {t.type} and cannot carry missing values of nullable "
                f"features {_names(nullable)}"
            )
    if problems:
        raise SignatureError(problems)
    return InputPlan("tensor", (t,))


def _plan_columns(by_name: Mapping[str, TensorInfo], features: Sequence[FeatureSpec]) -> InputPlan:
    names = [f.name for f in features]
    missing = [n for n in names if n not in by_name]
    extra = sorted(set(by_name) - set(names))
    problems: list[str] = []
    if missing:
        problems.append(f"no model input for features {_names(missing)}")
    if extra:
        problems.append(f"model inputs {_names(extra)} are not declared features")
    if problems:
        problems.append(
            "with one input per feature the input names must equal the feature names; "
            "otherwise export a single 2-D input"
        )
        raise SignatureError(problems)
    for f in features:
        problems += _column_problems(by_name[f.name], f)
    if problems:
        raise SignatureError(problems)
    return InputPlan("columns", tuple(by_name[n] for n in names))


def _column_problems(t: TensorInfo, f: FeatureSpec) -> list[str]:
    out: list[str] = []
    if (
        t.shape is None
        or len(t.shape) not in (1, 2)
        or (len(t.shape) == 2 and t.shape[1] not in (1, None))
    ):
        out.append(f"input '{t.name}' must have shape [N] or [N, 1], got {_shape(t)}")
    accepted = {
        "float": FLOAT_TYPES,
        "int": NUMERIC_TYPES,
        "bool": NUMERIC_TYPES | {"bool"},
        "category": NUMERIC_TYPES | {"string"},
    }[f.type]
    if t.type not in accepted:
        out.append(f"input '{t.name}' has element type {t.type}, which cannot take {f.type} values")
    elif f.nullable and t.type not in FLOAT_TYPES | {"string"}:
        out.append(
            f"input '{t.name}' is {t.type} and cannot carry missing values; "
            "make it a float input or the feature not nullable"
        )
    return out


def bind_inputs(plan: InputPlan, features: Sequence[FeatureSpec]) -> tuple[FeatureSpec, ...]:
    """The features, each with the element type of the model input it feeds (``dtype``), so
    validation rejects what that input cannot hold."""
    if plan.layout == "tensor":
        types = [plan.inputs[0].type] * len(features)
    else:
        types = [t.type for t in plan.inputs]
    return tuple(replace(f, dtype=t) for f, t in zip(features, types, strict=True))


def plan_outputs(outputs: Sequence[TensorInfo], task: str) -> OutputPlan:
    """Find the label/prediction output and, for classifiers, the probabilities output."""
    by_name = {t.name: t for t in outputs}
    proba = None
    if task == "classification":
        proba = next((n for n in PROBA_NAMES if n in by_name), None)
    label = next((n for n in LABEL_NAMES if n in by_name and by_name[n].is_tensor), None)
    if label is None:
        label = next((t.name for t in outputs if t.is_tensor and t.name != proba), None)
    if label is None:
        raise SignatureError(
            [f"the model has no label/prediction tensor output (outputs: {_names(by_name)})"]
        )
    if task == "classification" and proba is None:
        proba = next((t.name for t in outputs if t.name != label), None)
    return OutputPlan(label, proba)


def _names(names: Iterable[str]) -> str:
    items = list(names)
    shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
    return f"[{shown}]"


def _shape(t: TensorInfo) -> str:
    if t.shape is None:
        return t.type
    return "[" + ", ".join("N" if d is None else str(d) for d in t.shape) + "]"
