"""Production data as a training set: captures joined with feedback labels, written as CSV or
JSON lines, and appended to the declared training data."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from framework.config.loader import load_config
from framework.config.models import Config
from framework.data_export import (
    append_training_rows,
    capturing_endpoints,
    export,
    label_column,
    parse_window,
    production_rows,
    write_csv,
    write_file,
    write_jsonl,
)
from framework.errors import ConfigError
from framework.monitoring.spec import Window
from framework.monitoring.store import MemoryStore
from framework.runtime.capture import capture_lines, day
from framework.runtime.features import FeatureSpec, Rows
from framework.runtime.feedback import feedback_lines
from framework.runtime.inference import Prediction

CONFIG = """\
project: shop
models:
  churn:
    version: 1.2.0
    artifact: model.onnx
    holdout: {path: holdout.csv, label: churned}
    features:
      - {name: tenure, type: float, min: 0}
      - {name: plan, type: category, values: [basic, pro]}
  other:
    version: 1.0.0
    artifact: other.onnx
    features:
      - {name: x, type: float}
endpoints:
  score:
    model: churn
    route: POST /churn
    capture: {sample_rate: 1.0}
  plain:
    model: other
    route: POST /other
"""
FEATURES = [FeatureSpec("tenure"), FeatureSpec("plan", type="category", values=("basic", "pro"))]
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(days=1), T0 + timedelta(hours=1))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "mlops.yaml").write_text(CONFIG)
    return load_config(tmp_path / "mlops.yaml").config


def capture(store: MemoryStore, request_id: str, rows: Rows, ts: float,
            model: str = "churn", name: str = "a") -> None:
    text = capture_lines(request_id=request_id, ts=ts, endpoint="score", model=model,
                         version="1.2.0", lambda_version="3", latency_ms=1.0,
                         features=FEATURES, rows=rows,
                         prediction=Prediction(["no"] * len(rows), None, ["no", "yes"]))
    store.put(f"capture/score/dt={day(ts)}/{name}.gz", gzip.compress(text.encode()), "")


def feedback(store: MemoryStore, items: list[dict[str, object]], ts: float, name: str) -> None:
    store.put(f"feedback/score/dt={day(ts)}/{name}.gz",
              gzip.compress(feedback_lines(items, ts, "score").encode()), "")


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    ts = T0.timestamp()
    capture(s, "r1", [[3.0, "basic"], [14.5, "pro"]], ts - 60, name="a")
    capture(s, "r1", [[3.0, "basic"], [14.5, "pro"]], ts - 60, name="a-again")  # redelivered
    capture(s, "r2", [[7.0, "pro"]], ts - 30, name="b")
    capture(s, "r3", [[1.0, "basic"]], ts - 20, model="legacy", name="c")
    capture(s, "r4", [[9.0, "basic"]], ts - 3 * 86400, name="d")  # before the window
    feedback(s, [{"request_id": "r1", "row": 1, "label": "yes"},
                 {"request_id": "r2", "row": 0, "label": "no"}], ts, "f1")
    s.put(f"capture/score/dt={day(ts)}/broken.gz", b"not gzip", "")
    return s


def test_rows_are_the_features_and_the_label_joined_by_request_id(
        config: Config, store: MemoryStore) -> None:
    result, rows = export(store, config, "score", WINDOW)
    got = list(rows)
    assert result.columns == ("tenure", "plan", "churned")
    assert got == [{"tenure": 3.0, "plan": "basic", "churned": None},
                   {"tenure": 14.5, "plan": "pro", "churned": "yes"},
                   {"tenure": 7.0, "plan": "pro", "churned": "no"}]
    assert (result.rows, result.labelled, result.unlabelled) == (3, 2, 1)
    summary = result.summary()
    assert summary["repeated"] == 2 and summary["feedback_labels"] == 2
    assert {i["kind"] for i in summary["issues"]} == {"corrupt_file", "skipped_records"}
    assert any("another model" in p for p in result.problems())
    assert any("broken.gz" in p for p in result.problems())


def test_labelled_only_leaves_out_rows_without_feedback(config: Config, store: MemoryStore) -> None:
    result, rows = export(store, config, "score", WINDOW, labelled_only=True)
    assert [r["churned"] for r in rows] == ["yes", "no"]
    assert (result.rows, result.labelled, result.unlabelled) == (2, 2, 1)


def test_csv_and_jsonl(config: Config, store: MemoryStore, tmp_path: Path) -> None:
    result, rows = export(store, config, "score", WINDOW)
    buf = io.StringIO()
    write_csv(result.columns, rows, buf)
    assert buf.getvalue().splitlines() == ["tenure,plan,churned", "3.0,basic,", "14.5,pro,yes",
                                           "7.0,pro,no"]
    buf = io.StringIO()
    write_jsonl([{"a": 1, "label": None}, {"a": 2, "label": True}], buf)
    assert [json.loads(line) for line in buf.getvalue().splitlines()] == [
        {"a": 1, "label": None}, {"a": 2, "label": True}]
    _, rows = export(store, config, "score", WINDOW)
    write_file(tmp_path / "out" / "x.csv", "csv", result.columns, rows)
    assert len((tmp_path / "out" / "x.csv").read_text().splitlines()) == 4
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.csv"]  # no partial file left


def test_label_column_and_capturing_endpoints(config: Config) -> None:
    assert label_column(config.models["churn"]) == "churned"
    assert label_column(config.models["other"]) == "label"  # no hold-out declared
    assert capturing_endpoints(config, "churn") == ["score"]
    assert capturing_endpoints(config, "other") == []


def test_parse_window() -> None:
    assert parse_window("7d", T0) == Window(T0 - timedelta(days=7), T0)
    assert parse_window("90m", T0).start == T0 - timedelta(minutes=90)
    assert parse_window("2026-03-01..2026-03-02", T0).end == datetime(2026, 3, 2, tzinfo=UTC)
    for bad in ("7 weeks", "", "0d", "2026-03-02..2026-03-01"):
        with pytest.raises(ValueError):
            parse_window(bad, T0)


def test_append_keeps_the_file_columns_and_skips_rows_already_there(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("plan,tenure,note,churned\nbasic,3.0,,no")  # no final newline
    rows = [{"tenure": 3.0, "plan": "basic", "churned": "no"},  # already there
            {"tenure": 14.5, "plan": "pro", "churned": "yes"},
            {"tenure": 14.5, "plan": "pro", "churned": "yes"}]  # twice in the window
    done = append_training_rows(path, "models.churn.training.data", ["tenure", "plan"],
                                "churned", rows)
    assert (done.added, done.present, done.columns_left_empty) == (1, 2, ("note",))
    assert list(csv.reader(path.open())) == [["plan", "tenure", "note", "churned"],
                                             ["basic", "3.0", "", "no"],
                                             ["pro", "14.5", "", "yes"]]
    again = append_training_rows(path, "x", ["tenure", "plan"], "churned", rows)
    assert (again.added, again.present) == (0, 3)


def test_append_refuses_a_file_without_the_label_column(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("tenure,plan\n1,basic\n")
    with pytest.raises(ConfigError, match="no column 'churned'") as caught:
        append_training_rows(path, "models.churn.training.data", ["tenure", "plan"], "churned",
                             [])
    assert caught.value.exit_code == 2
    with pytest.raises(ConfigError, match="does not exist"):
        append_training_rows(tmp_path / "nope.csv", "w", ["tenure"], "churned", [])


def test_production_rows_are_the_labelled_rows_of_every_capturing_endpoint(
        config: Config, store: MemoryStore) -> None:
    rows, exports = production_rows(store, config, "churn", WINDOW)
    assert [r["churned"] for r in rows] == ["yes", "no"]
    assert [(e.endpoint, e.labelled, e.unlabelled) for e in exports] == [("score", 2, 1)]
