"""Apply: the only step that changes the world.

Runs a plan's actions in order under the stage lock, records state after every action (a
crash half-way loses nothing) and writes one audit record per action. A saved plan is applied
exactly as reviewed, and refused when the state moved since it was made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from framework.apply.audit import AuditLog
from framework.apply.store import StateStore
from framework.compile.graph import resolve
from framework.errors import DeployError, StalePlanError
from framework.plan.planner import Action, Op, Plan
from framework.plan.state import Entry, State, now_iso
from framework.providers.aws import AwsProvider

Progress = Callable[[Action, str], None]  # (action, "start" | "done" | "failed")


@dataclass
class Executor:
    provider: AwsProvider
    store: StateStore
    audit: AuditLog
    actor: str
    command: str = "mlops deploy"
    on_progress: Progress | None = None

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
                raise StalePlanError(
                    f"the plan was made against state #{plan.state_serial} but stage "
                    f"'{plan.stage}' is now at #{state.serial}",
                    hint="run `mlops plan` again and review the new plan")
            return self._run(plan, state)
        finally:
            if self.store._lock_held:
                try:
                    self.store.release()
                except Exception as exc:  # control plane gone: the lock is stale, not lost
                    self.store.warnings.append(f"could not release the lock: {exc}")

    def _run(self, plan: Plan, state: State) -> State:
        changes = plan.changes
        for done, action in enumerate(changes):
            registry_goes = action.kind == "s3_bucket" and action.op is Op.delete
            if registry_goes:
                self.store.release()  # the lock object lives in the bucket being deleted
            self._notify(action, "start")
            before = state.resources.get(action.id)
            try:
                entry = self._execute(action, before, state, plan.destroy)
            except Exception as exc:
                self._notify(action, "failed")
                self._audit(plan, action, before, None, "failed", str(exc))
                self.store.save(state, remote=False)
                raise DeployError(
                    f"{action.op.value} {action.id} failed: {exc}",
                    hint=(f"{done} of {len(changes)} changes were applied and recorded; what "
                          "was serving before keeps serving. Run `mlops deploy` again to "
                          "finish.")) from exc
            state = state.record(action.id, entry)
            if registry_goes:
                state = replace(state, destroyed_at=now_iso())
                self.store.save(state, remote=False)
                self.audit.s3 = None
            else:
                state = self.store.save(state)
            self._audit(plan, action, before, entry, "succeeded", "")
            self._notify(action, "done")
        if plan.destroy and state.destroyed_at is None and not state.resources:
            state = self.store.save(replace(state, destroyed_at=now_iso()), remote=False)
        return state

    def _execute(self, action: Action, before: Entry | None, state: State,
                 destroying: bool) -> Entry | None:
        if action.op is Op.delete:
            assert before is not None
            self.provider.delete(before, destroying=destroying)
            return None
        assert action.props is not None
        props = resolve(action.props, state.outputs())
        if action.op is Op.create or before is None:
            outputs = self.provider.create(action.kind, props)
        elif action.op is Op.replace:
            outputs = self.provider.replace(action.kind, props, before)
        else:
            outputs = self.provider.update(action.kind, props, before)
        return Entry(kind=action.kind, props=action.props, outputs=outputs,
                     depends_on=action.depends_on)

    def _audit(self, plan: Plan, action: Action, before: Entry | None, after: Entry | None,
               outcome: str, error: str) -> None:
        record: dict[str, Any] = {
            "actor": self.actor, "command": self.command, "project": plan.project,
            "stage": plan.stage, "target": plan.target, "action": action.op.value,
            "resource": action.id, "kind": action.kind, "reason": action.reason,
            "before": before.outputs if before else None,
            "after": after.outputs if after else None, "outcome": outcome,
        }
        if error:
            record["error"] = error
        try:
            self.audit.record(**record)
        except Exception as exc:  # the local mirror has it; the registry may be unreachable
            self.store.warnings.append(f"audit record not stored in the registry: {exc}")
