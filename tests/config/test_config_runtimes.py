"""Lambda runtimes and architectures: the table, what load refuses and what it warns about."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from framework.config import Config, load_config
from framework.config.runtimes import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    Architecture,
    parse_architecture,
    parse_runtime,
    runtime_warning,
    supported,
)
from framework.errors import ConfigError

BASE = {"project": "p", "models": {"m": {"version": "1.0.0", "artifact": "m.onnx",
                                         "features": [{"name": "x", "type": "float"}]}},
        "endpoints": {"e": {"model": "m", "route": "POST /e"}}}


def test_defaults_are_the_newest_supported_runtime_on_x86_64() -> None:
    cfg = Config.model_validate(BASE)
    assert cfg.runtime == DEFAULT_RUNTIME == "python3.13"
    assert cfg.architecture is Architecture.x86_64
    assert cfg.endpoint_runtime("e") == ("python3.13", Architecture.x86_64)


def test_an_endpoint_chooses_its_own_runtime_and_architecture() -> None:
    spec = {**BASE, "runtime": "python3.12",
            "endpoints": {"e": {"model": "m", "route": "POST /e", "runtime": "python3.14",
                                "architecture": "arm64"},
                          "f": {"model": "m", "route": "POST /f"}}}
    cfg = Config.model_validate(spec)
    assert cfg.endpoint_runtime("e") == ("python3.14", Architecture.arm64)
    assert cfg.endpoint_runtime("f") == ("python3.12", Architecture.x86_64)


def test_the_table_has_lambdas_python_runtimes_with_their_dates() -> None:
    assert list(RUNTIMES) == ["python3.14", "python3.13", "python3.12", "python3.11",
                              "python3.10"]
    py311 = RUNTIMES["python3.11"]
    assert py311.deprecation == date(2026, 6, 30) and py311.block_create == date(2026, 7, 31)
    assert RUNTIMES["python3.12"].deprecation == date(2028, 10, 31)
    for r in RUNTIMES.values():
        assert r.deprecation < r.block_create <= r.block_update
        assert r.identifier == f"python{r.python}"
    assert RUNTIMES["python3.13"].glibc == (2, 28) and RUNTIMES["python3.11"].glibc == (2, 17)


def test_runtimes_lambda_no_longer_creates_are_refused() -> None:
    today = date(2026, 11, 30)
    assert supported(today) == ["python3.14", "python3.13", "python3.12"]
    with pytest.raises(ValueError, match=r"python3\.11 was deprecated on 2026-06-30.*"
                                         r"since 2026-07-31; use one of python3\.14"):
        parse_runtime("python3.11", today)
    with pytest.raises(ValueError, match="not a Lambda Python runtime"):
        parse_runtime("python3.9", today)
    assert parse_runtime("python3.11", date(2026, 7, 1)).python == "3.11"  # not yet blocked


def test_warnings_start_six_months_before_deprecation() -> None:
    assert runtime_warning("python3.13", date(2028, 12, 1)) is None
    soon = runtime_warning("python3.13", date(2029, 1, 15))
    assert soon and "deprecated on 2029-06-30" in soon and "python3.14" in soon
    late = runtime_warning("python3.13", date(2029, 7, 5))
    assert late and "deprecated since 2029-06-30" in late
    assert runtime_warning("python3.11", date(2026, 11, 30)) is None  # refused, not warned


def test_load_refuses_a_blocked_runtime_with_where_and_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "mlops.yaml"
    path.write_text("project: p\nruntime: python3.11\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = info.value.problems[0].render()
    assert text.startswith("runtime: python3.11 was deprecated") and "use one of" in text
    path.write_text("project: p\narchitecture: sparc\n")
    with pytest.raises(ConfigError, match="problem"):
        load_config(path)


def test_load_carries_runtime_warnings(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.config import runtimes

    path = tmp_path / "mlops.yaml"
    path.write_text("project: p\nruntime: python3.12\n")
    assert load_config(path).warnings == ()
    real = runtimes.runtime_warning
    monkeypatch.setattr(runtimes, "runtime_warning",
                        lambda text, today=None: real(text, date(2028, 6, 1)))
    warnings = load_config(path).warnings
    assert len(warnings) == 1 and warnings[0].startswith("runtime: python3.12 is deprecated on")


def test_architecture_parsing() -> None:
    assert parse_architecture("arm64") is Architecture.arm64
    with pytest.raises(ValueError, match="x86_64 or arm64"):
        parse_architecture("aarch64")
