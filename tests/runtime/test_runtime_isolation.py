"""The runtime ships alone in the Lambda zip: it must import without control-side packages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_handler_imports_without_control_side_packages() -> None:
    code = textwrap.dedent(
        """
        import sys

        BLOCKED = ("pydantic", "yaml", "sklearn", "skl2onnx", "onnx", "framework.config",
                   "framework.artifacts", "typer", "rich")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError(f"runtime imported {name}")
                return None

        sys.meta_path.insert(0, Block())
        import handlers.inference  # noqa: F401
        import framework.runtime.http  # noqa: F401
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
