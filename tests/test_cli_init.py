"""mlops init: a starting mlops.yaml from an ONNX file (and a CSV) that mlops validate accepts."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from framework.cli_init import guess_task, infer_features, read_csv, widened

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "breast_cancer"


def mlops(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framework.cli", *args], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(root),
                               "PYTHONPATH": str(REPO), "COLUMNS": "200",
                               "MLOPS_LOCAL_PORT": "1"})


def features_of(root: Path) -> list[dict[str, object]]:
    config = yaml.safe_load((root / "mlops.yaml").read_text())
    (model,) = config["models"].values()
    return list(model["features"])


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE / "artifacts" / "model.onnx", tmp_path / "model.onnx")
    shutil.copy(EXAMPLE / "data" / "holdout.csv", tmp_path / "train.csv")
    return tmp_path


def test_classifier_with_its_training_csv_validates(project: Path) -> None:
    done = mlops(project, "init", "--model", "model.onnx", "--data", "train.csv",
                 "--label", "diagnosis", "--project", "dx", "--name", "diagnosis")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((project / "mlops.yaml").read_text())
    model = config["models"]["diagnosis"]
    assert model["task"] == "classification"
    assert model["reference"] == "train.csv"
    with open(project / "train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = [n for n in rows[0] if n != "diagnosis"]
    assert [f["name"] for f in model["features"]] == header
    for feature in model["features"]:
        seen = [float(r[feature["name"]]) for r in rows]
        span = max(seen) - min(seen)
        # the observed range widened by 10% of it, not clipped at 0
        assert feature["min"] <= min(seen) - 0.1 * span + 1e-9
        assert feature["max"] >= max(seen) + 0.1 * span - 1e-9
        assert feature["min"] >= min(seen) - 0.11 * span
        assert feature["max"] <= max(seen) + 0.11 * span
    assert "diagnosis-drift" in config["monitors"]
    assert "# Written by `mlops init`" in (project / "mlops.yaml").read_text()
    checked = mlops(project, "validate")
    assert checked.returncode == 0, checked.stderr


def test_refuses_to_overwrite_without_force(project: Path) -> None:
    (project / "mlops.yaml").write_text("project: mine\n")
    done = mlops(project, "init", "--model", "model.onnx")
    assert done.returncode == 2
    assert "already exists" in done.stderr and "--force" in done.stderr
    assert "Traceback" not in done.stderr
    assert (project / "mlops.yaml").read_text() == "project: mine\n"
    forced = mlops(project, "init", "--model", "model.onnx", "--force")
    assert forced.returncode == 0, forced.stderr
    assert [f["name"] for f in features_of(project)][:2] == ["feature_1", "feature_2"]
    assert len(features_of(project)) == 30
    assert mlops(project, "validate").returncode == 0


def test_a_csv_with_an_unnamed_label_column_is_bad_input(project: Path) -> None:
    done = mlops(project, "init", "--model", "model.onnx", "--data", "train.csv")
    assert done.returncode == 2
    assert "--label" in done.stderr
    assert not (project / "mlops.yaml").exists()
    wrong = mlops(project, "init", "--model", "model.onnx", "--data", "train.csv",
                  "--label", "diagnosys")
    assert wrong.returncode == 2
    assert "did you mean 'diagnosis'" in wrong.stderr


def test_a_model_outside_the_folder_or_not_onnx_is_bad_input(tmp_path: Path) -> None:
    inner = tmp_path / "project"
    inner.mkdir()
    shutil.copy(EXAMPLE / "artifacts" / "model.onnx", tmp_path / "model.onnx")
    outside = mlops(inner, "init", "--model", str(tmp_path / "model.onnx"))
    assert outside.returncode == 2 and "outside" in outside.stderr
    (inner / "model.onnx").write_bytes(b"not a model")
    broken = mlops(inner, "init", "--model", "model.onnx")
    assert broken.returncode == 2 and "not a valid ONNX model" in broken.stderr
    assert not (inner / "mlops.yaml").exists()


def test_a_regressor_with_one_input_per_column_validates(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    size = rng.uniform(-5, 40, 200)
    rooms = rng.integers(1, 8, 200)
    price = 3 * size + 10 * rooms
    # price = [size, float(rooms)] @ [3, 10]: one input per column, a float output
    graph = helper.make_graph(
        [helper.make_node("Cast", ["rooms"], ["rooms_f"], to=TensorProto.FLOAT),
         helper.make_node("Concat", ["size", "rooms_f"], ["x"], axis=1),
         helper.make_node("MatMul", ["x", "w"], ["variable"])],
        "price",
        [helper.make_tensor_value_info("size", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("rooms", TensorProto.INT64, [None, 1])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [3.0, 10.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (tmp_path / "price.onnx").write_bytes(model.SerializeToString())
    with open(tmp_path / "houses.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rooms", "price", "size"])
        for s, r, p in zip(size, rooms, price, strict=True):
            writer.writerow([r, p, "" if s > 39 else s])
    done = mlops(tmp_path, "init", "-m", "price.onnx", "--data", "houses.csv",
                 "--label", "price")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((tmp_path / "mlops.yaml").read_text())
    model = config["models"]["price"]
    assert model["task"] == "regression"
    by_name = {f["name"]: f for f in model["features"]}
    assert [f["name"] for f in model["features"]] == ["size", "rooms"]   # the model's order
    assert by_name["size"]["type"] == "float" and by_name["size"]["nullable"] is True
    assert by_name["size"]["min"] < 0                                   # observed, widened
    assert by_name["rooms"]["type"] == "int"
    assert by_name["rooms"]["min"] == 0 and by_name["rooms"]["max"] == 8  # 1..7 ± 0.6, outwards
    checked = mlops(tmp_path, "validate")
    assert checked.returncode == 0, checked.stderr


def test_widened_rounds_outwards() -> None:
    assert widened(0.0, 10.0, integer=False) == (-1.0, 11.0)
    low, high = widened(1000.0, 1000.1, integer=False)
    assert low <= 999.99 and high >= 1000.11 and high - low < 0.2
    assert widened(5.0, 5.0, integer=True) == (4.0, 6.0)
    assert widened(0.0, 0.0, integer=False) == (-1.0, 1.0)


def test_task_is_guessed_from_the_outputs() -> None:
    label = {"name": "label", "shape": [None], "type": "int64"}
    proba = {"name": "probabilities", "shape": [None, 2], "type": "float"}
    zipmap = {"name": "output_probability", "shape": None, "type": "seq(map(int64,tensor(float)))"}
    assert guess_task([label, proba]) == "classification"
    assert guess_task([label, zipmap]) == "classification"
    assert guess_task([{"name": "variable", "shape": [None, 1], "type": "float"}]) == "regression"


def test_string_inputs_take_their_values_from_the_csv(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("colour,weight\nred,1.5\nblue,2\nred,\n")
    inputs = [{"name": "colour", "shape": [None, 1], "type": "string"},
              {"name": "weight", "shape": [None, 1], "type": "double"}]
    colour, weight = infer_features(inputs, read_csv(tmp_path / "d.csv"), None)
    assert colour.type == "category" and colour.values == ("blue", "red")
    assert weight.type == "float" and weight.nullable
