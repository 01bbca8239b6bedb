"""Rollout strategies as CodeDeploy traffic shapes are pure: which declared steps map onto a
canary, a linear shift or all at once, which are refused (and how), and what AWS's minutes
refuse."""

from __future__ import annotations

import pytest

from framework.config.models import Rollout
from framework.rollout.strategy import (
    ALL_AT_ONCE,
    CANARY,
    LINEAR,
    Shape,
    Unmappable,
    minutes_problem,
    shape,
)


def shaped(**kw: object) -> Shape | Unmappable:
    return shape(Rollout.model_validate(kw))


@pytest.mark.parametrize(("declared", "routing", "percentage", "steps"), [
    ({"strategy": "canary", "steps": [10, 100]}, CANARY, 10, [10, 100]),
    ({"strategy": "canary", "steps": [50, 100]}, CANARY, 50, [50, 100]),
    ({"strategy": "canary", "steps": [25, 50, 75, 100]}, LINEAR, 25, [25, 50, 75, 100]),
    ({"strategy": "canary", "steps": [100]}, ALL_AT_ONCE, 0, [100]),
    ({"strategy": "linear", "increment": 30}, LINEAR, 30, [30, 60, 90, 100]),
    ({"strategy": "linear", "increment": 100}, ALL_AT_ONCE, 0, [100]),
    ({"strategy": "blue_green"}, ALL_AT_ONCE, 0, [100]),
    ({"strategy": "shadow"}, ALL_AT_ONCE, 0, [100]),
])
def test_declared_steps_map_onto_codedeploy_shapes(declared: dict[str, object], routing: str,
                                                    percentage: int, steps: list[int]) -> None:
    got = shaped(every="15s", **declared)
    assert isinstance(got, Shape)
    assert (got.routing, got.percentage, got.steps) == (routing, percentage, steps)
    if routing != ALL_AT_ONCE:
        assert got.interval_s == 15


def test_steps_codedeploy_cannot_run_are_refused_with_a_hint() -> None:
    got = shaped(strategy="canary", steps=[10, 50, 100])
    assert isinstance(got, Unmappable)
    assert "[10, 50, 100] are not a traffic shift CodeDeploy runs" in got.what
    assert "steps: [10, 100]" in got.hint and "increment: 10" in got.hint
    assert isinstance(shaped(strategy="canary", steps=[20, 50, 100]), Unmappable)
    assert isinstance(shaped(strategy="canary", steps=[30, 60, 100]), Unmappable)  # 90 missing


def test_descriptions_and_names() -> None:
    canary = shaped(strategy="canary", steps=[10, 100], every="15s")
    assert isinstance(canary, Shape)
    assert canary.describe() == "canary 10% for 15s, then 100%"
    assert canary.slug() == "Canary10Percent15Seconds"
    linear = shaped(strategy="linear", increment=25, every="2m")
    assert isinstance(linear, Shape)
    assert linear.describe() == "linear 25% every 2m"
    assert linear.slug() == "Linear25PercentEvery2Minutes"
    one = shaped(strategy="canary", steps=[5, 100], every="1m")
    assert isinstance(one, Shape) and one.slug() == "Canary5Percent1Minute"
    assert shaped(strategy="blue_green").describe() == "all at once"  # type: ignore[union-attr]


def test_codedeploy_on_aws_counts_whole_minutes() -> None:
    assert minutes_problem(60) is None and minutes_problem(600) is None
    said = minutes_problem(90)
    assert said is not None and "1m30s" not in said and "90s is not whole minutes" in said
    assert minutes_problem(15) is not None


@pytest.mark.parametrize("steps", [[50, 10, 100], [10, 50], [0, 100], []])
def test_bad_canary_steps(steps: list[int]) -> None:
    with pytest.raises(ValueError, match="canary steps"):
        Rollout.model_validate({"strategy": "canary", "steps": steps})


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        Rollout.model_validate({"every": "soon"})


def test_shadow_is_accepted_on_every_target(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path
    from types import SimpleNamespace

    from framework.config.models import TargetKind
    from framework.workflow import Workspace, check_target_support

    repo = Path(__file__).resolve().parents[2]
    path = tmp_path / "mlops.yaml"
    path.write_text((repo / "mlops.yaml").read_text().replace("strategy: canary",
                                                              "strategy: shadow"))
    ws = Workspace.open(path, "prod")
    for kind in TargetKind:  # the serving function copies requests itself, on every target
        check_target_support(SimpleNamespace(ws=ws, target=SimpleNamespace(kind=kind)))  # type: ignore[arg-type]
