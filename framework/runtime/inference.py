"""A loaded model version: verified bytes, one onnxruntime session, and the predict path.

``ModelBundle.load`` fetches ``models/{name}/{version}/metadata.json`` and ``model.onnx`` from
the registry bucket, checks the SHA-256 of the bytes against the deployment's expected value
and against metadata.json, and builds one ``InferenceSession``. ``predict`` validates a
decoded JSON body (see ``framework.runtime.features``), encodes it, runs the session and
shapes a JSON-safe answer::

    {"predictions": [...], "probabilities": [[...], ...], "classes": [...],
     "model": name, "version": version, "request_id": ...}

``probabilities`` and ``classes`` are present for classifiers that output them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort

from framework.runtime import modelfile
from framework.runtime.encoding import Encoder, make_encoder
from framework.runtime.errors import IntegrityError, ModelUnavailableError, RequestError
from framework.runtime.features import DEFAULT_MAX_ROWS, FeatureSpec, Rows, parse_payload
from framework.runtime.outputs import OutputError, OutputSpec, answer_names, output_spec
from framework.runtime.signature import (
    InputPlan,
    OutputPlan,
    SignatureError,
    TensorInfo,
    bind_inputs,
    plan_inputs,
    plan_outputs,
)

__all__ = [
    "IntegrityError",
    "ModelBundle",
    "ModelOutputError",
    "ModelUnavailableError",
    "Prediction",
    "PredictionText",
    "registry_key",
]


def registry_key(name: str, version: str, filename: str) -> str:
    return f"models/{name}/{version}/{filename}"


def session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return opts


@dataclass
class ModelBundle:
    """One model version, ready to serve. Build with ``load`` or ``from_bytes``."""

    name: str
    version: str
    task: str
    sha256: str
    features: tuple[FeatureSpec, ...]
    classes: list[Any] | None
    session: ort.InferenceSession
    inputs: InputPlan
    outputs: OutputPlan
    encode: Encoder
    max_rows: int = DEFAULT_MAX_ROWS
    answers: OutputSpec | None = None  # the declared output (framework.runtime.outputs)
    # (classes list, its JSON): the classes are the same list on every prediction
    _classes_json: tuple[list[Any] | None, str] = field(
        default=(None, "null"), init=False, repr=False, compare=False)

    @classmethod
    def load(
        cls,
        conn: Any,
        bucket: str,
        name: str,
        version: str,
        expected_sha256: str,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> ModelBundle:
        """Fetch, verify and load ``name@version`` from the registry bucket."""
        s3 = conn.client("s3")
        try:
            raw_meta = s3.get_object(
                Bucket=bucket, Key=registry_key(name, version, "metadata.json")
            )
            metadata = json.loads(raw_meta["Body"].read())
            key = registry_key(name, version, "model.onnx")
            size = int(metadata.get("size") or 0)
            if size > modelfile.stream_threshold():  # a large model: to a file, hashed on the way
                model: bytes | tuple[Path, str] = modelfile.fetch(s3, bucket, key, size)
            else:
                model = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # botocore errors, bad JSON: the model is not servable
            raise ModelUnavailableError(
                f"cannot read {name}@{version} from s3://{bucket}/models/{name}/{version}/: {e}"
            ) from e
        if metadata.get("name") != name or metadata.get("version") != version:
            raise IntegrityError(
                f"metadata.json describes {metadata.get('name')}@{metadata.get('version')}, "
                f"expected {name}@{version}"
            )
        return cls.from_bytes(metadata, model, expected_sha256, max_rows=max_rows)

    @classmethod
    def from_bytes(
        cls,
        metadata: Mapping[str, Any],
        model_bytes: bytes | tuple[Path, str],
        expected_sha256: str,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> ModelBundle:
        """``model_bytes``: the ONNX bytes, or a streamed model's (file, SHA-256)."""
        name, version = str(metadata.get("name")), str(metadata.get("version"))
        if isinstance(model_bytes, tuple):
            path, digest = model_bytes
            verify_digest(digest, path.stat().st_size, expected_sha256, metadata)
            source: bytes | str = str(path)
        else:
            verify_bytes(model_bytes, expected_sha256, metadata)
            source = model_bytes
        try:
            features = tuple(FeatureSpec.from_dict(f) for f in metadata["features"])
            task = str(metadata.get("task", "classification"))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelUnavailableError(
                f"metadata.json of {name}@{version} is malformed: {e}"
            ) from e
        try:
            session = ort.InferenceSession(
                source, sess_options=session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelUnavailableError(f"onnxruntime cannot load {name}@{version}: {e}") from e
        graph = [TensorInfo.from_ort(a) for a in session.get_outputs()]
        try:
            answers = output_spec(metadata.get("output"), task)
            if answers is not None:  # the declared output: it must fit the graph
                problems = answers.check(graph, metadata.get("classes"))
                if problems:
                    raise SignatureError(problems)
                answers = replace(answers, tensor=answers.pick(graph).name)
            inputs = plan_inputs([TensorInfo.from_ort(a) for a in session.get_inputs()], features)
            outputs = (plan_outputs(graph, task) if answers is None else
                       OutputPlan(*answer_names([t.name for t in graph], task)))
        except (SignatureError, OutputError) as e:
            raise ModelUnavailableError(f"{name}@{version} does not fit its features: {e}") from e
        features = bind_inputs(inputs, features)
        classes = metadata.get("classes")
        return cls(
            name=name,
            version=version,
            task=task,
            sha256=str(metadata["sha256"]),
            features=features,
            classes=list(classes) if classes is not None else None,
            session=session,
            inputs=inputs,
            outputs=outputs,
            encode=make_encoder(inputs, features),
            max_rows=max_rows,
            answers=answers,
        )

    def info(self) -> dict[str, Any]:
        """What a GET on the endpoint answers: the model's public contract."""
        out: dict[str, Any] = {
            "model": self.name,
            "version": self.version,
            "task": self.task,
            "features": [f.to_dict() for f in self.features],
            "max_rows": self.max_rows,
            "request_formats": [
                '{"instances": [{feature: value}, ...]}',
                '{"inputs": [[...], ...]}',
            ],
        }
        if self.classes is not None:
            out["classes"] = self.classes
        return out

    def run(self, rows: Rows) -> Prediction:
        """Run the session on validated rows (in feature order)."""
        if self.answers is not None:  # a declared output: raw scores → the answer
            raw = self.session.run([self.answers.tensor], self.encode(rows))[0]
            _check_finite(raw, "prediction")
            return Prediction(*self.answers.answer(raw, self.classes))
        names = [self.outputs.label]
        if self.outputs.probabilities is not None:
            names.append(self.outputs.probabilities)
        results = self.session.run(names, self.encode(rows))
        _check_finite(results[0], "prediction")
        labels = _labels(results[0])
        if len(results) > 1:
            classes, probabilities = _probabilities(results[1], self.classes)
            # a ZipMap's dicts are checked once they are lists
            _check_finite(results[1] if isinstance(results[1], np.ndarray) else probabilities,
                          "probability")
            return Prediction(labels, probabilities, classes)
        return Prediction(labels, None, self.classes)

    def answer(self, prediction: Prediction, request_id: str | None) -> dict[str, Any]:
        """The native JSON answer for a prediction."""
        out: dict[str, Any] = {"predictions": prediction.labels}
        if prediction.probabilities is not None:
            out["probabilities"] = prediction.probabilities
        if prediction.classes is not None:
            out["classes"] = prediction.classes
        out["model"] = self.name
        out["version"] = self.version
        out["request_id"] = request_id
        return out

    def texts(self, prediction: Prediction) -> PredictionText | None:
        """The JSON of the prediction's labels, probability rows and classes, or None when a
        value is not a plain str/int/finite float/bool/None (the caller then encodes the
        whole answer, which also turns non-finite numbers into null)."""
        labels = []
        for label in prediction.labels:
            text = json_scalar(label)
            if text is None:
                return None
            labels.append(text)
        probabilities = None
        if prediction.probabilities is not None:
            probabilities = []
            for row in prediction.probabilities:
                try:
                    text = "[" + ",".join(map(float.__repr__, row)) + "]"  # floats only
                except TypeError:
                    return None
                if "n" in text:  # "inf" or "nan"
                    return None
                probabilities.append(text)
        classes = prediction.classes
        if classes is None:
            return PredictionText(labels, probabilities, "null")
        seen, classes_json = self._classes_json
        if classes is not seen:  # a ZipMap's classes, or the first prediction
            try:
                classes_json = _compact(classes)
            except (TypeError, ValueError):
                return None
            self._classes_json = (classes, classes_json)
        return PredictionText(labels, probabilities, classes_json)

    def answer_json(self, text: PredictionText, request_id: str | None) -> str | None:
        """``answer`` as compact JSON, from ``texts`` (None for a request id of another type)."""
        if request_id is None:
            rid = "null"
        elif type(request_id) is str:
            rid = encode_basestring_ascii(request_id)
        else:
            return None
        probabilities = "" if text.probabilities is None else (
            ',"probabilities":[' + ",".join(text.probabilities) + "]")
        classes = "" if text.classes == "null" else ',"classes":' + text.classes
        return (f'{{"predictions":[{",".join(text.labels)}]{probabilities}{classes},'
                f'"model":{encode_basestring_ascii(self.name)},'
                f'"version":{encode_basestring_ascii(self.version)},"request_id":{rid}}}')

    def predict(self, payload: object, request_id: str | None = None) -> dict[str, Any]:
        """Validate a decoded JSON body, run the model, return the JSON-safe answer."""
        rows = parse_payload(payload, self.features, self.max_rows)
        return self.answer(self.run(rows), request_id)


@dataclass(frozen=True)
class Prediction:
    """Model outputs for a batch: one label per row, probabilities per row when available."""

    labels: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None


class PredictionText(NamedTuple):
    """A prediction's parts as JSON text (``ModelBundle.texts``), encoded once per request
    for both the answer and the capture lines."""

    labels: list[str]  # per row
    probabilities: list[str] | None  # per row
    classes: str


_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def json_scalar(x: Any) -> str | None:
    """The JSON of a str, int, finite float, bool or None (as ``json.dumps`` writes it), else
    None."""
    t = type(x)
    if t is str:
        return encode_basestring_ascii(x)
    if t is int:
        return int.__repr__(x)
    if t is float:
        return float.__repr__(x) if x - x == 0 else None
    if x is None:
        return "null"
    if t is bool:
        return "true" if x else "false"
    return None


def verify_bytes(model_bytes: bytes, expected_sha256: str, metadata: Mapping[str, Any]) -> None:
    """Raise ``IntegrityError`` unless the bytes match both recorded digests and the size."""
    verify_digest(hashlib.sha256(model_bytes).hexdigest(), len(model_bytes), expected_sha256,
                  metadata)


def verify_digest(actual: str, length: int, expected_sha256: str,
                  metadata: Mapping[str, Any]) -> None:
    """``verify_bytes`` for a model whose SHA-256 (``actual``) was taken while it streamed."""
    label = f"{metadata.get('name')}@{metadata.get('version')}"
    expected = (expected_sha256 or "").strip().lower()
    recorded = str(metadata.get("sha256") or "").strip().lower()
    if not expected:
        raise IntegrityError(f"no expected SHA-256 configured for {label}; refusing to serve it")
    if actual != expected:
        raise IntegrityError(
            f"INTEGRITY FAILURE: model.onnx of {label} has SHA-256 {actual}, but the deployment "
            f"expects {expected}; the registry object was changed after deploy — refusing to serve"
        )
    if actual != recorded:
        raise IntegrityError(
            f"INTEGRITY FAILURE: model.onnx of {label} has SHA-256 {actual}, but metadata.json "
            f"records {recorded or 'nothing'} — refusing to serve"
        )
    size = metadata.get("size")
    if size is not None and int(size) != length:
        raise IntegrityError(
            f"INTEGRITY FAILURE: model.onnx of {label} is {length} bytes, "
            f"metadata.json records {size}"
        )


class ModelOutputError(RequestError):
    """The model answered a value that is no answer (NaN or infinite): a 500 with the reason,
    never a 200 carrying nulls."""

    def __init__(self, what: str, row: int) -> None:
        super().__init__(500, "invalid_model_output",
                         f"the model returned a non-finite {what} for row {row}; no answer "
                         "can be given for this input")


def _check_finite(value: Any, what: str) -> None:
    """Raise ``ModelOutputError`` naming the first row with a NaN or infinite value."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fc" or value.size == 0:
            return
        finite = np.isfinite(value)
        if finite.all():
            return
        rows = finite.reshape(finite.shape[0], -1).all(axis=1) if finite.ndim else [False]
        raise ModelOutputError(what, int(np.argmin(rows)))
    if isinstance(value, list) and value and isinstance(value[0], list):
        for row, items in enumerate(value):
            if not all(map(math.isfinite, items)):
                raise ModelOutputError(what, row)


def _labels(value: Any) -> list[Any]:
    if isinstance(value, np.ndarray):
        flat = value.reshape(value.shape[0], -1) if value.ndim > 1 else value
        if flat.ndim > 1 and flat.shape[1] == 1:
            flat = flat[:, 0]
        return [_py(x) for x in flat.tolist()] if flat.dtype == object else list(flat.tolist())
    return [_py(x) for x in value]


def _probabilities(value: Any, classes: list[Any] | None) -> tuple[list[Any] | None, list[Any]]:
    if isinstance(value, np.ndarray):
        probs = value.reshape(value.shape[0], -1).tolist()
        return classes, probs
    # ZipMap: a list of {class: probability} dicts, one per row.
    rows = list(value)
    keys = classes if classes is not None else (list(rows[0]) if rows else [])
    probs = [[float(r[k]) for k in keys] for r in rows]
    return [_py(k) for k in keys], probs


def _py(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return x
