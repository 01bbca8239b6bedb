"""Find a CPython interpreter of a given version: the one a Lambda runtime's code runs on.

The local data plane runs each function on its runtime's own Python (python3.13 code on a
3.13 interpreter), and the layer tests import the built layers with it. Looked up, in order:
``MLOPS_PYTHON3_13`` (for python 3.13; the variable names the interpreter's file), then
``python3.13`` on ``PATH``, then pyenv's ``~/.pyenv/versions/3.13.*/bin/python3.13`` (the
newest patch release).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from framework.errors import MlopsError

VERSION_RE = re.compile(r"^3\.\d+$")


class InterpreterNotFound(MlopsError):
    """No interpreter of the wanted version on this machine."""


def env_var(version: str) -> str:
    """'3.13' → 'MLOPS_PYTHON3_13'."""
    return "MLOPS_PYTHON" + version.replace(".", "_")


def _pyenv_candidates(version: str, home: Path) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT") or home / ".pyenv") / "versions"
    found = []
    for path in root.glob(f"{version}.*/bin/python{version}"):
        patch = path.parent.parent.name.removeprefix(f"{version}.")
        if patch.isdigit():
            found.append((int(patch), path))
    return [p for _, p in sorted(found, reverse=True)]


def _reports(path: Path, version: str) -> bool:
    """Whether ``path`` runs and is CPython ``version``."""
    try:
        proc = subprocess.run(
            [str(path), "-S", "-c",
             "import sys, platform; print('%d.%d' % sys.version_info[:2], "
             "platform.python_implementation())"],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and proc.stdout.split() == [version, "CPython"]


def find_python(version: str, *, home: Path | None = None) -> Path:
    """The interpreter file of CPython ``version`` ('3.13'); InterpreterNotFound says how to
    get one. ``runtime`` identifiers work too ('python3.13')."""
    version = version.removeprefix("python")
    if not VERSION_RE.match(version):
        raise ValueError(f"{version!r} is not a Python version such as 3.13")
    var = env_var(version)
    explicit = os.environ.get(var)
    if explicit:
        path = Path(explicit)
        if _reports(path, version):
            return path
        raise InterpreterNotFound(
            f"{var}={explicit} is not a working CPython {version} interpreter",
            hint=f"point {var} at a python{version} executable, or unset it")
    candidates: list[Path] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    candidates += _pyenv_candidates(version, home or Path.home())
    for path in candidates:
        if _reports(path, version):
            return path
    raise InterpreterNotFound(
        f"no Python {version} interpreter found (looked for python{version} on PATH and in "
        f"~/.pyenv/versions/{version}.*/bin/)",
        hint=f"install it (e.g. `pyenv install {version}`, or your OS's python{version} "
             f"package), or set {var} to its path")
