"""Plan: a pure diff of the compiled graph against deployed state and what is live.

Each action says what will happen to one resource and why. Creates, updates and replaces run
in dependency order; deletes run afterwards, in reverse dependency order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from framework import resources
from framework.compile.graph import Resource, ResourceGraph, iter_refs, topo_order
from framework.errors import ConfigError, Problem
from framework.plan.state import State

PLAN_FORMAT = 1


class Op(Enum):
    create = "create"
    update = "update"
    replace = "replace"
    delete = "delete"
    noop = "no-op"


# The kinds' rules (framework/resources): the properties whose change means a new physical
# resource ("*": any change does), ...
REPLACE_ON: dict[str, frozenset[str]] = {k.name: k.replace_on for k in resources.TABLE}
# ... the kinds whose delete, short of a destroy, leaves the objects in the registry, ...
RETAINED = frozenset(k.name for k in resources.TABLE if k.retained)
UNDECLARED, DESTROYED = "no longer declared", "project destroyed"  # why a delete happens
# ... and the properties checked before a version ships, not deployed: changing them alone
# changes nothing (a version's gates run once, when it is new).
CHECKED_ONLY: dict[str, frozenset[str]] = {
    k.name: k.checked_only for k in resources.TABLE if k.checked_only}
IMMUTABLE_HINT = "bump the model's version in mlops.yaml; a released version never changes"


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

    @property
    def retires(self) -> bool:
        """A delete that leaves the objects in the registry (the plan was not a destroy)."""
        return (self.op is Op.delete and self.kind in RETAINED
                and self.reason.startswith(UNDECLARED))

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
    hints: tuple[str, ...] = ()  # what a reviewer should know that no action shows

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.op is not Op.noop)

    def retires(self, action: Action) -> bool:
        """A delete that only forgets a resource the registry keeps (a model version):
        nothing is removed from the account."""
        return not self.destroy and action.retires

    def label(self, action: Action) -> str:
        """The action as a reviewer reads it."""
        return "retire (kept in registry)" if self.retires(action) else action.op.value

    def counts(self) -> dict[str, int]:
        out = {op.value: 0 for op in Op}
        for a in self.actions:
            out[a.op.value] += 1
        return out

    def summary(self) -> str:
        """The one-line count a reviewer reads under the table."""
        counts = self.counts()
        retired = sum(1 for a in self.actions if self.retires(a))
        text = (f"Plan: {counts['create']} to create, {counts['update']} to update, "
                f"{counts['replace']} to replace, {counts['delete'] - retired} to delete, ")
        if retired:
            text += f"{retired} to retire (kept in registry), "
        return text + f"{counts['no-op']} unchanged."

    def to_json(self) -> str:
        body = {
            "format": PLAN_FORMAT, "project": self.project, "stage": self.stage,
            "target": self.target, "region": self.region, "account_id": self.account_id,
            "state_lineage": self.state_lineage, "state_serial": self.state_serial,
            "destroy": self.destroy, "actions": [a.to_dict() for a in self.actions],
            "hints": list(self.hints),
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
                hints=tuple(d.get("hints", ())),
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


SECRET_MARKS = ("KEY", "SECRET", "TOKEN", "PASSWORD")  # variable names whose values are masked
UNSET = "(unset)"


def _shown(name: str, value: Any) -> str:
    if value is None:
        return UNSET
    return "***" if any(m in name.upper() for m in SECRET_MARKS) else _short(value, 24)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def _json_object(text: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _variable(name: str, before: Any, after: Any) -> str:
    old, new = _json_object(before), _json_object(after)
    if old is not None and new is not None and not any(m in name.upper()
                                                       for m in SECRET_MARKS):
        # A JSON document (a monitor's settings): the fields that changed, not its text.
        a, b = _flat(old), _flat(new)
        keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        inner = "; ".join(f"{k}: {_shown(k, a.get(k))} → {_shown(k, b.get(k))}"
                          for k in keys[:3]) + (f"; +{len(keys) - 3} more" if len(keys) > 3
                                                else "")
        return f"{name} ({inner})"
    return f"{name}: {_shown(name, before)} → {_shown(name, after)}"


def describe_environment(before: Mapping[str, Any] | None,
                         after: Mapping[str, Any] | None) -> str:
    """The variables that changed, by name, with their values (secrets' masked)."""
    before, after = before or {}, after or {}
    names = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    return "environment " + ", ".join(_variable(k, before.get(k), after.get(k))
                                      for k in names)


def describe(changes: tuple[Change, ...]) -> str:
    parts = []
    for c in changes[:3]:
        if c.key == "environment" and isinstance(c.before, dict) and isinstance(c.after, dict):
            parts.append(describe_environment(c.before, c.after))
        elif isinstance(c.before, dict | list) or isinstance(c.after, dict | list):
            parts.append(f"{c.key} changed")
        else:
            parts.append(f"{c.key}: {_short(c.before)} → {_short(c.after)}")
    if len(changes) > 3:
        parts.append(f"+{len(changes) - 3} more")
    return "; ".join(parts)


def _immutable_violation(res: Resource, before: Mapping[str, Any]) -> Problem | None:
    """A deployed resource its kind says may not become ``res`` (other bytes under a released
    version)."""
    kind = resources.kind(res.kind)
    if kind.immutable is None:
        return None
    what = kind.immutable(kind.parse(res.props), kind.props.from_state(before))
    return None if what is None else Problem(where=res.id, what=what, hint=IMMUTABLE_HINT)


def make_plan(
    graph: ResourceGraph,
    state: State,
    live: Mapping[str, bool],
    *,
    target: str,
    region: str,
    account_id: str,
    destroy: bool = False,
    observed: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """Diff ``graph`` against ``state``. ``live[id]`` is False for a state entry that the
    refresh found missing on the target; ``observed[id]`` is what is live of a resource
    that changes outside apply (see ``framework.plan.deployments``)."""
    from framework.plan import deployments

    if target != "local" and not destroy:
        aws = deployments.aws_problems(graph)
        if aws:
            raise ConfigError(aws, source="plan")
    actions: dict[str, Action] = {}
    problems: list[Problem] = []
    hints: list[str] = []
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
        checked = CHECKED_ONLY.get(res.kind, frozenset())
        if changes and all(c.key in checked for c in changes) and entry.kind == res.kind:
            hints.extend(_checked_only_hint(res, c) for c in changes if c.before is not None)
            changes = ()
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

    for rid in order:  # Lambda versions: which model they serve, beside their numbers
        act = actions[rid]
        if act.op is not Op.noop and act.kind in ("lambda_version", "lambda_alias"):
            version = actions.get(f"version.{rid.split('.', 1)[1]}")
            moving = version is not None and version.op in (Op.create, Op.replace)
            actions[rid] = replace(act, reason=_version_reason(act, graph, state, moving))

    # CodeDeploy moves the aliases of endpoints rolled out step by step: what it started
    # and what it did since.
    extra = deployments.plan(graph, state, actions, observed or {}) if not destroy else {}
    listed: list[str] = []
    for rid in order:
        listed.append(rid)
        unit = rid.split(".", 1)[1] if "." in rid else ""
        if graph.resources[rid].kind == "lambda_alias" \
                and deployments.deployment_id(unit) in extra:
            listed.append(deployments.deployment_id(unit))
    listed += [rid for rid in extra if rid not in listed]
    actions.update(extra)

    gone = {rid: e for rid, e in state.resources.items() if rid not in graph.resources
            and rid not in extra and not deployments.kept(rid, e, graph, destroy)}
    delete_order = topo_order({rid: e.depends_on for rid, e in gone.items()},
                              {rid: e.kind for rid, e in gone.items()})
    deletes = []
    for rid in reversed(delete_order):
        entry = gone[rid]
        why = DESTROYED if destroy else UNDECLARED
        kind = resources.kind(entry.kind)
        kept = kind.kept(kind.props.from_state(entry.props)) if kind.kept else None
        if kept and not destroy:
            why += f"; {kept}"
        deletes.append(Action(Op.delete, rid, entry.kind, why, None, entry.depends_on))

    return Plan(
        project=state.project, stage=state.stage, target=target, region=region,
        account_id=account_id, state_lineage=state.lineage, state_serial=state.serial,
        actions=tuple(actions[rid] for rid in listed) + tuple(deletes), destroy=destroy,
        hints=tuple(hints),
    )


def _checked_only_hint(res: Resource, change: Change) -> str:
    what = f"{res.props.get('name')} {res.props.get('version')}"
    return (f"{change.key} changed for {what} but the version did not: {change.key} run on a "
            "new version; bump `version` to re-check")


def served_model(props: Mapping[str, Any] | None) -> str:
    """"diagnosis 1.1.0": the model a function's properties serve ("" for none)."""
    from framework.plan.deployments import served_model as served

    return served(props)


def _version_reason(act: Action, graph: ResourceGraph, state: State,
                    moving: bool) -> str:
    """A Lambda version or alias change in a reviewer's words: the Lambda version serving
    now and its model, and the model the new version serves."""
    unit = act.id.split(".", 1)[1]
    if act.kind == "lambda_alias" and not moving:
        return act.reason  # the alias changes, not the version it points at
    fid = f"function.{unit}"
    old_fn, new_fn = state.resources.get(fid), graph.resources.get(fid)
    alias, published = state.resources.get(f"alias.{unit}"), state.resources.get(f"version.{unit}")
    serving = str(alias.outputs.get("version", "")) if alias else ""
    latest = str(published.outputs.get("version", "")) if published else ""
    # The function's recorded properties are those of its latest published version.
    before = served_model(old_fn.props if old_fn else None) if serving == latest else ""
    after = served_model(new_fn.props if new_fn else None)
    now = (f"version {serving}" + (f" ({before})" if before else "")) if serving else ""
    new = "a new version" + (f" ({after})" if after else "")
    if act.kind == "lambda_version":
        return f"publish {new}" + (f"; {now} stays, for rollback" if now else "")
    text = f"move from {now} to {new}" if now else f"point at {new}"
    return text if act.reason.startswith("follows") else f"{act.reason}; {text}"
