"""The latency gate's measurement: the packaged handler, answering single-row requests.

The handler zip that ships is extracted and run in a fresh Python process (its own
``framework`` and ``handlers`` first on ``sys.path``, as in Lambda) with the model loaded
from the local artifact through the packaged runtime's own ``ModelBundle``; each request is a
real API Gateway v2.0 event through ``handlers.inference.handler``. After a warm-up, p50 and
p99 over ``n`` calls are reported in milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.errors import MlopsError

if TYPE_CHECKING:
    from framework.workflow import Workspace

REQUESTS = 300
WARMUP = 30

SCRIPT = r"""
import json, os, sys, time
code, model_dir, n, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, code)
import framework
if not os.path.realpath(framework.__file__).startswith(os.path.realpath(code)):
    sys.exit(f"framework imported from {framework.__file__}, not from the package")
from framework.runtime.inference import ModelBundle
from framework.runtime.service import Service, Settings
import handlers.inference as entry

meta = json.load(open(os.path.join(model_dir, "metadata.json")))
data = open(os.path.join(model_dir, "model.onnx"), "rb").read()
settings = Settings.from_env(os.environ)
service = Service(settings)
service._bundle = ModelBundle.from_bytes(meta, data, meta["sha256"], max_rows=settings.max_rows)
entry._cache[settings] = service
body = json.dumps({"instances": [json.loads(os.environ["GATE_ROW"])]})
route = os.environ["MLOPS_ROUTE"]
method, path = route.split(" ", 1)

class Context:
    aws_request_id = "gate"
    function_name = "gate"
    def get_remaining_time_in_millis(self):
        return 30000

def event(i):
    return {"version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json"}, "body": body,
            "isBase64Encoded": False,
            "requestContext": {"http": {"method": method, "path": path}, "requestId": f"r{i}",
                               "routeKey": route, "stage": "$default"}}

ctx = Context()
for i in range(warmup):
    first = entry.handler(event(i), ctx)
if first["statusCode"] != 200:
    sys.exit(f"the packaged handler answered {first['statusCode']}: {first['body']}")
times = []
for i in range(n):
    e = event(i)
    t0 = time.perf_counter()
    entry.handler(e, ctx)
    times.append((time.perf_counter() - t0) * 1000.0)
times.sort()
print(json.dumps({"p50_latency_ms": times[len(times) // 2],
                  "p99_latency_ms": times[min(len(times) - 1, int(len(times) * 0.99))]}))
"""


def sample_row(ws: Workspace, name: str, features: Sequence[str] | None = None,
               ) -> dict[str, Any]:
    """One realistic request row (of ``features``, default the model's): the first hold-out
    row, else values the contract allows."""
    model = ws.loaded.config.models[name]
    names = list(features) if features is not None else [f.name for f in model.features]
    if model.holdout is not None:
        from framework.gates import read_holdout

        records, _ = read_holdout(ws.root / model.holdout.path, model.holdout.label)
        if records:
            return {k: records[0].get(k) for k in names}
    row: dict[str, Any] = {}
    for f in model.features:
        if f.values:
            row[f.name] = f.values[0]
        elif f.type.value == "bool":
            row[f.name] = False
        else:
            row[f.name] = f.min if f.min is not None else (f.max if f.max is not None else 0)
    return row


def handler_latency(ws: Workspace, name: str, metadata: Mapping[str, Any],
                    n: int = REQUESTS, artifact: bytes | None = None) -> dict[str, float]:
    """p50/p99 of the declared artifact, or of ``artifact`` (another version's ONNX bytes,
    described by ``metadata``: the champion a relative gate compares with)."""
    from framework.package import build_code_bundle

    model = ws.loaded.config.models[name]
    bundle = build_code_bundle(ws.root, ws.home / "build")
    with tempfile.TemporaryDirectory(prefix="mlops-gate-") as tmp:
        code, model_dir = Path(tmp) / "code", Path(tmp) / "model"
        with zipfile.ZipFile(ws.root / bundle.source) as zf:
            zf.extractall(code)
        model_dir.mkdir()
        (model_dir / "model.onnx").write_bytes(
            artifact if artifact is not None else (ws.root / model.artifact).read_bytes())
        features = [str(f["name"]) for f in metadata.get("features", [])] or None
        (model_dir / "metadata.json").write_text(json.dumps(dict(metadata)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
        env.update({
            "MLOPS_REGISTRY_BUCKET": "gate", "MLOPS_MODEL_NAME": name,
            "MLOPS_MODEL_VERSION": str(metadata.get("version") or model.version),
            "MLOPS_MODEL_SHA256": str(metadata["sha256"]),
            "MLOPS_ENDPOINT": "gate", "MLOPS_ROUTE": "POST /gate",
            "GATE_ROW": json.dumps(sample_row(ws, name, features)), "AWS_REGION": "us-east-1",
        })
        proc = subprocess.run([sys.executable, "-s", "-c", SCRIPT, str(code), str(model_dir),
                               str(n), str(WARMUP)], cwd=code, env=env, capture_output=True,
                              text=True, timeout=300)
    if proc.returncode != 0:
        raise MlopsError(f"measuring {name}'s latency failed: "
                         f"{(proc.stderr or proc.stdout).strip()[-400:]}",
                         hint="run `mlops test` to see the gates one by one")
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures

