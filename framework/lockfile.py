"""``mlops.lock``: what exactly is deployed, per stage, for review and reproduction.

Written after every successful deploy (and by ``mlops lock``) from the deploy state: each
model version with its artifact hash, the handler code hash, what each endpoint serves, each
Lambda layer with the exact wheels in it (name, version, file, SHA-256: a fresh checkout
rebuilds the same layer from them, see ``framework.layers``), the versions installed where
the deploy ran and the Python that ran it. ``mlops lock --check``
fails when the working tree would deploy something else than the lock records (CI uses it to
catch an artifact changed without a version bump, or a deploy that was not committed).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from framework.plan.state import State

FORMAT = 1
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
    models: dict[str, Any] = {}
    endpoints: dict[str, Any] = {}
    code: dict[str, Any] = {}
    layers: dict[str, Any] = {}
    for rid, entry in sorted(state.resources.items()):
        p = entry.props
        if entry.kind == "lambda_layer" and "need" in p:
            layers[rid.split(".", 1)[1]] = {
                "need": p["need"], "runtime": p["runtimes"][0],
                "architecture": p["architectures"][0], "sha256": p["sha256"],
                "packages": p.get("packages", {})}
        elif entry.kind == "model_version":
            models[f"{p['name']}@{p['version']}"] = {"sha256": p["sha256"], "size": p["size"]}
        elif rid == "code":
            code = {"sha256": p["sha256"], "key": p["key"]}
        elif entry.kind == "lambda_function" and "MLOPS_ENDPOINT" in p.get("environment", {}):
            env = p["environment"]
            name = rid.split(".", 1)[1]
            alias = state.resources.get(f"alias.{name}")
            endpoints[name] = {
                "function": p["function_name"],
                "model": f"{env.get('MLOPS_MODEL_NAME')}@{env.get('MLOPS_MODEL_VERSION')}",
                "model_sha256": env.get("MLOPS_MODEL_SHA256"),
                "serving_lambda_version": alias.outputs.get("version") if alias else None,
                "memory": p.get("memory"), "timeout": p.get("timeout"),
            }
    return {"target": target, "region": region, "account": account,
            "state": {"lineage": state.lineage, "serial": state.serial,
                      "updated_at": state.updated_at},
            "models": models, "code": code, "endpoints": endpoints, "layers": layers,
            "dependencies": dependency_versions(),
            "python": platform.python_version()}


def read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"format": FORMAT, "stages": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write(path: Path, stage: str, entry: dict[str, Any]) -> None:
    data = read(path)
    data["format"] = FORMAT
    data.setdefault("stages", {})[stage] = entry
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
