"""Names that are not in mlops.yaml: bad input (exit 2), the close one and the whole list."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.cli_common import check_name
from framework.errors import ConfigError
from tests.test_cli_output import make_project, mlops


def test_check_name_suggests_the_close_name_and_lists_all() -> None:
    check_name("predict", ["predict", "score"], what="endpoint", where="x")
    with pytest.raises(ConfigError) as caught:
        check_name("predcit", ["predict", "score"], what="endpoint", where="predcit")
    assert caught.value.exit_code == 2
    text = caught.value.render()
    assert "no endpoint named 'predcit'" in text
    assert "did you mean 'predict'?" in text and "endpoints in mlops.yaml: predict, score" in text
    with pytest.raises(ConfigError) as far:
        check_name("zzz", ["predict"], what="model", where="zzz", listed="in the registry")
    assert "did you mean" not in far.value.render()
    assert "models in the registry: predict" in far.value.render()


@pytest.mark.parametrize(("args", "listed"), [
    (("url", "predcit"), "did you mean 'predict'? endpoints in mlops.yaml: predict"),
    (("invoke", "predcit", "--data", "{}"),
     "did you mean 'predict'? endpoints in mlops.yaml: predict"),
    (("monitor", "run", "diagnosis-drif"),
     "did you mean 'diagnosis-drift'? monitors in mlops.yaml: diagnosis-drift"),
    (("monitor", "run", "nosuch"), "monitors in mlops.yaml: diagnosis-drift"),
    (("monitor", "history", "nosuch"), "monitors in mlops.yaml: diagnosis-drift"),
])
def test_unknown_names_exit_2_before_reaching_the_target(tmp_path: Path, args: tuple[str, ...],
                                                         listed: str) -> None:
    root = make_project(tmp_path / "proj")
    result = mlops(root, *args)
    assert result.returncode == 2, result.stderr
    assert listed in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert not (root / ".mlops" / "local").exists()  # the local AWS was never started


def test_fail_on_takes_repeated_and_comma_separated_verdicts() -> None:
    from framework.cli_monitor import VerdictError, fail_on_verdicts

    assert fail_on_verdicts(None) == set()
    assert fail_on_verdicts(["drift"]) == {"drift"}
    assert fail_on_verdicts(["drift,degraded", "NO_DATA"]) == {"drift", "degraded", "no_data"}
    assert fail_on_verdicts(["any"]) == {"drift", "degraded", "no_data"}
    assert VerdictError.exit_code == 9


def test_fail_on_an_unknown_verdict_is_bad_input(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    result = mlops(root, "monitor", "run", "diagnosis-drift", "--fail-on", "drfit")
    assert result.returncode == 2, result.stderr
    text = " ".join(result.stderr.split())
    assert "unknown verdict drfit" in text and "drift, degraded, no_data, any" in text
    assert not (root / ".mlops" / "local").exists()
