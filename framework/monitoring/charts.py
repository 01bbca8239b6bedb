"""Control charts over the history of a monitored figure: EWMA, CUSUM and Page–Hinkley.

Each chart takes the series (oldest first) and returns, per point, the chart statistic, its
control limits and whether the point is out of control. The in-control mean and standard
deviation come from the first ``baseline`` points (or are given, e.g. from the reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chart:
    name: str
    values: list[float]
    statistic: list[float]
    upper: list[float]
    lower: list[float]
    flagged: list[int] = field(default_factory=list)  # indices of out-of-control points
    center: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": self.values, "statistic": self.statistic,
                "upper": self.upper, "lower": self.lower, "flagged": self.flagged,
                "center": self.center}


def _baseline(values: Sequence[float], baseline: int, mean: float | None,
              std: float | None) -> tuple[float, float]:
    head = list(values[:max(baseline, 1)])
    mu = mean if mean is not None else sum(head) / len(head)
    if std is None:
        var = sum((v - mu) ** 2 for v in head) / max(len(head) - 1, 1)
        std = math.sqrt(var)
    return mu, std if std > 0 else max(abs(mu) * 0.01, 1e-9)


def ewma(values: Sequence[float], lam: float = 0.2, width: float = 3.0, baseline: int = 5,
         mean: float | None = None, std: float | None = None) -> Chart:
    """Exponentially weighted moving average with time-varying limits mu ± L sigma_z(t)."""
    if not values:
        return Chart("ewma", [], [], [], [])
    mu, sigma = _baseline(values, baseline, mean, std)
    z = mu
    stat: list[float] = []
    upper: list[float] = []
    lower: list[float] = []
    flagged: list[int] = []
    for i, x in enumerate(values, start=1):
        z = lam * x + (1 - lam) * z
        half = width * sigma * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
        stat.append(z)
        upper.append(mu + half)
        lower.append(mu - half)
        if not mu - half <= z <= mu + half:
            flagged.append(i - 1)
    return Chart("ewma", list(values), stat, upper, lower, flagged, mu)


def cusum(values: Sequence[float], k: float = 0.5, h: float = 5.0, baseline: int = 5,
          mean: float | None = None, std: float | None = None) -> Chart:
    """Tabular two-sided CUSUM in standard-deviation units; ``statistic`` is max(C+, C-)."""
    if not values:
        return Chart("cusum", [], [], [], [])
    mu, sigma = _baseline(values, baseline, mean, std)
    hi = lo = 0.0
    stat: list[float] = []
    flagged: list[int] = []
    for i, x in enumerate(values):
        zx = (x - mu) / sigma
        hi = max(0.0, hi + zx - k)
        lo = max(0.0, lo - zx - k)
        stat.append(max(hi, lo))
        if hi > h or lo > h:
            flagged.append(i)
    n = len(values)
    return Chart("cusum", list(values), stat, [h] * n, [0.0] * n, flagged, 0.0)


def page_hinkley(values: Sequence[float], delta: float = 0.005, threshold: float = 50.0,
                 ) -> Chart:
    """Page–Hinkley test for an upward shift of the mean (cumulative deviation minus its min)."""
    stat: list[float] = []
    flagged: list[int] = []
    mean = 0.0
    total = 0.0
    minimum = 0.0
    for i, x in enumerate(values, start=1):
        mean += (x - mean) / i
        total += x - mean - delta
        minimum = min(minimum, total)
        stat.append(total - minimum)
        if total - minimum > threshold:
            flagged.append(i - 1)
    n = len(values)
    return Chart("page_hinkley", list(values), stat, [threshold] * n, [0.0] * n, flagged, 0.0)
