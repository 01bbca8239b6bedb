"""mlops.lock records what a stage runs; differences name what would change."""

from __future__ import annotations

import json
from pathlib import Path

from framework import lockfile
from framework.plan.state import Entry, State


def state(version: str = "1.0.0", sha: str = "a" * 64, memory: int = 1024) -> State:
    s = State(project="p", stage="dev", lineage="L")
    s = s.record("model.m@" + version, Entry("model_version", {
        "name": "m", "version": version, "sha256": sha, "size": 10}, {}))
    s = s.record("code", Entry("s3_object", {"sha256": "c" * 64, "key": "code/c.zip"}, {}))
    s = s.record("function.ep", Entry("lambda_function", {
        "function_name": "p-dev-ep", "memory": memory, "timeout": 15,
        "environment": {"MLOPS_ENDPOINT": "ep", "MLOPS_MODEL_NAME": "m",
                        "MLOPS_MODEL_VERSION": version, "MLOPS_MODEL_SHA256": sha}}, {}))
    return s.record("alias.ep", Entry("lambda_alias", {}, {"version": "3"}))


def entry(**kw: object) -> dict[str, object]:
    return lockfile.stage_entry(state(**kw), target="local", region="us-east-1",  # type: ignore[arg-type]
                                account="123456789012")


def test_entry_records_models_code_endpoints_and_dependencies() -> None:
    e = entry()
    assert e["models"] == {"m@1.0.0": {"sha256": "a" * 64, "size": 10}}
    assert e["code"] == {"sha256": "c" * 64, "key": "code/c.zip"}
    assert e["endpoints"]["ep"]["model"] == "m@1.0.0"  # type: ignore[index]
    assert e["endpoints"]["ep"]["serving_lambda_version"] == "3"  # type: ignore[index]
    assert "onnxruntime" in e["dependencies"]  # type: ignore[operator]


def test_differences() -> None:
    assert lockfile.differences(entry(), entry()) == []
    assert lockfile.differences(entry(), entry(memory=2048)) == ["endpoint ep: memory changed"]
    bumped = lockfile.differences(entry(), entry(version="1.1.0", sha="b" * 64))
    assert "model m@1.1.0 is new" in bumped and "model m@1.0.0 is gone" in bumped


def test_write_keeps_other_stages_and_projects(tmp_path: Path) -> None:
    path = tmp_path / "mlops.lock"
    lockfile.write(path, "p", "dev", entry())
    lockfile.write(path, "p", "prod", entry(memory=2048))
    lockfile.write(path, "other", "dev", entry(version="9.0.0"))
    data = lockfile.read(path)
    assert data["format"] == 2
    assert set(data["projects"]) == {"p", "other"}
    assert set(data["projects"]["p"]) == {"dev", "prod"}
    assert path.read_text().endswith("}\n")
    # One project's entry is never another's, for the same stage.
    mine, theirs = lockfile.entry(path, "p", "dev"), lockfile.entry(path, "other", "dev")
    assert mine is not None and theirs is not None
    assert list(mine["models"]) == ["m@1.0.0"] and list(theirs["models"]) == ["m@9.0.0"]
    assert lockfile.entry(path, "third", "dev") is None


def test_format_one_entries_belong_to_the_project_that_wrote_them(tmp_path: Path) -> None:
    path = tmp_path / "mlops.lock"
    old = entry()
    path.write_text(json.dumps({"format": 1, "stages": {"dev": old, "qa": {
        "models": {}, "endpoints": {}}}}))
    assert lockfile.entry(path, "p", "dev") == old
    assert lockfile.entry(path, "scale5", "dev") is None  # p-dev-ep is not scale5's
    assert lockfile.entry(path, "p", "qa") is None  # nothing tells whose it is
    lockfile.write(path, "scale5", "dev", entry(version="2.0.0"))
    data = json.loads(path.read_text())
    assert data["format"] == 2 and "stages" not in data
    assert set(data["projects"]) == {"p", "scale5"}


def test_locked_versions() -> None:
    e = entry()
    assert lockfile.locked_versions(e) == {("m", "1.0.0"): "a" * 64}
