"""Are the artifacts that serve (or are about to) the bytes the registry recorded?

A version's ``metadata.json`` records the SHA-256 of its ``model.onnx``; the bucket is
versioned, so bytes written over it outside mlops can be found and undone. ``mlops deploy``
(before it plans), ``mlops doctor`` and ``mlops lock --check`` read each artifact the stage
serves or would serve and compare: a damaged one is named (model, version, what differs) and
refused with exit code 7 and the way back (``mlops models restore``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from framework.registry.errors import RegistryInputError, RegistryIntegrityError
from framework.registry.store import Registry, integrity_error

Version = tuple[str, str]  # (model, version)


@dataclass(frozen=True)
class Damaged:
    name: str
    version: str
    what: str  # what differs


def served_versions(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Version]:
    """The (model, version) pairs that resources — ``(kind, props)`` of a deploy state or of a
    compiled graph — register or serve, in order, once each."""
    found: dict[Version, None] = {}
    for kind, props in resources:
        if kind == "model_version":
            found[(str(props["name"]), str(props["version"]))] = None
        elif kind == "lambda_function":
            env = props.get("environment") or {}
            if "MLOPS_MODEL_NAME" in env and "MLOPS_MODEL_VERSION" in env:
                found[(str(env["MLOPS_MODEL_NAME"]), str(env["MLOPS_MODEL_VERSION"]))] = None
    return list(found)


def damaged(reg: Registry, versions: Iterable[Version],
            recorded: Mapping[Version, str] | None = None) -> list[Damaged]:
    """The committed versions among ``versions`` whose stored artifact is not what their
    metadata records (versions not registered yet are skipped: nothing to compare). With
    ``recorded`` (e.g. from mlops.lock), the registry's record must also be that hash."""
    out = []
    for name, version in versions:
        try:
            meta = reg.metadata(name, version)
        except RegistryInputError:
            continue
        want = (recorded or {}).get((name, version))
        if want is not None and meta.get("sha256") != want:
            out.append(Damaged(name, version, f"metadata.json records SHA-256 "
                                              f"{str(meta.get('sha256'))[:16]}…, the lock "
                                              f"{want[:16]}…"))
            continue
        what = reg.damage(name, version, meta)
        if what is not None:
            out.append(Damaged(name, version, what))
    return out


def refusal(found: list[Damaged]) -> RegistryIntegrityError:
    """One error naming every damaged version and how to restore each."""
    first = integrity_error(found[0].name, found[0].version, found[0].what)
    if len(found) == 1:
        return first
    listed = "; ".join(f"{d.name}@{d.version}: {d.what}" for d in found)
    restore = " and ".join(f"`mlops models restore {d.name}@{d.version}`" for d in found)
    return RegistryIntegrityError(
        f"INTEGRITY FAILURE: {len(found)} versions are damaged: {listed}",
        where=", ".join(f"{d.name}@{d.version}" for d in found),
        hint=f"the artifacts were changed outside mlops; {restore} put the recorded bytes "
             "back (from earlier versions of the objects in the versioned bucket, or --from "
             "the original file), or ship the models as new versions")
