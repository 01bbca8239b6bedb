"""What the dashboard shows, as plain data: built by ``collect`` (the CLI and ``mlops deploy``),
refreshed by ``refresh`` (the monitor function), drawn by ``render``.

Stdlib only: the monitor function's zip imports it. ``SiteData`` round-trips through JSON, so
the part only the CLI can read (models, endpoints, rollouts) is kept in the registry bucket
beside the page as a snapshot the monitor function starts from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

FORMAT = "mlops.dashboard/1"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ModelView:
    name: str
    versions: list[dict[str, Any]]  # metadata.json of each version, oldest first
    aliases: dict[str, str]
    history: list[dict[str, Any]]  # alias changes, oldest first
    approvals: dict[str, list[dict[str, Any]]]  # version -> approval records
    cards: dict[str, str]  # version -> the model card's body (HTML, escaped by the registry)
    declared: str | None = None  # the version mlops.yaml declares


@dataclass
class RolloutView:
    endpoint: str
    strategy: str
    status: str
    stable: str  # Lambda versions
    candidate: str
    stable_model: str  # model versions behind them
    candidate_model: str
    steps: list[dict[str, Any]]
    step: int
    weight: int  # % of the traffic on the candidate
    started_at: float
    updated_at: float
    reason: str
    history: list[dict[str, Any]]


@dataclass
class EndpointView:
    name: str
    route: str
    url: str | None
    model: str
    model_version: str | None  # model version behind the serving Lambda version
    lambda_version: str | None
    rollout: RolloutView | None


@dataclass
class RunView:
    run_id: str
    time: str
    status: str
    figures: dict[str, Any]
    window: dict[str, Any]
    report_key: str
    report: dict[str, Any] | None = None  # report.json, read for the newest runs only


@dataclass
class MonitorView:
    name: str
    endpoint: str
    schedule: str
    runs: list[RunView] = field(default_factory=list)  # oldest first


@dataclass
class SiteData:
    project: str
    stage: str
    target: str
    region: str
    account: str
    bucket: str
    generated_at: str
    built_by: str = "mlops dashboard"
    read_at: str = ""  # when models, endpoints and rollouts were read (the snapshot's time)
    models: list[ModelView] = field(default_factory=list)
    endpoints: list[EndpointView] = field(default_factory=list)
    monitors: list[MonitorView] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    warnings: list[str] = field(default_factory=list)

    def snapshot(self) -> bytes:
        """JSON of everything but the monitors' runs (the monitor function reads those)."""
        body = asdict(self)
        body["format"] = FORMAT
        for mon in body["monitors"]:
            mon["runs"] = []
        return (json.dumps(body, sort_keys=True, default=str) + "\n").encode()

    @classmethod
    def from_snapshot(cls, raw: bytes) -> SiteData:
        """The data a snapshot holds; ValueError when it is not one."""
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("not a dashboard snapshot")
        try:
            data: SiteData = _build(cls, body)
            data.models = [_build(ModelView, m) for m in body["models"]]
            data.endpoints = [_endpoint(e) for e in body["endpoints"]]
            data.monitors = [_build(MonitorView, {**m, "runs": []}) for m in body["monitors"]]
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a dashboard snapshot: {e!r}") from None
        return data


def _build(cls: Any, body: dict[str, Any]) -> Any:
    """An instance of the dataclass ``cls`` from the keys it declares (others ignored)."""
    return cls(**{f.name: body[f.name] for f in fields(cls) if f.name in body})


def _endpoint(body: dict[str, Any]) -> EndpointView:
    view: EndpointView = _build(EndpointView, body)
    if body.get("rollout") is not None:
        view.rollout = _build(RolloutView, body["rollout"])
    return view
