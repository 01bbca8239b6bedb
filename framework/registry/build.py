"""``mlops build``: a fitted model → ONNX, with a parity check.

The model is loaded from ``source:`` (joblib or pickle: load only files you trust) and converted
by the converter of its family: scikit-learn estimators and pipelines with skl2onnx; XGBoost
(``XGBClassifier``, ``XGBRegressor``) and LightGBM (``LGBMClassifier``, ``LGBMRegressor``)
models with onnxmltools (``pip install 'mlops[boost]'``). Every export has one float tensor
input ``input`` [N, features] and, for classifiers, class probabilities as a plain tensor
(``probabilities``, no ZipMap). It is run with onnxruntime on sample rows from the model's
reference (or training) data; the largest absolute difference between the source model's and
ONNX's probabilities (predictions, for regressors) must stay within ``parity_tolerance``,
otherwise nothing is written. A build report (converter and versions, parity, signature)
lands beside the artifact and goes into the version's metadata when it is registered.

PyTorch models are exported by PyTorch itself (``torch.onnx.export``, see the README's
*Models beyond scikit-learn*); their logits become answers through ``output:``.
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
BOOST_OPSET = 15  # the newest onnxmltools' tree converters write
_VERSIONS = {"sklearn": ("skl2onnx", "scikit-learn", "onnx"),
             "xgboost": ("onnxmltools", "xgboost", "onnx"),
             "lightgbm": ("onnxmltools", "lightgbm", "onnx")}
SAMPLE_ROWS = 200


def _skl2onnx() -> Any:
    try:
        import skl2onnx
    except ImportError as exc:
        raise MlopsError("`mlops build` needs skl2onnx, which is not installed",
                         hint="pip install 'mlops[build]' (scikit-learn, skl2onnx, onnx)") from exc
    return skl2onnx


def _onnxmltools(family: str) -> Any:
    try:
        import onnxmltools
    except ImportError as exc:
        raise MlopsError(f"`mlops build` converts {family} models with onnxmltools, which is "
                         "not installed",
                         hint="pip install 'mlops[boost]' (xgboost, lightgbm, onnxmltools)") \
            from exc
    return onnxmltools


def family(est: Any) -> str:
    """Which converter a fitted model needs: ``xgboost``, ``lightgbm`` or ``sklearn``."""
    final = est.steps[-1][1] if hasattr(est, "steps") else est
    module = type(final).__module__.split(".", 1)[0]
    if module in ("xgboost", "lightgbm"):
        if final is not est:
            raise RegistryInputError(
                f"a scikit-learn pipeline ending in a {module} model is not converted",
                where="source", hint=f"save the {module} model alone (its inputs the declared "
                "features, in order), or export ONNX yourself")
        return module
    return "sklearn"


def convert(est: Any, name: str, n_features: int, classifier: bool) -> tuple[bytes, str]:
    """The ONNX bytes of ``est`` and the converter used."""
    kind = family(est)
    if kind == "sklearn":
        skl2onnx = _skl2onnx()
        from skl2onnx.common.data_types import FloatTensorType

        final = est.steps[-1][1] if hasattr(est, "steps") else est
        options = {type(final): {"zipmap": False}} if classifier else None
        onx = skl2onnx.convert_sklearn(
            est, name=name, initial_types=[("input", FloatTensorType([None, n_features]))],
            options=options, target_opset=TARGET_OPSET)
        return onx.SerializeToString(), "skl2onnx"
    tools = _onnxmltools(kind)
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    types = [("input", MlFloat([None, n_features]))]
    try:
        if kind == "xgboost":
            onx = tools.convert_xgboost(est, name=name, initial_types=types,
                                        target_opset=BOOST_OPSET)
        else:
            onx = tools.convert_lightgbm(est, name=name, initial_types=types, zipmap=False,
                                         target_opset=BOOST_OPSET)
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
        raise MlopsError(f"onnxmltools could not convert this {kind} model: {exc}",
                         where="source", hint="check the model's objective is one onnxmltools "
                         "converts (classifiers and regressors), or export ONNX yourself") \
            from exc
    return onx.SerializeToString(), f"onnxmltools ({kind})"


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
    est = load_estimator(root / model.source)
    final = est.steps[-1][1] if hasattr(est, "steps") else est
    classifier = hasattr(final, "predict_proba") and model.task.value == "classification"
    data, converter = convert(est, name, len(model.features), classifier)

    import onnxruntime as ort

    x = sample(root, model)
    from framework.runtime.inference import session_options

    session = ort.InferenceSession(data, sess_options=session_options(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = dict(zip(names, session.run(None, {"input": x}), strict=True))
    xin = x.astype(np.float64) if family(est) == "sklearn" else x
    expected: np.ndarray[Any, np.dtype[np.float64]]
    got: np.ndarray[Any, np.dtype[np.float64]]
    if classifier:
        expected = np.asarray(est.predict_proba(xin), dtype=np.float64)
        got = np.asarray(results.get("probabilities", list(results.values())[-1]),
                         dtype=np.float64).reshape(expected.shape)
    else:
        expected = np.asarray(est.predict(xin), dtype=np.float64).reshape(-1)
        got = np.asarray(list(results.values())[0], dtype=np.float64).reshape(-1)
    parity = float(np.max(np.abs(got - expected))) if len(x) else 0.0
    if not parity <= model.parity_tolerance:
        raise MlopsError(
            f"ONNX output differs from the {family(est)} model by {parity:.3g} (limit "
            f"{model.parity_tolerance:g}) on {len(x)} rows; nothing written",
            where=f"models.{name}",
            hint=f"check the model is one {converter} converts, or raise "
                 "parity_tolerance if the difference is acceptable")
    artifact = root / model.artifact
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(data)
    from framework.artifacts import onnx_signature

    packages = environment()["packages"]
    report = {
        "artifact": model.artifact, "source": model.source,
        "sha256": hashlib.sha256(data).hexdigest(), "converter": converter,
        "versions": {k: packages.get(k) for k in _VERSIONS[family(est)]},
        "target_opset": TARGET_OPSET if converter == "skl2onnx" else BOOST_OPSET,
        "estimator": type(est).__name__,
        "parity": {"max_abs_diff": parity, "rows": len(x), "tolerance": model.parity_tolerance,
                   "compared": "probabilities" if classifier else "predictions"},
        "signature": onnx_signature(artifact),
    }
    build_report_path(artifact).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report
