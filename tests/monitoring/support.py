"""Fixtures for monitoring tests: a reference profile and capture files in a MemoryStore."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from framework.monitoring.profile import build_reference
from framework.monitoring.spec import MonitorSpec, Window
from framework.monitoring.store import MemoryStore

START = datetime(2024, 5, 1, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))
FEATURES = [{"name": f"x{i}", "type": "float"} for i in range(5)] + [
    {"name": "colour", "type": "category", "values": ["red", "green", "blue"]}]


def spec(**over: Any) -> MonitorSpec:
    base: dict[str, Any] = {
        "name": "m-drift", "project": "proj", "stage": "dev", "endpoint": "score",
        "model": "clf", "version": "1.0.0", "bucket": "b", "endpoint_function": "proj-dev-score",
        "notify": {"email": ["ops@example.com"]},  # notify.when: the default
        "performance": {"metric": "accuracy", "min": 0.8, "min_labels": 20},
    }
    base.update(over)
    return MonitorSpec.from_dict(base)


def reference_data(rng: np.random.Generator, n: int = 2000) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {f"x{i}": rng.normal(0, 1, n).tolist() for i in range(5)}
    cols["colour"] = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]).tolist()
    return cols


def store_with_reference(seed: int = 0) -> MemoryStore:
    store = MemoryStore()
    ref = build_reference(reference_data(np.random.default_rng(seed)), FEATURES)
    body = ref.to_dict()
    body["feature_types"] = {f["name"]: f["type"] for f in FEATURES}
    store.put("models/clf/1.0.0/reference.json", json.dumps(body).encode(), "application/json")
    return store


def records(rng: np.random.Generator, n: int, shift: dict[str, float] | None = None,
            start: datetime = START, version: str = "1") -> list[dict[str, Any]]:
    shift = shift or {}
    out = []
    for i in range(n):
        inputs: dict[str, Any] = {f"x{j}": float(rng.normal(shift.get(f"x{j}", 0.0), 1))
                                  for j in range(5)}
        inputs["colour"] = str(rng.choice(["red", "green", "blue"], p=[0.5, 0.3, 0.2]))
        p = float(1 / (1 + np.exp(-inputs["x0"])))
        out.append({"request_id": f"r{i}", "row": 0,
                    "time": (start + timedelta(seconds=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "endpoint": "score", "model": "clf", "version": version,
                    "lambda_version": version, "latency_ms": 5.0 + rng.random(),
                    "inputs": inputs, "prediction": "yes" if p > 0.5 else "no",
                    "probabilities": [1 - p, p], "classes": ["no", "yes"]})
    return out


def put_jsonl(store: MemoryStore, key: str, rows: list[dict[str, Any]]) -> None:
    data = "\n".join(json.dumps(r) for r in rows).encode()
    store.put(key, gzip.compress(data), "application/gzip")


def put_capture(store: MemoryStore, rows: list[dict[str, Any]], name: str = "a") -> None:
    day = rows[0]["time"][:10] if rows else START.date().isoformat()
    put_jsonl(store, f"capture/score/dt={day}/{name}.jsonl.gz", rows)


def put_feedback(store: MemoryStore, rows: list[dict[str, Any]], flip: float = 0.0,
                 seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    fb = [{"request_id": r["request_id"], "row": r["row"], "time": r["time"],
           "label": (("no" if r["prediction"] == "yes" else "yes") if rng.random() < flip
                     else r["prediction"])} for r in rows]
    put_jsonl(store, f"feedback/score/dt={rows[0]['time'][:10]}/fb.jsonl.gz", fb)
