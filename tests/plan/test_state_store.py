"""Deploy state, lock and cache are keyed by project and stage: two projects never cross,
states kept by stage only are taken over by their own project, a renamed project is told."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from framework.apply.store import StateStore
from framework.plan.state import Entry, State
from framework.runtime.clients import Connection
from tests.ports import free_port

BUCKET = "shared-registry"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = Connection(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                        dummy_credentials=True, max_attempts=1).client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


@pytest.fixture
def bucket(s3: Any) -> str:
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return BUCKET


def store(s3: Any, home: Path, project: str, config: str = "mlops.yaml",
          stage: str = "dev") -> StateStore:
    return StateStore(s3=s3, bucket=BUCKET, project=project, stage=stage,
                      cache_dir=home / "state", config=config)


def deployed(project: str, n: int = 2, stage: str = "dev") -> State:
    state = State(project=project, stage=stage, lineage=f"L-{project}")
    for i in range(n):
        state = state.record(f"function.ep{i}", Entry("lambda_function", {"i": i}, {}))
    return state


def keys(s3: Any) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_state_cache_and_lock_are_keyed_by_project(s3: Any, bucket: str, tmp_path: Path) -> None:
    one, five = store(s3, tmp_path, "scale1"), store(s3, tmp_path, "scale5", "scale5.yaml")
    saved = one.save(deployed("scale1"))
    assert keys(s3) == {"state/scale1/dev.json"}
    assert (tmp_path / "state/scale1/dev.json").is_file()
    assert json.loads((tmp_path / "state/scale1/source.json").read_text()) == {
        "config": "mlops.yaml"}
    # The other project, same folder, same bucket, same stage: nothing of scale1's.
    empty = five.load()
    assert empty.project == "scale5" and empty.resources == {} and empty.lineage == ""
    # Each takes its own lock: neither blocks the other.
    one.acquire("me", "mlops deploy")
    five.acquire("me", "mlops deploy")
    assert {"state/scale1/dev.lock", "state/scale5/dev.lock"} <= keys(s3)
    one.release()
    five.release()
    assert one.load().resources == saved.resources


def test_a_state_kept_by_stage_only_is_taken_over_by_its_project(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    old = deployed("scale1")
    (tmp_path / "state").mkdir()
    (tmp_path / "state/dev.json").write_text(old.to_json())
    s3.put_object(Bucket=BUCKET, Key="state/dev.json", Body=old.to_json().encode())
    # Another project reads neither the old cache nor the old registry copy.
    assert store(s3, tmp_path, "scale5").load().resources == {}
    assert (tmp_path / "state/dev.json").is_file() and "state/dev.json" in keys(s3)
    # Its own project takes both over: the cache moves, the registry copy on the next save.
    mine = store(s3, tmp_path, "scale1")
    assert mine.load().resources == old.resources
    assert not (tmp_path / "state/dev.json").exists()
    assert (tmp_path / "state/scale1/dev.json").is_file()
    mine.save(mine.load())
    assert keys(s3) == {"state/scale1/dev.json"}


def test_remote_state_kept_by_stage_only_is_read_without_a_cache(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="state/dev.json", Body=deployed("scale1").to_json().encode())
    assert store(s3, tmp_path, "scale1").load().lineage == "L-scale1"
    assert store(s3, tmp_path, "scale1", stage="prod").load().lineage == ""


def test_renamed_project_is_told_apart_from_a_second_one(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    store(s3, tmp_path, "scale1").save(deployed("scale1", 17))
    # mlops.yaml now says scale5: renamed.
    renamed = store(s3, tmp_path, "scale5").renamed_from()
    assert renamed is not None and renamed[0] == "scale1" and len(renamed[1].resources) == 17
    # scale5.yaml beside it: a second project, not a rename.
    assert store(s3, tmp_path, "scale5", "scale5.yaml").renamed_from() is None
    # Another stage of the renamed file: nothing of scale1's there.
    assert store(s3, tmp_path, "scale5", stage="prod").renamed_from() is None
    # Once scale1 is destroyed, the new name is free to deploy.
    gone = deployed("scale1", 17)
    for rid in list(gone.resources):
        gone = gone.record(rid, None)
    store(s3, tmp_path, "scale1").save(gone)
    assert store(s3, tmp_path, "scale5").renamed_from() is None


def test_a_state_kept_by_stage_only_of_another_project_is_a_rename(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state/dev.json").write_text(deployed("scale1").to_json())
    found = store(s3, tmp_path, "scale5").renamed_from()
    assert found is not None and found[0] == "scale1"
    assert store(s3, tmp_path, "scale5", "other.yaml").renamed_from() is None
