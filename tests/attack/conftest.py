"""The attack suite's target: the example project deployed once to the embedded local AWS,
with three endpoints on the same model (no auth, ``api_key``, ``iam``) and the gateway's
bounds made short enough to watch (header 3 s, idle 5 s, body 3 s, 1,000 connections, 2
execution environments per function)."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import REPO, Project, _train
from tests.ports import free_port_pair

LIMITS = {
    "MLOPS_LOCAL_HEADER_TIMEOUT_S": "3",
    "MLOPS_LOCAL_IDLE_TIMEOUT_S": "5",
    "MLOPS_LOCAL_BODY_TIMEOUT_S": "3",
    "MLOPS_LOCAL_MAX_CONNECTIONS": "1000",
    "MLOPS_LOCAL_CONCURRENCY": "2",
}
EXTRA_ENDPOINTS = """
  keyed:
    model: diagnosis
    route: POST /diagnosis/keyed
    auth: api_key
  signed:
    model: diagnosis
    route: POST /diagnosis/signed
    auth: iam
"""
_INVOCATIONS = re.compile(r"^mlops_invocations_total\{[^}]*\} ([0-9.e+]+)$", re.M)


@dataclass(frozen=True)
class Target:
    project: Project
    gateway: str  # http://127.0.0.1:<port>
    port: int
    paths: dict[str, str]  # endpoint → request path on the gateway (/<api id>/<route>)
    sample: bytes  # a valid two-row request body

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.gateway}{path}", timeout=30) as resp:
            return bytes(resp.read())

    @property
    def pid(self) -> int:
        return int(json.loads(self.get("/_mlops/health"))["pid"])

    def invocations(self) -> float:
        """Function invocations the gateway made so far (every endpoint, cold and warm)."""
        return sum(float(v) for v in _INVOCATIONS.findall(self.get("/metrics").decode()))

    def workers(self, function: str | None = None) -> list[int]:
        """Live execution environments, of one function (by name fragment) or all."""
        pids = [int(p) for p in json.loads(self.get("/_mlops/workers"))["pids"]]
        if function is None:
            return pids
        return [pid for pid in pids if function in _environ(pid).get(
            "AWS_LAMBDA_FUNCTION_NAME", "")]


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(): v.decode(errors="replace") for k, _, v in pairs}


def proc_status(pid: int) -> dict[str, int]:
    """The daemon's resident memory (kB), threads and open descriptors, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base = tmp_path_factory.mktemp("attack")
    trained = {42: _train(base / "trained", 42)}
    root = base / "proj"
    root.mkdir()
    text = (REPO / "mlops.yaml").read_text().replace("strategy: canary", "strategy: all_at_once")
    text = text.replace("\nmonitors:", EXTRA_ENDPOINTS + "\nmonitors:", 1)
    (root / "mlops.yaml").write_text(text)
    project = Project(root, trained)
    project.use_model(42)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_PORT", str(free_port_pair()))
        for name, value in LIMITS.items():
            mp.setenv(name, value)
        mp.chdir(root)
        try:
            project.mlops("deploy", timeout=600)
            from framework.workflow import Workspace, endpoints, open_session

            session = open_session(Workspace.open(project.yaml))
            urls = {i.name: i.url for i in endpoints(session, session.store.load())}
        except BaseException:
            _stop(root)
            raise
    parts = urlsplit(urls["predict"])
    gateway = f"{parts.scheme}://{parts.netloc}"
    assert parts.port is not None
    yield Target(project, gateway, parts.port,
                 {name: urlsplit(url).path for name, url in urls.items()}, project.sample())
    _stop(root)


def _stop(root: Path) -> None:
    from framework import local

    local.stop(root / ".mlops" / "local")
