"""The resource graph: what compile produces and plan diffs against deployed state.

A resource is a kind (one of ``KINDS``), a logical id, JSON-able properties (those of its
kind's typed properties, ``framework.resources``) and explicit dependencies. A property may
refer to an output of another resource with ``ref(...)``; refs are resolved at apply time,
when the referenced resource exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from framework import resources

# Resource kinds, in the order a fresh deploy creates them: the registration table's
# (framework/resources). Each has one module; an unknown kind is an error everywhere.
KINDS: tuple[str, ...] = resources.KINDS

REF_KEY = "$ref"


def ref(logical_id: str, attr: str, fmt: str = "{}") -> dict[str, str]:
    """A property value taken from another resource's output at apply time."""
    out = {REF_KEY: logical_id, "attr": attr}
    if fmt != "{}":
        out["format"] = fmt
    return out


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and REF_KEY in value


def iter_refs(value: Any) -> Iterator[dict[str, str]]:
    """Every ref inside a property value, depth first."""
    if is_ref(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_refs(item)


class UnresolvedRef(LookupError):
    """A ref whose target has no output yet."""


def resolve(value: Any, outputs: Mapping[str, Mapping[str, Any]]) -> Any:
    """Replace refs with the outputs they name; raise UnresolvedRef if one is missing."""
    if is_ref(value):
        target = outputs.get(value[REF_KEY], {})
        if value["attr"] not in target:
            raise UnresolvedRef(f"{value[REF_KEY]}.{value['attr']}")
        return value.get("format", "{}").format(target[value["attr"]])
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True)
class Resource:
    kind: str
    id: str  # logical id, e.g. "function.predict"
    props: dict[str, Any]
    depends_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # An unknown kind, or a property its kind does not have (or lacks), is an error.
        resources.kind(self.kind).parse(self.props)

    @classmethod
    def of(cls, rid: str, props: resources.Props, depends_on: Iterable[str] = ()) -> Resource:
        """The resource ``rid`` of the kind of ``props`` (typed properties)."""
        return cls(props.kind, rid, props.to_props(), tuple(depends_on))

    def all_dependencies(self) -> tuple[str, ...]:
        deps = set(self.depends_on)
        deps.update(r[REF_KEY] for r in iter_refs(self.props))
        return tuple(sorted(deps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "props": self.props,
            "depends_on": list(self.all_dependencies()),
        }


@dataclass(frozen=True)
class ResourceGraph:
    resources: dict[str, Resource] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> ResourceGraph:
        table: dict[str, Resource] = {}
        for res in resources:
            if res.id in table:
                raise ValueError(f"duplicate logical id '{res.id}'")
            table[res.id] = res
        for res in table.values():
            for dep in res.all_dependencies():
                if dep not in table:
                    raise ValueError(f"{res.id} depends on unknown resource '{dep}'")
        return cls(dict(sorted(table.items())))

    def order(self) -> list[str]:
        """Logical ids in dependency order (stable: kind order, then id)."""
        return topo_order({rid: r.all_dependencies() for rid, r in self.resources.items()},
                          {rid: r.kind for rid, r in self.resources.items()})

    def to_dict(self) -> dict[str, Any]:
        return {rid: self.resources[rid].to_dict() for rid in self.order()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def topo_order(deps: Mapping[str, Iterable[str]], kinds: Mapping[str, str]) -> list[str]:
    """Kahn's algorithm; ties broken by kind order then id so output is deterministic."""
    rank = {k: i for i, k in enumerate(KINDS)}
    pending = {rid: {d for d in ds if d in deps} for rid, ds in deps.items()}
    done: list[str] = []
    while pending:
        ready = sorted(
            (rid for rid, ds in pending.items() if not ds),
            key=lambda rid: (rank.get(kinds.get(rid, ""), len(KINDS)), rid),
        )
        if not ready:
            raise ValueError(f"dependency cycle among: {', '.join(sorted(pending))}")
        first = ready[0]
        done.append(first)
        del pending[first]
        for ds in pending.values():
            ds.discard(first)
    return done
