"""How a model's raw output becomes the answer, as ``output:`` in mlops.yaml declares it.

Models that are not scikit-learn classifiers rarely output labels: a PyTorch export answers
one ``logits`` tensor, a boosted-tree export class indices and probabilities, a regressor a
scaled number. ``output:`` names the tensor to read and what to do with it::

    output: {tensor: logits, transform: softmax, labels: [setosa, versicolor, virginica]}
    output: {tensor: logit, transform: sigmoid, labels: [legit, fraud], threshold: 0.5}
    output: {tensor: probabilities, labels: [stays, churns]}       # already probabilities
    output: {tensor: variable, scale: 1000, offset: 0}   # regression: raw * scale + offset

- ``softmax``: scores ``[N, K]`` → probabilities (each row sums to 1); the label is the most
  probable class;
- ``sigmoid``: one score per row (``[N]`` or ``[N, 1]``) → ``p`` of the second label;
  probabilities ``[1 - p, p]``; the label is the second when ``p >= threshold``;
- ``none``: a classifier's tensor already holds probabilities (``[N, K]``, or ``[N, 1]`` /
  ``[N]``: the second label's); a regressor's the prediction, scaled.

``OutputSpec.check`` is what ``mlops validate`` runs against the ONNX graph (the tensor exists,
is floating point, and its width fits the transform and the labels); ``OutputSpec.answer`` is
what the serving runtime runs on every request. Stdlib and numpy only (the Lambda zip imports
it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TRANSFORMS = ("none", "softmax", "sigmoid")
FLOATS = frozenset({"float", "double", "float16"})
PREFERRED = ("logits", "logit", "probabilities", "probability", "scores", "output",
             "variable", "predictions", "prediction")


class OutputError(ValueError):
    """The declared output does not fit the model's graph (or is malformed)."""


@dataclass(frozen=True)
class OutputSpec:
    tensor: str | None
    transform: str
    labels: tuple[Any, ...] | None
    threshold: float
    scale: float
    offset: float
    task: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], task: str) -> OutputSpec:
        transform = str(data.get("transform") or "none")
        if transform not in TRANSFORMS:
            raise OutputError(f"transform '{transform}' is not one of {', '.join(TRANSFORMS)}")
        labels = data.get("labels")
        return cls(tensor=data.get("tensor") or None, transform=transform,
                   labels=tuple(labels) if labels is not None else None,
                   threshold=float(data.get("threshold", 0.5)),
                   scale=float(data.get("scale", 1.0)), offset=float(data.get("offset", 0.0)),
                   task=task)

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "transform": self.transform,
                "labels": list(self.labels) if self.labels is not None else None,
                "threshold": self.threshold, "scale": self.scale, "offset": self.offset}

    # -- the graph ----------------------------------------------------------------------------
    def pick(self, outputs: Sequence[Any]) -> Any:
        """The graph output this spec reads (``TensorInfo``-like: name, shape, type)."""
        by_name = {o.name: o for o in outputs}
        if self.tensor is not None:
            if self.tensor not in by_name:
                raise OutputError(f"the model has no output '{self.tensor}' (outputs: "
                                  f"{', '.join(by_name) or 'none'})")
            return by_name[self.tensor]
        floats = [o for o in outputs if o.shape is not None and o.type in FLOATS]
        for name in PREFERRED:
            if name in by_name and by_name[name] in floats:
                return by_name[name]
        if len(floats) == 1:
            return floats[0]
        raise OutputError(f"say which output to read: output.tensor is one of "
                          f"{', '.join(by_name) or 'none'}")

    def width(self, tensor: Any) -> int | None:
        """Values per row of ``tensor``: 1 for [N], the last dimension of [N, K] (None when
        dynamic)."""
        shape = tensor.shape
        if shape is None or len(shape) not in (1, 2):
            raise OutputError(f"output '{tensor.name}' must be [N] or [N, K], got "
                              f"{tensor.type if shape is None else list(shape)}")
        return 1 if len(shape) == 1 else shape[1]

    def check(self, outputs: Sequence[Any], classes: Sequence[Any] | None = None) -> list[str]:
        """Every way the declared output does not fit the graph's ``outputs`` (empty: fits)."""
        try:
            tensor = self.pick(outputs)
            k = self.width(tensor)
        except OutputError as exc:
            return [str(exc)]
        problems: list[str] = []
        if tensor.type not in FLOATS:
            problems.append(f"output '{tensor.name}' holds {tensor.type}; a transform reads "
                            "floating-point scores")
        labels = self.labels if self.labels is not None else (
            tuple(classes) if classes is not None else None)
        name = tensor.name
        if self.task == "regression":
            if k not in (1, None):
                problems.append(f"output '{name}' has {k} values per row; a regressor's has 1")
            return problems
        if self.transform == "softmax":
            if k == 1:
                problems.append(f"output '{name}' has one score per row: softmax needs one "
                                "per class (use transform: sigmoid for one logit)")
            elif k is not None and labels is not None and k != len(labels):
                problems.append(f"output '{name}' has {k} scores per row but {len(labels)} "
                                "labels are declared")
        elif self.transform == "sigmoid" or k == 1:
            if k not in (1, None):
                problems.append(f"output '{name}' has {k} values per row: sigmoid reads one "
                                "logit per row (use transform: softmax for one per class)")
            if labels is not None and len(labels) != 2:
                problems.append(f"one score per row is a binary classifier's: declare 2 "
                                f"labels, not {len(labels)}")
        elif k is not None and labels is not None and k != len(labels):
            problems.append(f"output '{name}' has {k} probabilities per row but "
                            f"{len(labels)} labels are declared")
        return problems

    # -- serving --------------------------------------------------------------------------------
    def answer(self, raw: Any, classes: Sequence[Any] | None,
               ) -> tuple[list[Any], list[list[float]] | None, list[Any] | None]:
        """(labels, probabilities, classes) of the rows of ``raw`` (the output tensor)."""
        values = np.asarray(raw, dtype=np.float64)
        rows = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
        if self.task == "regression":
            return (rows[:, 0] * self.scale + self.offset).tolist(), None, None
        if self.transform == "softmax":
            shifted = rows - rows.max(axis=1, keepdims=True)
            exp = np.exp(shifted)
            probs = exp / exp.sum(axis=1, keepdims=True)
        elif rows.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-rows[:, 0])) if self.transform == "sigmoid" else rows[:, 0]
            probs = np.stack([1.0 - p, p], axis=1)
        else:
            probs = rows
        names = list(self.labels if self.labels is not None else
                     (classes if classes is not None else range(probs.shape[1])))
        if len(names) != probs.shape[1]:
            raise OutputError(f"{probs.shape[1]} probabilities per row for {len(names)} labels")
        if rows.shape[1] == 1:
            picked = (probs[:, 1] >= self.threshold).astype(np.int64)
        else:
            picked = probs.argmax(axis=1)
        return [names[i] for i in picked.tolist()], probs.tolist(), names


def output_spec(data: Mapping[str, Any] | None, task: str) -> OutputSpec | None:
    """The runtime form of a version's ``output`` (metadata.json), or None when it has none."""
    if not data:
        return None
    return OutputSpec.from_dict(data, task)


def answer_names(session_outputs: Sequence[str], task: str) -> tuple[str, str | None]:
    """The names the answer's tensors take (OIP): ``label`` and ``probabilities`` unless the
    graph has outputs of those names (of other types), then ``answer_label``, …"""
    taken = set(session_outputs)
    label = "label" if "label" not in taken else "answer_label"
    if task == "regression":
        return ("prediction" if "prediction" not in taken else "answer_prediction"), None
    probabilities = "probabilities" if "probabilities" not in taken else "answer_probabilities"
    return label, probabilities
