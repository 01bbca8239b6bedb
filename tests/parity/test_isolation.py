"""A stand-alone sandbox runs a zip the way Lambda does: nothing of the project's virtualenv
(or the interpreter's site-packages) is importable; only the task root, the layers and the
runtime's directory are on ``sys.path``."""

from __future__ import annotations

import asyncio
import json
import sys
import zipfile
from pathlib import Path

import pytest

from framework.interpreters import find_python
from framework.local.files import RUNTIMES_DIR
from framework.local.runner import install_runtime, shared_cache
from framework.local.sandbox import Sandbox, SandboxSpec

pytestmark = pytest.mark.timeout(120)

PROBE = '''
import sys

def handler(event, context):
    try:
        import pydantic
        pydantic_from = pydantic.__file__
    except ImportError as e:
        pydantic_from = "ImportError: " + str(e)
    import awslambdaric
    return {"path": sys.path, "pydantic": pydantic_from, "ric": awslambdaric.__file__,
            "prefix": sys.prefix, "version": list(sys.version_info[:2]),
            "no_site": sys.flags.no_site}
'''


def test_sys_path_is_task_root_layers_and_runtime_only(shipped: object,
                                                       deployment: object,
                                                       tmp_path: Path) -> None:
    # the runtime's directory (Lambda's /var/runtime), as the daemon installs it
    runtime_dir = install_runtime(shared_cache() / RUNTIMES_DIR, "python3.13", "x86_64")
    task = tmp_path / "task"
    task.mkdir()
    with zipfile.ZipFile(tmp_path / "probe.zip", "w") as zf:
        zf.writestr("probe.py", PROBE)
    with zipfile.ZipFile(tmp_path / "probe.zip") as zf:
        zf.extractall(task)
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    spec = SandboxSpec(
        runtime="python3.13", python=find_python("python3.13"), handler="probe.handler",
        task_root=task, layers=(layer,), runtime_dir=runtime_dir,
        env={"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(task), "_HANDLER": "probe.handler"},
        timeout_s=10, memory_mb=None, log_path=tmp_path / "probe.log",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:probe", version="$LATEST")

    async def run() -> dict[str, object]:
        sandbox = Sandbox(spec)
        try:
            assert await sandbox.start() is None
            result = await sandbox.invoke(b"{}", spec.function_arn, cold=True)
        finally:
            await sandbox.kill()
        assert result.error is None, result.error
        assert result.payload is not None
        return dict(json.loads(result.payload))

    got = asyncio.run(run())
    venv = Path(sys.prefix).resolve()
    assert got["version"] == [3, 13]
    assert got["no_site"] == 1
    assert str(got["pydantic"]).startswith("ImportError"), got["pydantic"]
    assert Path(str(got["ric"])).resolve().is_relative_to(runtime_dir.resolve())
    entries = [Path(p).resolve() for p in got["path"] if p]  # type: ignore[union-attr]
    allowed = [task.resolve(), layer.resolve(), runtime_dir.resolve()]
    for entry in entries:
        assert not entry.is_relative_to(venv), f"{entry} is the project's virtualenv"
        assert "site-packages" not in entry.parts or entry.is_relative_to(layer.resolve()), entry
        assert any(entry.is_relative_to(a) for a in allowed) or _stdlib(entry), entry
    assert entries[0] == task.resolve()


def _stdlib(entry: Path) -> bool:
    """The interpreter's own standard library (lib/python3.13, its zip, lib-dynload)."""
    python = find_python("python3.13").resolve()
    base = python.parent.parent / "lib"
    return entry.is_relative_to(base) and "site-packages" not in entry.parts
