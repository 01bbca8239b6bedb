from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from framework.artifacts import (
    build_metadata,
    check_artifact,
    dump_metadata,
    onnx_signature,
    sha256_file,
)
from framework.config.models import Model
from framework.runtime.inference import ModelBundle

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))
from tinymodels import columns_classifier, tensor_classifier  # noqa: E402


def model(features: list[dict[str, Any]], artifact: str = "model.onnx", **kw: Any) -> Model:
    return Model.model_validate(
        {"version": "1.0.0", "artifact": artifact, "features": features, **kw}
    )


FLOAT3 = [{"name": n, "type": "float"} for n in ("a", "b", "c")]
COLS = [{"name": "color", "type": "category", "values": ["red", "green", "blue"]}, {"name": "size"}]


@pytest.fixture
def tensor_model(tmp_path: Path) -> Path:
    path = tmp_path / "tensor" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(tensor_classifier()[0])
    return path


@pytest.fixture
def columns_model(tmp_path: Path) -> Path:
    path = tmp_path / "columns" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(columns_classifier()[0])
    return path


def test_sha256_file(tensor_model: Path) -> None:
    assert sha256_file(tensor_model) == hashlib.sha256(tensor_model.read_bytes()).hexdigest()


def test_signature(tensor_model: Path) -> None:
    sig = onnx_signature(tensor_model)
    assert sig["inputs"] == [{"name": "input", "shape": [None, 3], "type": "float"}]
    assert sig["outputs"][0] == {"name": "label", "shape": [None], "type": "int64"}
    assert sig["outputs"][1] == {"name": "probabilities", "shape": [None, 2], "type": "float"}


def test_fitting_models_have_no_problems(tensor_model: Path, columns_model: Path) -> None:
    assert check_artifact("m", model(FLOAT3), tensor_model.parent) == []
    assert check_artifact("m", model(COLS), columns_model.parent) == []


def test_missing_file(tmp_path: Path) -> None:
    [p] = check_artifact("diag", model(FLOAT3, "artifacts/nope.onnx"), tmp_path)
    assert p.where == "models.diag.artifact"
    assert "'artifacts/nope.onnx' does not exist" in p.what
    assert "relative to mlops.yaml" in p.hint and "train.py" in p.hint


def test_garbage_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"this is not a protobuf at all")
    [p] = check_artifact("diag", model(FLOAT3), tmp_path)
    assert p.where == "models.diag.artifact"
    assert "is not a valid ONNX model" in p.what
    assert str(tmp_path) not in p.what or "model.onnx" in p.what


def test_feature_count_mismatch(tensor_model: Path) -> None:
    four = [*FLOAT3, {"name": "d"}]
    [p] = check_artifact("diag", model(four), tensor_model.parent)
    assert p.where == "models.diag.features"
    assert "takes 3 values per row but 4 features are declared" in p.what


def test_category_feature_into_numeric_tensor_is_accepted(tensor_model: Path) -> None:
    feats = [*FLOAT3[:2], {"name": "c", "type": "category", "values": ["x", "y"]}]
    assert check_artifact("diag", model(feats), tensor_model.parent) == []


def test_per_feature_name_mismatch(columns_model: Path) -> None:
    feats = [COLS[0], {"name": "length"}]
    problems = check_artifact("diag", model(feats), columns_model.parent)
    text = " | ".join(p.what for p in problems)
    assert "no model input for features [length]" in text
    assert "model inputs [size] are not declared features" in text
    assert all(p.where == "models.diag.features" for p in problems)


def test_per_feature_type_mismatch(columns_model: Path) -> None:
    feats = [{"name": "color", "type": "float"}, {"name": "size"}]
    [p] = check_artifact("diag", model(feats), columns_model.parent)
    assert "input 'color' has element type string, which cannot take float values" in p.what


def test_model_without_label_output(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])
    seq = helper.make_tensor_sequence_value_info("scores", TensorProto.FLOAT, None)
    node = helper.make_node("SequenceConstruct", ["input"], ["scores"])
    graph = helper.make_graph([node], "g", [x], [seq])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "model.onnx"))
    [p] = check_artifact("diag", model(FLOAT3), tmp_path)
    assert p.where == "models.diag.artifact"
    assert "no label/prediction tensor output" in p.what


def test_build_metadata_is_deterministic_and_loadable(tensor_model: Path) -> None:
    m = model(FLOAT3, metrics={"auc": 0.9, "acc": 0.8}, tags={"team": "x"})
    meta = build_metadata("tiny", m, tensor_model)
    assert dump_metadata(meta) == dump_metadata(build_metadata("tiny", m, tensor_model))
    assert set(meta) >= {
        "name",
        "version",
        "task",
        "sha256",
        "size",
        "features",
        "signature",
        "metrics",
        "tags",
    }
    assert meta["task"] == "classification" and meta["classes"] == [0, 1]
    assert meta["features"][0] == {
        "name": "a",
        "type": "float",
        "min": None,
        "max": None,
        "values": None,
        "nullable": False,
    }
    text = dump_metadata(meta).decode()
    assert text.index('"classes"') < text.index('"features"')  # sorted keys
    # The runtime accepts what the control side builds.
    loaded = json.loads(text)
    bundle = ModelBundle.from_bytes(loaded, tensor_model.read_bytes(), loaded["sha256"])
    assert bundle.predict({"inputs": [[1.0, 0.0, 0.0]]})["classes"] == [0, 1]
