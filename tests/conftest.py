"""Shared fixtures and helpers."""

from __future__ import annotations

import os
from pathlib import Path

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
