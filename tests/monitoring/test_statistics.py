"""Each drift statistic against scipy or hand-computed values; correction; profiles merge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from framework.monitoring import drift
from framework.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    ProfileBuilder,
    build_reference,
    profile_reference,
)

FEAT = [{"name": "x", "type": "float"}]


def _pair(a: np.ndarray, b: np.ndarray, exact: bool) -> tuple[NumericProfile, NumericProfile]:
    limit = 10**9 if exact else 0
    ref = build_reference({"x": a.tolist()}, FEAT, exact_limit=limit)
    builder = ProfileBuilder(ref, exact_limit=limit)
    builder.add_columns({"x": b})
    r, c = ref.features["x"], builder.result().features["x"]
    assert isinstance(r, NumericProfile) and isinstance(c, NumericProfile)
    return r, c


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n,m", [(50, 80), (400, 300), (3000, 12000)])
def test_ks_exact_matches_scipy(seed: int, n: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n), rng.normal(0.2, 1.1, m)
    r, c = _pair(a, b, exact=True)
    got = drift.KolmogorovSmirnov().score(r, c)
    want = stats.ks_2samp(a, b)
    assert got.method == "exact"
    assert got.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert got.p_value == pytest.approx(want.pvalue, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3, 1.0])
def test_ks_sketch_within_001_of_exact(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 50_000), rng.normal(shift, 1, 80_000)
    r, c = _pair(a, b, exact=False)
    got = drift.KolmogorovSmirnov().score(r, c)
    assert got.method == "sketch"
    assert abs(got.statistic - stats.ks_2samp(a, b).statistic) < 0.01


def test_psi_matches_hand_computation() -> None:
    expected = np.array([0.5, 0.3, 0.2])
    actual = np.array([0.4, 0.4, 0.2])
    hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3) + 0.0
    assert drift.psi(expected, actual) == pytest.approx(hand, rel=1e-12)
    ref = CategoricalProfile({"a": 50, "b": 30, "c": 20})
    cur = CategoricalProfile({"a": 40, "b": 40, "c": 20})
    assert drift.PopulationStability().score(ref, cur).statistic == pytest.approx(hand)


def test_chi2_matches_hand_computation() -> None:
    ref = CategoricalProfile({"a": 50, "b": 30, "c": 20})
    cur = CategoricalProfile({"a": 30, "b": 40, "c": 30})
    # expected = 100 * (0.5, 0.3, 0.2) = (50, 30, 20)
    hand = (30 - 50) ** 2 / 50 + (40 - 30) ** 2 / 30 + (30 - 20) ** 2 / 20
    got = drift.ChiSquared().score(ref, cur)
    assert got.statistic == pytest.approx(hand)
    assert got.p_value == pytest.approx(stats.chi2.sf(hand, 2))


def test_chi2_flags_unseen_category() -> None:
    ref = CategoricalProfile({"a": 500, "b": 500})
    cur = CategoricalProfile({"a": 40, "b": 40, "zzz": 20})
    assert drift.ChiSquared().test("c", ref, cur, 0.05).drifted


def test_wasserstein_exact_and_sketch() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 2, 20_000), rng.normal(1, 2, 20_000)
    r, c = _pair(a, b, exact=True)
    exact = drift.Wasserstein().score(r, c)
    assert exact.statistic == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a, ddof=1))
    r2, c2 = _pair(a, b, exact=False)
    assert drift.Wasserstein().score(r2, c2).statistic == pytest.approx(exact.statistic, abs=0.02)


def test_jensen_shannon_zero_for_same_and_positive_for_shift() -> None:
    same = CategoricalProfile({"a": 10, "b": 10})
    assert drift.JensenShannon().score(same, same).statistic == pytest.approx(0.0, abs=1e-9)
    other = CategoricalProfile({"a": 19, "b": 1})
    assert drift.JensenShannon().test("c", same, other).drifted


def test_benjamini_hochberg_and_bonferroni() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    assert drift.adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.8])
    # BH: sorted 0.01,0.03,0.04,0.2 -> 0.04, 0.06, 0.0533, 0.2 -> monotone 0.04,.0533,.0533,.2
    assert drift.adjust(p, "benjamini_hochberg") == pytest.approx(
        [0.04, 0.053333, 0.053333, 0.2], rel=1e-4)
    assert drift.adjust(p, "none") == p


@pytest.mark.parametrize("test", ["ks", "psi", "wasserstein", "jensen_shannon"])
def test_shifted_feature_flagged_unchanged_not(test: str) -> None:
    """Over 20 seeded repetitions: the shifted feature always, the unchanged one rarely."""
    shifted = unchanged = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        ref = build_reference({"a": rng.normal(0, 1, 5000).tolist(),
                               "b": rng.normal(0, 1, 5000).tolist()},
                              [{"name": "a"}, {"name": "b"}])
        builder = ProfileBuilder(ref)
        builder.add_columns({"a": rng.normal(0.6, 1, 2000), "b": rng.normal(0, 1, 2000)})
        cur = builder.result()
        limit = 0.05 if test == "ks" else None
        results = drift.run_tests(ref.features, cur.features,
                                  {"a": (test, limit), "b": (test, limit)}, "benjamini_hochberg")
        shifted += results[0].drifted
        unchanged += results[1].drifted
    assert shifted == 20
    assert unchanged <= 3  # alpha 0.05: about 1 in 20 expected


def test_profiles_merge_like_one_pass(tmp_path: object) -> None:
    rng = np.random.default_rng(9)
    ref = build_reference({"x": rng.normal(0, 1, 1000).tolist()}, FEAT)
    data = rng.normal(0, 1, 3000)
    whole = ProfileBuilder(ref)
    whole.add_columns({"x": data})
    parts = []
    for chunk in np.array_split(data, 3):
        b = ProfileBuilder(ref)
        b.add_columns({"x": chunk})
        parts.append(b.result())
    merged = parts[0].merge(parts[1]).merge(parts[2])
    one, many = whole.result().features["x"], merged.features["x"]
    assert isinstance(one, NumericProfile) and isinstance(many, NumericProfile)
    assert one.counts == many.counts and one.count == many.count
    assert one.values == many.values
    assert Profile.from_dict(merged.to_dict()).to_dict() == merged.to_dict()


def test_window_exact_values_dropped_over_limit() -> None:
    ref = build_reference({"x": [0.0, 1.0, 2.0]}, FEAT)
    b = ProfileBuilder(ref, exact_limit=10)
    b.add_columns({"x": np.arange(20, dtype=float)})
    prof = b.result().features["x"]
    assert isinstance(prof, NumericProfile) and prof.values is None and prof.count == 20


def test_profile_reference_csv(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "ref.csv"
    path.write_text("a,c,extra\n1.5,red,9\n2.5,blue,9\n,red,9\nnan,green,9\n")
    out = profile_reference(path, [{"name": "a", "type": "float"},
                                   {"name": "c", "type": "category",
                                    "values": ["red", "blue", "green"]}])
    assert out["rows"] == 4 and out["feature_types"] == {"a": "float", "c": "category"}
    assert out["features"]["a"]["count"] == 2 and out["features"]["a"]["missing"] == 1
    assert out["features"]["a"]["invalid"] == 1
    assert out["features"]["c"]["frequencies"] == {"blue": 1, "green": 1, "red": 2}
    with pytest.raises(ValueError, match="no column for b"):
        profile_reference(path, [{"name": "b"}])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_ranks_match_scipy_rankdata(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    from framework.monitoring.performance import average_ranks, roc_auc

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 20, size=500).astype(np.float64)  # many ties
    assert np.array_equal(average_ranks(values), stats.rankdata(values))
    truth = rng.random(500) < 0.3
    assert roc_auc(list(truth), list(values)) == pytest.approx(roc_auc_score(truth, values))
    assert average_ranks(np.array([])).size == 0
