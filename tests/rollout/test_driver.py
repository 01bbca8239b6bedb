"""The driver moves a real alias on a moto server, step by step, and takes it back."""

from __future__ import annotations

import io
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from framework.config.models import Rollout
from framework.rollout.driver import Driver
from framework.rollout.record import COMPLETED, ROLLED_BACK, RUNNING, RolloutRecord, RolloutStore
from framework.rollout.strategy import Health
from framework.runtime.clients import Connection

BUCKET = "rollout-registry"


@dataclass
class FakeClock:
    t: float = 1000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class ScriptedHealth:
    """Health signals as a test scenario dictates them (the inputs of the driver)."""

    value: Health = field(default_factory=lambda: Health(requests=50))

    def sample(self, record: RolloutRecord) -> dict[str, Any]:
        return {}

    def health(self, record: RolloutRecord, since: float, baseline: dict[str, Any]) -> Health:
        return self.value


@pytest.fixture(scope="module")
def conn() -> Iterator[Connection]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    conn = Connection(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                      dummy_credentials=True, max_attempts=1)
    conn.client("s3").create_bucket(Bucket=BUCKET)
    iam = conn.client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    yield conn
    server.stop()


def function(conn: Connection, name: str) -> None:
    lam = conn.client("lambda")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(e, c):\n    return 1\n")
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="h.handler",
                        Role="arn:aws:iam::123456789012:role/r", Code={"ZipFile": buf.getvalue()})
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, MemorySize=256)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")


def driver(conn: Connection, health: ScriptedHealth, clock: FakeClock,
           audit: list[dict[str, Any]], notified: list[RolloutRecord]) -> Driver:
    return Driver(lam=conn.client("lambda"), store=RolloutStore(conn.client("s3"), BUCKET),
                  health=health, audit=lambda **rec: audit.append(rec), actor="tester",
                  clock=clock, notify=notified.append)


def start(d: Driver, name: str, rollout: Rollout) -> RolloutRecord:
    return d.start(stage="dev", endpoint=name, function=name, alias="live", stable="1",
                   candidate="2", stable_model="1.0.0", candidate_model="1.1.0",
                   rollout=rollout)


def alias(conn: Connection, name: str) -> tuple[str, dict[str, float]]:
    got = conn.client("lambda").get_alias(FunctionName=name, Name="live")
    return got["FunctionVersion"], got.get("RoutingConfig", {}).get(
        "AdditionalVersionWeights", {})


def test_canary_shifts_in_steps_and_completes(conn: Connection) -> None:
    function(conn, "canary")
    clock, audit, notified = FakeClock(), [], []
    d = driver(conn, ScriptedHealth(), clock, audit, notified)
    rollout = Rollout.model_validate({"strategy": "canary", "steps": [10, 50, 100],
                                      "every": "10s"})
    rec = start(d, "canary", rollout)
    assert alias(conn, "canary") == ("1", {"2": 0.1})
    clock.t += 5
    rec = d.tick(rec, rollout)
    assert rec.weight == 10  # still baking
    clock.t += 6
    rec = d.tick(rec, rollout)
    assert rec.weight == 50 and alias(conn, "canary") == ("1", {"2": 0.5})
    clock.t += 11
    rec = d.tick(rec, rollout)
    assert rec.weight == 100 and alias(conn, "canary") == ("2", {})
    rec = d.tick(rec, rollout)
    assert rec.status == COMPLETED and alias(conn, "canary") == ("2", {})
    assert [h["event"] for h in rec.history] == ["started", "advanced", "advanced", "completed"]
    assert [a["action"] for a in audit] == ["rollout started", "rollout advanced",
                                            "rollout advanced", "rollout completed"]
    assert notified == []


def test_errors_roll_back_at_once_with_audit_and_notice(conn: Connection) -> None:
    function(conn, "broken")
    clock, audit, notified = FakeClock(), [], []
    health = ScriptedHealth(Health(requests=30, errors=30))
    d = driver(conn, health, clock, audit, notified)
    rollout = Rollout.model_validate({"strategy": "linear", "increment": 20, "every": "1m"})
    rec = start(d, "broken", rollout)
    clock.t += 1
    rec = d.tick(rec, rollout)
    assert rec.status == ROLLED_BACK and "error rate 100.0%" in rec.reason
    assert alias(conn, "broken") == ("1", {})
    assert audit[-1]["action"] == "rollout rolled back"
    assert audit[-1]["reason"] == rec.reason
    assert notified and notified[0].status == ROLLED_BACK


def test_killed_driver_is_resumed_from_the_record(conn: Connection) -> None:
    function(conn, "resume")
    clock = FakeClock()
    rollout = Rollout.model_validate({"strategy": "canary", "steps": [25, 100], "every": "30s"})
    first = driver(conn, ScriptedHealth(), clock, [], [])
    start(first, "resume", rollout)
    del first  # the process that started it is gone
    store = RolloutStore(conn.client("s3"), BUCKET)
    stored, _ = store.get("dev", "resume") or (None, None)
    assert stored is not None and stored.status == RUNNING
    clock.t += 31
    second = driver(conn, ScriptedHealth(), clock, [], [])
    done = second.run(stored, rollout, poll=1)
    assert done.status == COMPLETED and alias(conn, "resume") == ("2", {})


def test_new_candidate_supersedes_a_running_rollout(conn: Connection) -> None:
    function(conn, "super")
    lam = conn.client("lambda")
    lam.update_function_configuration(FunctionName="super", MemorySize=512)
    lam.publish_version(FunctionName="super")  # version 3
    clock = FakeClock()
    d = driver(conn, ScriptedHealth(), clock, [], [])
    rollout = Rollout.model_validate({"strategy": "canary", "steps": [10, 100], "every": "1m"})
    start(d, "super", rollout)
    rec = d.start(stage="dev", endpoint="super", function="super", alias="live", stable="2",
                  candidate="3", stable_model="1.1.0", candidate_model="1.2.0",
                  rollout=rollout)
    assert rec.stable == "1"  # version 2 never became stable
    assert alias(conn, "super") == ("1", {"3": 0.1})


def test_promote_and_abort(conn: Connection) -> None:
    function(conn, "manual")
    clock = FakeClock()
    d = driver(conn, ScriptedHealth(Health(requests=0)), clock, [], [])
    rollout = Rollout.model_validate({"strategy": "canary", "steps": [10, 100], "every": "1h"})
    rec = start(d, "manual", rollout)
    rec = d.promote(rec)
    assert rec.status == COMPLETED and alias(conn, "manual") == ("2", {})
    function(conn, "manual2")
    rec = start(d, "manual2", rollout)
    rec = d.abort(rec)
    assert rec.status == ROLLED_BACK and alias(conn, "manual2") == ("1", {})
