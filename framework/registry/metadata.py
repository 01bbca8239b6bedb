"""A version's metadata.json: the deterministic part (compiled into the graph) plus provenance.

``version_metadata`` extends ``framework.artifacts.build_metadata`` (whose keys the runtime
reads) with hyperparameters, the training data fingerprint, the build report, the declared
parent and the model's description. ``CONTRACT_KEYS`` are the keys that must not differ when
an existing version is registered again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from framework.artifacts import build_metadata
from framework.config.models import Model
from framework.registry.provenance import data_fingerprint

FORMAT = "mlops.model/1"
BUILD_REPORT_SUFFIX = ".build.json"  # written by `mlops build` beside the ONNX file
CONTRACT_KEYS = ("sha256", "size", "task", "features", "signature", "classes", "metrics",
                 "params", "data")


def build_report_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + BUILD_REPORT_SUFFIX)


def version_metadata(name: str, model: Model, artifact: Path, root: Path) -> dict[str, Any]:
    """Deterministic metadata of ``name@model.version`` (no time, no author, no git)."""
    meta = build_metadata(name, model, artifact)
    meta["format"] = FORMAT
    meta["description"] = model.description
    meta["params"] = dict(sorted(model.training.params.items())) if model.training else {}
    data_path = model.training.data if model.training and model.training.data else None
    data_path = data_path or model.reference
    meta["data"] = None
    if data_path:
        meta["data"] = {**data_fingerprint((root / data_path).resolve()), "file": data_path}
    meta["training"] = ({"command": model.training.command, "artifact": model.training.artifact,
                         "metrics": model.training.metrics}
                        if model.training else None)
    meta["declared_parent"] = model.parent
    report = build_report_path(artifact)
    meta["build"] = json.loads(report.read_text()) if report.is_file() else None
    return meta


def contract_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human lines naming the contract keys whose values differ."""
    out = []
    for key in CONTRACT_KEYS:
        if key in new and old.get(key) != new.get(key):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                inner = sorted(k for k in set(old[key]) | set(new[key])
                               if old[key].get(k) != new[key].get(k))
                out.append(f"{key}: " + ", ".join(
                    f"{k} {old[key].get(k)!r} → {new[key].get(k)!r}" for k in inner[:4]))
            else:
                out.append(f"{key} differs")
    return out
