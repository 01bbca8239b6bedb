"""Parity fixtures: the example deployed once per session to the embedded local AWS, and the
same deployed function run a second way — its shipped zip and layers, fetched from the
registry bucket, in a stand-alone ``Sandbox`` (awslambdaric on python3.13, no daemon).

The second way is assembled here from what the control plane says (GetFunction, GetLayerVersion,
the registry bucket), not with the daemon's ``Runner``, so the comparison checks the gateway
and the runner against an independent reading of the deployment.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import io
import json
import os
import threading
import uuid
import zipfile
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from framework import local
from framework.compile import names
from framework.interpreters import find_python
from framework.local import sandbox as sandbox_module
from framework.local.files import RUNTIMES_DIR
from framework.local.runner import install_runtime, shared_cache
from framework.local.sandbox import Result, Sandbox, SandboxSpec
from tests.e2e.conftest import Project, trained  # noqa: F401  (the session's trained models)
from tests.ports import free_port_pair

T = TypeVar("T")
REGION = "us-east-1"
REGISTRY_TAG = "mlops:registry"


class Loop:
    """An asyncio loop on its own thread: sandboxes live on it for the whole session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="parity-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:  # what the sandboxes' servers left (a /next still waiting)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(drain(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@dataclass
class Reply:
    """An HTTP answer, as the client read it."""

    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes


@dataclass
class Deployment:
    project: Project
    aws: local.LocalAWS
    api_id: str
    routes: dict[str, str]  # route key -> the Lambda ARN its integration invokes
    conn: Any = field(repr=False)

    @property
    def host(self) -> str:
        return self.aws.gateway_url.removeprefix("http://")

    def request(self, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> Reply:
        """Exactly ``headers`` (and the body) sent to the gateway — nothing added by a
        client library, so the event the handler gets can be built from the same ones."""
        host, _, port = self.host.partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            conn.putrequest(method, f"/{self.api_id}{path}", skip_host=True,
                            skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(body or None)
            resp = conn.getresponse()
            return Reply(resp.status, [(k.lower(), v) for k, v in resp.getheaders()],
                         resp.read())
        finally:
            conn.close()


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory,
               trained: dict[int, Path]) -> Iterator[Deployment]:  # noqa: F811
    from tests.e2e.conftest import REPO

    root = tmp_path_factory.mktemp("parity") / "proj"
    root.mkdir()
    text = (REPO / "mlops.yaml").read_text().replace("strategy: canary", "strategy: all_at_once")
    (root / "mlops.yaml").write_text(text)
    project = Project(root, trained)
    project.use_model(42)
    home = root / ".mlops" / "local"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_PORT", str(free_port_pair()))
        try:
            project.mlops("deploy")
            aws = local.status(home)
            assert aws is not None, "the local AWS is not running after the deploy"
            conn = local.connection(aws, REGION)
            apis = conn.client("apigatewayv2").get_apis()["Items"]
            assert len(apis) == 1, apis
            api_id = apis[0]["ApiId"]
            yield Deployment(project, aws, api_id, _routes(conn, api_id), conn)
        finally:
            local.stop(home)


def _routes(conn: Any, api_id: str) -> dict[str, str]:
    apig = conn.client("apigatewayv2")
    integrations = {i["IntegrationId"]: i["IntegrationUri"]
                    for i in apig.get_integrations(ApiId=api_id)["Items"]}
    out = {}
    for route in apig.get_routes(ApiId=api_id)["Items"]:
        uri = integrations[str(route["Target"]).removeprefix("integrations/")]
        out[route["RouteKey"]] = uri.split("/functions/")[-1].removesuffix("/invocations")
    return out


# -- the shipped function, stand-alone ------------------------------------------------------


def _extract(body: bytes, target: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        archive.extractall(target)
    for path in target.rglob("*"):
        if path.is_file():
            os.chmod(path, path.stat().st_mode & 0o555)  # Lambda's /var/task and /opt are r/o
    return target


def _get_verified(s3: Any, bucket: str, key: str, sha_hex: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha_hex, f"s3://{bucket}/{key} was changed"
    return body


def shipped_spec(dep: Deployment, arn: str, work: Path) -> SandboxSpec:
    """A ``SandboxSpec`` for the function version ``arn`` (qualified) resolves to, built from
    GetFunction, GetLayerVersion and the registry bucket."""
    parts = arn.split(":")
    region, name, qualifier = parts[3], parts[6], parts[7] if len(parts) > 7 else "$LATEST"
    conn = local.connection(dep.aws, region)
    lam, s3 = conn.client("lambda"), conn.client("s3")
    resp = lam.get_function(FunctionName=name, Qualifier=qualifier)
    cfg = resp["Configuration"]
    version = str(cfg["Version"])
    tags = resp.get("Tags") or lam.list_tags(
        Resource=f"arn:aws:lambda:{region}:{parts[4]}:function:{name}")["Tags"]
    bucket = tags[REGISTRY_TAG]
    code_sha = base64.b64decode(cfg["CodeSha256"]).hex()
    root = work / f"{name}-{version}"
    task_root = _extract(_get_verified(s3, bucket, f"code/{code_sha}.zip", code_sha),
                         root / "task")
    layers = []
    for i, layer in enumerate(cfg.get("Layers") or ()):
        layer_name, _, number = str(layer["Arn"]).rpartition(":")
        content = lam.get_layer_version(LayerName=layer_name,
                                        VersionNumber=int(number))["Content"]
        sha = base64.b64decode(content["CodeSha256"]).hex()
        layers.append(_extract(_get_verified(s3, bucket, names.layer_key(sha), sha),
                               root / f"opt{i}"))
    runtime = str(cfg.get("Runtime") or "python3.13")
    arch = str((cfg.get("Architectures") or ["x86_64"])[0])
    # Lambda's /var/runtime (awslambdaric + boto3): the one the daemon installed for the runtime
    runtime_dir = install_runtime(shared_cache() / RUNTIMES_DIR, runtime, arch)
    memory = int(cfg.get("MemorySize") or 128)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": os.pathsep.join(
            [str(runtime_dir), str(task_root), str(task_root / "lib"),
             *(str(layer / "lib") for layer in layers)]),
        **((cfg.get("Environment") or {}).get("Variables") or {}),
        "_HANDLER": cfg["Handler"],
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": datetime.now(UTC).strftime("%Y/%m/%d")
        + f"/[{version}]{uuid.uuid4().hex}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "AWS_ENDPOINT_URL": dep.aws.control_url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return SandboxSpec(
        runtime=runtime, python=find_python(runtime), handler=cfg["Handler"],
        task_root=task_root, layers=tuple(layers), runtime_dir=runtime_dir, env=env,
        timeout_s=float(cfg.get("Timeout") or 3), memory_mb=memory,
        log_path=work / "logs" / f"{name}.log", function_arn=str(cfg["FunctionArn"]),
        version=version)


class Shipped:
    """One stand-alone sandbox per function version, started on first use."""

    def __init__(self, dep: Deployment, loop: Loop, work: Path) -> None:
        self.dep, self.loop, self.work = dep, loop, work
        self.sandboxes: dict[str, Sandbox] = {}
        self.lock = threading.Lock()

    def sandbox(self, arn: str) -> tuple[Sandbox, bool]:
        with self.lock:
            spec = shipped_spec(self.dep, arn, self.work) if arn not in self.sandboxes else None
            if spec is not None:
                sandbox = Sandbox(spec)
                error = self.loop.run(sandbox.start())
                assert error is None, f"INIT of the shipped {arn} failed: {error}"
                self.sandboxes[arn] = sandbox
                return sandbox, True
            return self.sandboxes[arn], False

    def invoke(self, arn: str, event: dict[str, Any]) -> tuple[Any, Result]:
        sandbox, cold = self.sandbox(arn)
        result = self.loop.run(sandbox.invoke(json.dumps(event).encode(), arn, cold=cold))
        assert result.error is None, result.error
        assert result.payload is not None
        return json.loads(result.payload), result

    def close(self) -> None:
        for sandbox in self.sandboxes.values():
            self.loop.run(sandbox.kill())


@pytest.fixture(scope="session")
def shipped(deployment: Deployment,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipped]:
    loop = Loop()
    # Answers are compared here, not INIT times: the stand-alone copy gets more than Lambda's
    # 10 s INIT limit, so a loaded machine does not fail it (the daemon keeps the real limit).
    patch = pytest.MonkeyPatch()
    patch.setattr(sandbox_module, "INIT_TIMEOUT_S", 60.0)
    reply = deployment.request("GET", "/v2/health/live", {"host": deployment.host})
    assert reply.status == 200, reply
    out = Shipped(deployment, loop, tmp_path_factory.mktemp("shipped"))
    try:
        yield out
    finally:
        out.close()
        loop.close()
        patch.undo()
