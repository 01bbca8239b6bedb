"""Endpoints' live aliases against the deploy state: what serves now, a move made outside
mlops, and what a plan does about it.

An endpoint's ``live`` alias can move without ``mlops deploy``: a monitor's rollback (which
records itself in the endpoint's serving history, ``framework.monitoring.serving``), someone
in the console, a CodeDeploy deployment. ``live_aliases`` reads where each alias points now
and which model each of those Lambda versions serves (their environment); ``mlops status``
shows that, and ``reconcile`` puts it in the plan. The rule:

1. The live alias serves the version the state records: nothing to say.
2. It serves another one, and no recorded rollback explains it (the console, a script): the
   plan says so and moves it back — ``live alias of predict serves version 3 (diagnosis
   1.0.0), state says 4 (diagnosis 1.0.1): deploy moves it back to 4`` — unless the plan
   moves the alias anyway (a new version), which it then says.
3. It serves another one because a monitor rolled it back (the endpoint's newest serving
   record is that rollback, from the recorded version to the live one): a deploy keeps the
   rollback. The plan changes nothing on that alias and says why, with the hint
   ``--undo-rollback``; with it, the alias moves back to the recorded version. A deploy
   that publishes a new version of the endpoint still ships it — a new model version
   replaces the rolled-back one — but one that would serve again the very model version
   the rollback took away is refused (exit 2) without ``--undo-rollback``: fix the model
   and declare a new version, or say that going back is meant.

A deploy then records what serves (``record_serving``): one serving-history record per
endpoint whose live alias serves another Lambda version than its newest record says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from framework.errors import ConfigError, Problem

if TYPE_CHECKING:
    from framework.plan.planner import Action, Plan
    from framework.plan.state import State
    from framework.workflow import Session

UNDO_HINT = "--undo-rollback"


@dataclass(frozen=True)
class LiveAlias:
    """What an endpoint's live alias serves now, and what the state says it serves."""

    endpoint: str
    function: str
    version: str  # the alias' primary version, live
    model: str  # "diagnosis 1.0.0": what that version serves ("" when unknown)
    recorded: str  # the version the state records
    recorded_model: str
    weights: dict[str, float] = field(default_factory=dict)  # other versions' shares
    weight_models: dict[str, str] = field(default_factory=dict)
    rollback: dict[str, Any] | None = None  # the serving record of a rollback that moved it

    @property
    def drifted(self) -> bool:
        return self.version != self.recorded

    def serving_text(self) -> str:
        text = f"version {self.version}" + (f" ({self.model})" if self.model else "")
        for version, share in sorted(self.weights.items()):
            model = self.weight_models.get(version, "")
            text += f" + {share:.0%} on version {version}" + (f" ({model})" if model else "")
        return text

    def recorded_text(self) -> str:
        return self.recorded + (f" ({self.recorded_model})" if self.recorded_model else "")

    def rolled_back_by(self) -> str:
        rec = self.rollback or {}
        why = f" ({rec['reason']})" if rec.get("reason") else ""
        return f"{rec.get('changed_by', 'a monitor')} at {rec.get('changed_at', '?')}{why}"

    def note(self) -> str:
        """What status says beside an alias the state does not describe ("" otherwise)."""
        if not self.drifted:
            return ""
        if self.rollback is not None:
            return (f"rolled back by {self.rolled_back_by()}; state says "
                    f"{self.recorded_text()}: a deploy keeps the rollback ({UNDO_HINT} "
                    "moves it back)")
        return f"moved outside mlops; state says {self.recorded_text()}"


def _model_text(env: Mapping[str, Any]) -> str:
    if not env.get("MLOPS_MODEL_VERSION"):
        return ""
    return f"{env.get('MLOPS_MODEL_NAME', '?')} {env['MLOPS_MODEL_VERSION']}"


def version_model(lam: Any, function: str, version: str,
                  cache: dict[tuple[str, str], str] | None = None) -> str:
    """'diagnosis 1.0.0': the model a published version serves ("" when it does not say)."""
    key = (function, version)
    if cache is not None and key in cache:
        return cache[key]
    cfg = lam.get_function_configuration(FunctionName=function, Qualifier=version)
    text = _model_text((cfg.get("Environment") or {}).get("Variables") or {})
    if cache is not None:
        cache[key] = text
    return text


def live_aliases(session: Session, state: State) -> dict[str, LiveAlias]:
    """Each deployed endpoint's live alias as it is now, by endpoint name."""
    from framework.monitoring import serving
    from framework.monitoring.store import S3Store

    lam = session.target.conn.client("lambda")
    store = S3Store(session.target.conn.client("s3"), session.bucket)
    models: dict[tuple[str, str], str] = {}
    out: dict[str, LiveAlias] = {}
    for name in session.ws.loaded.config.endpoints:
        alias, fn = state.resources.get(f"alias.{name}"), state.resources.get(f"function.{name}")
        if alias is None or fn is None:
            continue
        function = str(alias.props.get("function_name") or fn.props["function_name"])
        got = lam.get_alias(FunctionName=function, Name=str(alias.props.get("alias") or "live"))
        version = str(got["FunctionVersion"])
        weights = {str(k): float(v) for k, v in (
            (got.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items()}
        recorded = str(alias.outputs.get("version", ""))
        model = version_model(lam, function, version, models)
        recorded_model = (version_model(lam, function, recorded, models)
                          if recorded and recorded != version else model)
        rollback = None
        if recorded and recorded != version and model:
            last = serving.records(store, model.rpartition(" ")[0], name)
            newest = last[-1] if last else None
            if newest is not None and newest.get("action") == serving.ROLLBACK \
                    and str(newest.get("lambda_version")) == version \
                    and str(newest.get("previous_lambda_version")) == recorded:
                rollback = newest
        out[name] = LiveAlias(
            endpoint=name, function=function, version=version, model=model,
            recorded=recorded, recorded_model=recorded_model, weights=weights,
            weight_models={v: version_model(lam, function, v, models) for v in weights},
            rollback=rollback)
    return out


def _new_model(plan: Plan, unit: str) -> str | None:
    """The model the plan's new Lambda version of ``unit`` serves, if it publishes one."""
    from framework.plan.planner import Op

    acts = {a.id: a for a in plan.actions}
    version = acts.get(f"version.{unit}")
    if version is None or version.op not in (Op.create, Op.replace):
        return None
    fn = acts.get(f"function.{unit}")
    env = ((fn.props if fn is not None else None) or {}).get("environment") or {}
    return _model_text(env)


def reconcile(plan: Plan, live: Mapping[str, LiveAlias], *, undo_rollback: bool) -> Plan:
    """The plan with each drifted endpoint's alias handled by the rule above (pure)."""
    from framework.plan.planner import Change, Op

    actions = list(plan.actions)
    hints = list(plan.hints)
    problems: list[Problem] = []
    index = {a.id: i for i, a in enumerate(actions)}
    for name, alias in sorted(live.items()):
        rid = f"alias.{name}"
        if not alias.drifted or rid not in index:
            continue
        act: Action = actions[index[rid]]
        if act.op is Op.update and act.reason.startswith("record that"):
            continue  # a deployment moved it: the plan records what CodeDeploy did
        new_model = _new_model(plan, name)
        moving = new_model is not None
        seen = (f"live alias of {name} serves {alias.serving_text()}, state says "
                f"{alias.recorded_text()}")
        back = Change("function_version", alias.version, alias.recorded)
        also = f"{act.reason}; " if act.op is Op.update else ""  # its own changes too
        if alias.rollback is None:
            if moving:
                hints.append(f"{seen}: this deploy moves it to the new version "
                             f"({new_model})")
            else:
                actions[index[rid]] = replace(
                    act, op=Op.update, reason=f"{also}{seen}: deploy moves it back to "
                    f"{alias.recorded}", changes=(*act.changes, back))
            continue
        rolled = f"{name} was rolled back by {alias.rolled_back_by()}"
        taken_away = str(alias.rollback.get("previous") or "")
        model_name = alias.model.rpartition(" ")[0]
        if undo_rollback:
            if moving:
                hints.append(f"{rolled}; this deploy serves a new version ({new_model})")
            else:
                actions[index[rid]] = replace(
                    act, op=Op.update, changes=(*act.changes, back),
                    reason=f"{also}undo the rollback ({rolled}): move the live alias from "
                           f"version {alias.version} ({alias.model}) back to "
                           f"{alias.recorded_text()}")
            continue
        if moving and taken_away and new_model == f"{model_name} {taken_away}":
            problems.append(Problem(
                where=f"endpoints.{name}",
                what=f"deploying would serve {new_model} again, which {rolled} (it serves "
                     f"{alias.model} now)",
                hint="declare a new version of the model (a fixed one), or pass "
                     f"{UNDO_HINT} to `mlops plan` and `mlops deploy` to serve it again"))
            continue
        if moving:
            hints.append(f"{rolled}; this deploy replaces {alias.model} with {new_model}")
            continue
        # Not even an update of its own settings: applying it would move the alias back.
        actions[index[rid]] = replace(act, op=Op.noop, changes=(), reason=f"kept: {rolled}")
        hints.append(f"{seen}: {rolled}. A deploy keeps the rollback; `mlops deploy "
                     f"{UNDO_HINT}` moves it back to {alias.recorded}")
    if problems:
        raise ConfigError(problems, source="plan")
    return replace(plan, actions=tuple(actions), hints=tuple(hints))


def record_serving(session: Session, state: State) -> list[str]:
    """After a deploy: one serving-history record per endpoint whose live alias now serves
    another Lambda version than its newest record says; warnings, never an error."""
    from framework.monitoring import serving
    from framework.monitoring.store import S3Store

    warnings: list[str] = []
    if not session.store.bucket_exists():
        return warnings
    store = S3Store(session.target.conn.client("s3"), session.bucket)
    try:
        live = live_aliases(session, state)
    except Exception as exc:  # the deploy is done; the history misses this one
        return [f"serving history not recorded: live aliases unreadable ({exc})"]
    for name, alias in live.items():
        model, _, model_version = alias.model.rpartition(" ")
        if not model:
            continue
        try:
            history = serving.records(store, model, name)
            newest = history[-1] if history else None
            if newest is not None and str(newest.get("lambda_version")) == alias.version:
                continue
            serving.append(store, model=model, endpoint=name, function=alias.function,
                           action=serving.DEPLOY, model_version=model_version,
                           lambda_version=alias.version,
                           previous_model_version=(newest or {}).get("version"),
                           previous_lambda_version=(newest or {}).get("lambda_version"),
                           changed_by=session.target.actor, reason="mlops deploy")
        except Exception as exc:
            warnings.append(f"serving history of {name} not recorded: {exc}")
    return warnings
