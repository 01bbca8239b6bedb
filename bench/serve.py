"""Serving benchmark: the mlops local endpoint vs a minimal stdlib server vs `mlflow models serve`.

    .venv/bin/python bench/serve.py [--mlflow /tmp/mlflow-venv/bin/mlflow] [--seconds 5]

All three serve the breast-cancer logistic regression (examples/breast_cancer/train.py, seed
42), single-row JSON requests over keep-alive HTTP/1.1 on 127.0.0.1, measured in the same run:

- latency: one client, sequential requests, p50/p99;
- throughput: 4 client *processes* (so the client's GIL is not the bottleneck) for N seconds;
- start: process start → first 200 answer (mlflow, minimal server); for mlops, a new
  worker's first answer (the workers are SIGKILLed, the next request pays init + invoke);
- handler overhead: in process, no HTTP: the inference handler on a v2.0 event (validation,
  encoding, capture lines, JSON) minus a bare ``session.run`` on a prepared array, per row.

Installs nothing. mlflow is measured when an ``mlflow`` executable is given (``--mlflow``) or
on PATH, next to its own ``python`` (with scikit-learn) that saves the MLflow model; otherwise
its column is skipped. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/breast_cancer"

MINIMAL_SERVER = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
names = json.loads(sys.argv[2]); inp = sess.get_inputs()[0].name
outs = [o.name for o in sess.get_outputs()]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a 40 ms delayed-ACK stall per request
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        x = np.array([[r[n] for n in names] for r in body["instances"]], dtype=np.float32)
        label, proba = sess.run(outs, {inp: x})
        data = json.dumps({"predictions": label.tolist(),
                           "probabilities": proba.tolist()}).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data))); self.end_headers()
        self.wfile.write(data)
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[3])), H).serve_forever()
'''

MLFLOW_SAVE = r'''
import sys, mlflow.sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
import numpy as np, pandas as pd, re
d = load_breast_cancer()
names = [re.sub(r"[^A-Za-z0-9_]+", "_", n.strip()).strip("_") for n in d.feature_names]
y = np.asarray(d.target_names)[d.target]
xtr, _, ytr, _ = train_test_split(d.data, y, test_size=0.25, stratify=y, random_state=42)
m = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000,
              random_state=42))]).fit(pd.DataFrame(xtr, columns=names), ytr)
mlflow.sklearn.save_model(m, sys.argv[1])
'''


def free_port(pair: bool = False) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair:
            return port
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def post(url: str, body: bytes, timeout: float = 2.0) -> int:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except Exception:
        return 0


def wait_ready(url: str, body: bytes, started: float, limit_s: float = 120) -> float:
    while time.perf_counter() - started < limit_s:
        if post(url, body) == 200:
            return time.perf_counter() - started
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {limit_s}s")


# -- load generation ------------------------------------------------------------------------


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    from urllib.parse import urlsplit

    p = urlsplit(url)
    return http.client.HTTPConnection(p.hostname, p.port, timeout=30), p.path


def latency(url: str, body: bytes, n: int) -> list[float]:
    conn, path = _connection(url)
    headers = {"content-type": "application/json"}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append(time.perf_counter() - t0)
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}")
    conn.close()
    return out


def _client(url: str, body: bytes, seconds: float, start_at: float, q: Any) -> None:
    conn, path = _connection(url)
    headers = {"content-type": "application/json"}
    while time.time() < start_at:
        time.sleep(0.001)
    stop = time.perf_counter() + seconds
    count = errors = 0
    while time.perf_counter() < stop:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        count += 1
        errors += resp.status != 200
    q.put((count, errors))


def throughput(url: str, body: bytes, clients: int, seconds: float) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 1.5
    procs = [ctx.Process(target=_client, args=(url, body, seconds, start_at, q))
             for _ in range(clients)]
    for p in procs:
        p.start()
    results = [q.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)


def measure(name: str, url: str, body: bytes, args: argparse.Namespace) -> dict[str, Any]:
    latency(url, body, 300)  # warm up every path
    lat = sorted(latency(url, body, args.requests))
    rps, errors = throughput(url, body, args.clients, args.seconds)
    result = {"p50_ms": statistics.median(lat) * 1000,
              "p99_ms": lat[int(0.99 * len(lat))] * 1000, "rps": rps, "errors": errors}
    print(f"  {name}: p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, "
          f"{rps:.0f} req/s with {args.clients} clients ({errors} non-200)", flush=True)
    return result


# -- the three servers ----------------------------------------------------------------------


def train(work: Path) -> Path:
    out = work / "trained"
    subprocess.run([sys.executable, str(REPO / EXAMPLE / "train.py"), "--out", str(out),
                    "--seed", "42"], check=True, capture_output=True)
    return out


def mlops_endpoint(work: Path, trained: Path) -> tuple[str, dict[str, str], Path]:
    root = work / "project"
    root.mkdir()
    shutil.copy(REPO / "mlops.yaml", root / "mlops.yaml")
    shutil.copytree(trained, root / EXAMPLE)
    env = {**os.environ, "MLOPS_LOCAL_PORT": str(free_port(pair=True))}
    subprocess.run([sys.executable, "-m", "framework.cli", "deploy"], cwd=root, env=env,
                   check=True, capture_output=True, text=True)
    sys.path.insert(0, str(REPO))
    os.environ["MLOPS_LOCAL_PORT"] = env["MLOPS_LOCAL_PORT"]
    from framework.workflow import Workspace, endpoints, open_session

    session = open_session(Workspace.open(root / "mlops.yaml"))
    info = next(iter(endpoints(session, session.store.load())))
    return info.url, env, root


def mlops_cold_start(url: str, body: bytes, gateway: str, repeats: int = 5) -> float:
    """Median of: SIGKILL every worker, then time one request (init + first invoke)."""
    took = []
    for _ in range(repeats):
        with urllib.request.urlopen(f"{gateway}/_mlops/workers", timeout=5) as resp:
            pids = json.loads(resp.read())["pids"]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        conn, path = _connection(url)
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        elapsed = time.perf_counter() - t0
        conn.close()
        if resp.status != 200 or resp.getheader("x-mlops-cold-start") != "true":
            # the killed worker was replaced by a replay: count it only if cold
            continue
        took.append(elapsed)
    return statistics.median(took) if took else float("nan")


def handler_overhead(root: Path, body: bytes, n: int = 5000) -> tuple[float, float]:
    """(bare session.run µs, handler µs) per single-row request, in process."""
    import numpy as np

    from framework.runtime.clients import Connection
    from framework.runtime.inference import registry_key
    from framework.runtime.service import Service, Settings
    from framework.workflow import Workspace, open_session

    session = open_session(Workspace.open(root / "mlops.yaml"))
    s3 = session.target.conn.client("s3")
    meta = json.loads(s3.get_object(Bucket=session.bucket,
                                    Key=registry_key("diagnosis", "1.0.0", "metadata.json")
                                    )["Body"].read())
    env = {"MLOPS_REGISTRY_BUCKET": session.bucket, "MLOPS_MODEL_NAME": "diagnosis",
           "MLOPS_MODEL_VERSION": "1.0.0", "MLOPS_MODEL_SHA256": meta["sha256"],
           "MLOPS_ENDPOINT": "predict", "MLOPS_ROUTE": "POST /diagnosis/predict",
           "MLOPS_CAPTURE_SAMPLE_RATE": "1", "MLOPS_CAPTURE_SINK": "local"}
    conn: Connection = session.target.conn
    service = Service(Settings.from_env(env), conn)
    bundle = service.bundle
    one = json.loads(body)["instances"][0]
    single = json.dumps({"instances": [one]})
    event = {"version": "2.0", "routeKey": "POST /diagnosis/predict",
             "rawPath": "/diagnosis/predict", "headers": {"content-type": "application/json"},
             "requestContext": {"http": {"method": "POST"}, "requestId": "r"},
             "body": single, "isBase64Encoded": False}
    x = np.asarray([[one[f.name] for f in bundle.features]], dtype=np.float32)
    feeds = {bundle.inputs.inputs[0].name: x}
    names = [bundle.outputs.label, bundle.outputs.probabilities]
    devnull = open(os.devnull, "w")  # noqa: SIM115  (the handler's log lines)
    real_stdout = sys.stdout

    def bench(fn: Any) -> float:
        for _ in range(500):
            fn()
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e6

    bare = bench(lambda: bundle.session.run(names, feeds))
    sys.stdout = devnull
    try:
        full = bench(lambda: service.handle(event, None))
    finally:
        sys.stdout = real_stdout
        devnull.close()
    return bare, full


def minimal_server(trained: Path, names: list[str]) -> tuple[subprocess.Popen[bytes], str, float,
                                                               bytes]:
    port = free_port()
    body = json.dumps({"instances": [json.loads((trained / "data/sample_request.json")
                                                .read_text())["instances"][0]]}).encode()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", MINIMAL_SERVER,
                             str(trained / "artifacts/model.onnx"), json.dumps(names),
                             str(port)], start_new_session=True)
    url = f"http://127.0.0.1:{port}/invocations"
    return proc, url, wait_ready(url, body, started), body


def mlflow_server(mlflow: str, work: Path, body: bytes) -> tuple[subprocess.Popen[bytes], str,
                                                                 float, bytes]:
    python = str(Path(mlflow).with_name("python"))
    model_dir = work / "mlflow-model"
    subprocess.run([python, "-c", MLFLOW_SAVE, str(model_dir)], check=True,
                   capture_output=True)
    port = free_port()
    records = json.loads(body)["instances"]
    mbody = json.dumps({"dataframe_records": records}).encode()
    started = time.perf_counter()
    env = {**os.environ, "PATH": f"{Path(mlflow).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([mlflow, "models", "serve", "-m", str(model_dir), "--env-manager",
                             "local", "-h", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)  # uvicorn lives beside mlflow
    url = f"http://127.0.0.1:{port}/invocations"
    return proc, url, wait_ready(url, mbody, started), mbody


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow", default=shutil.which("mlflow"),
                        help="mlflow executable (its venv's python saves the model)")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput window")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--requests", type=int, default=3000, help="sequential latency sample")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        work = Path(tmp)
        root: Path | None = None
        try:
            print("training the example model ...", flush=True)
            trained = train(work)
            names = list(json.loads(
                (trained / "data/sample_request.json").read_text())["instances"][0])
            proc, url, start_s, body = minimal_server(trained, names)
            procs.append(proc)
            print(f"minimal server up in {start_s:.2f}s", flush=True)
            results["minimal"] = {**measure("minimal", url, body, args), "start_s": start_s}
            proc.terminate()

            print("deploying the mlops endpoint to a fresh local AWS ...", flush=True)
            url, _env, root = mlops_endpoint(work, trained)
            gateway = url.split("/", 3)[:3]
            gateway_url = "/".join(gateway)
            results["mlops"] = measure("mlops", url, body, args)
            results["mlops"]["start_s"] = mlops_cold_start(url, body, gateway_url)
            bare, full = handler_overhead(root, body)
            results["mlops"]["handler_overhead_us"] = full - bare
            results["mlops"]["session_run_us"] = bare
            print(f"  mlops: worker cold start {results['mlops']['start_s'] * 1000:.0f} ms; "
                  f"session.run {bare:.1f} µs, handler {full:.1f} µs", flush=True)

            if args.mlflow:
                print(f"starting mlflow models serve ({args.mlflow}) ...", flush=True)
                proc, url, start_s, mbody = mlflow_server(args.mlflow, work, body)
                procs.append(proc)
                print(f"mlflow up in {start_s:.2f}s", flush=True)
                results["mlflow"] = {**measure("mlflow", url, mbody, args), "start_s": start_s}
            else:
                print("mlflow: not installed, column skipped (see bench/README.md)")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except (ProcessLookupError, PermissionError):
                        proc.terminate()
                    proc.wait(timeout=10)
            if root is not None:
                subprocess.run([sys.executable, "-m", "framework.cli", "local", "stop"],
                               cwd=root, capture_output=True)
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    ours, minimal, mlflow = r["mlops"], r["minimal"], r.get("mlflow")
    print()
    print("| | mlops local endpoint | minimal stdlib + onnxruntime | mlflow models serve |")
    print("|---|---|---|---|")

    def cell(x: dict[str, Any] | None, key: str, fmt: str) -> str:
        return "—" if x is None else format(x[key], fmt)

    print(f"| p50 latency, 1 client (ms) | {ours['p50_ms']:.3f} | {minimal['p50_ms']:.3f} | "
          f"{cell(mlflow, 'p50_ms', '.3f')} |")
    print(f"| p99 latency, 1 client (ms) | {ours['p99_ms']:.3f} | {minimal['p99_ms']:.3f} | "
          f"{cell(mlflow, 'p99_ms', '.3f')} |")
    print(f"| throughput, {args.clients} clients (req/s) | {ours['rps']:.0f} | "
          f"{minimal['rps']:.0f} | {cell(mlflow, 'rps', '.0f')} |")
    print(f"| start → first answer (s) | {ours['start_s']:.3f} (new worker) | "
          f"{minimal['start_s']:.3f} | {cell(mlflow, 'start_s', '.2f')} |")
    print()
    checks = [
        ("p50 ≤ 2× minimal", ours["p50_ms"] / minimal["p50_ms"], 2.0, "≤"),
        ("throughput ≥ 50% of minimal", ours["rps"] / minimal["rps"], 0.5, "≥"),
        ("new worker first answer ≤ 0.5 s", ours["start_s"], 0.5, "≤"),
        ("handler overhead ≤ 100 µs/row", ours["handler_overhead_us"], 100.0, "≤"),
    ]
    if mlflow is not None:
        checks.insert(1, ("p50 ≤ 1/10 of mlflow", ours["p50_ms"] / mlflow["p50_ms"], 0.1, "≤"))
    print("| target | measured | goal | met |")
    print("|---|---|---|---|")
    for name, value, goal, op in checks:
        ok = value <= goal if op == "≤" else value >= goal
        print(f"| {name} | {value:.3g} | {op} {goal:g} | {'yes' if ok else 'NO'} |")
    if mlflow is not None:
        print(f"\nratios vs mlflow: p50 {mlflow['p50_ms'] / ours['p50_ms']:.1f}× faster, "
              f"throughput {ours['rps'] / mlflow['rps']:.1f}×")


if __name__ == "__main__":
    sys.exit(main())
