"""Output that scripts read: tables are never cut when stdout is a pipe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LONG = {"time": "2026-01-01T00:00:00Z", "actor": "someone-with-a-very-long-name@example.com",
        "action": "promote", "resource": "model_registry/diagnosis/aliases/production",
        "kind": "model_registry", "before": {"version": "1.0.0", "stage": "staging"},
        "after": {"version": "1.1.0", "stage": "production", "note": "the-whole-cell-ends-here"},
        "outcome": "succeeded"}


def make_project(root: Path) -> Path:
    """The repository's example mlops.yaml in a folder of its own (nothing deployed)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "mlops.yaml", root / "mlops.yaml")
    (root / ".mlops").mkdir()
    return root


def mlops(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framework.cli", *args], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(root),
                               "PYTHONPATH": str(REPO), "COLUMNS": "80",
                               "MLOPS_LOCAL_PORT": "1"})


def test_a_piped_table_keeps_every_cell_whole(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    (root / ".mlops" / "audit.jsonl").write_text(json.dumps(LONG) + "\n")
    result = mlops(root, "audit")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "promote" in line)
    assert len(row) > 120  # wider than any terminal default
    assert "version=1.0.0, stage=staging → version=1.1.0, stage=production, " \
           "note=the-whole-cell-ends-here" in row
    assert LONG["actor"] in row and LONG["resource"] in row


def test_long_work_says_each_step_on_stderr_and_leaves_stdout_to_the_result(
        tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    shutil.copytree(REPO / "examples" / "breast_cancer", root / "examples" / "breast_cancer")
    result = subprocess.run([sys.executable, "-m", "framework.cli", "test", "--offline"],
                            cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "… measuring diagnosis 1.0.0 on its hold-out for its gates" in result.stderr
    assert "…" not in result.stdout and "gates of diagnosis" in result.stdout
