"""load_config: a complete valid file, stage overlays, and how problems are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config import (
    AuthMode,
    Config,
    FeatureType,
    LoadedConfig,
    TargetKind,
    Task,
    load_config,
)
from framework.errors import ConfigError

VALID = """\
# yaml-language-server: $schema=./mlops.schema.json
project: cancer-dx
models:
  diagnosis:
    version: 1.0.0
    artifact: examples/breast_cancer/artifacts/model.onnx
    task: classification
    features:
      - {name: mean_radius, type: float, min: 0}
      - {name: site, type: category, values: [a, b]}
endpoints:
  predict:
    model: diagnosis
    route: POST /diagnosis/predict
    memory: 1024
monitors:
  drift:
    endpoint: predict
    schedule: rate(1 day)
    notify: {email: [ops@example.com], sender: reports@example.com, when: drift}
stages:
  prod: {target: aws, region: eu-west-1, overrides: {endpoints: {predict: {memory: 2048}}}}
"""


def write(tmp_path: Path, text: str, name: str = "mlops.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, stage: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, stage)
    return [p.render() for p in info.value.problems]


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    loaded = load_config(path)
    assert isinstance(loaded, LoadedConfig)
    assert loaded.path == path.resolve() and loaded.path.is_absolute()
    assert loaded.root == tmp_path.resolve()
    assert loaded.stage == "dev"
    assert loaded.target is TargetKind.local
    assert loaded.region == "us-east-1"
    assert loaded.endpoint_url is None and loaded.profile is None
    config = loaded.config
    assert config.project == "cancer-dx"
    model = config.models["diagnosis"]
    assert model.version == "1.0.0" and model.task is Task.classification
    assert [f.name for f in model.features] == ["mean_radius", "site"]
    assert model.features[1].type is FeatureType.category
    assert model.features[1].values == ("a", "b")
    endpoint = config.endpoints["predict"]
    assert endpoint.memory == 1024 and endpoint.auth is AuthMode.none
    assert endpoint.model_name == "diagnosis" and endpoint.model_ref is None
    assert config.monitors["drift"].notify.email == ("ops@example.com",)
    with pytest.raises(ValueError):  # frozen
        config.project = "other"  # type: ignore[misc]


def test_stage_overlay_merges_before_validation(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, VALID), "prod")
    assert loaded.stage == "prod"
    assert loaded.target is TargetKind.aws
    assert loaded.region == "eu-west-1"
    endpoint = loaded.config.endpoints["predict"]
    assert endpoint.memory == 2048
    assert endpoint.route == "POST /diagnosis/predict"  # merged, not replaced
    assert loaded.config.region == "us-east-1"  # top level unchanged; stage region wins


def test_overlay_replaces_lists_and_adds_items(tmp_path: Path) -> None:
    text = VALID.replace(
        "  prod: {target: aws",
        "  staging:\n"
        "    overrides:\n"
        "      monitors: {drift: {notify: {email: [qa@example.com]}}}\n"
        "      endpoints: {debug: {model: diagnosis, route: GET /debug}}\n"
        "  prod: {target: aws",
    )
    loaded = load_config(write(tmp_path, text), "staging")
    assert loaded.target is TargetKind.local
    drift = loaded.config.monitors["drift"]
    assert drift.notify.email == ("qa@example.com",)
    assert drift.notify.when.value == "drift"  # sibling keys survive the merge
    assert set(loaded.config.endpoints) == {"predict", "debug"}
    assert set(load_config(tmp_path / "mlops.yaml").config.endpoints) == {"predict"}


def test_unknown_stage_lists_known_stages(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    with pytest.raises(ConfigError) as info:
        load_config(path, "prd")
    assert info.value.exit_code == 2
    text = info.value.render()
    assert "unknown stage 'prd'" in text
    assert "did you mean 'prod'?" in text
    assert "known stages: dev, prod" in text


def test_dev_stage_needs_no_declaration(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, VALID), "dev").stage == "dev"


def test_endpoint_url_from_stage_or_environment(tmp_path: Path) -> None:
    text = VALID.replace(
        "  prod: {target: aws",
        "  ls: {target: localstack}\n"
        "  ls2: {target: localstack, endpoint_url: 'http://ls:4566', profile: dev}\n"
        "  prod: {target: aws",
    )
    path = write(tmp_path, text)
    env = {"AWS_ENDPOINT_URL": "http://localhost:4566"}
    assert load_config(path, "ls", environ=env).endpoint_url == "http://localhost:4566"
    assert load_config(path, "ls", environ={}).endpoint_url is None
    ls2 = load_config(path, "ls2", environ=env)
    assert ls2.endpoint_url == "http://ls:4566" and ls2.profile == "dev"
    # the environment is only consulted for LocalStack
    assert load_config(path, "prod", environ=env).endpoint_url is None
    assert load_config(path, environ=env).endpoint_url is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "mlops.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.what == "file not found"
    assert "-f" in problem.hint and "project directory" in problem.hint
    assert info.value.exit_code == 2


def test_three_independent_errors_are_all_reported(tmp_path: Path) -> None:
    text = (
        VALID.replace("version: 1.0.0", "version: 1.0")
        .replace("memory: 1024", "memroy: 1024")
        .replace("endpoint: predict", "endpoint: predcit")
    )
    rendered = problems_of(write(tmp_path, text))
    assert rendered == [
        "models.diagnosis.version: '1.0' is not a semantic version (line 5, col 14); "
        "use MAJOR.MINOR.PATCH, e.g. 1.0.0",
        "endpoints.predict.memroy: unknown key 'memroy' (line 15, col 5); did you mean 'memory'?",
        "monitors.drift.endpoint: endpoint 'predcit' is not declared (line 18, col 15); "
        "did you mean 'predict'?",
    ]


def test_cross_checks_report_every_problem(tmp_path: Path) -> None:
    text = """\
project: p
models:
  m: {version: 1.0.0, artifact: m.onnx, features: [{name: a}, {name: a}, {name: a}]}
endpoints:
  a: {model: x, route: POST /a}
  b: {model: y, route: POST /a}
  c: {model: m, route: "POST /items/{id}"}
  d: {model: m, route: "POST /items/{key}"}
monitors:
  one: {endpoint: nope}
  two: {endpoint: zzz}
"""
    rendered = "\n".join(problems_of(write(tmp_path, text)))
    for expected in [
        "models.m.features[1].name: feature 'a' is declared twice (also features[0]) (line 3",
        "models.m.features[2].name: feature 'a' is declared twice (also features[0]) (line 3",
        "endpoints.a.model: model 'x' is not declared (line 5, col 14); declared models: m",
        "endpoints.b.model: model 'y' is not declared (line 6, col 14)",
        "endpoints.b.route: 'POST /a' is also the route of endpoint 'a' (line 6, col 24)",
        "endpoints.d.route: 'POST /items/{key}' matches the same requests as 'POST /items/{id}'",
        "monitors.one.endpoint: endpoint 'nope' is not declared (line 10, col 19)",
        "monitors.two.endpoint: endpoint 'zzz' is not declared (line 11, col 19)",
    ]:
        assert expected in rendered


def test_cross_checks_run_alongside_field_errors(tmp_path: Path) -> None:
    text = VALID.replace("memory: 1024", "memory: 1").replace("endpoint: predict", "endpoint: x")
    rendered = "\n".join(problems_of(write(tmp_path, text)))
    assert "endpoints.predict.memory: 1 is below the minimum 128" in rendered
    assert "monitors.drift.endpoint: endpoint 'x' is not declared" in rendered


def test_other_stages_overrides_are_checked_too(tmp_path: Path) -> None:
    text = VALID.replace("memory: 2048", "memory: 99999")
    path = write(tmp_path, text)
    for stage in (None, "prod"):
        rendered = problems_of(path, stage)
        assert rendered == [
            "stages.prod.overrides.endpoints.predict.memory: 99999 is above the maximum 10240 "
            "(line 22, col 84); Lambda memory in MB (128-10240)."
        ]


def test_problems_are_sorted_by_line(tmp_path: Path) -> None:
    text = (
        VALID.replace("project: cancer-dx", "project: Cancer")
        .replace("schedule: rate(1 day)", "schedule: rate(1 days)")
        .replace("task: classification", "task: ranking")
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    lines = [p.line for p in info.value.problems]
    assert lines == [2, 7, 19]


def test_strings_keep_their_source_text(tmp_path: Path) -> None:
    # YAML 1.1 would read yes/no as booleans, 1.10 as 1.1 and 007 as 7.
    text = """\
project: p
models:
  m:
    version: 1.0.0
    artifact: m.onnx
    description: 2024-01-01
    features: [{name: f, type: category, values: [yes, no, 1.10, 007]}]
    tags: {owner: 42}
"""
    model = load_config(write(tmp_path, text)).config.models["m"]
    assert model.features[0].values == ("yes", "no", "1.10", "007")
    assert model.description == "2024-01-01"
    assert model.tags == {"owner": "42"}
    broken = write(tmp_path, text.replace("version: 1.0.0", "version: 1.10"), "b.yaml")
    assert "models.m.version: '1.10' is not a semantic version" in problems_of(broken)[0]


def test_anchors_merge_keys_and_extension_keys(tmp_path: Path) -> None:
    text = """\
project: p
x-endpoint: &endpoint {model: m, memory: 512}
models:
  m: {version: 1.0.0, artifact: m.onnx, features: [{name: f}]}
endpoints:
  a:
    <<: *endpoint
    route: POST /a
  b:
    <<: *endpoint
    memory: 2048
    route: POST /b
"""
    endpoints = load_config(write(tmp_path, text)).config.endpoints
    assert (endpoints["a"].memory, endpoints["b"].memory) == (512, 2048)
    assert endpoints["b"].model == "m"


def test_duplicate_keys_are_errors_and_validation_continues(tmp_path: Path) -> None:
    text = VALID.replace("    memory: 1024", "    memory: 1024\n    memory: 512\n    auth: gpu")
    rendered = problems_of(write(tmp_path, text))
    assert rendered[0].startswith(
        "endpoints.predict.memory: duplicate key 'memory' (first at line 15) (line 16, col 5)"
    )
    assert "endpoints.predict.auth: 'gpu' is not one of: none, api_key, iam" in rendered[1]


def test_config_built_in_code_still_checks_references() -> None:
    data = {
        "project": "p",
        "models": {"m": {"version": "1.0.0", "artifact": "m.onnx", "features": [{"name": "f"}]}},
        "endpoints": {"e": {"model": "other", "route": "POST /e"}},
    }
    with pytest.raises(ValueError, match="endpoints.e.model: model 'other' is not declared"):
        Config.model_validate(data)
    data["endpoints"] = {"e": {"model": "m", "route": "POST /e"}}
    assert Config.model_validate(data).endpoints["e"].path == "/e"


def test_environment_variables_are_not_interpolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_DESC", "expanded")
    text = VALID.replace(
        "task: classification", "task: classification\n    description: ${MODEL_DESC}"
    )
    assert (
        load_config(write(tmp_path, text)).config.models["diagnosis"].description == "${MODEL_DESC}"
    )


def test_a_cloud_stage_needs_a_report_sender(tmp_path: Path) -> None:
    """On AWS the From address must be an SES identity someone verified; it is not guessed
    from the recipients. The local target keeps defaulting to the first recipient."""
    path = write(tmp_path, VALID.replace("sender: reports@example.com, ", ""))
    assert load_config(path).config.monitors["drift"].notify.sender is None  # local: fine
    rendered = problems_of(path, "prod")
    assert len(rendered) == 1
    assert rendered[0].startswith("monitors.drift.notify: monitor 'drift' e-mails its report "
                                  "but names no sender, which the aws target needs")
    assert "(line 20, col 13)" in rendered[0] and "add sender: ADDRESS" in rendered[0]
