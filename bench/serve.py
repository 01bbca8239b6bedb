"""Serving benchmark: the mlops local endpoint vs a minimal stdlib server vs `mlflow models serve`.

    .venv/bin/python bench/serve.py [--mlflow /tmp/mlflow-venv/bin/mlflow] [--seconds 5]

All three serve the breast-cancer logistic regression (examples/breast_cancer/train.py, seed
42), single-row JSON requests over keep-alive HTTP/1.1 on 127.0.0.1, measured in the same run:

- latency: one client, sequential requests, p50/p99, and the CPU each side spent per request
  (the client; the mlops daemon and its execution environments, or the other server's
  process), background work the requests caused included;
- throughput: 4 client *processes* (so the client's GIL is not the bottleneck) for N seconds.

All servers are up together and measured in turn, ``--rounds`` times (medians reported), so a
shared machine's changing load weighs on each alike. Before each mlops measure its environments
are warm for every client and what the measure before left (log lines to ship and read) is done
(``POST /_mlops/flush``).

mlops is the example deployed to a fresh embedded local AWS: the gateway (aiohttp) turns the
request into a payload 2.0 event, the local Lambda service hands it to an execution environment
(the deployed zip + layers on python3.13, bootstrapped by awslambdaric, over the local Runtime
API) and the handler's answer back into HTTP. It is measured on two endpoints of the same
model: the example's ``predict`` (capture on: the rows written as log lines, which the log
group's subscription sends to Firehose off the request path) and ``predict-nocapture``
(capture off), and each hop is priced on its own:

- gateway: HTTP p50 minus the same event invoked straight into a stand-alone ``Sandbox`` of
  the shipped function (no gateway, no HTTP);
- Runtime API round trip: ``Sandbox.invoke`` of a handler that returns ``{}`` (next → event →
  response through awslambdaric, same event size);
- handler: the deployed function's ``Service.handle`` in process (no capture) minus the model;
- model: a bare ``session.run`` on a prepared array;
- capture: p50 with capture minus p50 without (and the same in process).

Start-up (INIT) is measured by ``bench/init.py``. Installs nothing. mlflow is measured when an
``mlflow`` executable is given (``--mlflow``) or on PATH, next to its own ``python`` (with
scikit-learn) that saves the MLflow model; otherwise its column is skipped. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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
from dataclasses import dataclass
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
    return http.client.HTTPConnection(p.hostname or "127.0.0.1", p.port, timeout=30), p.path


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


def warm_pool(url: str, body: bytes, clients: int, limit_s: float = 180) -> None:
    """Until ``clients`` concurrent requests all meet warm environments: the local Lambda
    starts one per concurrent request (a cold start of seconds each), as Lambda does, and
    throughput is measured on a warm pool."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> str | None:
        conn, path = _connection(url)
        try:
            conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            return resp.getheader("x-mlops-cold-start")
        finally:
            conn.close()

    deadline = time.perf_counter() + limit_s
    with ThreadPoolExecutor(clients) as pool:
        while time.perf_counter() < deadline:
            if all(c == "false" for c in pool.map(one, range(clients))) and all(
                    c == "false" for c in pool.map(one, range(clients))):
                return
    raise RuntimeError(f"{url}: environments still starting after {limit_s}s")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes ``pids`` have used so far (all their threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measure(name: str, url: str, body: bytes, args: argparse.Namespace,
            server: Server) -> dict[str, Any]:
    """One round: p50/p99 of one sequential client, with the CPU each side spent per
    request, then requests/s of ``args.clients`` client processes."""
    server.prepare()
    latency(url, body, 300)  # warm up every path
    pids = server.pids()
    client0, server0 = _own_cpu(), {k: cpu_seconds(v) for k, v in pids.items()}
    lat = sorted(latency(url, body, args.requests))
    server.settle()  # what the requests left to do (the log lines they wrote) is theirs
    client1, server1 = _own_cpu(), {k: cpu_seconds(v) for k, v in pids.items()}
    rps, errors = throughput(url, body, args.clients, args.seconds)
    n = args.requests
    result: dict[str, Any] = {"p50_ms": statistics.median(lat) * 1000,
              "p99_ms": lat[int(0.99 * len(lat))] * 1000, "rps": rps, "errors": errors,
              "cpu_us": {"client": (client1 - client0) / n * 1e6,
                         **{k: (server1[k] - server0[k]) / n * 1e6 for k in pids}}}
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in result["cpu_us"].items())
    print(f"  {name}: p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, "
          f"{rps:.0f} req/s with {args.clients} clients ({errors} non-200); "
          f"CPU µs/request: {cpu}", flush=True)
    return result


def _own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server:
    """A server under test: its processes, and how to let it finish its background work."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self._pids = pids

    def pids(self) -> dict[str, list[int]]:
        return self._pids

    def prepare(self) -> None:
        """Before a measure."""
        self.settle()

    def settle(self) -> None:
        """What the requests so far left to do, done."""


class LocalAWSServer(Server):
    """The mlops daemon (gateway, local Lambda, control plane and its engines) and the
    execution environments it runs."""

    def __init__(self, deployed: Deployed, url: str, body: bytes, clients: int) -> None:
        super().__init__({})
        self.deployed, self.url, self.body, self.clients = deployed, url, body, clients

    def pids(self) -> dict[str, list[int]]:
        gateway = self.url.split("/", 3)[:3]
        with urllib.request.urlopen("/".join(gateway) + "/_mlops/workers") as resp:
            workers = json.loads(resp.read())["pids"]
        return {"daemon": [self.deployed.pid], "environments": workers}

    def prepare(self) -> None:
        """Environments warm for every client (one each, as Lambda), and nothing left of
        the measure before."""
        warm_pool(self.url, self.body, self.clients)
        self.settle()

    def settle(self) -> None:
        """Every log line so far shipped (log groups, subscriptions, Firehose) and read by
        the metrics engine."""
        gateway = "/".join(self.url.split("/", 3)[:3])
        request = urllib.request.Request(gateway + "/_mlops/flush", method="POST")
        with urllib.request.urlopen(request, timeout=120) as resp:
            resp.read()
        time.sleep(1.5)  # the metrics engine's read of what was shipped (every second)


# -- the three servers ----------------------------------------------------------------------


def train(work: Path) -> Path:
    out = work / "trained"
    subprocess.run([sys.executable, str(REPO / EXAMPLE / "train.py"), "--out", str(out),
                    "--seed", "42"], check=True, capture_output=True)
    return out


NOCAPTURE = """\
  predict-nocapture:                  # bench: the same model, capture off
    model: diagnosis
    route: POST /diagnosis/nocapture
    memory: 1024
    timeout: 15
"""


@dataclass
class Deployed:
    root: Path
    home: Path
    control_url: str
    urls: dict[str, str]  # endpoint -> URL of its native route
    pid: int  # the daemon's


def deploy_example(work: Path, trained: Path, extra: str = NOCAPTURE) -> Deployed:
    """The example (plus ``extra`` endpoints) deployed to a fresh local AWS on free ports."""
    root = work / "project"
    root.mkdir()
    text = (REPO / "mlops.yaml").read_text().replace("strategy: canary", "strategy: all_at_once")
    (root / "mlops.yaml").write_text(text.replace("endpoints:\n", "endpoints:\n" + extra, 1))
    shutil.copytree(trained, root / EXAMPLE)
    port = str(free_port(pair=True))
    os.environ["MLOPS_LOCAL_PORT"] = port
    subprocess.run([sys.executable, "-m", "framework.cli", "deploy"], cwd=root,
                   env={**os.environ}, check=True, capture_output=True, text=True)
    sys.path.insert(0, str(REPO))
    from framework import local
    from framework.workflow import Workspace, endpoints, open_session

    session = open_session(Workspace.open(root / "mlops.yaml"))
    urls = {i.name: i.url for i in endpoints(session, session.store.load())}
    home = root / ".mlops" / "local"
    aws = local.status(home)
    assert aws is not None
    return Deployed(root, home, aws.control_url, urls, aws.pid)


def stop_example(deployed: Deployed) -> None:
    subprocess.run([sys.executable, "-m", "framework.cli", "local", "stop"], cwd=deployed.root,
                   capture_output=True)


# -- the hops -------------------------------------------------------------------------------

ECHO = "def handler(event, context):\n    return {}\n"


def _p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _function(deployed: Deployed, endpoint: str) -> Any:
    """The deployed function version behind ``endpoint``'s alias, as the local Lambda sees it."""
    from framework.local import Runner

    runner = Runner(deployed.home, deployed.control_url)
    try:
        name = next(f for f in _functions(deployed) if f.endswith(f"-{endpoint}"))
        fn, _, arn = runner.target(name, "live")
        return fn, arn, runner.sandbox_spec(fn)
    finally:
        runner.close()


def _functions(deployed: Deployed) -> list[str]:
    from framework.runtime.clients import Connection

    lam = Connection("us-east-1", deployed.control_url, dummy_credentials=True).client("lambda")
    return [f["FunctionName"] for f in lam.list_functions()["Functions"]]


def gateway_event(url: str, body: bytes) -> dict[str, Any]:
    """The payload 2.0 event the gateway makes of one benchmark request."""
    from urllib.parse import urlsplit

    from framework.local.apigw import Route, build_event

    p = urlsplit(url)
    api_id, _, rest = p.path.lstrip("/").partition("/")
    route = Route.build(api_id, f"POST /{rest}", "arn")
    return build_event(route=route, api_id=api_id, stage="$default", method="POST",
                       raw_path="/" + rest, raw_query="",
                       headers=[("host", p.netloc), ("content-type", "application/json"),
                                ("content-length", str(len(body)))],
                       body=body, path_params={}, source_ip="127.0.0.1", request_id="bench")


def sandbox_p50(spec: Any, arn: str, event: bytes, n: int) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, the environment's CPU µs per invocation) of ``Sandbox.invoke`` on one
    warm stand-alone environment."""
    from framework.local.sandbox import Sandbox

    cpu: list[float] = []

    async def run() -> list[float]:
        sandbox = Sandbox(spec)
        error = await sandbox.start()
        if error is not None:
            raise RuntimeError(f"INIT failed: {error}")
        try:
            for _ in range(200):
                await sandbox.invoke(event, arn)
            out = []
            pid = sandbox.pid
            assert pid is not None
            cpu.append(cpu_seconds([pid]))
            for _ in range(n):
                t0 = time.perf_counter()
                result = await sandbox.invoke(event, arn)
                out.append(time.perf_counter() - t0)
                if result.error is not None:
                    raise RuntimeError(str(result.error))
            cpu.append(cpu_seconds([pid]))
            return sorted(out)
        finally:
            await sandbox.kill()

    samples = asyncio.run(run())
    return (_p50(samples), samples[int(0.99 * len(samples))] * 1000,
            (cpu[1] - cpu[0]) / n * 1e6)


def echo_spec(spec: Any, work: Path) -> Any:
    """A handler returning ``{}``, on the same runtime: the Runtime API round trip alone."""
    task = work / "echo"
    task.mkdir(exist_ok=True)
    (task / "echo.py").write_text(ECHO)
    return dataclasses.replace(
        spec, handler="echo.handler", task_root=task, layers=(),
        env={k: v for k, v in spec.env.items() if not k.startswith("MLOPS_")},
        log_path=work / "echo.log")


def in_process(deployed: Deployed, fn: Any, event: dict[str, Any], n: int = 5000,
               ) -> dict[str, float]:
    """Per-request µs, in this process: bare ``session.run``, the handler without capture and
    with it (the capture lines written to stdout; here /dev/null)."""
    import numpy as np

    from framework.runtime.clients import Connection
    from framework.runtime.service import Service, Settings

    conn = Connection(fn.region, deployed.control_url, dummy_credentials=True)
    env = {**fn.env, "AWS_LAMBDA_FUNCTION_NAME": fn.name,
           "AWS_LAMBDA_FUNCTION_VERSION": fn.version}
    plain = Service(Settings.from_env({**env, "MLOPS_CAPTURE_SAMPLE_RATE": "0"}), conn)
    captured = None
    if env.get("MLOPS_CAPTURE_SINK") == "log":
        captured = Service(Settings.from_env({**env, "MLOPS_CAPTURE_SAMPLE_RATE": "1"}), conn)
    bundle = plain.bundle
    one = json.loads(event["body"])["instances"][0]
    x = np.asarray([[one[f.name] for f in bundle.features]], dtype=np.float32)
    feeds = {bundle.inputs.inputs[0].name: x}
    names = [bundle.outputs.label, bundle.outputs.probabilities]

    def bench(fn_: Any, count: int = n) -> float:
        for _ in range(min(500, count)):
            fn_()
        samples = []
        for _ in range(count):
            t0 = time.perf_counter()
            fn_()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e6

    out = {"model_us": bench(lambda: bundle.session.run(names, feeds))}
    real_stdout = sys.stdout
    with open(os.devnull, "w") as devnull:  # the handler's log lines
        sys.stdout = devnull
        try:
            out["handler_us"] = bench(lambda: plain.handle(event, None))
            if captured is not None:
                out["handler_capture_us"] = bench(lambda: captured.handle(event, None), 1000)
        finally:
            sys.stdout = real_stdout
    return out


def hops(deployed: Deployed, body: bytes, work: Path, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for endpoint, key in (("predict-nocapture", "nocapture"), ("predict", "capture")):
        fn, arn, spec = _function(deployed, endpoint)
        event = gateway_event(deployed.urls[endpoint], body)
        raw = json.dumps(event).encode()
        (out[f"sandbox_{key}_p50_ms"], out[f"sandbox_{key}_p99_ms"],
         out[f"sandbox_{key}_cpu_us"]) = sandbox_p50(spec, arn, raw, n)
        if key == "nocapture":
            (out["runtime_api_p50_ms"], out["runtime_api_p99_ms"],
             out["runtime_api_cpu_us"]) = sandbox_p50(echo_spec(spec, work), arn, raw, n)
        else:
            out.update({f"inproc_{k}": v for k, v in in_process(deployed, fn, event).items()})
    return out


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
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every server in turn (medians reported)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()[0]}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        work = Path(tmp)
        deployed: Deployed | None = None
        try:
            print("training the example model ...", flush=True)
            trained = train(work)
            names = list(json.loads(
                (trained / "data/sample_request.json").read_text())["instances"][0])
            proc, url, start_s, body = minimal_server(trained, names)
            procs.append(proc)
            print(f"minimal server up in {start_s:.2f}s", flush=True)
            servers: list[tuple[str, str, str, bytes, Server]] = [
                ("minimal", "minimal", url, body, Server({"server": [proc.pid]}))]

            print("deploying the example to a fresh local AWS ...", flush=True)
            deployed = deploy_example(work, trained)
            for key, name, endpoint in (("mlops", "mlops (no capture)", "predict-nocapture"),
                                        ("mlops_capture", "mlops (capture)", "predict")):
                found = deployed.urls[endpoint]
                servers.append((key, name, found, body,
                                LocalAWSServer(deployed, found, body, args.clients)))
            if args.mlflow:
                print(f"starting mlflow models serve ({args.mlflow}) ...", flush=True)
                proc, url, start_s, mbody = mlflow_server(args.mlflow, work, body)
                procs.append(proc)
                print(f"mlflow up in {start_s:.2f}s", flush=True)
                servers.append(("mlflow", "mlflow", url, mbody, Server({"server": [proc.pid]})))
            else:
                print("mlflow: not installed, column skipped (see bench/README.md)")
            # Every server in turn, each round: a machine whose load changes during the run
            # weighs on all of them alike.
            for round_ in range(args.rounds):
                print(f"round {round_ + 1} of {args.rounds}", flush=True)
                for key, name, found, sent, server in servers:
                    results.setdefault("rounds", {}).setdefault(key, []).append(
                        measure(name, found, sent, args, server))
            for key, rounds in results["rounds"].items():
                results[key] = medians(rounds)
            print("pricing the hops ...", flush=True)
            results["hops"] = hops(deployed, body, work, args.requests)
            print("  " + ", ".join(f"{k} {v:.3f}" for k, v in results["hops"].items()),
                  flush=True)
        finally:
            for proc in procs:
                stop(proc)
            if deployed is not None:
                stop_example(deployed)
    results["load_after"] = os.getloadavg()[0]
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds."""
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if isinstance(value, dict):
            out[key] = {k: statistics.median(r[key][k] for r in rounds) for k in value}
        else:
            out[key] = statistics.median(r[key] for r in rounds)
    return out


def machine() -> str:
    import platform

    return f"{os.cpu_count()} vCPU, {platform.processor() or platform.machine()}, " \
           f"{platform.system()} {platform.release()}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        proc.wait(timeout=10)


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    ours, cap, minimal, mlflow, h = (r["mlops"], r["mlops_capture"], r["minimal"],
                                     r.get("mlflow"), r["hops"])
    print(f"\nmachine: {r['machine']}; load average {r['load_before']:.1f} before, "
          f"{r['load_after']:.1f} after; medians of {args.rounds} rounds\n")
    print("| | mlops local endpoint (no capture) | mlops, capture on | minimal stdlib + "
          "onnxruntime | mlflow models serve |")
    print("|---|---|---|---|---|")

    def cell(x: dict[str, Any] | None, key: str, fmt: str) -> str:
        return "—" if x is None else format(x[key], fmt)

    for key, label, fmt in (("p50_ms", "p50 latency, 1 client (ms)", ".2f"),
                            ("p99_ms", "p99 latency, 1 client (ms)", ".2f"),
                            ("rps", f"throughput, {args.clients} clients (req/s)", ".0f")):
        print(f"| {label} | {ours[key]:{fmt}} | {cap[key]:{fmt}} | {minimal[key]:{fmt}} | "
              f"{cell(mlflow, key, fmt)} |")
    print()
    print("| CPU per request, 1 client (µs) | mlops (no capture) | mlops, capture on | "
          "minimal |")
    print("|---|---|---|---|")
    for key, label in (("client", "the client (http.client)"),
                       ("daemon", "mlops daemon: gateway, local Lambda, control plane and "
                                  "engines"),
                       ("environments", "mlops execution environments (awslambdaric + "
                                        "handler)"),
                       ("server", "minimal server")):
        row = [x["cpu_us"].get(key) for x in (ours, cap, minimal)]
        print(f"| {label} | " + " | ".join("—" if v is None else f"{v:.0f}" for v in row)
              + " |")
    print()
    print("| ratio (mlops, no capture) | p50 | throughput |")
    print("|---|---|---|")
    print(f"| vs minimal | {ours['p50_ms'] / minimal['p50_ms']:.1f}× the latency | "
          f"{ours['rps'] / minimal['rps']:.2f}× |")
    if mlflow is not None:
        print(f"| vs mlflow | {ours['p50_ms'] / mlflow['p50_ms']:.2f}× the latency | "
              f"{ours['rps'] / mlflow['rps']:.2f}× |")
    gateway = ours["p50_ms"] - h["sandbox_nocapture_p50_ms"]
    handler_model = h["sandbox_nocapture_p50_ms"] - h["runtime_api_p50_ms"]
    model = h["inproc_model_us"] / 1000
    handler = h["inproc_handler_us"] / 1000 - model
    print()
    print("| hop (p50, one request, 1 client) | ms | how |")
    print("|---|---|---|")
    print(f"| HTTP end to end (no capture) | {ours['p50_ms']:.2f} | the table above |")
    print(f"| gateway + HTTP (client, aiohttp, event, response) | {gateway:.2f} | "
          f"end to end − Sandbox.invoke of the shipped function |")
    print(f"| Sandbox.invoke of the shipped function | {h['sandbox_nocapture_p50_ms']:.2f} | "
          f"stand-alone sandbox, same event |")
    print(f"| Runtime API round trip (awslambdaric) | {h['runtime_api_p50_ms']:.2f} | "
          f"Sandbox.invoke of a handler returning {{}} |")
    print(f"| handler + model in the sandbox (python3.13) | {handler_model:.2f} | "
          f"the two above, subtracted |")
    print(f"| handler alone, in process | {handler:.3f} | Service.handle − session.run |")
    print(f"| model (session.run, 1 row) | {model:.3f} | bare onnxruntime |")
    print(f"| capture over HTTP | {cap['p50_ms'] - ours['p50_ms']:.2f} | p50 capture on − off |")
    print(f"| capture in the sandbox | "
          f"{h['sandbox_capture_p50_ms'] - h['sandbox_nocapture_p50_ms']:.2f} | "
          f"Sandbox.invoke, capture on − off |")
    if "inproc_handler_capture_us" in h:
        print(f"| capture in process | "
              f"{(h['inproc_handler_capture_us'] - h['inproc_handler_us']) / 1000:.2f} | "
              f"Service.handle, capture on − off (the capture log lines to stdout) |")
    # What the CPU allows: requests/s if the gateway, the local Lambda service and the
    # engines cost nothing, the execution environment (awslambdaric polling the Runtime API)
    # and the client being all there is; beside the same bound for the minimal server.
    cpus = os.cpu_count() or 1
    floor_min = minimal["cpu_us"]["client"] + minimal["cpu_us"]["server"]
    print()
    print(f"| CPU bound on {cpus} vCPUs (µs per request → req/s at most) | µs | req/s | "
          "× the minimal server's bound |")
    print("|---|---:|---:|---:|")
    print(f"| minimal server + its client | {floor_min:.0f} | {cpus / floor_min * 1e6:,.0f} | "
          "1.00 |")
    for key, label in (("runtime_api_cpu_us", "an environment with a handler returning {} "
                                              "(awslambdaric alone) + the client"),
                       ("sandbox_nocapture_cpu_us", "the shipped function's environment + "
                                                    "the client")):
        need = h[key] + ours["cpu_us"]["client"]
        print(f"| {label}, nothing else | {need:.0f} | {cpus / need * 1e6:,.0f} | "
              f"{floor_min / need:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
