"""``mlops build``: a scikit-learn estimator (pipelines included) → ONNX, with a parity check.

The estimator is loaded from ``source:`` (joblib or pickle: load only files you trust), converted
with skl2onnx (one float tensor input ``input`` [N, features], class probabilities as a plain
tensor), and run with onnxruntime on sample rows from the model's reference (or training) data.
The largest absolute difference between scikit-learn's and ONNX's probabilities (predictions,
for regressors) must stay within ``parity_tolerance``; otherwise nothing is written. A build
report (converter versions, parity, signature) lands beside the artifact and goes into the
version's metadata when it is registered.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from framework.config.models import FeatureType, Model
from framework.errors import MlopsError
from framework.registry.errors import RegistryInputError
from framework.registry.metadata import build_report_path
from framework.registry.provenance import environment

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}  # pinned so the bytes do not move with defaults
SAMPLE_ROWS = 200


def _skl2onnx() -> Any:
    try:
        import skl2onnx
    except ImportError as exc:
        raise MlopsError("`mlops build` needs skl2onnx, which is not installed",
                         hint="pip install 'mlops[build]' (scikit-learn, skl2onnx, onnx)") from exc
    return skl2onnx


def load_estimator(path: Path) -> Any:
    if not path.is_file():
        raise RegistryInputError(f"'{path}' does not exist", where="source",
                                 hint="save the fitted estimator with joblib.dump(est, path)")
    if path.suffix in (".joblib", ".jbl"):
        import joblib

        return joblib.load(path)
    with path.open("rb") as fh:
        return pickle.load(fh)  # noqa: S301 - the user's own training output


def sample(root: Path, model: Model, rows: int = SAMPLE_ROWS) -> np.ndarray:
    """Rows of the reference (or training) data in feature order; seeded noise without data."""
    names = [f.name for f in model.features]
    data = model.reference or (model.training.data if model.training else None)
    if data is None:
        rng = np.random.default_rng(0)
        return rng.normal(size=(rows, len(names))).astype(np.float32)
    with (root / data).open(newline="") as fh:
        reader = csv.DictReader(fh)
        out = []
        for i, row in enumerate(reader):
            if i >= rows:
                break
            out.append([float(row[n]) for n in names])
    return np.asarray(out, dtype=np.float32)


def build_model(root: Path, name: str, model: Model | None) -> dict[str, Any]:
    if model is None:
        raise RegistryInputError(f"model '{name}' is not declared in mlops.yaml",
                                 where=f"models.{name}")
    if not model.source:
        raise RegistryInputError(f"model '{name}' has no source: to build",
                                 where=f"models.{name}.source",
                                 hint="add source: path/to/estimator.joblib")
    if any(f.type is FeatureType.category for f in model.features):
        raise RegistryInputError("`mlops build` converts numeric inputs only",
                                 where=f"models.{name}.features",
                                 hint="encode categories in the pipeline, or export ONNX yourself")
    skl2onnx = _skl2onnx()
    from skl2onnx.common.data_types import FloatTensorType

    est = load_estimator(root / model.source)
    final = est.steps[-1][1] if hasattr(est, "steps") else est
    classifier = hasattr(final, "predict_proba") and model.task.value == "classification"
    options = {type(final): {"zipmap": False}} if classifier else None
    onx = skl2onnx.convert_sklearn(
        est, name=name, initial_types=[("input", FloatTensorType([None, len(model.features)]))],
        options=options, target_opset=TARGET_OPSET)
    data = onx.SerializeToString()

    import onnxruntime as ort

    x = sample(root, model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    results = session.run(None, {"input": x})
    if classifier:
        expected = np.asarray(est.predict_proba(x.astype(np.float64)), dtype=np.float64)
        got = np.asarray(results[1], dtype=np.float64)
    else:
        expected = np.asarray(est.predict(x.astype(np.float64)), dtype=np.float64).reshape(-1)
        got = np.asarray(results[0], dtype=np.float64).reshape(-1)
    parity = float(np.max(np.abs(got - expected))) if len(x) else 0.0
    if not parity <= model.parity_tolerance:
        raise MlopsError(
            f"ONNX output differs from scikit-learn by {parity:.3g} (limit "
            f"{model.parity_tolerance:g}) on {len(x)} rows; nothing written",
            where=f"models.{name}",
            hint="check the pipeline's steps are supported by skl2onnx, or raise "
                 "parity_tolerance if the difference is acceptable")
    artifact = root / model.artifact
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(data)
    from framework.artifacts import onnx_signature

    packages = environment()["packages"]
    report = {
        "artifact": model.artifact, "source": model.source,
        "sha256": hashlib.sha256(data).hexdigest(), "converter": "skl2onnx",
        "versions": {k: packages.get(k) for k in ("skl2onnx", "scikit-learn", "onnx")},
        "target_opset": TARGET_OPSET, "estimator": type(est).__name__,
        "parity": {"max_abs_diff": parity, "rows": len(x), "tolerance": model.parity_tolerance,
                   "compared": "probabilities" if classifier else "predictions"},
        "signature": onnx_signature(artifact),
    }
    build_report_path(artifact).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report
