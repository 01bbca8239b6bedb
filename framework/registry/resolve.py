"""Resolve endpoints' ``NAME@ALIAS`` / ``NAME@VERSION`` through the registry before compile.

The impure half of serving a registered version: read the alias, verify the version's
artifact against its recorded SHA-256 (a tampered version is refused here, so the endpoint
keeps serving what it served), and hand compile a ``ResolvedModel`` per reference.
"""

from __future__ import annotations

from framework.compile.compiler import ResolvedModel
from framework.config.models import Config
from framework.registry.refs import ModelRef
from framework.registry.store import Registry


def resolve_endpoints(config: Config, reg: Registry) -> dict[str, ResolvedModel]:
    out: dict[str, ResolvedModel] = {}
    for ep in config.endpoints.values():
        model = config.models.get(ep.model_name)
        ref = ep.model_ref
        if model is None or ref is None or ref == model.version or ep.model in out:
            continue
        version = reg.resolve(ModelRef.parse(ep.model))
        if version == model.version:
            out[ep.model] = ResolvedModel(version=version, sha256="")  # compile uses the file's
            continue
        meta = reg.verify(ep.model_name, version)
        out[ep.model] = ResolvedModel(version=version, sha256=str(meta["sha256"]))
    return out
