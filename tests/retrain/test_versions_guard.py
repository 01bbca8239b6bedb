"""A declared version below the one the stage runs is refused, unless it is meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config.loader import load_config
from framework.config.models import Config
from framework.errors import ConfigError
from framework.plan.state import Entry, State
from framework.versions_guard import check, deployed_versions, downgrades

CONFIG = """\
project: shop
models:
  churn:
    version: {churn}
    artifact: model.onnx
    features: [{{name: tenure, type: float}}]
  other:
    version: 2.0.0
    artifact: other.onnx
    features: [{{name: x, type: float}}]
endpoints:
  score:
    model: {served}
    route: POST /churn
"""


def config(tmp_path: Path, churn: str = "1.2.0", served: str = "churn") -> Config:
    (tmp_path / "mlops.yaml").write_text(CONFIG.format(churn=churn, served=served))
    return load_config(tmp_path / "mlops.yaml").config


def state(registered: str, served: str) -> State:
    return State(project="shop", stage="dev", resources={
        f"model.churn@{registered}": Entry("model_version", {"name": "churn",
                                                             "version": registered}, {}),
        "model.other@2.0.0": Entry("model_version", {"name": "other", "version": "2.0.0"}, {}),
        "function.score": Entry("lambda_function", {"environment": {
            "MLOPS_ENDPOINT": "score", "MLOPS_MODEL_NAME": "churn",
            "MLOPS_MODEL_VERSION": served}}, {}),
        "function.mon-drift": Entry("lambda_function", {"environment": {
            "MLOPS_MONITOR": "{}"}}, {}),
    })


def test_deployed_versions_come_from_the_state() -> None:
    found = deployed_versions(state("1.2.1", "1.2.1"))
    assert [(r.version, r.where) for r in found["churn"]] == [
        ("1.2.1", "model.churn@1.2.1 in the deploy state"),
        ("1.2.1", "served by endpoint score")]
    assert set(found) == {"churn", "other"}


def test_same_or_higher_is_fine(tmp_path: Path) -> None:
    assert downgrades(config(tmp_path, "1.2.1"), state("1.2.1", "1.2.1")) == []
    assert downgrades(config(tmp_path, "1.3.0"), state("1.2.1", "1.2.1")) == []
    assert downgrades(config(tmp_path, "1.0.0"), State(project="shop", stage="dev")) == []


def test_lower_is_refused_with_a_reason_and_a_hint(tmp_path: Path) -> None:
    cfg = config(tmp_path, "1.2.0")
    (found,) = downgrades(cfg, state("1.2.1", "1.2.1"))
    assert (found.model, found.declared, found.deployed) == ("churn", "1.2.0", "1.2.1")
    with pytest.raises(ConfigError) as caught:
        check(cfg, state("1.2.1", "1.2.1"), source="mlops.yaml", allow=False)
    assert caught.value.exit_code == 2
    (problem,) = caught.value.problems
    assert problem.where == "models.churn.version"
    assert "1.2.0 is below 1.2.1, deployed to shop/dev" in problem.what
    assert "--allow-downgrade" in problem.hint


def test_a_pre_release_is_below_its_release(tmp_path: Path) -> None:
    (found,) = downgrades(config(tmp_path, "1.2.1-rc.1"), state("1.2.1", "1.2.1"))
    assert found.deployed == "1.2.1"


def test_the_highest_recorded_version_counts(tmp_path: Path) -> None:
    # A rollout left the endpoint on a newer version than the one registered by the state.
    (found,) = downgrades(config(tmp_path, "1.2.1"), state("1.2.1", "1.3.0"))
    assert (found.deployed, found.where) == ("1.3.0", "served by endpoint score")


def test_allow_downgrade_turns_it_into_a_warning(tmp_path: Path) -> None:
    warnings = check(config(tmp_path, "1.2.0"), state("1.2.1", "1.2.1"), source="x", allow=True)
    assert warnings == ["downgrade allowed: mlops.yaml declares churn 1.2.0, below 1.2.1, "
                        "deployed (model.churn@1.2.1 in the deploy state)"]


def test_an_endpoint_serving_through_the_registry_is_not_compared(tmp_path: Path) -> None:
    # The endpoint serves churn@production: a promotion or rollback of the alias is meant.
    cfg = config(tmp_path, "1.2.1", served="churn@production")
    assert downgrades(cfg, state("1.2.1", "1.4.0")) == []
    assert downgrades(config(tmp_path, "1.2.0", served="churn@production"),
                      state("1.2.1", "1.4.0"))[0].deployed == "1.2.1"
