from __future__ import annotations

import json

import numpy as np
import pytest
from tinymodels import tensor_classifier

from framework.runtime.encoding import make_encoder
from framework.runtime.errors import IntegrityError, ModelUnavailableError, RequestError
from framework.runtime.features import FeatureSpec
from framework.runtime.inference import ModelBundle, ModelOutputError
from framework.runtime.signature import InputPlan, TensorInfo

ROW = {"a": 1.0, "b": 0.5, "c": -0.2}


def test_classifier_tensor_output(clf_bundle: ModelBundle) -> None:
    out = clf_bundle.predict({"instances": [ROW, ROW | {"a": 9.0, "b": 2.0}]}, "req-1")
    assert out["predictions"] == [0, 1]
    assert out["classes"] == [0, 1]
    assert len(out["probabilities"]) == 2
    assert all(abs(sum(p) - 1) < 1e-5 for p in out["probabilities"])
    assert out["model"] == "tiny" and out["version"] == "1.0.0" and out["request_id"] == "req-1"
    json.dumps(out, allow_nan=False)  # plain Python types only
    assert type(out["predictions"][0]) is int and type(out["probabilities"][0][0]) is float


def test_rows_and_records_give_the_same_answer(clf_bundle: ModelBundle) -> None:
    a = clf_bundle.predict({"instances": ROW})
    b = clf_bundle.predict({"inputs": [[1.0, 0.5, -0.2]]})
    assert a == b


def test_missing_value_reaches_the_model_as_nan_and_a_nan_answer_is_a_500(
    clf_bundle: ModelBundle,
) -> None:
    good = {"a": 1.0, "b": 0.5, "c": 0.0}
    with pytest.raises(ModelOutputError) as info:  # "b" is nullable; LogisticRegression
        clf_bundle.predict({"instances": [good, {"a": 1.0, "c": 0.0}]})  # can't cope
    assert info.value.status == 500
    body = info.value.body()
    assert body["error"] == "invalid_model_output"
    assert body["message"].startswith("the model returned a non-finite probability for row 1")


def test_zipmap_probabilities_with_string_labels(zipmap_bundle: ModelBundle) -> None:
    out = zipmap_bundle.predict({"instances": [ROW, ROW | {"a": 9.0, "b": 2.0}]})
    assert out["predictions"] == ["no", "yes"]
    assert out["classes"] == ["no", "yes"]
    assert out["probabilities"][0][0] > 0.5 > out["probabilities"][1][0]


def test_regressor_has_values_and_no_probabilities(reg_bundle: ModelBundle) -> None:
    out = reg_bundle.predict({"inputs": [[1.0, 0.0, 0.0], [3.0, 1.0, 1.0]]})
    assert out["predictions"] == pytest.approx([3.0, 7.0], abs=1e-4)
    assert "probabilities" not in out and "classes" not in out


def test_per_column_layout_with_string_input(cols_bundle: ModelBundle) -> None:
    assert cols_bundle.inputs.layout == "columns"
    out = cols_bundle.predict(
        {"instances": [{"color": "red", "size": 1.0}, {"color": "blue", "size": -1.0}]}
    )
    assert out["predictions"] == [0, 0]
    assert out["probabilities"][0] == pytest.approx([0.6603, 0.3397], abs=1e-3)
    with pytest.raises(RequestError) as info:
        cols_bundle.predict({"instances": [{"color": "pink", "size": 1.0}]})
    assert info.value.status == 422 and info.value.details[0]["field"] == "color"


def test_tensor_encoding_of_category_bool_and_null() -> None:
    features = [
        FeatureSpec("x", "float", nullable=True),
        FeatureSpec("flag", "bool"),
        FeatureSpec("color", "category", values=("red", "green", "blue")),
    ]
    plan = InputPlan("tensor", (TensorInfo("input", (None, 3), "float"),))
    feeds = make_encoder(plan, features)([[None, True, "blue"], [2.5, False, "red"]])
    arr = feeds["input"]
    assert arr.dtype == np.float32 and arr.shape == (2, 3)
    assert np.isnan(arr[0, 0]) and arr[0, 1:].tolist() == [1.0, 2.0]
    assert arr[1].tolist() == [2.5, 0.0, 0.0]


def test_column_encoding_shapes_and_types() -> None:
    features = [FeatureSpec("color", "category", values=("r", "g")), FeatureSpec("n", "int")]
    plan = InputPlan(
        "columns", (TensorInfo("color", (None, 1), "string"), TensorInfo("n", (None,), "int64"))
    )
    feeds = make_encoder(plan, features)([["g", 3], ["r", 4]])
    assert feeds["color"].shape == (2, 1) and feeds["color"].dtype == object
    assert feeds["n"].tolist() == [3, 4] and feeds["n"].dtype == np.int64


def test_sha_mismatch_against_env_is_integrity_error() -> None:
    raw, meta = tensor_classifier()
    with pytest.raises(IntegrityError, match="INTEGRITY FAILURE.*deployment expects"):
        ModelBundle.from_bytes(meta, raw, "0" * 64)


def test_sha_mismatch_against_metadata_is_integrity_error() -> None:
    raw, meta = tensor_classifier()
    with pytest.raises(IntegrityError, match="metadata.json records"):
        ModelBundle.from_bytes(meta | {"sha256": "f" * 64}, raw, str(meta["sha256"]))


def test_missing_expected_sha_refuses() -> None:
    raw, meta = tensor_classifier()
    with pytest.raises(IntegrityError, match="no expected SHA-256"):
        ModelBundle.from_bytes(meta, raw, "")


def test_model_that_does_not_fit_features_is_unavailable() -> None:
    raw, meta = tensor_classifier()
    two = meta["features"][:2]
    with pytest.raises(ModelUnavailableError, match="takes 3 values per row but 2"):
        ModelBundle.from_bytes(meta | {"features": two}, raw, str(meta["sha256"]))


def test_info_describes_the_contract(clf_bundle: ModelBundle) -> None:
    info = clf_bundle.info()
    assert info["model"] == "tiny" and info["classes"] == [0, 1]
    assert [f["name"] for f in info["features"]] == ["a", "b", "c"]
