"""End-to-end fixtures: a real project on disk, deployed to the embedded local AWS.

Each test gets its own project folder and its own local AWS daemon on a free port; the
example model is trained once per run (two seeds, so version bumps have new bytes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import made_once
from tests.ports import free_port_pair

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/breast_cancer"


def _train(out: Path, seed: int) -> Path:
    subprocess.run([sys.executable, str(REPO / EXAMPLE / "train.py"), "--out", str(out),
                    "--seed", str(seed)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, machine_cache: None) -> dict[int, Path]:
    """The example model trained with seeds 42 and 7, once per run (pytest-xdist's workers
    share them). What every deployment here needs besides, the layers and the runtime, is in
    the machine cache first (``machine_cache``)."""
    seeds = (42, 7)
    base = made_once(tmp_path_factory, "trained",
                     lambda base: [_train(base / f"seed{seed}", seed) for seed in seeds])
    return {seed: base / f"seed{seed}" for seed in seeds}


class Project:
    """A project folder with mlops.yaml and the example artifacts."""

    def __init__(self, root: Path, trained: dict[int, Path]) -> None:
        self.root = root
        self.trained = trained
        self.yaml = root / "mlops.yaml"

    def use_model(self, seed: int) -> None:
        dest = self.root / EXAMPLE
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(self.trained[seed], dest)
        shutil.copy(REPO / EXAMPLE / "train.py", dest / "train.py")  # the training entry point

    def edit(self, old: str, new: str) -> None:
        text = self.yaml.read_text()
        assert old in text, f"{old!r} not in mlops.yaml"
        self.yaml.write_text(text.replace(old, new, 1))

    def mlops(self, *args: str, check: bool = True,
              timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "framework.cli", *args], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"mlops {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def sample(self) -> bytes:
        return (self.root / EXAMPLE / "data" / "sample_request.json").read_bytes()


@pytest.fixture
def project(tmp_path: Path, trained: dict[int, Path],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    # The example's canary bakes for 15 s a step; tests that are not about rollouts deploy
    # new versions at once (rollout tests set their own strategy).
    text = (REPO / "mlops.yaml").read_text().replace("strategy: canary", "strategy: all_at_once")
    (root / "mlops.yaml").write_text(text)
    proj = Project(root, trained)
    proj.use_model(42)
    monkeypatch.setenv("MLOPS_LOCAL_PORT", str(free_port_pair()))
    monkeypatch.chdir(root)
    yield proj
    from framework import local

    local.stop(root / ".mlops" / "local")


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, dict(exc.headers), exc.read()
    try:
        payload: Any = json.loads(raw)
    except ValueError:
        payload = raw.decode(errors="replace")
    return status, {k.lower(): v for k, v in hdrs.items()}, payload
