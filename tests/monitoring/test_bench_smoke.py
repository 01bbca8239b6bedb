"""The drift benchmark's two checks agree on a small input (the big run is `bench/drift.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from framework.monitoring.profile import build_reference

BENCH = Path(__file__).resolve().parents[2] / "bench" / "drift.py"


def test_bench_small_flags_same_columns_as_scipy() -> None:
    spec = importlib.util.spec_from_file_location("bench_drift", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ref, cur = bench.data(50_000, 1, False), bench.data(50_000, 2, True)
    feats = [{"name": f"f{j}", "type": "float"} for j in range(bench.FEATURES)]
    reference = build_reference({f"f{j}": ref[:, j] for j in range(bench.FEATURES)}, feats,
                                exact_limit=0)
    ours = bench.mlops_check(reference, lambda: (cur[i:i + 10_000] for i in range(0, 50_000,
                                                                                  10_000)))
    theirs = bench.scipy_loop(ref, cur)
    assert set(bench.SHIFTED) <= set(ours) and set(bench.SHIFTED) <= set(theirs)
    assert len(set(ours) ^ set(theirs)) <= 1  # a borderline unshifted column may differ
