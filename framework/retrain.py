"""Continuous training: run a model's declared training entry point, make the result the next
version in ``mlops.yaml``, and hand it to deploy (gates, then the endpoint's rollout).

The new version is a reviewable change: the artifact file the model declares is replaced and
the model's ``version:`` in ``mlops.yaml`` is bumped in place (comments and layout kept), so
``git diff`` shows exactly what retraining changed; the registry records the parent version
as lineage when deploy registers it. Monitors with ``on_drift: [retrain]`` leave requests
under ``retrain/{model}/`` in the registry; ``mlops retrain --pending`` (or a scheduled CI
job, see ``mlops ci init``) picks them up.

A request is done (``{run}.done.json`` beside it) only once a version trained for it passed
its gates (``framework.gates``); a version that fails them, or a training that fails, leaves
the request pending with the attempt recorded under ``{run}/attempts/``, and the working tree
as it was. ``--with-production WINDOW`` first appends the labelled rows the model's endpoints
captured in the window (``framework.data_export``) to the declared training data
(``training.data``), so the version learns from what production saw and the data it learnt
from is fingerprinted, reviewed and reproducible like any other.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from framework.config.semver import SemVer
from framework.errors import ConfigError, MlopsError, Problem

TIMEOUT_S = 3600


@dataclass(frozen=True)
class Snapshot:
    """What retraining a model changes in the working tree, as it was before: put back when
    the new version is not kept (its training or its gates failed)."""

    config_path: Path
    model: str
    version: str
    files: dict[Path, bytes | None]  # the artifact and the training data (None: no file)

    @classmethod
    def take(cls, config_path: Path, model: str, version: str,
             paths: Iterable[Path]) -> Snapshot:
        return cls(config_path, model, version,
                   {p: p.read_bytes() if p.is_file() else None for p in paths})

    def restore(self) -> None:
        for path, data in self.files.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        bump_declared_version(self.config_path, self.model, self.version)


@dataclass(frozen=True)
class Retrained:
    model: str
    parent: str
    version: str
    sha256: str
    out: Path
    metrics: dict[str, Any]
    command: list[str]
    before: Snapshot | None = None
    production: Any = None  # data_export.Appended: the production rows appended, if any


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


def declared_model(config_path: Path, model_name: str) -> Any:
    """The model as mlops.yaml declares it, with a training entry point (ConfigError else)."""
    from framework.config.loader import load_config

    model = load_config(config_path).config.models.get(model_name)
    if model is None:
        known = ", ".join(load_config(config_path).config.models) or "none"
        raise ConfigError([Problem(where=f"models.{model_name}", what="no such model",
                                   hint=f"declared models: {known}")], source="retrain")
    if model.training is None:
        raise ConfigError([Problem(
            where=f"models.{model_name}.training", what="no training entry point declared",
            hint="add training: {command: 'python train.py --out {out}', params: {...}}")],
            source=str(config_path))
    return model


def check_production(config_path: Path, model_name: str) -> None:
    """``--with-production`` needs training data to append to and traffic to read from."""
    from framework.config.loader import load_config
    from framework.data_export import capturing_endpoints, label_column

    model = declared_model(config_path, model_name)
    if model.training.data is None:
        raise ConfigError([Problem(
            where=f"models.{model_name}.training.data",
            what="no training data declared: --with-production appends the production rows "
                 "to it", hint=f"declare training: {{data: data/train.csv}}, a CSV of the "
                               f"features and the label column '{label_column(model)}' that "
                               "the training command reads")], source=str(config_path))
    if not capturing_endpoints(load_config(config_path).config, model_name):
        raise ConfigError([Problem(
            where=f"models.{model_name}",
            what="no endpoint serving it captures its traffic: --with-production has no rows "
                 "to read", hint="add capture: {sample_rate: 1.0} to the endpoint that serves "
                                 "it, and deploy")], source=str(config_path))


def retrain(config_path: Path, home: Path, model_name: str, *, minor: bool = False,
            overrides: dict[str, str] | None = None, floor: str | None = None,
            production: Sequence[Mapping[str, Any]] | None = None) -> Retrained:
    """Train, replace the declared artifact, bump the declared version.

    The new version follows the declared one, or ``floor`` (the newest registered version)
    when that is higher: a version is never made twice. ``production`` rows (see
    ``framework.data_export``) are appended to the declared training data first. When the
    training fails, the working tree is put back as it was."""
    from framework.artifacts import sha256_file
    from framework.config.loader import load_config
    from framework.data_export import append_training_rows, label_column

    loaded = load_config(config_path)
    model = declared_model(config_path, model_name)
    base = model.version
    if floor is not None and SemVer.parse(floor) > SemVer.parse(base):
        base = floor
    version = next_version(base, minor=minor)
    target = loaded.root / model.artifact
    data = loaded.root / model.training.data if model.training.data else None
    before = Snapshot.take(config_path, model_name, model.version,
                           [target, *([data] if data is not None else [])])
    appended = None
    try:
        if production is not None:
            if data is None:
                check_production(config_path, model_name)
            assert data is not None
            appended = append_training_rows(
                data, f"models.{model_name}.training.data",
                [f.name for f in model.features], label_column(model), production)
        out, argv = run_training(loaded.root, home, model_name, model, version, overrides or {})
        produced = out / model.training.artifact
        if not produced.is_file():
            raise MlopsError(f"the training command wrote no {model.training.artifact}",
                             hint=f"see {out / 'training.log'}")
        metrics: dict[str, Any] = {}
        if model.training.metrics and (out / model.training.metrics).is_file():
            metrics = json.loads((out / model.training.metrics).read_text())
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(produced, target)
        bump_declared_version(config_path, model_name, version)
    except BaseException:
        before.restore()
        raise
    return Retrained(model=model_name, parent=model.version, version=version,
                     sha256=sha256_file(target), out=out, metrics=metrics, command=argv,
                     before=before, production=appended)


# -- retrain requests (monitors' ``on_drift: [retrain]``) ------------------------------

DONE = ".done.json"
ATTEMPTS = "attempts"


@dataclass(frozen=True)
class Request:
    """A retrain request a monitor left: ``retrain/{model}/{run}.json``, and the attempts
    that did not produce a version passing its gates."""

    key: str
    model: str
    body: dict[str, Any]
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def last_failure(self) -> str:
        if not self.attempts:
            return ""
        last = self.attempts[-1]
        return f"{last.get('at', '?')}: {last.get('version', '?')} {last.get('failure', '?')}"


def attempts_prefix(key: str) -> str:
    return f"{key[: -len('.json')]}/{ATTEMPTS}/"


def _json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def pending(s3: Any, bucket: str, model: str | None = None) -> list[Request]:
    """Retrain requests monitors left in the registry that no version has answered yet,
    oldest first, with their failed attempts."""
    prefix = f"retrain/{model}/" if model else "retrain/"
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    done = {k[: -len(DONE)] + ".json" for k in keys if k.endswith(DONE)}
    out = []
    for key in sorted(keys):
        parts = key.split("/")
        if len(parts) != 3 or not key.endswith(".json") or key.endswith(DONE) or key in done:
            continue
        body = _json(s3, bucket, key)
        if body is None:
            body = {"model": parts[1], "note": "the request is not a JSON object"}
        tried = sorted(k for k in keys if k.startswith(attempts_prefix(key)))
        out.append(Request(key=key, model=parts[1], body=body,
                           attempts=[a for k in tried if (a := _json(s3, bucket, k)) is not None]))
    return out


def mark_done(s3: Any, bucket: str, key: str, result: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key=key[: -len(".json")] + DONE,
                  Body=json.dumps(result, sort_keys=True).encode(),
                  ContentType="application/json", IfNoneMatch="*")


def record_attempt(s3: Any, bucket: str, key: str, result: dict[str, Any]) -> str:
    """Record a failed attempt at ``key``'s request (written once, never changed)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    where = f"{attempts_prefix(key)}{stamp}-{uuid.uuid4().hex[:8]}.json"
    s3.put_object(Bucket=bucket, Key=where, Body=json.dumps(result, sort_keys=True).encode(),
                  ContentType="application/json", IfNoneMatch="*")
    return where


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- what a retraining proposes: the pull request's text ----------------------------------


@dataclass
class Proposal:
    """A version that passed its gates, as a pull request describes it."""

    model: str
    parent: str
    version: str
    sha256: str
    metrics: dict[str, Any]
    gates: list[dict[str, Any]]
    reference: str | None = None  # the artifact in the registry, once registered
    production: dict[str, Any] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)


def summary_markdown(proposals: Sequence[Proposal], *, stage: str) -> str:
    """A commit message and pull-request body: the title line, a blank line, the details."""
    title = "mlops: retrained " + ", ".join(f"{p.model} {p.parent} → {p.version}"
                                            for p in proposals)
    lines = [title, ""]
    for p in proposals:
        lines += [f"### {p.model} {p.version} (was {p.parent})", "",
                  f"- artifact sha256: `{p.sha256}`"]
        lines.append(f"- registry: `{p.reference}` (`{p.model}@{p.version}`)" if p.reference
                     else "- registry: not registered yet (`mlops deploy` registers it)")
        if p.metrics:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(p.metrics.items())
                              if isinstance(v, int | float) and not isinstance(v, bool))
            lines.append(f"- training metrics: {shown or '—'}")
        if p.production is not None:
            prod = p.production
            lines.append(f"- production data ({prod['window']['start']} .. "
                         f"{prod['window']['end']}): {prod['added']} labelled row(s) appended "
                         f"to `{prod['file']}` ({prod['present']} already there)")
        for req in p.requests:
            lines.append(f"- answers retrain request `{req.get('key')}` (monitor "
                         f"{req.get('monitor') or '?'}, run {req.get('run_id') or '?'})")
        if p.gates:
            lines += ["", "| gate | expected | measured | result |", "|---|---|---|---|"]
            for g in p.gates:
                lines.append(f"| {g.get('gate')} | {g.get('expected')} | {g.get('measured')} | "
                             f"{'pass' if g.get('passed') else 'FAIL'} |")
        lines.append("")
    lines.append(f"Deploying it to stage `{stage}` runs its gates again, then the endpoint's "
                 "rollout.")
    return "\n".join(lines) + "\n"
