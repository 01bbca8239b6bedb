"""Apply: the only step that changes the world.

Runs a plan's actions under the stage lock, records state after every action (a crash
half-way loses nothing) and writes one audit record per action. A saved plan is applied
exactly as reviewed, and refused when the state moved since it was made.

Actions that do not depend on each other run at the same time, at most ``parallelism`` at
once (``mlops deploy --parallelism N``; 1 runs the plan's order one by one). What each action
waits for (``waits_for``):

- a create, update or replace waits for the changes of the resources it depends on;
- a delete waits for every create, update and replace (deletes run afterwards, as the plan
  lists them: what was serving keeps serving until its replacement is up), and for the deletes
  of the resources that depended on it (reverse dependency order);
- the registry bucket's delete waits for everything else and runs alone: it holds the lock
  and the state.

Only the provider's calls run in worker threads (its clients are made before them: boto3
sessions are not thread-safe). Everything else happens on the calling thread, the one writer:
refs are resolved when an action starts; a finished action is recorded in the state and the
state saved (actions that finish together are recorded in one save, each adding one to its
serial), its progress line printed, then what it held back starts; its audit record is
written meanwhile by the audit log's one writer thread, in the order actions finished (all of
them before the registry's delete, and before apply returns). Nothing starts before what it
depends on is in a saved state. A
process killed part-way leaves a state of finished actions only; an action that was in flight
is planned again and its create adopts what the call made, as with one action at a time. The
first failure stops new starts; the actions in flight finish and are recorded, then the
failure is reported. So does Ctrl-C (then KeyboardInterrupt); a second Ctrl-C leaves at once,
and what was in flight is planned again, as after a crash.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from framework.apply.audit import AuditLog
from framework.apply.store import StateStore
from framework.compile.graph import resolve
from framework.errors import DeployError, StalePlanError, StateLockedError
from framework.plan.planner import Action, Op, Plan
from framework.plan.state import Entry, State, now_iso
from framework.progress import say
from framework.providers.aws import AwsProvider

Progress = Callable[[Action, str], None]  # (action, "start" | "done" | "failed")

DEFAULT_PARALLELISM = 10  # actions in flight at once, as Terraform's -parallelism


def registry_goes(action: Action) -> bool:
    """The registry bucket's delete: the lock and the state live in it."""
    return action.kind == "s3_bucket" and action.op is Op.delete


def waits_for(changes: Sequence[Action]) -> list[frozenset[int]]:
    """For each action (by index), the actions it must wait for: see the module's docstring.
    Every action waits only for actions listed before it, so the plan's order runs them."""
    index = {a.id: i for i, a in enumerate(changes)}
    changing = [i for i, a in enumerate(changes) if a.op is not Op.delete]
    out: list[frozenset[int]] = []
    for i, action in enumerate(changes):
        if registry_goes(action):
            found = set(range(len(changes))) - {i}
        elif action.op is Op.delete:
            # after every change, and after the deletes of what depended on it
            found = set(changing) | {j for j, other in enumerate(changes)
                                     if other.op is Op.delete and action.id in other.depends_on}
        else:
            found = {index[d] for d in action.depends_on
                     if d in index and changes[index[d]].op is not Op.delete}
        out.append(frozenset(found))
    return out


@dataclass
class _Failure:
    action: Action
    error: BaseException


_FAILED = object()  # the entry of an action that failed


@dataclass
class _Done:
    """A finished action, as recorded: its entry before, its entry now (None: deleted;
    ``_FAILED``), the error's text."""

    action: Action
    before: Entry | None
    entry: Entry | None | object
    error: str


class _AuditWriter:
    """The one writer of an apply's audit records, in a thread of its own: the records of
    finished actions are written, in the order they finished, while what they let start runs."""

    def __init__(self, write: Callable[[Plan, _Done], None]) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[Plan, _Done] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mlops-audit", daemon=True)
        self._thread.start()

    def put(self, plan: Plan, done: _Done) -> None:
        self._queue.put((plan, done))

    def flush(self) -> None:
        """Wait until every record put so far is written."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._write(*item)
            finally:
                self._queue.task_done()


@dataclass
class Executor:
    provider: AwsProvider
    store: StateStore
    audit: AuditLog
    actor: str
    command: str = "mlops deploy"
    on_progress: Progress | None = None
    saved: bool = False  # the plan was saved by `mlops plan -o` (else made by this command)
    parallelism: int = DEFAULT_PARALLELISM
    _failures: list[_Failure] = field(default_factory=list, repr=False)
    _remote_down: BaseException | None = field(default=None, repr=False)
    _audits: _AuditWriter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, not {self.parallelism}")

    def _notify(self, action: Action, phase: str) -> None:
        if self.on_progress is not None:
            self.on_progress(action, phase)

    def apply(self, plan: Plan) -> State:
        changes = plan.changes
        bootstrap = next((a for a in changes if a.kind == "s3_bucket" and a.op is Op.create),
                         None)
        if bootstrap is not None and bootstrap.props is not None:
            # The bucket holds the lock and the state, so it must exist before either.
            self.provider.create(bootstrap.kind, bootstrap.props)
        if not changes:
            return self.store.load()
        self.store.acquire(self.actor, self.command)
        try:
            state = self.store.load()
            if (state.lineage, state.serial) != (plan.state_lineage, plan.state_serial):
                self._overtaken(plan, state)
            return self._run(plan, state)
        finally:
            if self.store._lock_held:
                try:
                    self.store.release()
                except Exception as exc:  # control plane gone: the lock is stale, not lost
                    self.store.warnings.append(f"could not release the lock: {exc}")

    def _overtaken(self, plan: Plan, state: State) -> None:
        """The state moved since the plan was made: a saved plan is stale (exit 4); a plan
        this command just made lost to a concurrent one that finished first (exit 3)."""
        moved = f"#{plan.state_serial} → #{state.serial}"
        if self.saved:
            raise StalePlanError(
                f"the plan was made against state #{plan.state_serial} but stage "
                f"'{plan.stage}' is now at #{state.serial}",
                hint="run `mlops plan` again and review the new plan")
        raise StateLockedError(
            f"another deploy of {plan.project}/{plan.stage} changed it while this one was "
            f"planning (state {moved}, at {state.updated_at or '?'}); nothing was applied",
            hint=f"run `{self.command}` again: it plans against the new state")

    # -- the waves ------------------------------------------------------------------------
    def _run(self, plan: Plan, state: State) -> State:
        changes = plan.changes
        waits = waits_for(changes)
        self.provider.warm({a.kind for a in changes})  # clients are made here, not in threads
        self._failures, self._remote_down = [], None
        pending = list(range(len(changes)))  # not started, in the plan's order
        running: dict[Future[Entry | None], int] = {}
        finished: set[int] = set()
        interrupted: BaseException | None = None
        self._audits = _AuditWriter(self._audit)

        def start_ready() -> None:
            if self._failures or interrupted is not None:
                return
            for i in [i for i in pending if waits[i] <= finished]:
                if len(running) >= self.parallelism:
                    break
                pending.remove(i)
                running[self._start(plan, state, changes[i])] = i

        try:
            while True:
                start_ready()
                if not running:
                    break
                try:
                    ready, _ = wait(running, return_when=FIRST_COMPLETED)
                except BaseException as exc:
                    if interrupted is not None:
                        raise  # a second Ctrl-C: leave now; what runs is planned again
                    interrupted = exc  # Ctrl-C: let what is in flight finish, record it
                    say(f"stopping: {len(running)} change(s) in flight finish and are "
                        "recorded (Ctrl-C again to leave at once)")
                    continue
                batch = [(running.pop(f), f) for f in sorted(ready, key=running.__getitem__)]
                state, outcomes = self._record(plan, state, [(changes[i], f) for i, f in batch])
                finished.update(i for (i, _), done in zip(batch, outcomes, strict=True)
                                if done.entry is not _FAILED)
                for done in outcomes:
                    self._notify(done.action, "failed" if done.entry is _FAILED else "done")
                    self._audits.put(plan, done)  # written while what they held back runs
        finally:
            self._audits.close()
        if interrupted is not None:
            self.store.save(state, remote=False)
            raise interrupted
        if self._failures or self._remote_down is not None:
            self.store.save(state, remote=False)
            raise self._error(len(finished), len(changes))
        if plan.destroy and state.destroyed_at is None and not state.resources:
            state = self.store.save(replace(state, destroyed_at=now_iso()), remote=False)
        return state

    def _start(self, plan: Plan, state: State, action: Action) -> Future[Entry | None]:
        """Start one action in a thread of its own: its refs resolved against the state as
        recorded now. The thread is a daemon: a process told to stop at once does not wait
        for it (the action is then planned again, as after a crash)."""
        if registry_goes(action):
            self._audits.flush()  # every record is in the bucket before it is emptied
            self.store.release()  # the lock object lives in the bucket being deleted
        self._notify(action, "start")
        before = state.resources.get(action.id)
        future: Future[Entry | None] = Future()
        future.set_running_or_notify_cancel()
        try:
            props = None if action.props is None else resolve(action.props, state.outputs())
        except Exception as exc:  # a ref with no output: fails as the action itself would
            future.set_exception(exc)
            return future

        def run() -> None:
            try:
                entry = self._execute(action, before, props, plan.destroy)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(entry)

        threading.Thread(target=run, name=f"mlops-apply {action.id}", daemon=True).start()
        return future

    def _record(self, plan: Plan, state: State,
                batch: list[tuple[Action, Future[Entry | None]]]) -> tuple[State, list[_Done]]:
        """Record the actions that finished together in the state, and save it once."""
        outcomes: list[_Done] = []
        registry = False
        for action, future in batch:
            before = state.resources.get(action.id)
            try:
                entry = future.result()
            except Exception as exc:
                self._failures.append(_Failure(action, exc))
                outcomes.append(_Done(action, before, _FAILED, str(exc)))
                continue
            state = state.record(action.id, entry)
            outcomes.append(_Done(action, before, entry, ""))
            registry = registry or registry_goes(action)
        if registry:  # the registry is gone: the cache alone holds the state from now on
            state = self.store.save(replace(state, destroyed_at=now_iso()), remote=False)
            self.audit.s3 = None
        elif any(done.entry is not _FAILED for done in outcomes):
            state = self._save(state)
        return state, outcomes

    def _save(self, state: State) -> State:
        """Save after an action: the cache first, then the registry. A registry that stops
        answering stops new starts; what finishes meanwhile is kept in the cache, which
        the next load reads as ahead of the registry."""
        if self._remote_down is not None:
            return self.store.save(state, remote=False)
        try:
            return self.store.save(state)
        except Exception as exc:
            self._remote_down = exc
            return self.store.save(state, remote=False)

    def _error(self, applied: int, total: int) -> DeployError:
        hint = (f"{applied} of {total} changes were applied and recorded; what was serving "
                "before keeps serving. Run `mlops deploy` again to finish.")
        if not self._failures:
            assert self._remote_down is not None
            return DeployError(f"the state could not be saved in the registry: "
                               f"{self._remote_down}", hint=hint + " (the local state cache "
                               "in .mlops/state has every change recorded.)")
        first, *more = self._failures
        what = f"{first.action.op.value} {first.action.id} failed: {first.error}"
        if more:
            what += (f" (and {len(more)} more failed: "
                     + ", ".join(f"{f.action.op.value} {f.action.id}" for f in more) + ")")
        error = DeployError(what, hint=hint)
        error.__cause__ = first.error
        return error

    def _execute(self, action: Action, before: Entry | None, props: dict[str, Any] | None,
                 destroying: bool) -> Entry | None:
        """The provider's call (in a worker thread): ``props`` are resolved already."""
        if action.op is Op.delete:
            assert before is not None
            self.provider.delete(before, destroying=destroying)
            return None
        assert action.props is not None and props is not None
        if action.op is Op.create or before is None:
            outputs = self.provider.create(action.kind, props)
        elif action.op is Op.replace:
            outputs = self.provider.replace(action.kind, props, before)
        else:
            outputs = self.provider.update(action.kind, props, before)
        return Entry(kind=action.kind, props=action.props, outputs=outputs,
                     depends_on=action.depends_on)

    def _audit(self, plan: Plan, done: _Done) -> None:
        action, before = done.action, done.before
        after = None if done.entry is _FAILED else done.entry
        record: dict[str, Any] = {
            "actor": self.actor, "command": self.command, "project": plan.project,
            "stage": plan.stage, "target": plan.target, "action": action.op.value,
            "resource": action.id, "kind": action.kind, "reason": action.reason,
            "before": before.outputs if before else None,
            "after": after.outputs if isinstance(after, Entry) else None,
            "outcome": "failed" if done.entry is _FAILED else "succeeded",
        }
        if done.error:
            record["error"] = done.error
        try:
            self.audit.record(**record)
        except Exception as exc:  # the local mirror has it; the registry may be unreachable
            self.store.warnings.append(f"audit record not stored in the registry: {exc}")
