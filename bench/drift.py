"""Drift-check benchmark: mlops's profile-based check vs a scipy ks_2samp loop (and Evidently).

    .venv/bin/python bench/drift.py                 # 1,000,000 x 20, 5 shifted (the issue's run)
    .venv/bin/python bench/drift.py --rows 100000   # smaller
    .venv/bin/python bench/drift.py --stream 10     # + a window 10x larger, streamed in chunks

Evidently is never a project dependency. To add its column, install it in a separate venv:

    python -m venv /tmp/evidently && /tmp/evidently/bin/pip install evidently numpy scipy pandas
    PYTHONPATH=. /tmp/evidently/bin/python bench/drift.py   # (also needs the project's deps)

Its column is skipped when it is not importable. Timings exclude data generation; the mlops
column excludes the reference profile (precomputed once at registration, timed separately).
Peak memory is measured with tracemalloc (numpy allocations are traced) beyond the input data.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from framework.monitoring import drift
from framework.monitoring.profile import ProfileBuilder, build_reference

FEATURES = 20
SHIFTED = (0, 4, 8, 12, 16)
ALPHA = 0.05


def data(rows: int, seed: int, shifted: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, 1.0, (rows, FEATURES))
    if shifted:
        for j in SHIFTED:
            out[:, j] += 0.1
    return out


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def scipy_loop(ref: np.ndarray, cur: np.ndarray) -> list[int]:
    return [j for j in range(FEATURES)
            if stats.ks_2samp(ref[:, j], cur[:, j]).pvalue < ALPHA]


def mlops_check(reference: Any, chunks: Callable[[], Any]) -> list[int]:
    builder = ProfileBuilder(reference, exact_limit=0)
    for chunk in chunks():
        builder.add_columns({f"f{j}": chunk[:, j] for j in range(FEATURES)})
    cur = builder.result()
    results = drift.run_tests(reference.features, cur.features,
                              {f"f{j}": ("ks", ALPHA) for j in range(FEATURES)}, "none")
    return [int(r.feature[1:]) for r in results if r.drifted]


def evidently(ref: np.ndarray, cur: np.ndarray) -> list[int] | None:
    try:
        import pandas as pd
    except ImportError:
        return None
    try:  # Evidently 0.7 keeps the classic Report API under evidently.legacy
        from evidently.legacy.metric_preset import DataDriftPreset
        from evidently.legacy.report import Report
    except ImportError:
        try:
            from evidently.metric_preset import DataDriftPreset  # type: ignore[no-redef]
            from evidently.report import Report  # type: ignore[no-redef]
        except ImportError:
            return None
    cols = [f"f{j}" for j in range(FEATURES)]
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=pd.DataFrame(ref, columns=cols),
               current_data=pd.DataFrame(cur, columns=cols))
    found = report.as_dict()["metrics"][1]["result"]["drift_by_columns"]
    return sorted(int(c[1:]) for c, v in found.items() if v["drift_detected"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stream", type=int, default=0, help="also stream a window N x larger")
    ap.add_argument("--chunk", type=int, default=100_000)
    args = ap.parse_args()
    ref, cur = data(args.rows, 1, False), data(args.rows, 2, True)
    feats = [{"name": f"f{j}", "type": "float"} for j in range(FEATURES)]
    reference, t_prof, _ = measure(lambda: build_reference(
        {f"f{j}": ref[:, j] for j in range(FEATURES)}, feats, exact_limit=0))
    print(f"rows {args.rows:,} x {FEATURES} features, shifted {list(SHIFTED)}; "
          f"reference profile built once in {t_prof:.2f} s")
    rows = []

    def chunks() -> Any:
        return (cur[i:i + args.chunk] for i in range(0, args.rows, args.chunk))

    got, s, mb = measure(lambda: mlops_check(reference, chunks))
    rows.append(("mlops (profile, KS on sketch)", s, mb, got))
    got, s, mb = measure(lambda: scipy_loop(ref, cur))
    rows.append(("scipy ks_2samp loop", s, mb, got))
    ev, s, mb = measure(lambda: evidently(ref, cur))
    if ev is not None:
        rows.append(("Evidently DataDriftPreset", s, mb, ev))
    else:
        print("Evidently not installed: column skipped (see the docstring)")
    if args.stream:
        n = args.rows * args.stream

        def streamed() -> Any:
            for i in range(0, n, args.chunk):
                yield data(args.chunk, 1000 + i // args.chunk, True)

        got, s, mb = measure(lambda: mlops_check(reference, streamed))
        rows.append((f"mlops, {n:,}-row window streamed", s, mb, got))
    print(f"{'tool':38} {'seconds':>8} {'peak MiB':>9}  flagged")
    for name, s, mb, flagged in rows:
        print(f"{name:38} {s:8.2f} {mb:9.1f}  {flagged}")


if __name__ == "__main__":
    main()
