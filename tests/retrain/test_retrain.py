"""Retraining makes the next version a reviewable edit of mlops.yaml."""

from __future__ import annotations

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
