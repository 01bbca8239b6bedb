"""Shared fixtures and helpers."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; MLOPS_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("MLOPS_UPDATE_GOLDEN") == "1" or not path.exists():
        path.write_text(text)
        if not os.environ.get("MLOPS_UPDATE_GOLDEN"):
            pytest.fail(f"golden file {path} was missing and has been written; review it")
    assert text == path.read_text(), (
        f"output differs from {path}; if the change is intended, rerun with "
        "MLOPS_UPDATE_GOLDEN=1 and review the diff")


# -- parallel runs (pytest-xdist with `--dist loadgroup`, as scripts/test.sh runs the suite) ---
#
# A test that deploys the example starts a local AWS of its own: those are handed to the
# workers one by one, the longest first. Every other test runs with the rest of its module, or
# of its folder where the folder's session fixtures start a local AWS (or deploy the example):
# one such daemon per run, not one per worker. The groups are made here, from the paths:
# pytest 9 no longer lets pytest-xdist read `xdist_group` marks.

SPREAD = "tests/e2e/"
SESSION_FOLDERS = ("tests/local/", "tests/registry/", "tests/retrain/", "tests/parity/",
                   "tests/attack/")
# The longest first (measured): the others fill the workers around them.
FIRST = ("tests/e2e/test_cli_matrix.py", "tests/e2e/test_case_studies.py",
         "tests/e2e/test_cli_e2e.py", "tests/e2e/test_registry_e2e.py",
         "tests/e2e/test_dashboard_e2e.py", "tests/e2e/test_monitor_e2e.py",
         "tests/e2e/test_rollout_e2e.py", "tests/e2e/", "tests/attack/", "tests/parity/",
         "tests/test_package_layer.py", "tests/local/", "tests/synth/")


def _group(nodeid: str) -> str:
    """The unit of work ``nodeid`` goes to a worker with."""
    path = nodeid.split("::", 1)[0]
    if path.startswith(SPREAD):
        return nodeid
    return next((folder for folder in SESSION_FOLDERS if path.startswith(folder)), path)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Groups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    config.option.loadscopereorder = False  # the order of the collection, the longest first
    return Groups(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not a pytest-xdist worker: file order
        return
    items.sort(key=lambda item: next((i for i, prefix in enumerate(FIRST)
                                      if item.nodeid.startswith(prefix)), len(FIRST)))


def made_once(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder ``make`` fills once per run: pytest-xdist's workers share it (the first one
    makes it while the others wait for it; a failed ``make`` is tried again by the next)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = factory.mktemp(name)
        make(folder)
        return folder
    root = factory.getbasetemp().parent  # the run's, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def machine_cache() -> None:
    """The example's layers and Lambda runtime in the machine cache (~/.cache/mlops), built
    once: on a new machine, parallel workers would otherwise each build the same ones (pip,
    compiling, zipping) before their first deploy. Under a lock, so one builds and the others
    then find them; every write there is atomic as well."""
    from framework import layers
    from framework.config.runtimes import DEFAULT_RUNTIME
    from framework.local.files import RUNTIMES_DIR
    from framework.local.runner import install_runtime, shared_cache

    cache = layers.machine_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with tempfile.TemporaryDirectory(prefix="mlops-tests-") as tmp:
            for need in layers.NEEDS:
                layers.ensure_layer((need, DEFAULT_RUNTIME, "x86_64"), Path(tmp))
        install_runtime(shared_cache() / RUNTIMES_DIR, DEFAULT_RUNTIME, "x86_64")
