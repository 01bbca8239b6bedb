"""A corpus of broken mlops.yaml files: each must fail with the errors it expects.

Every file starts with one or more ``# expect: <substring>`` lines; each substring must occur
in the rendered ConfigError (``ConfigError.render()``), usually with ``(line N, col M)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config import load_config
from framework.errors import ConfigError

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.yaml"))
PREFIX = "# expect: "


def expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len(PREFIX) :] for line in lines if line.startswith(PREFIX)]


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 35
    for path in FILES:
        assert expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_file_fails_as_expected(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.exit_code == 2
    assert err.source == str(path.resolve())
    rendered = err.render()
    missing = [e for e in expectations(path) if e not in rendered]
    assert not missing, f"not found in:\n{rendered}\nmissing:\n" + "\n".join(missing)
    lines = [p.line for p in err.problems]
    assert all(line is not None for line in lines), rendered
    assert lines == sorted(lines), "problems must be sorted by line"
