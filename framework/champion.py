"""The champion a new model version challenges: the version serving the model's endpoints.

For an endpoint that serves the model as declared (``model: NAME`` or ``NAME@VERSION``) it is
the version its live alias serves, read from the deploy state (and from Lambda when a rollout
left the alias on an older published version than the state's function properties
describe). For an endpoint declared ``NAME@ALIAS`` (``diagnosis@production``) it is the
version the registry alias points at. Endpoints that serve the model directly come first:
those are the ones the candidate replaces. With no endpoint deployed yet, the version the
stage registered (its ``model_version`` state entry) serves as champion.

The champion's ONNX comes from the registry and must have the SHA-256 its metadata.json
records (a damaged champion is refused with exit code 7, as everywhere else).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from framework.config.semver import SemVer
from framework.gates import FIRST_VERSION, Champion

if TYPE_CHECKING:
    from framework.config.models import Config
    from framework.plan.state import State
    from framework.registry.store import Registry
    from framework.workflow import Session

OFFLINE = "no champion: not looked up (offline)"


def find_champion(session: Session | None, name: str,
                  candidate: str) -> tuple[Champion | None, str]:
    """The champion of ``name`` against version ``candidate``, or None and why there is
    none (``no champion: first version`` when nothing serves the model yet)."""
    if session is None:
        return None, OFFLINE
    if not session.store.bucket_exists():
        return None, FIRST_VERSION
    from framework.workflow import registry

    reg = registry(session)
    serving = serving_versions(session.ws.loaded.config, session.store.load(), name, reg,
                               session.target.conn.client("lambda"))
    others = [(v, where) for v, where in serving if v != candidate]
    if not others:
        if serving:
            return None, f"no champion: {candidate} is the serving version itself"
        if any(v != candidate for v in reg.versions(name)):
            return None, f"no champion: nothing serves {name} in this stage yet"
        return None, FIRST_VERSION
    version, where = others[0]
    return fetch(reg, name, version, where), ""


def serving_versions(config: Config, state: State, name: str, reg: Registry, lam: Any,
                     ) -> list[tuple[str, str]]:
    """(version, where it serves) of ``name``, once each: endpoints that serve the model as
    declared, then endpoints that serve it through a registry alias, else the registered
    version of the deploy state. ``lam`` is a Lambda client (read only when a rollout left an
    alias on an older version than the state's function properties describe)."""
    from framework.registry.errors import RegistryInputError
    from framework.registry.refs import ModelRef

    direct: list[tuple[str, str]] = []
    aliased: list[tuple[str, str]] = []
    for ep_name, ep in sorted(config.endpoints.items()):
        if ep.model_name != name:
            continue
        ref = ep.model_ref
        if ref is not None and not _is_version(ref):
            try:
                version = reg.resolve(ModelRef.parse(ep.model))
            except RegistryInputError:  # the alias is not set yet: nothing serves through it
                continue
            aliased.append((version, f"alias {ref} (endpoint {ep_name})"))
            continue
        served = _endpoint_serves(state, ep_name, name, lam)
        if served is not None:
            direct.append((served, f"endpoint {ep_name}"))
    found = direct + aliased
    if not found:
        found = [(str(e.props["version"]), "deploy state") for e in state.resources.values()
                 if e.kind == "model_version" and e.props.get("name") == name]
    out: dict[str, str] = {}
    for version, where in found:
        out.setdefault(version, where)
    return list(out.items())


def _is_version(text: str) -> bool:
    try:
        SemVer.parse(text)
    except ValueError:
        return False
    return True


def _endpoint_serves(state: State, endpoint: str, name: str, lam: Any) -> str | None:
    """The version of ``name`` the endpoint's live alias serves, if it serves that model."""
    function = state.resources.get(f"function.{endpoint}")
    if function is None:
        return None
    env = function.props.get("environment") or {}
    alias, published = (state.resources.get(f"alias.{endpoint}"),
                        state.resources.get(f"version.{endpoint}"))
    serving = str(alias.outputs.get("version", "")) if alias else ""
    latest = str(published.outputs.get("version", "")) if published else ""
    if serving and latest and serving != latest:  # the function's properties are the latest's
        published_config = lam.get_function_configuration(
            FunctionName=str(function.props["function_name"]), Qualifier=serving)
        env = published_config.get("Environment", {}).get("Variables", {})
    if env.get("MLOPS_MODEL_NAME") != name or not env.get("MLOPS_MODEL_VERSION"):
        return None
    return str(env["MLOPS_MODEL_VERSION"])


def fetch(reg: Registry, name: str, version: str, where: str) -> Champion:
    """``name@version`` from the registry: metadata.json and the ONNX bytes, refused when the
    bytes are not those the metadata records."""
    from framework.registry.store import integrity_error

    metadata = reg.metadata(name, version)
    data = reg.artifact(name, version)
    actual = hashlib.sha256(data).hexdigest()
    if actual != metadata.get("sha256"):
        raise integrity_error(name, version, (
            f"model.onnx has SHA-256 {actual[:16]}…, metadata.json records "
            f"{str(metadata.get('sha256'))[:16]}…"))
    return Champion(version=version, metadata=metadata, artifact=data, serves=where)
