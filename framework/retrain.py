"""Continuous training: run a model's declared training entry point, make the result the next
version in ``mlops.yaml``, and hand it to deploy (gates, then the endpoint's rollout).

The new version is a reviewable change: the artifact file the model declares is replaced and
the model's ``version:`` in ``mlops.yaml`` is bumped in place (comments and layout kept), so
``git diff`` shows exactly what retraining changed; the registry records the parent version
as lineage when deploy registers it. Monitors with ``on_drift: [retrain]`` leave requests
under ``retrain/{model}/`` in the registry; ``mlops retrain --pending`` (or a scheduled CI
job, see ``mlops ci init``) picks them up.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from framework.config.semver import SemVer
from framework.errors import ConfigError, MlopsError, Problem

TIMEOUT_S = 3600


@dataclass(frozen=True)
class Retrained:
    model: str
    parent: str
    version: str
    sha256: str
    out: Path
    metrics: dict[str, Any]
    command: list[str]


def next_version(current: str, *, minor: bool = False) -> str:
    v = SemVer.parse(current)
    if minor:
        return f"{v.major}.{v.minor + 1}.0"
    if v.prerelease:  # 1.3.0-rc.1 → 1.3.0
        return f"{v.major}.{v.minor}.{v.patch}"
    return f"{v.major}.{v.minor}.{v.patch + 1}"


def _version_span(text: str, model: str) -> tuple[int, int]:
    """Character offsets of models.<model>.version's value in the YAML text."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise ValueError("mlops.yaml is not a mapping")

    def child(node: yaml.Node, key: str) -> yaml.Node:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    found: yaml.Node = v
                    return found
        raise KeyError(key)

    node = child(child(child(root, "models"), model), "version")
    return node.start_mark.index, node.end_mark.index


def bump_declared_version(path: Path, model: str, version: str) -> None:
    """Rewrite only the characters of the model's version value."""
    text = path.read_text()
    start, end = _version_span(text, model)
    path.write_text(text[:start] + version + text[end:])


def run_training(root: Path, home: Path, model_name: str, model: Any, version: str,
                 overrides: dict[str, str]) -> tuple[Path, list[str]]:
    from framework.registry.reproduce import command_line

    training = model.training
    out = home / "retrain" / f"{model_name}-{version}-{int(time.time())}"
    out.mkdir(parents=True, exist_ok=True)
    params = {**training.params, **overrides}
    argv = command_line(training.command, out, params)
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False)
    (out / "training.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise MlopsError(f"training of {model_name} exited {proc.returncode}: "
                         + " | ".join(tail), hint=f"full log: {out / 'training.log'}")
    return out, argv


def retrain(config_path: Path, home: Path, model_name: str, *, minor: bool = False,
            overrides: dict[str, str] | None = None) -> Retrained:
    """Train, replace the declared artifact, bump the declared version."""
    from framework.artifacts import sha256_file
    from framework.config.loader import load_config

    loaded = load_config(config_path)
    model = loaded.config.models.get(model_name)
    if model is None:
        known = ", ".join(loaded.config.models) or "none"
        raise ConfigError([Problem(where=f"models.{model_name}", what="no such model",
                                   hint=f"declared models: {known}")], source="retrain")
    if model.training is None:
        raise ConfigError([Problem(
            where=f"models.{model_name}.training", what="no training entry point declared",
            hint="add training: {command: 'python train.py --out {out}', params: {...}}")],
            source=str(config_path))
    version = next_version(model.version, minor=minor)
    out, argv = run_training(loaded.root, home, model_name, model, version, overrides or {})
    produced = out / model.training.artifact
    if not produced.is_file():
        raise MlopsError(f"the training command wrote no {model.training.artifact}",
                         hint=f"see {out / 'training.log'}")
    metrics: dict[str, Any] = {}
    if model.training.metrics and (out / model.training.metrics).is_file():
        metrics = json.loads((out / model.training.metrics).read_text())
    target = loaded.root / model.artifact
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(produced, target)
    bump_declared_version(config_path, model_name, version)
    return Retrained(model=model_name, parent=model.version, version=version,
                     sha256=sha256_file(target), out=out, metrics=metrics, command=argv)


def pending(s3: Any, bucket: str, model: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Retrain requests monitors left in the registry and nobody handled yet."""
    prefix = f"retrain/{model}/" if model else "retrain/"
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    done = {k[: -len(".done.json")] + ".json" for k in keys if k.endswith(".done.json")}
    out = []
    for key in sorted(k for k in keys if k.endswith(".json") and not k.endswith(".done.json")):
        if key not in done:
            out.append((key, json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())))
    return out


def mark_done(s3: Any, bucket: str, key: str, result: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key=key[: -len(".json")] + ".done.json",
                  Body=json.dumps(result, sort_keys=True).encode(),
                  ContentType="application/json", IfNoneMatch="*")
