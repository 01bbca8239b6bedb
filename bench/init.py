"""Start-up benchmark: the shipped example's INIT vs `mlflow models serve` vs the floor.

    .venv/bin/python bench/init.py [--mlflow /tmp/mlflow-venv/bin/mlflow] [--runs 5]

- **mlops INIT**: the example deployed to a fresh embedded local AWS; each run SIGKILLs the
  predict function's execution environments and sends one request, which pays a cold start.
  ``Init Duration`` is read from that invocation's ``REPORT`` line in the function's log
  (process start of python3.13 + awslambdaric → the handler module imported and the model
  loaded → its first ``/next``), with the handler's own ``init`` line (import ms, model load
  ms) and the client's wall time of the cold request;
- **mlflow**: ``mlflow models serve --env-manager local`` started → first 200 answer;
- **floor**: a fresh ``python3.13 -s -S`` with ``PYTHONPATH`` = the deployed serve layer's
  ``python/`` (and ``PYTHONDONTWRITEBYTECODE=1``, as in the sandbox) that imports numpy and
  onnxruntime, fetches the same model bytes from the local S3 with boto3 (SigV4, as a
  function must on AWS) and creates its ``InferenceSession``: import and model load
  reported apart. Once on the layer as deployed and once on a copy compiled again with
  ``compileall`` (what bytecode missing from the layer would cost: a read-only ``/opt``
  compiles what it imports on every start).

Medians of ``--runs`` runs. Installs nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve  # noqa: E402  (bench/serve.py: training, deploy, mlflow)

FLOOR = r'''
import json, sys, time
t0 = time.perf_counter()
import numpy, onnxruntime as ort
t1 = time.perf_counter()
# as a function must on AWS: the SDK (SigV4), from the layer, fetches the object
import boto3
control, bucket, key = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=control, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
t2 = time.perf_counter()
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
t3 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1000, "fetch_ms": (t2 - t1) * 1000,
                  "session_ms": (t3 - t2) * 1000, "bytes": len(data)}))
'''

_INIT = re.compile(r"Init Duration: ([0-9.]+) ms")


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mlops_cold_starts(deployed: serve.Deployed, body: bytes, runs: int) -> dict[str, Any]:
    url = deployed.urls["predict"]
    gateway = url.split("/", 3)
    gateway_url = "/".join(gateway[:3])
    serve.latency(url, body, 20)  # warm: the runtime's packages are installed, a pool exists
    log = next((deployed.home / "logs").glob("*-predict.log"))
    inits, imports, loads, walls = [], [], [], []
    for _ in range(runs):
        with urllib.request.urlopen(f"{gateway_url}/_mlops/workers", timeout=10) as resp:
            pids = json.loads(resp.read())["pids"]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        for _attempt in range(5):  # a request that met the killed environment is not cold
            offset = log.stat().st_size
            conn, path = serve._connection(url)
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            wall = time.perf_counter() - t0
            conn.close()
            if resp.status == 200 and resp.getheader("x-mlops-cold-start") == "true":
                break
        else:
            raise RuntimeError("no cold start after killing the environments")
        time.sleep(0.1)
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
        found = _INIT.findall(text)
        if not found:
            raise RuntimeError(f"no Init Duration in the new log lines:\n{text[-2000:]}")
        inits.append(float(found[-1]))
        walls.append(wall * 1000)
        for line in text.splitlines():
            if line.startswith("{") and '"msg": "init"' in line:
                record = json.loads(line)
                imports.append(float(record["import_ms"]))
                loads.append(float(record["load_ms"]))
        print(f"  mlops cold start: Init Duration {inits[-1]:.0f} ms, request {walls[-1]:.0f} ms",
              flush=True)
    return {"init_ms": _med(inits), "handler_import_ms": _med(imports),
            "model_load_ms": _med(loads), "cold_request_ms": _med(walls), "runs": inits}


def mlflow_starts(mlflow: str, work: Path, body: bytes, runs: int) -> dict[str, Any]:
    python = str(Path(mlflow).with_name("python"))
    model_dir = work / "mlflow-model"
    subprocess.run([python, "-c", serve.MLFLOW_SAVE, str(model_dir)], check=True,
                   capture_output=True)
    mbody = json.dumps({"dataframe_records": json.loads(body)["instances"]}).encode()
    env = {**os.environ, "PATH": f"{Path(mlflow).parent}{os.pathsep}{os.environ['PATH']}"}
    took = []
    for _ in range(runs):
        port = serve.free_port()
        started = time.perf_counter()
        proc = subprocess.Popen([mlflow, "models", "serve", "-m", str(model_dir),
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        try:
            took.append(serve.wait_ready(f"http://127.0.0.1:{port}/invocations", mbody,
                                         started) * 1000)
        finally:
            serve.stop(proc)
        print(f"  mlflow start → first answer {took[-1]:.0f} ms", flush=True)
    return {"start_ms": _med(took), "runs": took}


def floor(layer_python: Path, model: tuple[str, str, str], runs: int, label: str,
          ) -> dict[str, Any]:
    from framework.interpreters import find_python

    python = str(find_python("python3.13"))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8",
           "PYTHONPATH": str(layer_python), "PYTHONDONTWRITEBYTECODE": "1"}
    rows: list[dict[str, float]] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run([python, "-s", "-S", "-c", FLOOR, *model], env=env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"floor run failed:\n{out.stderr[-2000:]}")
        wall = (time.perf_counter() - t0) * 1000
        rows.append({**json.loads(out.stdout), "wall_ms": wall})
        print(f"  floor ({label}): {wall:.0f} ms (import {rows[-1]['import_ms']:.0f}, "
              f"fetch {rows[-1]['fetch_ms']:.1f}, session {rows[-1]['session_ms']:.1f})",
              flush=True)
    return {k: _med([r[k] for r in rows]) for k in ("wall_ms", "import_ms", "fetch_ms",
                                                    "session_ms")}


def compiled_copy(layer_python: Path, work: Path) -> Path:
    from framework.interpreters import find_python

    target = work / "layer-compiled"
    shutil.copytree(layer_python, target, symlinks=True)
    subprocess.run([str(find_python("python3.13")), "-m", "compileall", "-q", "-j", "0",
                    str(target)], check=False, capture_output=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow", default=shutil.which("mlflow"),
                        help="mlflow executable (its venv's python saves the model)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each, median reported")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": serve.machine()}
    with tempfile.TemporaryDirectory(prefix="mlops-init-") as tmp:
        work = Path(tmp)
        deployed = None
        try:
            print("training the example model ...", flush=True)
            trained = serve.train(work)
            body = json.dumps({"instances": [json.loads(
                (trained / "data/sample_request.json").read_text())["instances"][0]]}).encode()
            print("deploying the example to a fresh local AWS ...", flush=True)
            deployed = serve.deploy_example(work, trained, extra="")
            results["mlops"] = mlops_cold_starts(deployed, body, args.runs)

            fn, _arn, spec = serve._function(deployed, "predict")
            layer_python = spec.layers[0] / "python"
            from framework.runtime.inference import registry_key

            model = (deployed.control_url, fn.env["MLOPS_REGISTRY_BUCKET"],
                     registry_key(fn.env["MLOPS_MODEL_NAME"], fn.env["MLOPS_MODEL_VERSION"],
                                  "model.onnx"))
            results["floor"] = floor(layer_python, model, args.runs, "layer as shipped")
            results["floor_pyc"] = floor(compiled_copy(layer_python, work), model,
                                         args.runs, "precompiled .pyc")
            serve.stop_example(deployed)
            deployed = None
            if args.mlflow:
                print(f"mlflow models serve ({args.mlflow}) ...", flush=True)
                results["mlflow"] = mlflow_starts(args.mlflow, work, body, 3)
            else:
                print("mlflow: not installed, row skipped (see bench/README.md)")
        finally:
            if deployed is not None:
                serve.stop_example(deployed)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def report(r: dict[str, Any]) -> None:
    m, f, fc, ml = r["mlops"], r["floor"], r["floor_pyc"], r.get("mlflow")
    print(f"\nmachine: {r['machine']}\n")
    print("| start-up (median) | ms | × floor |")
    print("|---|---|---|")
    floor_ms = f["wall_ms"]

    def row(label: str, ms: float) -> None:
        print(f"| {label} | {ms:.0f} | {ms / floor_ms:.2f}× |")

    row("mlops INIT (REPORT Init Duration)", m["init_ms"])
    print(f"| … of which the handler's imports / model load (its init line) | "
          f"{m['handler_import_ms']:.0f} / {m['model_load_ms']:.0f} | |")
    row("mlops cold request, client wall (INIT + first invoke + gateway)",
        m["cold_request_ms"])
    if ml is not None:
        row("mlflow models serve: start → first answer", ml["start_ms"])
    row("floor: python3.13 -s -S, layer as shipped (process wall)", f["wall_ms"])
    print(f"| … import numpy + onnxruntime / fetch model (boto3 + GET) / InferenceSession | "
          f"{f['import_ms']:.0f} / {f['fetch_ms']:.1f} / {f['session_ms']:.1f} | |")
    row("floor with the layer precompiled (.pyc), process wall", fc["wall_ms"])
    print(f"| … import / fetch / InferenceSession | {fc['import_ms']:.0f} / "
          f"{fc['fetch_ms']:.1f} / {fc['session_ms']:.1f} | |")
    if ml is not None:
        print(f"\nmlflow start → first answer is {ml['start_ms'] / m['cold_request_ms']:.1f}× "
              f"the mlops cold request; mlops INIT is {m['init_ms'] / floor_ms:.1f}× the floor.")


if __name__ == "__main__":
    sys.exit(main())
