"""Ctrl-C during an apply: the first stops new starts and lets what is in flight finish and be
recorded; a second leaves at once, even with a call that never returns (what was in flight is
planned again, as after a crash). Each apply runs in its own process, sent SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 60  # a bound on waiting for the child, so that a broken apply fails, not hangs

CHILD = """
import json, sys, time
from pathlib import Path
from framework.runtime.clients import Connection
from tests.apply.test_waves import Provider, Stage, create

endpoint, home, release = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
stage = Stage(Connection(region="us-east-1", endpoint_url=endpoint, dummy_credentials=True,
                         max_attempts=1).client("s3"), home)

def recorded():
    path = stage.store.cache_file
    return json.loads(path.read_text())["resources"] if path.exists() else {}

def on_call(op, name):
    if name == "logs.slow":
        while "logs.fast" not in recorded():  # logs.fast finished and was saved first
            time.sleep(0.02)
        print("in flight", flush=True)
        while not release.exists():  # a call that returns when the test says
            time.sleep(0.02)

provider = Provider(stage.store, on_call)
try:
    stage.executor(provider, parallelism=2).apply(
        stage.plan(create("logs.slow"), create("logs.fast"), create("logs.next", "logs.slow")))
except KeyboardInterrupt:
    print("interrupted", sorted(name for _, name in provider.calls), flush=True)
    sys.exit(130)
"""


def _child(endpoint: str, home: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, endpoint, str(home),
                              str(home / "release")], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "in flight", child.stderr
    time.sleep(0.2)  # the apply waits on what runs (not a measure: only to be in that wait)
    return child


def _recorded(home: Path) -> set[str]:
    path = home / "state" / "shop" / "prod.json"
    return set(json.loads(path.read_text())["resources"]) if path.exists() else set()


def test_ctrl_c_lets_what_runs_finish_and_records_it(endpoint: str, tmp_path: Path) -> None:
    child = _child(endpoint, tmp_path)
    try:
        child.send_signal(signal.SIGINT)
        (tmp_path / "release").touch()  # the call in flight returns after the Ctrl-C
        out, err = child.communicate(timeout=WAIT_S)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert out.strip() == "interrupted ['logs.fast', 'logs.slow']"  # logs.next never started
    assert _recorded(tmp_path) == {"logs.fast", "logs.slow"}
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sorted(r["resource"] for r in audit) == ["logs.fast", "logs.slow"]


def test_a_second_ctrl_c_leaves_at_once(endpoint: str, tmp_path: Path) -> None:
    child = _child(endpoint, tmp_path)
    try:
        child.send_signal(signal.SIGINT)
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)  # the call in flight never returns
        out, err = child.communicate(timeout=WAIT_S)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert out.strip() == "interrupted ['logs.fast', 'logs.slow']"
    assert _recorded(tmp_path) == {"logs.fast"}  # logs.slow is planned again
