"""Schedules and verdicts are pure."""

from __future__ import annotations

import pytest

from framework.config.models import Rollout, Watch
from framework.rollout.strategy import Health, judge, schedule


def weights(**kw: object) -> list[tuple[int, bool, bool]]:
    return [(s.weight, s.mirror, s.bake) for s in schedule(Rollout.model_validate(kw))]


def test_schedules() -> None:
    assert weights() == [(100, False, False)]
    assert weights(strategy="canary", steps=[5, 25, 100]) == [
        (5, False, True), (25, False, True), (100, False, False)]
    assert weights(strategy="linear", increment=30) == [
        (30, False, True), (60, False, True), (90, False, True), (100, False, False)]
    assert weights(strategy="blue_green") == [(100, False, True)]
    assert weights(strategy="shadow") == [(0, True, True), (100, False, False)]


@pytest.mark.parametrize("steps", [[50, 10, 100], [10, 50], [0, 100], []])
def test_bad_canary_steps(steps: list[int]) -> None:
    with pytest.raises(ValueError, match="canary steps"):
        Rollout.model_validate({"strategy": "canary", "steps": steps})


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        Rollout.model_validate({"every": "soon"})


def test_verdicts() -> None:
    watch = Watch(error_rate=0.05, invalid_rate=0.2, p99_latency_ms=100, min_requests=10)
    assert judge(Health(requests=50, errors=1, p99_ms=20), watch).healthy
    bad = judge(Health(requests=50, errors=10), watch)
    assert not bad.healthy and bad.enough and "error rate 20.0%" in bad.reason
    slow = judge(Health(requests=50, p99_ms=250), watch)
    assert not slow.healthy and "p99 latency 250.0 ms" in slow.reason
    invalid = judge(Health(requests=50, invalid=20), watch)
    assert not invalid.healthy and "invalid-input" in invalid.reason
    few = judge(Health(requests=3), watch)
    assert few.healthy and not few.enough
    drift = judge(Health(requests=50, drift=True), Watch(drift=True))
    assert not drift.healthy and "drift" in drift.reason
    shadow = judge(Health(compared=40, agreement=0.8), Watch(shadow_agreement=0.95),
                   shadow=True)
    assert not shadow.healthy and "shadow agreement 80.0%" in shadow.reason


def test_prometheus_quantile_from_buckets() -> None:
    from framework.rollout.health import _quantile, parse_prometheus

    text = ('# TYPE x histogram\n'
            'mlops_request_duration_seconds_bucket{endpoint="p",version="2",le="0.01"} 90\n'
            'mlops_request_duration_seconds_bucket{endpoint="p",version="2",le="0.1"} 100\n'
            'mlops_request_duration_seconds_bucket{endpoint="p",version="2",le="+Inf"} 100\n')
    rows = parse_prometheus(text)
    assert rows[0] == ("mlops_request_duration_seconds_bucket",
                       {"endpoint": "p", "version": "2", "le": "0.01"}, 90.0)
    buckets = sorted((float(labels["le"]), v) for _, labels, v in rows)
    assert _quantile(buckets, 0.5) == pytest.approx(0.01 * 50 / 90)
    assert _quantile(buckets, 0.99) == pytest.approx(0.01 + 0.09 * 9 / 10)
    # Ten cold starts (the slowest ten) left out: p99 of the other 90 falls in the first bucket.
    assert _quantile(buckets, 0.99, slowest_excluded=10) == pytest.approx(0.01 * 89.1 / 90)


def test_output_drift() -> None:
    import numpy as np

    from framework.rollout.drift import output_drift

    rng = np.random.default_rng(1)
    mix = list(rng.choice(["a", "b"], size=200, p=[0.6, 0.4]))
    same = list(rng.choice(["a", "b"], size=200, p=[0.6, 0.4]))
    assert output_drift(mix, same)[0] is False
    assert output_drift(mix, ["a"] * 200)[0] is True
    assert output_drift(mix, ["a"] * 5)[0] is None  # too few to judge
    nums = list(rng.normal(size=300))
    assert output_drift(nums, list(rng.normal(size=300)))[0] is False
    assert output_drift(nums, list(rng.normal(loc=1.0, size=300)))[0] is True


def test_shadow_is_refused_where_nothing_mirrors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path
    from types import SimpleNamespace

    from framework.config.models import TargetKind
    from framework.errors import ConfigError
    from framework.workflow import Workspace, check_target_support

    repo = Path(__file__).resolve().parents[2]
    path = tmp_path / "mlops.yaml"
    path.write_text((repo / "mlops.yaml").read_text().replace("strategy: canary",
                                                              "strategy: shadow"))
    ws = Workspace.open(path, "prod")
    aws = SimpleNamespace(ws=ws, target=SimpleNamespace(kind=TargetKind.aws))
    with pytest.raises(ConfigError, match="shadow rollouts need request mirroring"):
        check_target_support(aws)  # type: ignore[arg-type]
    local = SimpleNamespace(ws=ws, target=SimpleNamespace(kind=TargetKind.local))
    check_target_support(local)  # type: ignore[arg-type]
