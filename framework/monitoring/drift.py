"""Data-drift detectors over profiles, and the multiple-testing correction across features.

Every detector subclasses ``Detector`` and implements one method, ``score``, which compares a
reference feature profile with a window's and returns a ``Score``; ``Detector.test`` turns it
into a typed ``TestResult`` against a threshold. Tests with a p-value (KS, chi-squared) flag a
feature when the *corrected* p-value is below alpha; distance tests (PSI, Wasserstein,
Jensen–Shannon) flag it when the distance reaches their threshold.

KS runs on exact values when both profiles still hold them (identical to
``scipy.stats.ks_2samp``), otherwise on the shared fine histogram (the statistic is evaluated at
every bin edge; p-value from scipy's large-sample distribution, or its Kolmogorov limit beyond
``KS_LIMIT_N`` effective samples).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np

from framework.monitoring.profile import CategoricalProfile, FeatureProfile, Floats, NumericProfile


def _scipy() -> tuple[Any, Any]:
    """scipy.stats and scipy.spatial.distance, imported on first use: importing them costs
    about 2 s, which a command that only reads reports (the dashboard) should not pay."""
    from scipy import stats
    from scipy.spatial import distance

    return stats, distance


COARSE_BINS = 10  # PSI / Jensen–Shannon on numeric features: reference deciles
KS_LIMIT_N = 10_000  # sketch KS: above this effective sample size use the limit distribution
EPS = 1e-4  # floor of a bin's share in PSI (avoids log(0))


@dataclass(frozen=True)
class Score:
    statistic: float
    p_value: float | None = None
    method: str = "exact"  # exact | sketch


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test on one feature."""

    feature: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float  # alpha for p-value tests, the distance threshold otherwise
    drifted: bool
    method: str
    p_adjusted: float | None = None
    reference_rows: int = 0
    current_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}


class Detector(ABC):
    """A drift test: one scoring method over a pair of feature profiles."""

    name: ClassVar[str]
    uses_p_value: ClassVar[bool] = False
    default_threshold: ClassVar[float] = 0.1
    numeric: ClassVar[bool] = True
    categorical: ClassVar[bool] = True

    @abstractmethod
    def score(self, reference: FeatureProfile, current: FeatureProfile) -> Score:
        """Compare the window with the reference; larger statistic = more drift."""

    def test(self, feature: str, reference: FeatureProfile, current: FeatureProfile,
             threshold: float | None = None) -> TestResult:
        limit = self.default_threshold if threshold is None else threshold
        if isinstance(reference, NumericProfile) and not self.numeric:
            raise ValueError(f"{self.name} does not apply to numeric feature '{feature}'")
        if isinstance(reference, CategoricalProfile) and not self.categorical:
            raise ValueError(f"{self.name} does not apply to category feature '{feature}'")
        s = self.score(reference, current)
        drifted = (s.p_value is not None and s.p_value < limit) if self.uses_p_value \
            else s.statistic >= limit
        return TestResult(feature, self.name, s.statistic, s.p_value, limit, drifted, s.method,
                          reference_rows=reference.count, current_rows=current.count)


def _cdf_at_edges(p: NumericProfile) -> Floats:
    counts = np.asarray(p.counts, dtype=np.float64)
    return np.cumsum(counts)[:-1] / max(p.count, 1)  # P(X < e_i) for every edge


def _coarse(reference: NumericProfile, current: NumericProfile,
            bins: int = COARSE_BINS) -> tuple[Floats, Floats]:
    """Group the fine bins into ~equal-mass reference bins; return both distributions."""
    ref = np.asarray(reference.counts, dtype=np.float64)
    cur = np.asarray(current.counts, dtype=np.float64)
    before = np.concatenate([[0.0], np.cumsum(ref)[:-1]]) / max(ref.sum(), 1.0)
    group = np.minimum((before * bins).astype(np.int64), bins - 1)
    r = np.bincount(group, weights=ref, minlength=bins)
    c = np.bincount(group, weights=cur, minlength=bins)
    return r / max(r.sum(), 1.0), c / max(c.sum(), 1.0)


def _categorical(reference: CategoricalProfile,
                 current: CategoricalProfile) -> tuple[list[str], Floats, Floats]:
    keys = sorted(set(reference.frequencies) | set(current.frequencies))
    r = np.asarray([reference.frequencies.get(k, 0) for k in keys], dtype=np.float64)
    c = np.asarray([current.frequencies.get(k, 0) for k in keys], dtype=np.float64)
    return keys, r, c


def _shares(reference: FeatureProfile, current: FeatureProfile) -> tuple[Floats, Floats]:
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        return _coarse(reference, current)
    if isinstance(reference, CategoricalProfile) and isinstance(current, CategoricalProfile):
        _, r, c = _categorical(reference, current)
        return r / max(r.sum(), 1.0), c / max(c.sum(), 1.0)
    raise ValueError("reference and current profiles are of different kinds")


class KolmogorovSmirnov(Detector):
    name = "ks"
    uses_p_value = True
    default_threshold = 0.05
    categorical = False

    def score(self, reference: FeatureProfile, current: FeatureProfile) -> Score:
        assert isinstance(reference, NumericProfile) and isinstance(current, NumericProfile)
        stats, _ = _scipy()
        a, b = reference.exact(), current.exact()
        if a is not None and b is not None:
            res = stats.ks_2samp(a, b)
            return Score(float(res.statistic), float(res.pvalue), "exact")
        d = float(np.max(np.abs(_cdf_at_edges(reference) - _cdf_at_edges(current))))
        m, n = sorted([float(reference.count), float(current.count)], reverse=True)
        en = m * n / (m + n)
        # scipy's large-sample two-sided distribution; beyond ~10k effective samples its
        # limit (Kolmogorov's, kstwobign) agrees to ~1e-3 relative and is 100x cheaper.
        p = (stats.kstwobign.sf(d * math.sqrt(en)) if en > KS_LIMIT_N
             else stats.kstwo.sf(d, np.round(en)))
        p = float(np.clip(p, 0.0, 1.0))
        return Score(d, p, "sketch")


class PopulationStability(Detector):
    name = "psi"
    default_threshold = 0.2

    def score(self, reference: FeatureProfile, current: FeatureProfile) -> Score:
        r, c = _shares(reference, current)
        return Score(psi(r, c), None, _method(reference, current))


def psi(expected: Floats, actual: Floats, eps: float = EPS) -> float:
    """Population stability index of two share vectors (shares floored at ``eps``)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


class ChiSquared(Detector):
    """Goodness of fit of the window's category counts to the reference's shares.

    A category the reference never saw gets half a count of expected weight (so the test is
    defined and strongly flags it); the report lists such categories separately.
    """

    name = "chi2"
    uses_p_value = True
    default_threshold = 0.05
    numeric = False

    def score(self, reference: FeatureProfile, current: FeatureProfile) -> Score:
        assert isinstance(reference, CategoricalProfile) and isinstance(current, CategoricalProfile)
        _, r, c = _categorical(reference, current)
        r = np.where(r == 0, 0.5, r)
        expected = r / r.sum() * c.sum()
        if c.sum() == 0 or len(r) < 2:
            return Score(0.0, 1.0, "exact")
        res = _scipy()[0].chisquare(c, expected)
        return Score(float(res.statistic), float(res.pvalue), "exact")


class Wasserstein(Detector):
    """Earth mover's distance, divided by the reference's standard deviation."""

    name = "wasserstein"
    default_threshold = 0.1
    categorical = False

    def score(self, reference: FeatureProfile, current: FeatureProfile) -> Score:
        assert isinstance(reference, NumericProfile) and isinstance(current, NumericProfile)
        scale = reference.std or 1.0
        scale = scale if scale > 0 else 1.0
        a, b = reference.exact(), current.exact()
        if a is not None and b is not None:
            return Score(float(_scipy()[0].wasserstein_distance(a, b)) / scale, None, "exact")
        edges = np.asarray(reference.edges, dtype=np.float64)
        lo = min(edges[0], current.minimum if current.minimum is not None else edges[0])
        hi = max(edges[-1], current.maximum if current.maximum is not None else edges[-1])
        grid = np.concatenate([[lo], edges, [hi]])
        cf = np.concatenate([[0.0], _cdf_at_edges(reference), [1.0]])
        cg = np.concatenate([[0.0], _cdf_at_edges(current), [1.0]])
        # trapezoid rule on |F - G| between consecutive points of the grid
        diff = np.abs(cf - cg)
        area = float(np.sum((diff[1:] + diff[:-1]) / 2.0 * np.diff(grid)))
        return Score(area / scale, None, "sketch")


class JensenShannon(Detector):
    """Jensen–Shannon distance (base 2, in [0, 1]) of binned shares."""

    name = "jensen_shannon"
    default_threshold = 0.1

    def score(self, reference: FeatureProfile, current: FeatureProfile) -> Score:
        r, c = _shares(reference, current)
        if r.sum() == 0 or c.sum() == 0:
            return Score(0.0, None, _method(reference, current))
        return Score(float(_scipy()[1].jensenshannon(r, c, base=2.0)), None,
                     _method(reference, current))


def _method(reference: FeatureProfile, current: FeatureProfile) -> str:
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        return "sketch" if reference.values is None or current.values is None else "exact"
    return "exact"


DETECTORS: dict[str, Detector] = {
    d.name: d for d in (KolmogorovSmirnov(), PopulationStability(), ChiSquared(),
                        Wasserstein(), JensenShannon())
}


def detector(name: str) -> Detector:
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown drift test '{name}'; use one of {', '.join(DETECTORS)}") \
            from None


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Multiple-testing correction: ``benjamini_hochberg``, ``bonferroni`` or ``none``."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0 or method == "none":
        return [float(x) for x in p]
    if method == "bonferroni":
        return [float(x) for x in np.minimum(p * p.size, 1.0)]
    if method == "benjamini_hochberg":
        order = np.argsort(p)
        ranked = p[order] * p.size / np.arange(1, p.size + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty_like(p)
        out[order] = np.minimum(ranked, 1.0)
        return [float(x) for x in out]
    raise ValueError(f"unknown correction '{method}'; use benjamini_hochberg, bonferroni or none")


def correct(results: Sequence[TestResult], method: str) -> list[TestResult]:
    """Apply the correction across the p-value tests of ``results`` and re-decide drift."""
    idx = [i for i, r in enumerate(results) if r.p_value is not None
           and DETECTORS.get(r.test, KolmogorovSmirnov()).uses_p_value]
    adjusted = adjust([results[i].p_value or 0.0 for i in idx], method)
    out = list(results)
    for i, p in zip(idx, adjusted, strict=True):
        out[i] = replace(results[i], p_adjusted=p, drifted=p < results[i].threshold)
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_tests(reference: Mapping[str, FeatureProfile], current: Mapping[str, FeatureProfile],
              choose: Mapping[str, tuple[str, float | None]], correction: str) -> list[TestResult]:
    """Run the chosen ``(test, threshold)`` per feature, then correct across features."""
    results = [detector(test).test(name, reference[name], current[name], threshold)
               for name, (test, threshold) in choose.items()]
    return correct(results, correction)
