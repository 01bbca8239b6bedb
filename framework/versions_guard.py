"""Refuse to plan a declared model version below the one the stage runs.

A new version reaches a stage without ``mlops.yaml`` on the main branch declaring it: ``mlops
retrain --deploy`` (or a CI job running it) deploys from a working copy, ``mlops models
promote --deploy`` from another. The next deploy from a checkout that still declares the older
version would then quietly ship that older version back. So ``mlops plan`` and ``mlops
deploy`` compare each model's declared version with what the deploy state records for the
stage — the version it registered for the model, and the version the endpoints serving the
declared model run — and refuse a lower one (exit 2), unless ``--allow-downgrade`` says it is
meant. Endpoints that serve ``NAME@VERSION`` or ``NAME@ALIAS`` are resolved through the
registry on purpose (a promotion or a rollback of the alias) and are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from framework.config.models import Config
from framework.config.semver import SemVer
from framework.errors import ConfigError, Problem
from framework.plan.state import State


@dataclass(frozen=True)
class Downgrade:
    model: str
    declared: str
    deployed: str
    where: str  # what in the deploy state records the deployed version

    def describe(self) -> str:
        return (f"declares {self.model} {self.declared}, below {self.deployed}, deployed "
                f"({self.where})")


def _semver(text: object) -> SemVer | None:
    try:
        return SemVer.parse(str(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class Recorded:
    version: str
    where: str  # for people: what records it
    endpoint: str | None = None  # the endpoint whose function serves it


def deployed_versions(state: State) -> dict[str, list[Recorded]]:
    """Per model, the versions the deploy state records: registered by the deploy
    (``model.NAME@VERSION``) and served by an endpoint's function."""
    found: dict[str, list[Recorded]] = {}
    for rid, entry in state.resources.items():
        props = entry.props or {}
        if entry.kind == "model_version" and props.get("name") and props.get("version"):
            found.setdefault(str(props["name"]), []).append(
                Recorded(str(props["version"]), f"{rid} in the deploy state"))
        env = props.get("environment") if entry.kind == "lambda_function" else None
        if isinstance(env, dict) and env.get("MLOPS_MODEL_NAME") and \
                env.get("MLOPS_MODEL_VERSION") and env.get("MLOPS_ENDPOINT"):
            endpoint = str(env["MLOPS_ENDPOINT"])
            found.setdefault(str(env["MLOPS_MODEL_NAME"]), []).append(
                Recorded(str(env["MLOPS_MODEL_VERSION"]), f"served by endpoint {endpoint}",
                         endpoint))
    return found


def downgrades(config: Config, state: State) -> list[Downgrade]:
    """Declared versions below the highest version the state records for their model."""
    recorded = deployed_versions(state)
    pinned = {name for name, ep in config.endpoints.items()
              if ep.model_ref is not None}  # served through the registry, on purpose
    out = []
    for name, model in config.models.items():
        declared = SemVer.parse(model.version)
        candidates = [(v, r.where) for r in recorded.get(name, [])
                      if (v := _semver(r.version)) is not None and r.endpoint not in pinned]
        if not candidates:
            continue
        highest, where = max(candidates, key=lambda c: c[0])
        if declared < highest:
            out.append(Downgrade(name, model.version, str(highest), where))
    return out


def check(config: Config, state: State, *, source: str, allow: bool) -> list[str]:
    """Raise ConfigError (exit 2) for declared versions below the deployed ones; with
    ``allow``, return them as warnings instead."""
    found = downgrades(config, state)
    if not found:
        return []
    if allow:
        return [f"downgrade allowed: mlops.yaml {d.describe()}" for d in found]
    raise ConfigError([Problem(
        where=f"models.{d.model}.version",
        what=f"{d.declared} is below {d.deployed}, deployed to {state.project}/{state.stage} "
             f"({d.where}): deploying it would ship the older version back",
        hint=f"declare {d.model} {d.deployed} or later (a retraining's pull request may be "
             f"waiting to be merged), or pass --allow-downgrade if going back is meant")
        for d in found], source=source)
