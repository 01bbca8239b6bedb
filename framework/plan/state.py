"""Deployed state: what apply created, with the properties it applied and the outputs it got.

``serial`` grows by one per recorded action; ``lineage`` names one state's history, so a saved
plan can tell whether the state it was made against moved.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

FORMAT = 1


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Entry:
    """One deployed resource."""

    kind: str
    props: dict[str, Any]  # desired properties as compiled (refs unresolved)
    outputs: dict[str, Any]  # what the provider reported (ids, arns, versions)
    depends_on: tuple[str, ...] = ()
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "props": self.props, "outputs": self.outputs,
                "depends_on": list(self.depends_on), "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(kind=data["kind"], props=data["props"], outputs=data.get("outputs", {}),
                   depends_on=tuple(data.get("depends_on", ())),
                   updated_at=data.get("updated_at", ""))


@dataclass(frozen=True)
class State:
    project: str
    stage: str
    lineage: str = field(default_factory=lambda: uuid.uuid4().hex)
    serial: int = 0
    resources: dict[str, Entry] = field(default_factory=dict)
    updated_at: str = ""
    destroyed_at: str | None = None

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {rid: e.outputs for rid, e in self.resources.items()}

    def record(self, rid: str, entry: Entry | None) -> State:
        """A new state with ``rid`` set to ``entry`` (or removed when None)."""
        resources = dict(self.resources)
        if entry is None:
            resources.pop(rid, None)
        else:
            resources[rid] = replace(entry, updated_at=now_iso())
        return replace(self, resources=dict(sorted(resources.items())),
                       serial=self.serial + 1, updated_at=now_iso(),
                       destroyed_at=None if entry is not None else self.destroyed_at)

    def to_json(self) -> str:
        body = {
            "format": FORMAT, "project": self.project, "stage": self.stage,
            "lineage": self.lineage, "serial": self.serial, "updated_at": self.updated_at,
            "destroyed_at": self.destroyed_at,
            "resources": {rid: e.to_dict() for rid, e in sorted(self.resources.items())},
        }
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported state format {data.get('format')!r}")
        return cls(
            project=data["project"], stage=data["stage"], lineage=data["lineage"],
            serial=int(data["serial"]), updated_at=data.get("updated_at", ""),
            destroyed_at=data.get("destroyed_at"),
            resources={rid: Entry.from_dict(e) for rid, e in data["resources"].items()},
        )
