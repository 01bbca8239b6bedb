"""Two deploys of one stage: the one that loses is told another deploy runs (or ran), by whom,
and exits 3; a saved plan the state moved past stays stale (exit 4)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from framework.apply.executor import Executor
from framework.apply.store import StateStore
from framework.errors import StalePlanError, StateLockedError
from framework.plan.planner import Action, Op, Plan
from framework.plan.state import Entry, State
from framework.runtime.clients import Connection
from tests.daemon import moto_endpoint  # noqa: F401 (a fixture)

BUCKET = "lock-registry"
REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys
from pathlib import Path
from framework.apply.store import StateStore
from framework.runtime.clients import Connection
s3 = Connection(region="us-east-1", endpoint_url=sys.argv[1], dummy_credentials=True,
                max_attempts=1).client("s3")
store = StateStore(s3=s3, bucket=sys.argv[2], project="shop", stage="prod",
                   cache_dir=Path(sys.argv[3]), config="mlops.yaml")
store.acquire("alice", "mlops deploy")
print("locked", flush=True)
sys.stdin.read()  # holds the lock until the test closes stdin
store.release()
"""


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:  # noqa: F811 (the imported fixture)
    return moto_endpoint


@pytest.fixture
def s3(endpoint: str) -> Any:
    client = Connection(region="us-east-1", endpoint_url=endpoint, dummy_credentials=True,
                        max_attempts=1).client("s3")
    client.create_bucket(Bucket=BUCKET)
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return client


def store(s3: Any, home: Path) -> StateStore:
    return StateStore(s3=s3, bucket=BUCKET, project="shop", stage="prod",
                      cache_dir=home / "state", config="mlops.yaml")


def test_the_second_holder_is_told_who_runs_and_how_to_break_a_stale_lock(
        endpoint: str, s3: Any, tmp_path: Path) -> None:
    first = subprocess.Popen([sys.executable, "-c", HOLDER, endpoint, BUCKET,
                              str(tmp_path / "first")], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "locked"
        second = store(s3, tmp_path)
        with pytest.raises(StateLockedError) as caught:
            second.acquire("bob", "mlops deploy")
        assert caught.value.exit_code == 3
        message = caught.value.render()
        assert message.startswith("another deploy of shop/prod is running")
        assert f"pid {first.pid} on {socket.gethostname()}" in message
        assert "by alice" in message and "since 20" in message
        assert "mlops unlock" in message and "wait for it to finish" in message
        assert not second._lock_held
    finally:
        assert first.stdin is not None
        first.stdin.close()
        first.wait(timeout=60)
    assert first.returncode == 0
    third = store(s3, tmp_path)
    third.acquire("bob", "mlops deploy")  # released: the next one takes it
    third.release()


def _plan(serial: int) -> Plan:
    action = Action(op=Op.create, id="function.predict", kind="lambda_function",
                    reason="new", props={"memory": 1024})
    return Plan(project="shop", stage="prod", target="local", region="us-east-1",
                account_id="123456789012", state_lineage="L", state_serial=serial,
                actions=(action,))


def _moved(s3: Any, home: Path) -> StateStore:
    """A stage another deploy moved to #1 after this one planned against #0."""
    state = State(project="shop", stage="prod", lineage="L")
    other = store(s3, home / "other")
    other.save(state.record("function.predict", Entry("lambda_function", {}, {})))
    return store(s3, home / "mine")


def test_a_plan_overtaken_by_a_concurrent_deploy_says_so_and_exits_3(
        s3: Any, tmp_path: Path) -> None:
    mine = _moved(s3, tmp_path)
    executor = Executor(provider=None, store=mine, audit=None, actor="bob")  # type: ignore[arg-type]
    with pytest.raises(StateLockedError) as caught:
        executor.apply(_plan(serial=0))
    assert caught.value.exit_code == 3
    message = caught.value.render()
    assert "another deploy of shop/prod changed it while this one was planning" in message
    assert "saved plan" not in message and "mlops plan" not in message
    assert "run `mlops deploy` again" in message
    assert mine.holder() is None  # the loser released the lock it took


def test_a_saved_plan_the_state_moved_past_is_stale(s3: Any, tmp_path: Path) -> None:
    mine = _moved(s3, tmp_path)
    executor = Executor(provider=None, store=mine, audit=None, actor="bob",  # type: ignore[arg-type]
                        saved=True)
    with pytest.raises(StalePlanError) as caught:
        executor.apply(_plan(serial=0))
    assert caught.value.exit_code == 4
    assert "mlops plan" in caught.value.render()
