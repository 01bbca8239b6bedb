"""Deployments in the plan. Pure.

An endpoint whose rollout is not all at once has its ``live`` alias moved by CodeDeploy: when
the plan publishes a new version of its function, the alias does not move itself (its action
stays a no-op) and the plan adds an ``alias_deployment`` action, ``deployment.<endpoint>``,
that starts the deployment — in the reviewer's words: ``start canary 10% for 15s, then 100%:
diagnosis 1.0.0 → 1.1.0 (Lambda version 1 → the new one)``. A new version that changes
neither the served model nor the handler code or its layer (memory, timeout, environment)
has nothing to compare: its deployment shifts all traffic at once and says so.

A deployment ends outside apply (CodeDeploy runs it; ``mlops deploy`` may not be there to
see it). The plan reads what is live (``observed``: the kinds' ``observe``) and records how
it ended: the deployment's final status, and the version the alias serves — the new one when
it succeeded, the old one when it was rolled back. So the state records what serves, and apply
stays its one writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from framework.compile.graph import Resource, ResourceGraph, iter_refs, ref
from framework.config.models import Rollout
from framework.errors import Problem
from framework.plan.state import Entry, State

ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")
ALL_AT_ONCE_CONFIG = "CodeDeployDefault.LambdaAllAtOnce"
# Function properties whose change means other code or another model answers.
CODE_KEYS = frozenset({"code", "handler", "runtime", "architectures", "layers"})
MODEL_VARIABLES = ("MLOPS_MODEL_NAME", "MLOPS_MODEL_VERSION", "MLOPS_MODEL_SHA256")


def deployment_id(unit: str) -> str:
    return f"deployment.{unit}"


def served_model(props: Mapping[str, Any] | None) -> str:
    """"diagnosis 1.1.0": the model a function's properties serve ("" for none)."""
    env = (props or {}).get("environment") or {}
    if "MLOPS_MODEL_VERSION" not in env:
        return ""
    return f"{env.get('MLOPS_MODEL_NAME', '?')} {env['MLOPS_MODEL_VERSION']}"


def config_only(fn: Any, actions: Mapping[str, Any]) -> str | None:
    """Why a function's new version answers as the serving one does (a memory, timeout,
    concurrency or environment change of the same model, code and layer), or None. ``fn`` is
    the function's plan action."""
    from framework.plan.planner import Op

    if fn is None or fn.op is not Op.update or not fn.changes:
        return None  # new, replaced, or following a new layer: not known to be alike
    if any(c.key in CODE_KEYS for c in fn.changes):
        return None
    for change in fn.changes:
        if change.key == "environment":
            before, after = change.before or {}, change.after or {}
            if any(before.get(k) != after.get(k) for k in MODEL_VARIABLES):
                return None
    layers = {r["$ref"] for r in iter_refs(fn.props or {})}
    if any(actions[r].op is not Op.noop for r in layers if r in actions):
        return None
    keys = [c.key for c in fn.changes if c.key != "tags"] or ["tags"]
    return (f"no model or code change ({served_model(fn.props) or 'the same model'} as before; "
            f"{', '.join(keys)} changed): the new Lambda version takes all traffic at once")


def _serving(state: State, unit: str) -> tuple[str, str]:
    """(Lambda version the alias serves as recorded, the model it serves, when known)."""
    alias, published = state.resources.get(f"alias.{unit}"), state.resources.get(
        f"version.{unit}")
    fn = state.resources.get(f"function.{unit}")
    serving = str(alias.outputs.get("version", "")) if alias else ""
    latest = str(published.outputs.get("version", "")) if published else ""
    # The function's recorded properties are those of its latest published version.
    model = served_model(fn.props if fn else None) if serving and serving == latest else ""
    return serving, model


def _new_deployment(graph: ResourceGraph, state: State, alias: Resource, unit: str,
                    actions: Mapping[str, Any]) -> Any:
    from framework.plan.planner import Action, Op
    from framework.rollout.strategy import Shape, bake_seconds, duration_text, shape

    group = alias.props["deployment_group"]
    group_res = graph.resources[f"deploy-group.{unit}"]
    serving, before = _serving(state, unit)
    after = served_model(graph.resources[f"function.{unit}"].props)
    at_once = config_only(actions.get(f"function.{unit}"), actions)
    hooks = {} if at_once else {event: group[key] for event, key in (
        ("BeforeAllowTraffic", "before_allow_traffic"),
        ("AfterAllowTraffic", "after_allow_traffic")) if group.get(key)}
    strategy = str(alias.props["rollout"].get("strategy"))
    if at_once:
        config, how = ALL_AT_ONCE_CONFIG, "all at once"
    elif strategy == "shadow":
        rollout = Rollout.model_validate(alias.props["rollout"])
        config = str(group_res.props["config_name"])
        how = (f"shadow for {duration_text(bake_seconds(rollout))} (the new version answers "
               "copies), then all at once if it agrees")
    else:
        got = shape(Rollout.model_validate(alias.props["rollout"]))
        assert isinstance(got, Shape)  # compile refused the others
        config, how = str(group_res.props["config_name"]), got.describe()
        if "BeforeAllowTraffic" in hooks:
            how += ", after a pre-traffic check"
        if "AfterAllowTraffic" in hooks:
            need = Rollout.model_validate(alias.props["rollout"]).watch.min_requests
            how += f", held until {need} requests are judged"
    models = _models(before, after)
    lambdas = f"Lambda version {serving or '?'} → new"
    description = f"{how}: {models}"
    props = {"endpoint": unit, "application_name": group["application"],
             "group_name": group["group"], "function_name": alias.props["function_name"],
             "alias": alias.props["alias"], "target_version": ref(f"version.{unit}", "version"),
             "config_name": config, "hooks": hooks, "description": description}
    if strategy == "shadow" and not at_once:
        props["shadow"] = True
    deps = {f"alias.{unit}", f"deploy-group.{unit}", f"version.{unit}",
            *(d for d in group_res.all_dependencies() if d.startswith("deploy-config."))}
    if hooks:
        deps.update(d for d in alias.depends_on if d.startswith("function."))
    reason = (f"{at_once} ({models}; {lambdas})" if at_once
              else f"start {how}: {models} ({lambdas})")
    return Action(Op.create, deployment_id(unit), "alias_deployment", reason, props,
                  tuple(sorted(deps)))


def _models(before: str, after: str) -> str:
    """'diagnosis 1.0.0 → 1.1.0' (the name once when both serve the same model)."""
    old, new = before.rpartition(" "), after.rpartition(" ")
    if before and after and old[0] == new[0]:
        return f"{before} → {new[2]}"
    return f"{before or '?'} → {after or '?'}"


def _ended(outputs: Mapping[str, Any]) -> str:
    status = str(outputs.get("status", ""))
    if status == "Succeeded":
        return f"deployment {outputs.get('deployment_id')} succeeded"
    rolled = " and was rolled back" if outputs.get("rollback_deployment_id") else ""
    error = f" ({outputs['error']})" if outputs.get("error") else ""
    return f"deployment {outputs.get('deployment_id')} {status.lower()}{rolled}{error}"


def reconciled(state: State, observed: Mapping[str, Mapping[str, Any]],
                ) -> dict[str, Any]:
    """Updates that record what CodeDeploy did since the state was written: a deployment's
    end, and the version its alias serves now."""
    from framework.plan.planner import Action, Op

    out: dict[str, Any] = {}
    for rid, entry in state.resources.items():
        if entry.kind != "alias_deployment" or rid not in observed:
            continue
        now = observed[rid]
        unit = rid.split(".", 1)[1]
        if entry.outputs.get("status") != now.get("status"):
            out[rid] = Action(Op.update, rid, entry.kind, f"record that {_ended(now)}"
                              if now.get("status") not in ACTIVE else
                              f"record that deployment {now.get('deployment_id')} is "
                              f"{str(now.get('status')).lower()}", entry.props,
                              entry.depends_on)
        alias = state.resources.get(f"alias.{unit}")
        live = observed.get(f"alias.{unit}")
        if alias is None or live is None or _same_traffic(alias.outputs, live):
            continue
        what = (_ended(now) if now.get("status") not in ACTIVE else
                f"deployment {now.get('deployment_id')} is under way")
        out[f"alias.{unit}"] = Action(
            Op.update, f"alias.{unit}", alias.kind,
            f"record that it serves {_traffic(live)}: {what}", alias.props, alias.depends_on)
    return out


def _same_traffic(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (str(a.get("version")) == str(b.get("version"))
            and (a.get("weights") or {}) == (b.get("weights") or {}))


def _traffic(outputs: Mapping[str, Any]) -> str:
    text = f"version {outputs.get('version')}"
    for version, share in sorted((outputs.get("weights") or {}).items()):
        text += f" ({share:.0%} on version {version})"
    return text


def plan(graph: ResourceGraph, state: State, actions: dict[str, Any],
         observed: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The deployment actions of a plan, and the alias actions they change: by id (an id
    already in ``actions`` replaces that action)."""
    from framework.plan.planner import Op

    out = reconciled(state, observed)
    for rid, res in graph.resources.items():
        if res.kind != "lambda_alias" or not res.props.get("deployment_group"):
            continue
        unit = rid.split(".", 1)[1]
        version = actions.get(f"version.{unit}")
        alias = actions[rid]
        if version is None or version.op not in (Op.create, Op.replace) \
                or rid not in state.resources or alias.op is Op.create:
            continue  # no new version, or the alias is new: it points at it directly
        out[deployment_id(unit)] = _new_deployment(graph, state, res, unit, actions)
        if rid not in out and alias.op is Op.update and not alias.changes:
            # The deployment moves it; until it ends the alias serves what it serves.
            out[rid] = replace(alias, op=Op.noop,
                               reason=f"moved by {deployment_id(unit)}")
    return out


def kept(rid: str, entry: Entry, graph: ResourceGraph, destroy: bool) -> bool:
    """A recorded deployment stays in the state while its endpoint's deployment group is
    declared (it is history, not a declared resource)."""
    if destroy or entry.kind != "alias_deployment":
        return False
    return f"deploy-group.{rid.split('.', 1)[1]}" in graph.resources


def aws_problems(graph: ResourceGraph) -> list[Problem]:
    """What CodeDeploy on AWS cannot run: bake times that are not whole minutes."""
    from framework.rollout.strategy import minutes_problem

    problems = []
    for res in graph.resources.values():
        if res.kind != "codedeploy_deployment_group":
            continue
        config = next((graph.resources[d] for d in res.all_dependencies()
                       if graph.resources[d].kind == "codedeploy_deployment_config"), None)
        what = minutes_problem(int(config.props["interval_s"])) if config else None
        if what:
            problems.append(Problem(
                where=f"endpoints.{res.props['endpoint']}.rollout.every", what=what,
                hint="declare every: 1m or more in whole minutes for this stage (a stage's "
                     "overrides can set it), or strategy: blue_green"))
    return problems
