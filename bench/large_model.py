"""INIT of a large model: read whole into memory vs streamed into a memory-mapped file.

    .venv/bin/python bench/large_model.py [--sizes 256,1024] [--repeats 2] [--json FILE]

For each size (MiB), an ONNX model of that size (one float initializer of that many bytes, a
few of its values used by the graph, so onnxruntime keeps it) is put in a moto S3 bucket with
the metadata.json the registry writes; then, in a fresh process each time (as an INIT is),
``ModelBundle.load`` fetches, verifies and loads it — once with the object read whole
(``MLOPS_STREAM_MODEL_MB`` above the size), once streamed in 8 MiB chunks into a file in /tmp
(``MLOPS_STREAM_MODEL_MB=0``). Printed: seconds per load (the median of the repeats), seconds
per GB, and the process's peak RSS. Not part of the test suite; installs nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "bench-large"
CHILD = r"""
import json, resource, sys, time
from framework.runtime.clients import Connection
from framework.runtime.inference import ModelBundle
url, bucket, sha = sys.argv[1], sys.argv[2], sys.argv[3]
conn = Connection(region="us-east-1", endpoint_url=url, dummy_credentials=True)
conn.client("s3")  # the client is built before the clock starts, as the handler's import
start = time.perf_counter()
bundle = ModelBundle.load(conn, bucket, "big", "1.0.0", sha)
seconds = time.perf_counter() - start
answer = bundle.predict({"inputs": [[1.0, 2.0, 3.0, 4.0]]})
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "answer": answer["predictions"]}))
"""


def model_of(mib: int) -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    big = np.random.default_rng(0).standard_normal((mib << 20) // 4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["big", "idx"], ["w"]),
         helper.make_node("Reshape", ["w", "shape"], ["w2"]),
         helper.make_node("MatMul", ["input", "w2"], ["variable"])],
        "large", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(big, "big"),
         numpy_helper.from_array(np.arange(4, dtype=np.int64), "idx"),
         numpy_helper.from_array(np.asarray([4, 1], dtype=np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def publish(s3: Any, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    meta = {"name": "big", "version": "1.0.0", "task": "regression", "sha256": sha,
            "size": len(data), "classes": None,
            "features": [{"name": f"f{i}", "type": "float"} for i in range(4)]}
    s3.put_object(Bucket=BUCKET, Key="models/big/1.0.0/metadata.json",
                  Body=json.dumps(meta).encode())
    s3.upload_fileobj(__import__("io").BytesIO(data), BUCKET, "models/big/1.0.0/model.onnx")
    return sha


def load(url: str, sha: str, streamed: bool, scratch: Path) -> dict[str, Any]:
    env = {**os.environ, "MLOPS_STREAM_MODEL_MB": "0" if streamed else "100000",
           "MLOPS_MODEL_DIR": str(scratch), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, url, BUCKET, sha], env=env,
                          capture_output=True, text=True, timeout=1800, check=True)
    for leftover in scratch.iterdir():
        leftover.unlink()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="model sizes in MiB")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from moto.server import ThreadedMotoServer

    from framework.runtime.clients import Connection

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = Connection(region="us-east-1", endpoint_url=url, dummy_credentials=True).client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for mib in (int(v) for v in args.sizes.split(",")):
                sha = publish(s3, model_of(mib))
                for streamed in (False, True):
                    runs = [load(url, sha, streamed, Path(scratch)) for _ in range(args.repeats)]
                    seconds = statistics.median(r["seconds"] for r in runs)
                    rows.append({"size_mib": mib, "path": "streamed" if streamed else "whole",
                                 "seconds": round(seconds, 2),
                                 "seconds_per_gb": round(seconds / (mib / 1024), 2),
                                 "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs))})
    finally:
        server.stop()
    print(f"{'size':>8} {'path':>9} {'INIT s':>8} {'s/GB':>7} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['size_mib']:>6}MiB {r['path']:>9} {r['seconds']:>8} {r['seconds_per_gb']:>7} "
              f"{r['peak_rss_mb']:>12}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
