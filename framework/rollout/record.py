"""A rollout as people read it: one endpoint's latest deployment, read from CodeDeploy.

CodeDeploy keeps the record (``GetDeployment``: status, error, rollback; ``GetDeploymentTarget``:
the lifecycle events, the new version's weight); the deploy state names the endpoint's latest
deployment (``deployment.<endpoint>``, an ``alias_deployment``). Nothing here is stored:
``framework.rollout.deployments`` builds a ``RolloutRecord`` each time it is asked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RUNNING, COMPLETED, ROLLED_BACK, STOPPED = "running", "completed", "rolled_back", "stopped"
ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")


def status_of(info: dict[str, Any]) -> str:
    """running / completed / rolled_back / stopped, from a CodeDeploy DeploymentInfo."""
    status = str(info.get("status", ""))
    if status in ACTIVE:
        return RUNNING
    if status == "Succeeded":
        return COMPLETED
    if (info.get("rollbackInfo") or {}).get("rollbackDeploymentId"):
        return ROLLED_BACK
    return STOPPED


@dataclass(frozen=True)
class RolloutRecord:
    stage: str
    endpoint: str
    function: str
    alias: str
    stable: str  # Lambda version serving before the deployment (its CurrentVersion)
    candidate: str  # Lambda version deployed (its TargetVersion)
    stable_model: str  # model version behind ``stable`` (for people), e.g. 1.0.0
    candidate_model: str
    strategy: str  # as declared
    steps: list[dict[str, Any]]  # [{"weight": 10}, {"weight": 100}]
    deployment_id: str = ""
    deployment_status: str = ""  # CodeDeploy's: Created, InProgress, Succeeded, Stopped, ...
    description: str = ""
    step: int = 0
    status: str = RUNNING
    weight: int = 0  # % of the traffic on the candidate now
    started_at: float = 0.0
    updated_at: float = 0.0
    reason: str = ""
    rollback_deployment_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)  # lifecycle events
    pretraffic: dict[str, Any] = field(default_factory=dict)  # the hook's verdict, if any
    judged: dict[str, Any] = field(default_factory=dict)  # requests the alarms saw

    @property
    def serving(self) -> str:
        """The version that answers most of the traffic now."""
        return self.candidate if self.weight >= 50 or self.status == COMPLETED else self.stable

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "serving": self.serving}
