"""The local data plane waits on descriptors through asyncio (epoll) or ``selectors`` only:
``select()`` fails past descriptor 1,023, which once broke worker starts under many
connections."""

from __future__ import annotations

import ast
from pathlib import Path

import framework.local

LOCAL = Path(framework.local.__file__).parent


def test_no_select_module_in_the_local_data_plane() -> None:
    offenders = []
    for path in sorted(LOCAL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno}" for name in names if name == "select"]
    assert offenders == []
