"""Model artifacts on the control side: digests, ONNX signatures, checks, registry metadata.

``check_artifact`` answers "will the runtime accept this file for these features?" with the
same planning functions the runtime uses (``framework.runtime.signature``). ``build_metadata``
produces the registry's ``metadata.json`` dict; it is deterministic (no timestamps), and
``dump_metadata`` serializes it with sorted keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from framework.config.models import Model
from framework.errors import Problem
from framework.runtime.features import FeatureSpec
from framework.runtime.signature import SignatureError, TensorInfo, plan_inputs, plan_outputs

TRAIN_HINT = (
    "paths are relative to mlops.yaml; for the example model run "
    "`python examples/breast_cancer/train.py` first"
)


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _session(path: Path) -> Any:
    import onnxruntime as ort

    from framework.runtime.inference import session_options

    return ort.InferenceSession(
        str(path), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )


def _tensors(path: Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    session = _session(path)
    inputs = [TensorInfo.from_ort(a) for a in session.get_inputs()]
    outputs = [TensorInfo.from_ort(a) for a in session.get_outputs()]
    return inputs, outputs


def onnx_signature(path: Path | str) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [{name, shape, type}], "outputs": [...]}``; dynamic dims are None."""
    inputs, outputs = _tensors(Path(path))
    return {"inputs": [t.to_dict() for t in inputs], "outputs": [t.to_dict() for t in outputs]}


def feature_specs(model: Model) -> list[FeatureSpec]:
    return [
        FeatureSpec(
            name=f.name,
            type=f.type.value,
            min=f.min,
            max=f.max,
            values=f.values,
            nullable=f.nullable,
        )
        for f in model.features
    ]


def check_artifact(model_name: str, model: Model, root: Path) -> list[Problem]:
    """Every problem with the model's ONNX file, as ``Problem``s (empty when it fits)."""
    where = f"models.{model_name}.artifact"
    path = (root / model.artifact).resolve()
    if not path.is_file():
        what = f"'{model.artifact}' does not exist (looked for {path})"
        return [Problem(where=where, what=what, hint=TRAIN_HINT)]
    try:
        inputs, outputs = _tensors(path)
    except Exception as e:  # onnxruntime raises several exception types for bad files
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return [
            Problem(
                where=where,
                what=f"'{model.artifact}' is not a valid ONNX model ({reason})",
                hint="export the model with skl2onnx (or torch.onnx) and point artifact at it",
            )
        ]
    problems: list[Problem] = []
    try:
        plan_inputs(inputs, feature_specs(model))
    except SignatureError as e:
        hint = "declare the features in the order and number the model was trained with"
        problems += [
            Problem(where=f"models.{model_name}.features", what=p, hint=hint) for p in e.problems
        ]
    if model.output is not None:  # the declared output, against the graph
        from framework.runtime.outputs import OutputSpec

        spec = OutputSpec.from_dict(model.output.model_dump(mode="json"), model.task.value)
        classes = None if model.output.labels is not None else onnx_classes(path)
        return problems + [Problem(where=f"models.{model_name}.output", what=p,
                                   hint="name the tensor, transform and labels the graph has")
                           for p in spec.check(outputs, classes)]
    try:
        plan_outputs(outputs, model.task.value)
    except SignatureError as e:
        hint = "export a model whose first output is the label or prediction"
        problems += [Problem(where=where, what=p, hint=hint) for p in e.problems]
    return problems


def onnx_classes(path: Path) -> list[Any] | None:
    """Class labels recorded in the graph (skl2onnx classifiers, ZipMap), or None.

    Needs the ``onnx`` package (``pip install 'mlops[build]'``); without it, None.
    """
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.name in ("classlabels_strings",) and attr.strings:
                return [s.decode("utf-8") for s in attr.strings]
            if attr.name in ("classlabels_ints", "classlabels_int64s") and attr.ints:
                return [int(i) for i in attr.ints]
    return None


def build_metadata(name: str, model: Model, artifact_path: Path) -> dict[str, Any]:
    """The registry's metadata.json for ``name@model.version``; no time-dependent fields."""
    path = Path(artifact_path)
    meta = {
        "name": name,
        "version": model.version,
        "task": model.task.value,
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "features": [f.to_dict() for f in feature_specs(model)],
        "signature": onnx_signature(path),
        "classes": onnx_classes(path) if model.task.value == "classification" else None,
        "metrics": dict(sorted(model.metrics.items())),
        "tags": dict(sorted(model.tags.items())),
    }
    if model.output is not None:  # how the runtime turns the raw output into the answer
        meta["output"] = model.output.model_dump(mode="json")
        if model.output.labels is not None:
            meta["classes"] = list(model.output.labels)
    return meta


def dump_metadata(metadata: dict[str, Any]) -> bytes:
    """Canonical bytes of metadata.json: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(metadata, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()
