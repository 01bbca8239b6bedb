"""Rollout strategies as CodeDeploy traffic shapes. Pure.

A new version reaches an endpoint's traffic through an AWS CodeDeploy deployment of its
``live`` alias, on every target (the local AWS runs CodeDeploy too: ``framework/local/
codedeploy.py``). CodeDeploy shifts a Lambda alias' traffic in one of three shapes, and
mlops.yaml's strategies map onto them:

| declared                                   | CodeDeploy deployment config                  |
|--------------------------------------------|-----------------------------------------------|
| ``all_at_once``                            | none: the alias moves itself (no deployment)  |
| ``canary``, ``steps: [P, 100]``            | ``TimeBasedCanary``: P% for ``every``, then all |
| ``canary``, ``steps: [N, 2N, …, 100]``     | ``TimeBasedLinear``: N% more every ``every``  |
| ``canary``, ``steps: [100]``               | ``AllAtOnce``                                 |
| ``linear``, ``increment: N``               | ``TimeBasedLinear``: N% more every ``every``  |
| ``blue_green``                             | ``AllAtOnce`` after the pre-traffic check     |
| ``shadow``                                 | ``AllAtOnce`` after the pre-traffic check     |

Any other list of canary steps (``[10, 50, 100]``: two different increments) is not a shape
CodeDeploy has, and is refused with a reason and a hint (``Unmappable``). CodeDeploy counts
intervals in whole minutes: a bake time that is not whole minutes is refused for stages on AWS
and LocalStack by the plan (``minutes_problem``); the local AWS counts them in seconds, so
bake times of seconds can be tried locally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from framework.config.models import Rollout, Strategy, parse_duration

Routing = Literal["AllAtOnce", "TimeBasedCanary", "TimeBasedLinear"]
ALL_AT_ONCE: Routing = "AllAtOnce"
CANARY: Routing = "TimeBasedCanary"
LINEAR: Routing = "TimeBasedLinear"
PREDEFINED_ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"  # CodeDeploy's own config
CODEDEPLOY = frozenset({Strategy.canary, Strategy.linear, Strategy.blue_green, Strategy.shadow})


@dataclass(frozen=True)
class Shape:
    """How a CodeDeploy deployment shifts the alias' traffic."""

    routing: Routing
    percentage: int = 0  # canary: the first step; linear: the increment
    interval_s: int = 0  # the bake time of each step, as declared (``every``)

    @property
    def steps(self) -> list[int]:
        """Percent of the traffic on the new version at each step."""
        if self.routing == CANARY:
            return [self.percentage, 100]
        if self.routing == LINEAR:
            return [*range(self.percentage, 100, self.percentage), 100]
        return [100]

    def describe(self) -> str:
        """'canary 10% for 15s, then 100%' / 'linear 25% every 15s' / 'all at once'."""
        every = duration_text(self.interval_s)
        if self.routing == CANARY:
            return f"canary {self.percentage}% for {every}, then 100%"
        if self.routing == LINEAR:
            return f"linear {self.percentage}% every {every}"
        return "all at once"

    def slug(self) -> str:
        """A name part in the style of CodeDeploy's own configs (``Canary10Percent15Seconds``)."""
        every = duration_slug(self.interval_s)
        if self.routing == CANARY:
            return f"Canary{self.percentage}Percent{every}"
        if self.routing == LINEAR:
            return f"Linear{self.percentage}PercentEvery{every}"
        return "AllAtOnce"


@dataclass(frozen=True)
class Unmappable:
    """Declared steps that no CodeDeploy shape runs: why, and what to declare instead."""

    what: str
    hint: str


def duration_text(seconds: int) -> str:
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def duration_slug(seconds: int) -> str:
    for unit, size in (("Hour", 3600), ("Minute", 60)):
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n}{unit}{'s' if n != 1 else ''}"
    return f"{seconds}Second{'s' if seconds != 1 else ''}"


def bake_seconds(rollout: Rollout) -> int:
    return max(1, math.ceil(parse_duration(rollout.every)))


def shape(rollout: Rollout) -> Shape | Unmappable:
    """The CodeDeploy shape of ``rollout`` (which must not be all_at_once), or why none."""
    every = bake_seconds(rollout)
    strategy = rollout.strategy
    if strategy in (Strategy.blue_green, Strategy.shadow):
        return Shape(ALL_AT_ONCE)
    if strategy is Strategy.linear:
        if rollout.increment >= 100:
            return Shape(ALL_AT_ONCE)
        return Shape(LINEAR, rollout.increment, every)
    if strategy is not Strategy.canary:
        raise ValueError(f"{strategy.value} rollouts run no deployment")
    steps = list(rollout.steps)
    if steps == [100]:
        return Shape(ALL_AT_ONCE)
    if len(steps) == 2:
        return Shape(CANARY, steps[0], every)
    first = steps[0]
    if steps == [*range(first, 100, first), 100]:
        return Shape(LINEAR, first, every)
    return Unmappable(
        what=f"steps {steps} are not a traffic shift CodeDeploy runs: a Lambda deployment "
             "moves a share of the traffic once and then all of it (canary), or moves the "
             "same share more at every step (linear)",
        hint=f"declare steps: [{first}, 100] (canary), or strategy: linear with increment: "
             f"{first} (steps {first}, {2 * first}, …, 100)")


def minutes_problem(interval_s: int) -> str | None:
    """Why CodeDeploy on AWS cannot run a bake time of ``interval_s``, or None."""
    if interval_s % 60 == 0:
        return None
    return (f"a bake time of {duration_text(interval_s)} is not whole minutes: CodeDeploy "
            "counts a canary's or a linear deployment's intervals in minutes")
