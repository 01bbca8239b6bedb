"""Retraining makes the next version a reviewable edit of mlops.yaml."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pytest

from framework.config.loader import load_config
from framework.errors import ConfigError
from framework.retrain import bump_declared_version, next_version, retrain

REPO = Path(__file__).resolve().parents[2]


def test_next_version() -> None:
    assert next_version("1.2.3") == "1.2.4"
    assert next_version("1.2.3", minor=True) == "1.3.0"
    assert next_version("2.0.0-rc.1") == "2.0.0"


def test_bump_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "mlops.yaml"
    original = (REPO / "mlops.yaml").read_text()
    path.write_text(original)
    bump_declared_version(path, "diagnosis", "1.0.1")
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines(),
                                      strict=True) if a != b]
    assert changed == [("    version: 1.0.0                    # semantic version; bump it for "
                        "every new artifact",
                        "    version: 1.0.1                    # semantic version; bump it for "
                        "every new artifact")]


def test_retrain_runs_the_entry_point_and_bumps(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copy(REPO / "mlops.yaml", root / "mlops.yaml")
    before = hashlib.sha256((root / "examples/breast_cancer/artifacts/model.onnx")
                            .read_bytes()).hexdigest()
    done = retrain(root / "mlops.yaml", root / ".mlops", "diagnosis", overrides={"seed": "7"})
    assert (done.parent, done.version) == ("1.0.0", "1.0.1")
    assert done.sha256 != before  # another seed, other bytes
    assert done.metrics["seed"] == 7 and done.metrics["roc_auc"] > 0.9
    assert load_config(root / "mlops.yaml").config.models["diagnosis"].version == "1.0.1"
    assert "--seed 7" in " ".join(done.command)


def test_retrain_without_entry_point_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "mlops.yaml"
    text = (REPO / "mlops.yaml").read_text()
    start = text.index("    training:")
    end = text.index("    # Input contract")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError, match="no training entry point"):
        retrain(path, tmp_path / ".mlops", "diagnosis")


def csv_project(tmp_path: Path) -> tuple[Path, int]:
    from tests.retrain.train_csv import use_csv_training

    root = tmp_path / "proj"
    shutil.copytree(REPO / "examples" / "breast_cancer", root / "examples" / "breast_cancer",
                    ignore=shutil.ignore_patterns("work"))
    shutil.copy(REPO / "mlops.yaml", root / "mlops.yaml")
    return root, use_csv_training(root)


def production_row(root: Path, label: str) -> dict[str, object]:
    with open(root / "examples/breast_cancer/data/holdout.csv", newline="") as fh:
        first = next(csv.DictReader(fh))
    return {**{k: float(v) for k, v in first.items() if k != "diagnosis"}, "diagnosis": label}


def test_retrain_learns_from_production_rows_appended_to_the_training_data(
        tmp_path: Path) -> None:
    root, rows = csv_project(tmp_path)
    data = root / "data" / "train.csv"
    row = production_row(root, "malignant")
    done = retrain(root / "mlops.yaml", root / ".mlops", "diagnosis", production=[row, row])
    assert done.production is not None
    assert (done.production.added, done.production.present) == (1, 1)  # the same row twice
    assert done.metrics["n_train"] == rows + 1  # the command read the appended row
    assert len(data.read_text().splitlines()) == rows + 2  # header + rows + the new one
    assert data.read_text().splitlines()[-1].endswith(",malignant")
    log = (done.out / "training.log").read_text()
    assert f"trained on {rows + 1} rows" in log

    # The version is not kept: the tree is as it was (artifact, data, declared version).
    assert done.before is not None
    done.before.restore()
    assert len(data.read_text().splitlines()) == rows + 1
    assert load_config(root / "mlops.yaml").config.models["diagnosis"].version == "1.0.0"
    artifact = root / "examples/breast_cancer/artifacts/model.onnx"
    assert artifact.read_bytes() == done.before.files[artifact]
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() != done.sha256


def test_a_failed_training_leaves_the_tree_as_it_was(tmp_path: Path) -> None:
    from framework.errors import MlopsError

    root, _ = csv_project(tmp_path)
    data = root / "data" / "train.csv"
    before = data.read_bytes()
    config = root / "mlops.yaml"
    config.write_text(config.read_text().replace(
        "python train_csv.py --out {out} --data data/train.csv --seed {seed}",
        "python -c 'import sys; sys.exit(3)' {out}"))
    with pytest.raises(MlopsError, match="exited 3"):
        retrain(config, root / ".mlops", "diagnosis",
                production=[production_row(root, "benign")])
    assert data.read_bytes() == before  # the appended row was taken back
    assert load_config(config).config.models["diagnosis"].version == "1.0.0"


COPY_COMMAND = ("python -c 'import pathlib, shutil, sys; out = pathlib.Path(sys.argv[1], "
                "\"artifacts\"); out.mkdir(); shutil.copy(sys.argv[2], out)' {out} "
                "examples/breast_cancer/artifacts/model.onnx")


def test_the_next_version_goes_above_the_registered_ones(tmp_path: Path) -> None:
    root, _ = csv_project(tmp_path)
    config = root / "mlops.yaml"
    config.write_text(config.read_text().replace(
        "python train_csv.py --out {out} --data data/train.csv --seed {seed}", COPY_COMMAND))
    done = retrain(root / "mlops.yaml", root / ".mlops", "diagnosis", floor="1.0.4")
    assert (done.parent, done.version) == ("1.0.0", "1.0.5")
    done = retrain(root / "mlops.yaml", root / ".mlops", "diagnosis", floor="0.9.0")
    assert (done.parent, done.version) == ("1.0.5", "1.0.6")


def test_production_needs_declared_training_data(tmp_path: Path) -> None:
    from framework.retrain import check_production

    path = tmp_path / "mlops.yaml"
    path.write_text((REPO / "mlops.yaml").read_text())
    with pytest.raises(ConfigError, match="no training data declared") as caught:
        check_production(path, "diagnosis")
    assert caught.value.exit_code == 2
    text = (REPO / "mlops.yaml").read_text().replace(
        "      metrics: artifacts/metrics.json\n",
        "      metrics: artifacts/metrics.json\n      data: data/train.csv\n").replace(
        "    capture: {sample_rate: 1.0}", "")
    path.write_text(text)
    with pytest.raises(ConfigError, match="no endpoint serving it captures"):
        check_production(path, "diagnosis")


def test_summary_is_a_commit_message_and_a_pull_request_body() -> None:
    from framework.retrain import Proposal, summary_markdown

    text = summary_markdown([Proposal(
        model="diagnosis", parent="1.0.0", version="1.0.1", sha256="ab" * 32,
        metrics={"roc_auc": 0.99, "classes": ["a"]},
        gates=[{"gate": "recall", "expected": ">=0.85", "measured": 0.93, "passed": True}],
        reference="s3://b/models/diagnosis/1.0.1/model.onnx",
        production={"window": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-08T00:00:00Z"},
                    "file": "data/train.csv", "added": 12, "present": 3},
        requests=[{"key": "retrain/diagnosis/r1.json", "monitor": "diagnosis-drift",
                   "run_id": "r1"}])], stage="prod")
    title, blank, *body = text.splitlines()
    assert title == "mlops: retrained diagnosis 1.0.0 → 1.0.1" and blank == ""
    body_text = "\n".join(body)
    assert "`s3://b/models/diagnosis/1.0.1/model.onnx` (`diagnosis@1.0.1`)" in body_text
    assert "training metrics: roc_auc 0.99" in body_text
    assert "12 labelled row(s) appended to `data/train.csv` (3 already there)" in body_text
    assert "retrain request `retrain/diagnosis/r1.json` (monitor diagnosis-drift, run r1)" \
        in body_text
    assert "| recall | >=0.85 | 0.93 | pass |" in body_text
