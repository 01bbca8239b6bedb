"""Plan: a pure diff of the compiled graph against deployed state and what is live.

Each action says what will happen to one resource and why. Creates, updates and replaces run
in dependency order; deletes run afterwards, in reverse dependency order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from framework.compile.graph import KINDS, Resource, ResourceGraph, iter_refs, topo_order
from framework.errors import ConfigError, Problem
from framework.plan.state import State

PLAN_FORMAT = 1


class Op(Enum):
    create = "create"
    update = "update"
    replace = "replace"
    delete = "delete"
    noop = "no-op"


# Properties whose change means a new physical resource. "*" means any change does.
REPLACE_ON: dict[str, frozenset[str]] = {
    "s3_bucket": frozenset({"bucket", "region"}),
    "s3_object": frozenset({"bucket", "key"}),
    "model_version": frozenset({"bucket", "name", "version"}),
    "lambda_layer": frozenset({"*"}),
    "iam_role": frozenset({"role_name"}),
    "firehose_stream": frozenset({"*"}),
    "log_group": frozenset({"name"}),
    "lambda_function": frozenset({"function_name"}),
    "lambda_version": frozenset({"*"}),
    "lambda_alias": frozenset({"function_name", "alias"}),
    "http_api": frozenset({"protocol"}),
    "api_integration": frozenset({"api_id"}),
    "api_route": frozenset({"api_id"}),
    "api_stage": frozenset({"api_id", "stage"}),
    "lambda_permission": frozenset({"*"}),
    "schedule_rule": frozenset({"rule_name"}),
    "schedule_target": frozenset({"rule_name", "target_id"}),
    "ses_identity": frozenset({"email"}),
}
assert set(REPLACE_ON) == set(KINDS), "every kind needs its replace rule"


@dataclass(frozen=True)
class Change:
    key: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Action:
    op: Op
    id: str
    kind: str
    reason: str
    props: dict[str, Any] | None = None  # desired properties (None for deletes)
    depends_on: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op.value, "id": self.id, "kind": self.kind, "reason": self.reason,
            "props": self.props, "depends_on": list(self.depends_on),
            "changes": [{"key": c.key, "before": c.before, "after": c.after}
                        for c in self.changes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Action:
        return cls(op=Op(d["op"]), id=d["id"], kind=d["kind"], reason=d["reason"],
                   props=d["props"], depends_on=tuple(d["depends_on"]),
                   changes=tuple(Change(c["key"], c["before"], c["after"])
                                 for c in d["changes"]))


@dataclass(frozen=True)
class Plan:
    project: str
    stage: str
    target: str
    region: str
    account_id: str
    state_lineage: str
    state_serial: int
    actions: tuple[Action, ...] = field(default_factory=tuple)
    destroy: bool = False

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.op is not Op.noop)

    def counts(self) -> dict[str, int]:
        out = {op.value: 0 for op in Op}
        for a in self.actions:
            out[a.op.value] += 1
        return out

    def to_json(self) -> str:
        body = {
            "format": PLAN_FORMAT, "project": self.project, "stage": self.stage,
            "target": self.target, "region": self.region, "account_id": self.account_id,
            "state_lineage": self.state_lineage, "state_serial": self.state_serial,
            "destroy": self.destroy, "actions": [a.to_dict() for a in self.actions],
        }
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "plan") -> Plan:
        try:
            d = json.loads(text)
            if d.get("format") != PLAN_FORMAT:
                raise ValueError(f"unsupported plan format {d.get('format')!r}")
            return cls(
                project=d["project"], stage=d["stage"], target=d["target"], region=d["region"],
                account_id=d["account_id"], state_lineage=d["state_lineage"],
                state_serial=d["state_serial"], destroy=d["destroy"],
                actions=tuple(Action.from_dict(a) for a in d["actions"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError([Problem(where=source, what=f"not a saved plan ({exc})",
                                       hint="write one with `mlops plan -o plan.json`")],
                              source=source) from exc


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Change, ...]:
    keys = sorted(set(before) | set(after))
    return tuple(Change(k, before.get(k), after.get(k)) for k in keys
                 if before.get(k) != after.get(k))


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(changes: tuple[Change, ...]) -> str:
    parts = []
    for c in changes[:3]:
        if isinstance(c.before, dict | list) or isinstance(c.after, dict | list):
            parts.append(f"{c.key} changed")
        else:
            parts.append(f"{c.key}: {_short(c.before)} → {_short(c.after)}")
    if len(changes) > 3:
        parts.append(f"+{len(changes) - 3} more")
    return "; ".join(parts)


def _immutable_violation(res: Resource, before: Mapping[str, Any]) -> Problem | None:
    if (res.kind == "model_version" and before.get("version") == res.props.get("version")
            and before.get("sha256") != res.props.get("sha256")):
        return Problem(
            where=res.id,
            what=(f"{res.props['name']}@{res.props['version']} is registered with other bytes "
                  f"(sha256 {str(before.get('sha256'))[:12]}…, now "
                  f"{str(res.props.get('sha256'))[:12]}…)"),
            hint="bump the model's version in mlops.yaml; a released version never changes",
        )
    if (res.kind == "s3_object" and res.props.get("immutable")
            and before.get("key") == res.props.get("key")
            and before.get("sha256") != res.props.get("sha256")):
        return Problem(
            where=res.id,
            what=(f"s3://{res.props['bucket']}/{res.props['key']} is immutable and already "
                  f"holds other bytes (sha256 {str(before.get('sha256'))[:12]}…, now "
                  f"{str(res.props.get('sha256'))[:12]}…)"),
            hint="bump the model's version in mlops.yaml; a released version never changes",
        )
    return None


def make_plan(
    graph: ResourceGraph,
    state: State,
    live: Mapping[str, bool],
    *,
    target: str,
    region: str,
    account_id: str,
    destroy: bool = False,
) -> Plan:
    """Diff ``graph`` against ``state``. ``live[id]`` is False for a state entry that the
    refresh found missing on the target."""
    actions: dict[str, Action] = {}
    problems: list[Problem] = []
    order = graph.order()
    for rid in order:
        res = graph.resources[rid]
        deps = res.all_dependencies()
        entry = state.resources.get(rid)
        if entry is None:
            actions[rid] = Action(Op.create, rid, res.kind, "new resource", res.props, deps)
            continue
        if not live.get(rid, True):
            actions[rid] = Action(Op.create, rid, res.kind,
                                  "missing on target (deleted outside mlops); recreate",
                                  res.props, deps)
            continue
        violation = _immutable_violation(res, entry.props)
        if violation:
            problems.append(violation)
            continue
        changes = _changes(entry.props, res.props)
        if entry.kind != res.kind:
            actions[rid] = Action(Op.replace, rid, res.kind,
                                  f"kind {entry.kind} → {res.kind}", res.props, deps, changes)
        elif changes:
            triggers = REPLACE_ON[res.kind]
            if "*" in triggers or any(c.key in triggers for c in changes):
                op = Op.replace
            else:
                op = Op.update
            actions[rid] = Action(op, rid, res.kind, describe(changes), res.props, deps,
                                  changes)
        else:
            actions[rid] = Action(Op.noop, rid, res.kind, "up to date", res.props, deps)
    if problems:
        raise ConfigError(problems, source="plan")

    # A resource whose refs point at something created or replaced gets the new value.
    for rid in order:
        act = actions[rid]
        if act.op is not Op.noop:
            continue
        moved = sorted({r["$ref"] for r in iter_refs(act.props)
                        if actions[r["$ref"]].op in (Op.create, Op.replace)})
        if moved:
            op = Op.replace if "*" in REPLACE_ON[act.kind] else Op.update
            actions[rid] = Action(op, rid, act.kind, f"follows {', '.join(moved)}",
                                  act.props, act.depends_on)

    gone = {rid: e for rid, e in state.resources.items() if rid not in graph.resources}
    delete_order = topo_order({rid: e.depends_on for rid, e in gone.items()},
                              {rid: e.kind for rid, e in gone.items()})
    deletes = []
    for rid in reversed(delete_order):
        entry = gone[rid]
        why = "project destroyed" if destroy else "no longer declared"
        if entry.kind == "model_version" and not destroy:
            why += "; version kept in the registry"
        if entry.kind == "s3_object" and entry.props.get("retain") and not destroy:
            why += "; object kept in the registry"
        deletes.append(Action(Op.delete, rid, entry.kind, why, None, entry.depends_on))

    return Plan(
        project=state.project, stage=state.stage, target=target, region=region,
        account_id=account_id, state_lineage=state.lineage, state_serial=state.serial,
        actions=tuple(actions[rid] for rid in order) + tuple(deletes), destroy=destroy,
    )
