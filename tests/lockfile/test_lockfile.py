"""mlops.lock records what a stage runs; differences name what would change."""

from __future__ import annotations

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


def test_write_keeps_other_stages(tmp_path: Path) -> None:
    path = tmp_path / "mlops.lock"
    lockfile.write(path, "dev", entry())
    lockfile.write(path, "prod", entry(memory=2048))
    data = lockfile.read(path)
    assert set(data["stages"]) == {"dev", "prod"}
    assert path.read_text().endswith("}\n")
