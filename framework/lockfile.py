"""``mlops.lock``: what exactly is deployed, per project and stage, for review and reproduction.

Written after every successful deploy (and by ``mlops lock``) from the deploy state: each
model version with its artifact hash, the handler code hash, what each endpoint serves, each
Lambda layer with the exact wheels in it (name, version, file, SHA-256: a fresh checkout
rebuilds the same layer from them, see ``framework.layers``), the versions installed where
the deploy ran and the Python that ran it. ``mlops lock --check``
fails when the working tree would deploy something else than the lock records (CI uses it to
catch an artifact changed without a version bump, or a deploy that was not committed).

Entries are keyed by project, then stage (``{"format": 2, "projects": {P: {S: entry}}}``): two
projects deployed from one folder never read each other's entry. A format-1 file (``"stages":
{S: entry}``) is read entry by entry as the project whose function names it records, and is
rewritten as format 2 by the next write.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from framework import resources
from framework.plan.state import State

FORMAT = 2
RUNTIME_PACKAGES = ("onnxruntime", "numpy", "boto3", "scipy", "mlops")


def dependency_versions() -> dict[str, str]:
    out = {}
    for name in RUNTIME_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def stage_entry(state: State, *, target: str, region: str, account: str) -> dict[str, Any]:
    """The lock entry of a stage's state: what each deployed resource's kind records
    (``Kind.lock``: model versions, the handler code, endpoints, layers)."""
    sections: dict[str, dict[str, Any]] = {"models": {}, "code": {}, "endpoints": {},
                                           "layers": {}}
    for rid, entry in sorted(state.resources.items()):
        kind = resources.kind(entry.kind)
        item = kind.lock(rid, kind.props.from_state(entry.props), state) if kind.lock else None
        if item is None:
            continue
        section, key, value = item
        if key is None:
            sections[section] = value
        else:
            sections[section][key] = value
    return {"target": target, "region": region, "account": account,
            "state": {"lineage": state.lineage, "serial": state.serial,
                      "updated_at": state.updated_at},
            **sections,
            "dependencies": dependency_versions(),
            "python": platform.python_version()}


def locked_versions(entry: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(model, version) → SHA-256 of every version a stage entry records (registered by the
    stage, or served by one of its endpoints)."""
    out: dict[tuple[str, str], str] = {}
    for ref, model in (entry.get("models") or {}).items():
        name, _, version = ref.partition("@")
        out[(name, version)] = str(model["sha256"])
    for endpoint in (entry.get("endpoints") or {}).values():
        name, _, version = str(endpoint.get("model") or "").partition("@")
        if name and version and endpoint.get("model_sha256"):
            out.setdefault((name, version), str(endpoint["model_sha256"]))
    return out


def read(path: Path) -> dict[str, Any]:
    """The lock file as format 2 (format-1 entries are attributed to their projects)."""
    if not path.exists():
        return {"format": FORMAT, "projects": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") == FORMAT:
        data.setdefault("projects", {})
        return data
    projects: dict[str, dict[str, Any]] = {}
    for stage, entry in (data.get("stages") or {}).items():
        project = _project_of(entry, stage)
        if project is not None:
            projects.setdefault(project, {})[stage] = entry
    return {"format": FORMAT, "projects": projects}


def _project_of(entry: Mapping[str, Any], stage: str) -> str | None:
    """The project a format-1 entry belongs to: the one whose derived function name it
    records (None when that cannot be told: no endpoint, or a shortened name)."""
    from framework.compile import names

    for endpoint, ep in (entry.get("endpoints") or {}).items():
        function, suffix = str(ep.get("function") or ""), f"-{stage}-{endpoint}"
        project = function.removesuffix(suffix)
        if project != function and names.function_name(project, stage, endpoint) == function:
            return project
    return None


def entry(path: Path, project: str, stage: str) -> dict[str, Any] | None:
    """The entry of ``project``'s ``stage``, if the lock file has one."""
    found: dict[str, Any] | None = read(path)["projects"].get(project, {}).get(stage)
    return found


def write(path: Path, project: str, stage: str, stage_entry: dict[str, Any]) -> None:
    data = read(path)
    data["format"] = FORMAT
    data["projects"].setdefault(project, {})[stage] = stage_entry
    tmp = path.with_suffix(".lock.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def differences(locked: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What would deploy differently from the lock (models, code, endpoints, layers)."""
    out = []
    for key in ("models", "code", "endpoints", "layers"):
        if key == "layers" and key not in locked:
            continue  # written before layers were recorded
        before, after = locked.get(key, {}), current.get(key, {})
        if key == "code":
            if before.get("sha256") != after.get("sha256"):
                out.append(f"handler code {str(before.get('sha256'))[:12]}… → "
                           f"{str(after.get('sha256'))[:12]}…")
            continue
        for name in sorted(set(before) | set(after)):
            b, a = before.get(name), after.get(name)
            if b != a:
                if b is None:
                    out.append(f"{key[:-1]} {name} is new")
                elif a is None:
                    out.append(f"{key[:-1]} {name} is gone")
                else:
                    keys = sorted(k for k in set(a) | set(b)
                                  if a.get(k) != b.get(k) and k != "serving_lambda_version")
                    if keys:
                        out.append(f"{key[:-1]} {name}: {', '.join(keys)} changed")
    return out
