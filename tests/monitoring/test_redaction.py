"""capture.redact: the inputs named are left out of every capture line before it is written
(both of the handler's encoders), a name that is not a feature is refused at load, compile
hands the list to the endpoint and to its monitors, and reports say what was redacted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from framework.config.loader import load_config
from framework.errors import ConfigError
from framework.monitoring.columns import unpack
from framework.monitoring.run import Clients, run_monitor
from framework.runtime import capture
from framework.runtime.features import FeatureSpec
from framework.runtime.inference import Prediction, PredictionText
from tests.monitoring.support import WINDOW, put_capture, records, spec, store_with_reference

FEATURES = [FeatureSpec(name="age"), FeatureSpec(name="zip_code"), FeatureSpec(name="dose")]
ROWS = [[41.0, 10115.0, 2.5], [67.0, 80331.0, 1.0]]


def _lines(monkeypatch: pytest.MonkeyPatch, redact: str | None) -> tuple[str, str | None]:
    if redact is None:
        monkeypatch.delenv(capture.REDACT_ENV, raising=False)
    else:
        monkeypatch.setenv(capture.REDACT_ENV, redact)
    prediction = Prediction(labels=["a", "b"], probabilities=[[0.9, 0.1], [0.2, 0.8]],
                            classes=["a", "b"])
    general = capture.capture_lines(
        request_id="r1", ts=1.7e9, endpoint="ep", model="m", version="1.0.0",
        lambda_version="3", latency_ms=1.5, features=FEATURES, rows=ROWS,
        prediction=prediction)
    fmt = capture.LineFormat(endpoint="ep", model="m", version="1.0.0", lambda_version="3",
                             features=FEATURES)
    fast = fmt.lines("r1", capture.iso_utc(1.7e9), 1.5, ROWS,
                     PredictionText(['"a"', '"b"'], ["[0.9,0.1]", "[0.2,0.8]"], '["a","b"]'))
    return general, fast


def test_redacted_inputs_never_reach_a_capture_line(monkeypatch: pytest.MonkeyPatch) -> None:
    general, fast = _lines(monkeypatch, None)
    assert fast == general and "zip_code" in general
    general, fast = _lines(monkeypatch, "zip_code, age")
    assert fast == general
    assert "zip_code" not in general and "10115" not in general and "age" not in general
    assert [unpack(json.loads(line))["inputs"] for line in general.splitlines()] == [
        {"dose": 2.5}, {"dose": 1.0}]


def _project(tmp_path: Path, redact: str) -> Path:
    text = (Path(__file__).resolve().parents[2] / "mlops.yaml").read_text()
    text = text.replace("capture: {sample_rate: 1.0}",
                        f"capture: {{sample_rate: 1.0, redact: [{redact}]}}", 1)
    assert "redact" in text
    (tmp_path / "mlops.yaml").write_text(text)
    return tmp_path / "mlops.yaml"


def test_a_name_that_is_not_a_feature_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_project(tmp_path, "mean_radius, mean_textur"))
    text = str(err.value)
    assert "endpoints.predict.capture.redact[1]: 'mean_textur' is not a feature" in text
    assert "did you mean 'mean_texture'?" in text
    assert "line" in text


def test_compile_hands_the_list_to_the_endpoint_and_its_monitors(tmp_path: Path) -> None:
    from framework.compile.compiler import monitor_spec
    from tests.compile.test_compile import context

    loaded = load_config(_project(tmp_path, "mean_radius, mean_texture"))
    config = loaded.config
    assert config.endpoints["predict"].capture.redact == ("mean_radius", "mean_texture")  # type: ignore[union-attr]
    got = monitor_spec(config, context(project="cancer-dx"), "diagnosis-drift",
                       config.monitors["diagnosis-drift"])
    assert got["redacted"] == ["mean_radius", "mean_texture"]


def test_reports_say_what_was_redacted_and_do_not_test_it() -> None:
    store = store_with_reference()
    rows = records(np.random.default_rng(2), 200, shift={"x1": 3.0})
    for r in rows:
        del r["inputs"]["x1"]  # as the handler writes them
    put_capture(store, rows)
    report = run_monitor(spec(redacted=["x1"]), store, WINDOW, Clients())
    assert report["data"]["redacted"] == ["x1"]
    issues = [i for i in report["issues"] if i.get("feature") == "x1"]
    assert [i["kind"] for i in issues] == ["redacted"]
    assert "redacted at capture" in issues[0]["message"]
    assert "x1" not in [t["feature"] for t in report["drift"]["tests"]]
    assert report["drift"]["tested"] == 5
