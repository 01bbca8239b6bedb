"""OIP v2 parsing/answers, the OpenAPI document, API keys, capture lines and feedback parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework.monitoring.columns import unpack
from framework.runtime import auth, capture, feedback, oip, openapi
from framework.runtime.errors import RequestError
from framework.runtime.inference import ModelBundle

ROW = [1.0, 0.5, -0.2]


def _err(fn: Any, *args: Any) -> RequestError:
    with pytest.raises(RequestError) as info:
        fn(*args)
    return info.value


# -- OIP v2 -------------------------------------------------------------------------------


def test_oip_matrix_flat_and_nested(clf_bundle: ModelBundle) -> None:
    f = clf_bundle.features
    flat = {"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32",
                        "data": ROW + ROW}], "id": "q1"}
    nested = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64",
                          "data": [ROW, ROW]}]}
    rows, req_id, wanted = oip.parse_request(flat, f, 10)
    assert rows == [ROW, ROW] and req_id == "q1" and wanted is None
    assert oip.parse_request(nested, f, 10)[0] == rows
    one = {"inputs": [{"name": "input", "shape": [3], "datatype": "FP32", "data": ROW}]}
    assert oip.parse_request(one, f, 10)[0] == [ROW]


def test_oip_columns_and_bytes(cols_bundle: ModelBundle) -> None:
    body = {"inputs": [
        {"name": "color", "shape": [2, 1], "datatype": "BYTES", "data": ["red", "blue"]},
        {"name": "size", "shape": [2], "datatype": "FP32", "data": [0.5, -1]},
    ]}
    rows, _, _ = oip.parse_request(body, cols_bundle.features, 10)
    assert rows == [["red", 0.5], ["blue", -1.0]]
    prediction = cols_bundle.run(rows)
    answer = oip.response(cols_bundle, "ep", prediction, None, "rid", None)
    assert answer["model_name"] == "ep" and answer["outputs"][0]["shape"] == [2]
    assert answer["parameters"]["request_id"] == "rid"
    meta = oip.metadata(cols_bundle, "ep")
    assert [i["name"] for i in meta["inputs"]] == ["color", "size"]
    assert meta["inputs"][0]["datatype"] == "BYTES"


@pytest.mark.parametrize(("body", "status", "text"), [
    ([], 400, "JSON object"),
    ({"inputs": []}, 400, "non-empty"),
    ({"inputs": [{"name": "input"}]}, 400, "lacks shape, datatype, data"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP8", "data": ROW}]}, 400,
     "datatype must be one of"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": {}, "data": ROW}]}, 400,
     "datatype must be one of"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": ROW[:2]}]},
     400, "needs 3 values, data has 2"),
    ({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": ROW[:2]}]},
     400, "[N, 3]"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "INT64", "data": [1, 2.5, 3]}]},
     400, "data[1] must be an integer"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, "a", 3]}]},
     400, "data[1] must be a number"),
    ({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
                 {"name": "zz", "shape": [1], "datatype": "FP32", "data": [1]}]}, 400,
     "not declared features"),
    ({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
                 {"name": "c", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}, 400,
     "has 2 rows"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                  "data": [-1, 0, 0]}]}, 422, "row 0, a must be >= 0"),
    ({"inputs": [{"name": "input", "shape": [20, 3], "datatype": "FP32", "data": ROW * 20}]},
     413, "limit is 10"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": ROW}],
      "extra": 1}, 400, "unknown key"),
])
def test_oip_errors(clf_bundle: ModelBundle, body: Any, status: int, text: str) -> None:
    e = _err(oip.parse_request, body, clf_bundle.features, 10)
    assert e.status == status and text in e.message, e.message


def test_oip_requested_outputs(clf_bundle: ModelBundle) -> None:
    prediction = clf_bundle.run([ROW])
    label = clf_bundle.outputs.label
    only = oip.response(clf_bundle, "ep", prediction, None, None, [label])
    assert [o["name"] for o in only["outputs"]] == [label]
    e = _err(oip.response, clf_bundle, "ep", prediction, None, None, ["nope"])
    assert e.status == 400


# -- OpenAPI ------------------------------------------------------------------------------


def test_openapi_document(cols_bundle: ModelBundle) -> None:
    b = cols_bundle
    doc = openapi.document(endpoint="ep", route="POST /x/score", model=b.name,
                           version=b.version, task=b.task, features=b.features,
                           classes=b.classes, max_rows=50, auth="api_key")
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/x/score", "/x/score/feedback", "/x/score/openapi.json",
                                 "/v2/models/ep/infer", "/v2/models/ep", "/v2/models/ep/ready",
                                 "/v2/health/live", "/v2/health/ready"}
    color = doc["components"]["schemas"]["Instance"]["properties"]["color"]
    assert color == {"type": "string", "enum": ["red", "green", "blue"]}
    assert doc["security"] == [{"apiKey": []}]
    json.dumps(doc)  # serializable


# -- API keys -----------------------------------------------------------------------------


def test_api_keys_check() -> None:
    new = auth.generate("score", name="app")
    other = auth.generate("other")
    revoked = auth.generate("score")
    revoked.record["revoked_at"] = "2026-01-01T00:00:00Z"
    store = {auth.key_object("score", k.key_id): k.record for k in (new, revoked)}
    fetched: list[str] = []

    def fetch(key: str) -> dict[str, Any] | None:
        fetched.append(key)
        return store.get(key)

    checker = auth.KeyChecker("score", fetch, ttl_s=60)
    assert new.key.split(".")[3] not in json.dumps(new.record)
    assert checker.check({"x-api-key": new.key}) == new.key_id
    assert checker.check({"authorization": f"Bearer {new.key}"}) == new.key_id
    assert len(fetched) == 1  # cached
    for headers, status in [({}, 401), ({"x-api-key": "abc"}, 401),
                            ({"x-api-key": new.key[:-1] + ("A" if new.key[-1] != "A" else "B")},
                             401),
                            ({"x-api-key": other.key}, 403),
                            ({"x-api-key": revoked.key}, 403)]:
        assert _err(checker.check, headers).status == status


# -- capture and feedback -----------------------------------------------------------------


def test_capture_lines_follow_the_contract(clf_bundle: ModelBundle) -> None:
    rows = [ROW, [2.0, None, 1.0]]
    prediction = clf_bundle.run([ROW, [2.0, 0.0, 1.0]])  # a NaN answer is never captured
    lines = capture.capture_lines(
        request_id="r1", ts=0.0, endpoint="ep", model="tiny", version="1.0.0",
        lambda_version="3", latency_ms=1.23456, features=clf_bundle.features, rows=rows,
        prediction=prediction)
    records = [unpack(json.loads(x)) for x in lines.splitlines()]
    assert [r["row"] for r in records] == [0, 1]
    assert records[1]["inputs"] == {"a": 2.0, "b": None, "c": 1.0}
    assert records[0]["time"] == "1970-01-01T00:00:00.000000Z"
    assert records[0]["latency_ms"] == 1.235 and records[0]["classes"] == [0, 1]
    assert records[0]["prediction"] == prediction.labels[0]
    assert records[0]["probabilities"] == prediction.probabilities[0]  # type: ignore[index]
    assert records[1]["probabilities"] in (None, [None, None]) or all(
        isinstance(p, float) for p in records[1]["probabilities"])


def test_sampling_is_deterministic() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    picked = [i for i in ids if capture.sampled(i, 0.25)]
    assert 400 < len(picked) < 600
    assert picked == [i for i in ids if capture.sampled(i, 0.25)]
    assert all(capture.sampled(i, 1.0) for i in ids[:10])
    assert not any(capture.sampled(i, 0.0) for i in ids[:10])


def test_feedback_parsing() -> None:
    items = feedback.parse_feedback({"request_id": "r", "label": "yes"}, ["no", "yes"])
    assert items == [{"request_id": "r", "row": 0, "label": "yes"}]
    integral = feedback.parse_feedback({"request_id": "r", "row": 2.0, "label": "no"}, ["no"])
    assert integral[0]["row"] == 2 and type(integral[0]["row"]) is int
    assert _err(feedback.parse_feedback, {"request_id": "r", "row": 2.5, "label": "no"},
                ["no"]).status == 422
    e = _err(feedback.parse_feedback, [{"request_id": "", "row": -1, "label": True,
                                        "x": 1}], [0, 1])
    fields = {d["field"] for d in e.details}
    assert e.status == 422 and fields == {"x", "request_id", "row", "label"}
    assert _err(feedback.parse_feedback, [], None).status == 400
    assert _err(feedback.parse_feedback, "x", None).status == 400
    text = feedback.feedback_lines(items + integral, 0.0, "sc\"ore")
    assert [json.loads(line) for line in text.splitlines()] == [
        {"msg": "feedback", "endpoint": "sc\"ore", **item, "time": "1970-01-01T00:00:00.000000Z"}
        for item in items + integral]
    long = "x" * (feedback.MAX_LABEL + 1)
    assert _err(feedback.parse_feedback, {"request_id": "r", "label": long}, None).status == 422
