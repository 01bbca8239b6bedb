"""The apply's scheduler: independent actions at once, within the bound, each started only after
what it depends on is recorded; deletes after the changes, in reverse dependency order, the
registry's last and alone; the first failure stops new starts; a state save per action.

The provider is a stand-in that records its calls (the scheduling is what is tested here); the
state store, its lock and the audit log are the real ones, on a moto server.
"""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from framework import cli
from framework.apply.audit import AuditLog
from framework.apply.executor import DEFAULT_PARALLELISM, Executor, waits_for
from framework.apply.store import StateStore
from framework.compile.graph import ref
from framework.errors import DeployError
from framework.plan.planner import Action, Op, Plan
from framework.plan.state import Entry, State

WAIT_S = 60  # a bound on waits between threads, so that a broken scheduler fails, not hangs


class Provider:
    """Records each call: what it was given, how many ran at once, what the saved state held
    when it started. ``on_call(op, name)`` may block or raise."""

    def __init__(self, store: StateStore,
                 on_call: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.on_call = on_call
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self.props: dict[str, dict[str, Any]] = {}
        self.saved_at_start: dict[str, set[str]] = {}
        self.in_flight = 0
        self.most = 0
        self.alone: dict[str, bool] = {}
        self.warmed: set[str] | None = None
        self.threads: set[str] = set()

    def warm(self, kinds: set[str]) -> None:
        self.warmed = set(kinds)

    def _call(self, op: str, name: str) -> dict[str, Any]:
        saved = json.loads(self.store.cache_file.read_text())["resources"] \
            if self.store.cache_file.exists() else {}
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.alone[name] = self.in_flight == 1
            self.calls.append((op, name))
            self.saved_at_start[name] = set(saved)
            self.threads.add(threading.current_thread().name)
        try:
            if self.on_call is not None:
                self.on_call(op, name)
        finally:
            with self.lock:
                self.in_flight -= 1
        return {"arn": f"arn:{name}"}

    def create(self, kind: str, props: dict[str, Any]) -> dict[str, Any]:
        self.props[props["name"]] = props
        return self._call("create", props["name"])

    def update(self, kind: str, props: dict[str, Any], before: Entry) -> dict[str, Any]:
        self.props[props["name"]] = props
        return self._call("update", props["name"])

    def replace(self, kind: str, props: dict[str, Any], before: Entry) -> dict[str, Any]:
        self.props[props["name"]] = props
        return self._call("replace", props["name"])

    def delete(self, entry: Entry, *, destroying: bool = False) -> None:
        self._call("delete", entry.props["name"])


def create(rid: str, *deps: str, kind: str = "log_group", **props: Any) -> Action:
    return Action(Op.create, rid, kind, "new resource", {"name": rid, **props}, tuple(deps))


def change(op: Op, rid: str, *deps: str, kind: str = "log_group") -> Action:
    return Action(op, rid, kind, "changed", {"name": rid, "size": 2}, tuple(deps))


def delete(rid: str, *deps: str, kind: str = "log_group") -> Action:
    return Action(Op.delete, rid, kind, "no longer declared", None, tuple(deps))


class Stage:
    """A stage's registry bucket, state and audit log, on the moto server."""

    def __init__(self, s3: Any, home: Path) -> None:
        self.s3 = s3
        self.bucket = f"waves-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=self.bucket)
        self.home = home
        self.store = StateStore(s3=s3, bucket=self.bucket, project="shop", stage="prod",
                                cache_dir=home / "state")
        self.audit = AuditLog(s3=s3, bucket=self.bucket, local_file=home / "audit.jsonl")

    def deployed(self, *rids: str, depends: dict[str, tuple[str, ...]] | None = None) -> State:
        """A state recording ``rids`` (as an apply before this one left it)."""
        state = State(project="shop", stage="prod", lineage="L")
        for rid in rids:
            kind = "s3_bucket" if rid == "registry" else "log_group"
            state = state.record(rid, Entry(kind, {"name": rid, "size": 1}, {"arn": rid},
                                            (depends or {}).get(rid, ())))
        return self.store.save(state)

    def plan(self, *actions: Action, destroy: bool = False) -> Plan:
        state = self.store.load()
        return Plan(project="shop", stage="prod", target="local", region="us-east-1",
                    account_id="123456789012", state_lineage=state.lineage,
                    state_serial=state.serial, actions=actions, destroy=destroy)

    def executor(self, provider: Provider, parallelism: int,
                 progress: list[tuple[str, str, str]] | None = None,
                 failed: threading.Event | None = None) -> Executor:
        """An executor of this stage; ``progress`` gets its progress calls (and the thread
        of each), ``failed`` is set once it reports a failure."""

        def note(action: Action, phase: str) -> None:
            if progress is not None:
                progress.append((action.id, phase, threading.current_thread().name))
            if phase == "failed" and failed is not None:
                failed.set()

        return Executor(provider=provider, store=self.store, audit=self.audit,  # type: ignore[arg-type]
                        actor="alice", on_progress=note, parallelism=parallelism)


@pytest.fixture
def stage(s3: Any, tmp_path: Path) -> Stage:
    return Stage(s3, tmp_path)


# -- what waits for what ------------------------------------------------------------------


def test_each_action_waits_for_the_changes_it_depends_on_and_deletes_come_after() -> None:
    changes = [
        create("a"),                       # 0
        create("b", "a", "unchanged"),     # 1: on a; "unchanged" is no action of this plan
        change(Op.update, "c", "a"),       # 2
        change(Op.replace, "d", "b", "c"),  # 3
        create("e"),                       # 4
        delete("x.route", "x.fn"),         # 5: depended on x.fn
        delete("x.fn"),                    # 6
        delete("y"),                       # 7
        delete("registry", kind="s3_bucket"),  # 8: the lock and the state live in it
    ]
    waits = waits_for(changes)
    assert waits[0] == waits[4] == frozenset()
    assert waits[1] == {0} and waits[2] == {0} and waits[3] == {1, 2}
    assert waits[5] == {0, 1, 2, 3, 4}  # after every create, update and replace
    assert waits[6] == {0, 1, 2, 3, 4, 5}  # ... and after what depended on it
    assert waits[7] == {0, 1, 2, 3, 4}
    assert waits[8] == set(range(8))  # last: after everything
    assert all(j < i for i, w in enumerate(waits) for j in w)  # the plan's order satisfies it


def test_the_cli_default_is_the_executors() -> None:
    for command in (cli.deploy, cli.destroy):
        assert inspect.signature(command).parameters["parallelism"].default \
            == DEFAULT_PARALLELISM == 10


def test_parallelism_below_one_is_refused(stage: Stage) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        stage.executor(Provider(stage.store), parallelism=0)


# -- running them ---------------------------------------------------------------------------


def test_one_at_a_time_runs_the_plan_in_its_order(stage: Stage) -> None:
    stage.deployed("c", "old.route", "old.fn", depends={"old.route": ("old.fn",)})
    actions = (create("a"), create("b", "a"), change(Op.update, "c", "b"), create("z"),
               delete("old.route", "old.fn"), delete("old.fn"))
    provider = Provider(stage.store)
    progress: list[tuple[str, str, str]] = []
    stage.executor(provider, parallelism=1, progress=progress).apply(stage.plan(*actions))
    order = [a.id for a in actions]
    assert [name for _, name in provider.calls] == order
    assert provider.most == 1
    assert [(rid, phase) for rid, phase, _ in progress] == [
        (rid, phase) for rid in order for phase in ("start", "done")]


def test_independent_actions_run_at_once_within_the_bound(stage: Stage) -> None:
    barrier = threading.Barrier(4, timeout=WAIT_S)  # a call returns once 4 run together

    def together(_op: str, _name: str) -> None:
        barrier.wait()

    provider = Provider(stage.store, together)
    actions = tuple(create(f"logs.{i:02d}") for i in range(12))
    progress: list[tuple[str, str, str]] = []
    state = stage.executor(provider, parallelism=4, progress=progress).apply(
        stage.plan(*actions))
    assert provider.most == 4  # four at once, never more
    assert len(provider.calls) == 12 and set(state.resources) == {a.id for a in actions}
    assert provider.warmed == {"log_group"}  # the clients were made before the threads
    # The calls ran in worker threads; progress, state and audit on the caller's thread.
    main = threading.current_thread().name
    assert main not in provider.threads
    assert {thread for _, _, thread in progress} == {main}


def test_an_action_starts_once_what_it_depends_on_is_saved(stage: Stage) -> None:
    stage.deployed("registry", "old.a", "old.b", "old.c",
                   depends={"old.b": ("old.a",), "old.c": ("old.b",)})
    actions = (
        create("role"), create("logs"),
        create("fn", "role", "logs", role=ref("role", "arn"), logs=ref("logs", "arn", "{}:*")),
        create("version", "fn", function=ref("fn", "arn")),
        create("alias", "version", version=ref("version", "arn")),
        change(Op.update, "api"),
        create("route", "api", "alias", target=ref("alias", "arn")),
        delete("old.c", "old.b"), delete("old.b", "old.a"), delete("old.a"),
        delete("registry", kind="s3_bucket"),
    )
    audited_before_registry_goes: list[int] = []

    def on_call(op: str, name: str) -> None:
        if name == "registry":
            audited_before_registry_goes.append(stage.s3.list_objects_v2(
                Bucket=stage.bucket, Prefix="audit/").get("KeyCount", 0))

    provider = Provider(stage.store, on_call)
    plan = stage.plan(*actions, destroy=False)
    state = stage.executor(provider, parallelism=10).apply(plan)
    assert audited_before_registry_goes == [len(actions) - 1]  # every other one's record

    for action, waits in zip(actions, waits_for(actions), strict=True):
        recorded = provider.saved_at_start[action.id]
        for j in waits:
            other = actions[j].id
            # what it waits for is in the state saved before it started (or gone, if deleted)
            assert (other not in recorded) if actions[j].op is Op.delete \
                else (other in recorded), (action.id, other)
    # refs resolved against the outputs recorded when the action started
    assert provider.props["fn"]["role"] == "arn:role"
    assert provider.props["fn"]["logs"] == "arn:logs:*"
    assert provider.props["route"]["target"] == "arn:alias"
    assert provider.alone["registry"]  # the registry's delete ran alone, last
    assert provider.calls[-1] == ("delete", "registry")
    assert [n for op, n in provider.calls if op == "delete"][:3] == ["old.c", "old.b", "old.a"]
    assert "old.a" not in state.resources and "route" in state.resources
    assert state.destroyed_at is not None  # the registry went: the state says so


def saves_of(stage: Stage) -> list[int]:
    """The serial of each state the stage's store saves from now on."""
    saves: list[int] = []
    real_save = stage.store.save

    def save(state: State, *, remote: bool = True) -> State:
        saved = real_save(state, remote=remote)
        saves.append(saved.serial)
        return saved

    stage.store.save = save  # type: ignore[method-assign]
    return saves


def test_one_save_per_action_one_at_a_time(stage: Stage) -> None:
    saves = saves_of(stage)
    actions = tuple(create(f"logs.{i}") for i in range(5))
    stage.executor(Provider(stage.store), parallelism=1).apply(stage.plan(*actions))
    assert saves == [1, 2, 3, 4, 5]


def test_every_action_is_saved_and_audited_as_it_finishes(stage: Stage) -> None:
    saves = saves_of(stage)
    actions = tuple(create(f"logs.{i}") for i in range(6)) + (create("fn", "logs.0"),)
    state = stage.executor(Provider(stage.store), parallelism=3).apply(stage.plan(*actions))
    # each save one or more actions further (those that finished together), up to the last
    assert saves == sorted(set(saves)) and saves[-1] == 7
    remote = json.loads(stage.s3.get_object(
        Bucket=stage.bucket, Key="state/shop/prod.json")["Body"].read())
    assert remote["serial"] == state.serial == 7 and set(remote["resources"]) == set(
        state.resources)
    audited = stage.audit.read_local()
    assert sorted(r["resource"] for r in audited) == sorted(a.id for a in actions)
    assert {r["outcome"] for r in audited} == {"succeeded"}
    assert stage.store.holder() is None  # the lock was released


def test_the_first_failure_stops_new_starts_and_what_runs_finishes_recorded(
        stage: Stage) -> None:
    failed_seen = threading.Event()

    def on_call(op: str, name: str) -> None:
        if name == "logs.a":
            raise RuntimeError("AccessDenied on logs.a")
        if name == "logs.b":  # in flight when logs.a failed: finishes after it was seen
            assert failed_seen.wait(WAIT_S)

    provider = Provider(stage.store, on_call)
    progress: list[tuple[str, str, str]] = []
    executor = stage.executor(provider, parallelism=2, progress=progress, failed=failed_seen)
    actions = (create("logs.a"), create("logs.b"), create("logs.c"), create("logs.d"),
               create("fn", "logs.b"))
    with pytest.raises(DeployError) as caught:
        executor.apply(stage.plan(*actions))

    message = caught.value.render()
    assert message.startswith("create logs.a failed: AccessDenied on logs.a")
    assert "1 of 5 changes were applied and recorded" in message
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert sorted(name for _, name in provider.calls) == ["logs.a", "logs.b"]  # no other
    assert [(rid, phase) for rid, phase, _ in progress] == [
        ("logs.a", "start"), ("logs.b", "start"), ("logs.a", "failed"), ("logs.b", "done")]
    state = stage.store.load()
    assert set(state.resources) == {"logs.b"} and state.serial == 1
    outcomes = {r["resource"]: r["outcome"] for r in stage.audit.read_local()}
    assert outcomes == {"logs.a": "failed", "logs.b": "succeeded"}
    assert stage.store.holder() is None


def test_every_failure_of_a_wave_is_named(stage: Stage) -> None:
    failed_seen = threading.Event()

    def on_call(op: str, name: str) -> None:
        if name != "logs.a":  # logs.b and logs.c finish after logs.a's failure was seen
            assert failed_seen.wait(WAIT_S)
        if name in ("logs.a", "logs.c"):
            raise RuntimeError(f"throttled on {name}")

    executor = stage.executor(Provider(stage.store, on_call), parallelism=3,
                              failed=failed_seen)
    actions = (create("logs.a"), create("logs.b"), create("logs.c"), create("logs.d"))
    with pytest.raises(DeployError) as caught:
        executor.apply(stage.plan(*actions))
    message = caught.value.render()
    assert "create logs.a failed: throttled on logs.a (and 1 more failed: create logs.c)" \
        in message
    assert "1 of 4 changes were applied" in message
    assert set(stage.store.load().resources) == {"logs.b"}
