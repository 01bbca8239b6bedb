"""The Lambda layer: wheels unpacked under python/, pruned, zipped; the 250 MB check."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from framework.errors import ConfigError
from framework.package import UNZIPPED_LIMIT, build_layer, check_unzipped, tree_size


def _wheel(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def test_layer_from_wheels(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels / "fake-1.0-py3-none-any.whl", {
        "fake/__init__.py": b"X = 1\n", "fake/tests/test_x.py": b"",
        "fake-1.0.dist-info/METADATA": b"Name: fake\n"})
    path, size = build_layer(tmp_path / "out", wheels=wheels)
    names = zipfile.ZipFile(path).namelist()
    assert "python/fake/__init__.py" in names
    assert not any("/tests/" in n for n in names)
    assert size == len(b"X = 1\n") + len(b"Name: fake\n")
    again, _ = build_layer(tmp_path / "out2", wheels=wheels)
    assert again.name == path.name  # reproducible: same bytes, same name


def test_oversized_tree_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    tree = tmp_path / "python"
    tree.mkdir()
    with (tree / "huge.so").open("wb") as fh:  # sparse: 240 MB on paper, nothing on disk
        fh.truncate(240 * 1024 * 1024)
    os.symlink(tree / "huge.so", tree / "link.so")  # links are not counted twice
    size = tree_size(tree)
    assert size == 240 * 1024 * 1024
    check_unzipped(5 * 1024 * 1024, size, "layer")  # 245 MB: fits
    with pytest.raises(ConfigError) as info:
        check_unzipped(11 * 1024 * 1024, size, "layer (x86_64)")
    text = info.value.render()
    assert "251.0 MB unzipped" in text and "250 MB" in text and "layer (x86_64)" in text
    assert UNZIPPED_LIMIT == 250 * 1024 * 1024


def test_oversized_layer_build_fails(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels / "big-1.0-py3-none-any.whl", {"big/blob.bin": b"\0" * (2 * 1024 * 1024)})
    with pytest.raises(ConfigError):
        build_layer(tmp_path / "out", wheels=wheels, code_bytes=UNZIPPED_LIMIT - 1024 * 1024)
    assert not list((tmp_path / "out").glob("*.zip"))
