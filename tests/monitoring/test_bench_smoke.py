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


def test_the_scale_benchmarks_data_is_what_the_handler_writes_and_is_checked() -> None:
    """bench/monitor_scale.py: its capture objects decode as clean (the typed decoder takes
    them), and a window of them, checked through S3 on a moto server as the benchmark does,
    flags the shifted features."""
    import json
    import socket
    import tempfile

    import numpy as np
    from moto.server import ThreadedMotoServer

    from framework.monitoring import columns
    from framework.runtime.clients import Connection

    path = BENCH.with_name("monitor_scale.py")
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    blob = bench.capture_object(np.random.default_rng(0), 50, 0, None)
    batch = columns.decode(blob, "o.jsonl.gz", [{"name": n, "type": "float"}
                                                for n in bench.NAMES], "classification")
    assert batch.typed and len(batch) == 50
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        s3 = Connection("us-east-1", url, dummy_credentials=True).client("s3")
        keys = bench.write_window(s3, "bench-smoke", 4 * bench.PER_OBJECT)
        assert len(keys) == 4
        with tempfile.NamedTemporaryFile("w", suffix=".keys") as handle:
            handle.write("\n".join(keys))
            handle.flush()
            first = bench.child("mlops", url, "bench-smoke", handle.name)
            again = bench.child("mlops", url, "bench-smoke", handle.name)
    finally:
        server.stop()
    assert first["objects_read"] == 4 and again["objects_read"] == 0
    assert first["rows"] == again["rows"] == 4 * bench.PER_OBJECT
    assert set(bench.SHIFTED) <= set(first["flagged"]), json.dumps(first)
    assert first["flagged"] == again["flagged"]
