"""An apply killed mid-wave, with the real provider on a moto server: the state it leaves holds
the finished actions only and is the same in the registry and the cache; the next plan creates
exactly what was in flight or never started (one of them already exists: it is adopted), and
applying it finishes the job (the dead apply's lock is taken over)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from framework.apply.executor import Executor
from framework.compile import names
from framework.plan.planner import Op
from framework.providers.aws import AwsProvider
from tests.apply import stack

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 120  # a bound on waiting for the child, so that a broken apply fails, not hangs


def _recorded(home: Path, s3: Any, bucket: str) -> tuple[tuple[int, set[str]], ...]:
    """(serial, resources) in the cache and in the registry: the cache is written first, so
    waiting on it alone could kill the apply between the two writes."""
    def read(body: Any) -> tuple[int, set[str]]:
        state = json.loads(body)
        return state["serial"], set(state["resources"])

    try:
        cached = read((home / "state" / "shop" / "prod.json").read_text())
    except (OSError, ValueError):  # not written yet
        cached = (0, set())
    try:
        remote = read(s3.get_object(Bucket=bucket, Key=names.state_key("shop", "prod"))
                      ["Body"].read())
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        remote = (0, set())
    return cached, remote


def _both(recorded: tuple[tuple[int, set[str]], ...], finished: set[str]) -> bool:
    (serial, cached), (remote_serial, remote) = recorded
    return serial == remote_serial and cached == remote == finished


def test_an_apply_killed_mid_wave_is_finished_by_the_next(endpoint: str, s3: Any,
                                                          tmp_path: Path) -> None:
    bucket = f"killed-{uuid.uuid4().hex[:12]}"
    everything = set(stack.graph(bucket).resources)
    in_flight = {stack.STUCK_BEFORE, stack.STUCK_AFTER}
    finished = everything - in_flight - {stack.AFTER_STUCK}

    child = subprocess.Popen([sys.executable, "-m", "tests.apply.stack", endpoint, bucket,
                              str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        stuck = {child.stdout.readline().split()[-1] for _ in in_flight}
        assert stuck == in_flight  # both stuck in flight together
        deadline = time.monotonic() + WAIT_S
        while not _both(_recorded(tmp_path, s3, bucket), finished) and child.poll() is None:
            assert time.monotonic() < deadline, _recorded(tmp_path, s3, bucket)
            time.sleep(0.1)
        assert child.poll() is None, "the apply ended instead of waiting on its stuck calls"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    # What the killed apply left: the finished actions, in the registry as in the cache.
    store = stack.store(endpoint, bucket, tmp_path)
    state = store.load()
    assert set(state.resources) == finished
    remote = json.loads(s3.get_object(Bucket=bucket, Key=names.state_key("shop", "prod"))
                        ["Body"].read())
    assert (remote["serial"], set(remote["resources"])) == (state.serial, finished)
    assert store.holder() is not None  # its lock is still there
    logs = stack.connection(endpoint).client("logs")
    made = {g["logGroupName"] for g in logs.describe_log_groups(
        logGroupNamePrefix=f"/{bucket}/")["logGroups"]}
    assert f"/{bucket}/stuck-after-call" in made  # its call went through, unrecorded
    assert f"/{bucket}/stuck-before-call" not in made

    # The next plan: what was in flight and what never started, nothing else.
    provider = AwsProvider(conn=stack.connection(endpoint), root=tmp_path)
    plan = stack.plan(provider, state, bucket)
    assert {a.id: a.op for a in plan.changes} == {
        rid: Op.create for rid in (*in_flight, stack.AFTER_STUCK)}

    executor = Executor(provider=provider, store=store, audit=stack.audit(endpoint, bucket,
                                                                          tmp_path),
                        actor="bob", parallelism=10)
    done = executor.apply(plan)
    assert set(done.resources) == everything
    assert any("took over the lock" in w for w in store.warnings)
    assert stack.plan(provider, store.load(), bucket).changes == ()
    made = {g["logGroupName"] for g in logs.describe_log_groups(
        logGroupNamePrefix=f"/{bucket}/")["logGroups"]}
    assert {f"/{bucket}/stuck-after-call", f"/{bucket}/stuck-before-call"} <= made
    assert store.holder() is None
