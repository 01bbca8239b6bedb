"""notify.when: explicit values (one or a list), a default that does what it says, validated
by the config loader and by the generated JSON Schema, decided the same way in the monitor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framework.config import load_config
from framework.config.models import Notify, NotifyWhen
from framework.config.schema import json_schema
from framework.errors import ConfigError
from framework.monitoring.run import not_mailed, should_notify
from framework.monitoring.spec import DEFAULT_WHEN, NOTIFY_WHEN, notify_when
from tests.monitoring.support import spec

REPO = Path(__file__).resolve().parents[2]
STATUSES = ("ok", "drift", "degraded", "no_data", "failure")
CONFIG = """\
project: p
models:
  m: {{version: 1.0.0, artifact: m.onnx, features: [{{name: x, type: float}}]}}
endpoints:
  e: {{model: m, route: POST /x}}
monitors:
  watch: {{endpoint: e, notify: {{email: [ops@example.com]{when}}}}}
"""


def _problems(tmp_path: Path, when: str) -> list[str]:
    path = tmp_path / "mlops.yaml"
    path.write_text(CONFIG.format(when=when), encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as e:
        return [p.render() for p in e.problems if ".when" in p.render()]
    return []


@pytest.mark.parametrize(("when", "mailed"), [
    ("drift", {"drift"}),
    ("no_data", {"no_data"}),
    ("degraded", {"degraded"}),
    ("failure", {"failure"}),
    ("always", set(STATUSES)),
    (["drift", "failure"], {"drift", "failure"}),
    (None, {"drift", "degraded", "failure"}),  # the default
])
def test_each_value_mails_the_runs_it_names(when: object, mailed: set[str]) -> None:
    notify = {"email": ["ops@example.com"], **({} if when is None else {"when": when})}
    s = spec(notify=notify)
    assert {st for st in STATUSES if should_notify(s, st)} == mailed
    for status in set(STATUSES) - mailed:
        assert not_mailed(s, status).endswith(f"and the status is {status}")


def test_drift_needs_notify_in_on_drift_and_recipients() -> None:
    s = spec(notify={"email": ["ops@example.com"], "when": "drift"}, on_drift=["rollback"])
    assert not should_notify(s, "drift") and not_mailed(s, "drift") == "on_drift has no notify"
    nobody = spec(notify={"when": "always"})
    assert not should_notify(nobody, "failure")
    assert not_mailed(nobody, "failure") == "notify.email lists no recipient"


def test_the_config_accepts_one_value_or_a_list_and_keeps_the_default(tmp_path: Path) -> None:
    assert {v.value for v in NotifyWhen} == set(NOTIFY_WHEN)
    assert Notify().when == DEFAULT_WHEN == notify_when(None)
    described = Notify.model_fields["when"].description or ""
    assert "Default [drift, degraded, failure]" in described
    for value in NOTIFY_WHEN:
        assert Notify(when=value).when == value  # `when: drift` configs stay as they are
    assert Notify(when=["no_data", "failure"]).when == ("no_data", "failure")
    assert _problems(tmp_path, ", when: [drift, no_data]") == []
    assert _problems(tmp_path, "") == []


@pytest.mark.parametrize(("when", "said"), [
    (", when: drfit", "'drfit' is not a notify.when value (line 7, col 65); use drift, "
                      "no_data, degraded, failure, always, or a list of them (did you mean "
                      "'drift'?)"),
    (", when: [drift, nodata]", "'nodata' is not a notify.when value"),
    (", when: []", "notify.when must be one of drift, no_data, degraded, failure, always or "
                   "a list of them"),
    (", when: 3", "notify.when must be one of"),
])
def test_a_bad_value_is_named_with_the_allowed_ones(tmp_path: Path, when: str,
                                                    said: str) -> None:
    [problem] = _problems(tmp_path, when)
    assert problem.startswith("monitors.watch.notify.when: ") and said in problem


def test_the_committed_schema_describes_when_and_validates_it() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    generated = json_schema()
    committed = json.loads((REPO / "mlops.schema.json").read_text(encoding="utf-8"))
    for name in ("Notify", "NotifyWhen"):
        assert committed["$defs"][name] == generated["$defs"][name], \
            f"mlops.schema.json is stale: run `mlops schema -o mlops.schema.json` ({name})"
    notify = {"$defs": committed["$defs"], **committed["$defs"]["Notify"]}
    validator = jsonschema.Draft202012Validator(notify)
    for good in ("drift", "always", ["drift", "no_data"]):
        assert validator.is_valid({"email": ["ops@example.com"], "when": good}), good
    for bad in ("drfit", [], ["drift", "never"], 3):
        assert not validator.is_valid({"email": ["ops@example.com"], "when": bad}), bad
