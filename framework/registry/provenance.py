"""Where a version came from: code revision, environment, author, training data fingerprint.

``data_fingerprint`` is deterministic (it goes into the compiled graph); ``provenance`` is
not (time, author, git state) and is added at registration time only.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

PACKAGES = ("numpy", "onnx", "onnxruntime", "scikit-learn", "skl2onnx", "onnxmltools",
            "xgboost", "lightgbm", "mlops")
ALSO_NAMED = {"xgboost": ("xgboost-cpu",)}  # distributions that install the same package


def data_fingerprint(path: Path) -> dict[str, Any]:
    """SHA-256, rows and columns of a CSV file (header row names the columns)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    rows = 0
    columns: list[str] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        columns = next(reader, [])
        for _ in reader:
            rows += 1
    return {"path": path.name, "sha256": digest.hexdigest(), "rows": rows,
            "columns": len(columns), "column_names": columns}


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_revision(root: Path) -> dict[str, Any]:
    """``{"commit", "dirty", "branch"}``; commit is None outside a git work tree."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "branch": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "branch": _git(root, "rev-parse",
                                                                    "--abbrev-ref", "HEAD")}


def environment() -> dict[str, Any]:
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        packages[name] = None
        for dist in (name, *ALSO_NAMED.get(name, ())):
            try:
                packages[name] = importlib_metadata.version(dist)
                break
            except importlib_metadata.PackageNotFoundError:
                continue
    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "packages": packages}


def author() -> str:
    explicit = os.environ.get("MLOPS_AUTHOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def provenance(root: Path) -> dict[str, Any]:
    """The non-deterministic part of a version's metadata, taken when it is registered."""
    return {"created_at": now_iso(), "author": author(), "code": code_revision(root),
            "environment": environment()}
