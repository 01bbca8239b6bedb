"""Rollout strategies as step schedules, and the health verdict on a candidate. Pure.

A schedule is the list of steps the candidate goes through; each step puts a share of the
traffic on it (Lambda alias weights) for one bake time. ``shadow`` keeps every answer on the
stable version while the candidate gets a copy of the traffic; ``blue_green`` switches all
traffic at once and keeps the stable version ready for an instant switch back while it bakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from framework.config.models import Rollout, Strategy, Watch


@dataclass(frozen=True)
class Step:
    weight: int  # percent of the traffic answered by the candidate
    mirror: bool = False  # the candidate also sees a copy of the stable version's traffic
    bake: bool = True  # wait and judge before the next step


def schedule(rollout: Rollout) -> list[Step]:
    strategy = rollout.strategy
    if strategy is Strategy.all_at_once:
        return [Step(100, bake=False)]
    if strategy is Strategy.canary:
        return [Step(w, bake=w < 100) for w in rollout.steps]
    if strategy is Strategy.linear:
        weights = list(range(rollout.increment, 100, rollout.increment)) + [100]
        return [Step(w, bake=w < 100) for w in weights]
    if strategy is Strategy.blue_green:
        return [Step(100, bake=True)]
    if strategy is Strategy.shadow:
        return [Step(0, mirror=True, bake=True), Step(100, bake=False)]
    raise ValueError(f"unknown strategy {strategy}")


@dataclass(frozen=True)
class Health:
    """What the candidate did during a step."""

    requests: int = 0
    errors: int = 0  # 5xx and function errors
    invalid: int = 0  # 4xx: requests the candidate rejected
    p99_ms: float | None = None
    drift: bool | None = None  # a monitor flagged drift on the candidate's traffic
    agreement: float | None = None  # shadow: share of equal predictions
    compared: int = 0  # shadow: requests compared

    def to_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "errors": self.errors, "invalid": self.invalid,
                "p99_ms": self.p99_ms, "drift": self.drift, "agreement": self.agreement,
                "compared": self.compared}


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    enough: bool  # were there enough requests to judge
    reason: str


def judge(health: Health, watch: Watch, *, shadow: bool = False) -> Verdict:
    """Healthy, unhealthy (with the reason), or not enough traffic yet."""
    n = health.compared if shadow else health.requests
    if health.requests > 0:  # shadow steps count the mirrored requests too
        error_rate = health.errors / health.requests
        if error_rate > watch.error_rate:
            return Verdict(False, True, f"error rate {error_rate:.1%} > {watch.error_rate:.1%} "
                                        f"({health.errors} of {health.requests} requests)")
        if watch.invalid_rate is not None:
            invalid_rate = health.invalid / health.requests
            if invalid_rate > watch.invalid_rate:
                return Verdict(False, True, f"invalid-input rate {invalid_rate:.1%} > "
                                            f"{watch.invalid_rate:.1%}")
        if (watch.p99_latency_ms is not None and health.p99_ms is not None
                and health.p99_ms > watch.p99_latency_ms):
            return Verdict(False, True, f"p99 latency {health.p99_ms:.1f} ms > "
                                        f"{watch.p99_latency_ms:g} ms")
    if watch.drift and health.drift:
        return Verdict(False, True, "a monitor flagged drift in the candidate's traffic")
    if shadow and watch.shadow_agreement is not None and health.agreement is not None \
            and n > 0 and health.agreement < watch.shadow_agreement:
        return Verdict(False, True, f"shadow agreement {health.agreement:.1%} < "
                                    f"{watch.shadow_agreement:.1%} ({n} compared)")
    if n < watch.min_requests:
        return Verdict(True, False, f"{n} of {watch.min_requests} requests needed to judge")
    return Verdict(True, True, f"healthy over {n} requests")
