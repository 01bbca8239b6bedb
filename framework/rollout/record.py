"""The rollout record: one JSON object per endpoint, the source of truth for its traffic.

Stored at ``rollouts/{stage}/{endpoint}.json`` in the registry bucket and changed only by
compare-and-swap (``If-Match`` on its ETag, ``If-None-Match: *`` for the first one), so two
commands driving the same rollout cannot both move it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from framework.errors import MlopsError
from framework.monitoring.store import missing

RUNNING, COMPLETED, ROLLED_BACK, ABORTED = "running", "completed", "rolled_back", "aborted"


class RolloutConflictError(MlopsError):
    """Another command changed the rollout first."""

    exit_code = 3


@dataclass(frozen=True)
class RolloutRecord:
    stage: str
    endpoint: str
    function: str
    alias: str
    stable: str  # Lambda version answering before the rollout
    candidate: str  # Lambda version being rolled out
    stable_model: str  # model version behind ``stable`` (for people)
    candidate_model: str
    strategy: str
    steps: list[dict[str, Any]]  # [{"weight": int, "mirror": bool, "bake": bool}, ...]
    step: int = 0
    status: str = RUNNING
    started_at: float = 0.0
    step_started_at: float = 0.0
    updated_at: float = 0.0
    reason: str = ""
    baseline: dict[str, Any] = field(default_factory=dict)  # health figures at step start
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current(self) -> dict[str, Any]:
        return self.steps[min(self.step, len(self.steps) - 1)]

    @property
    def weight(self) -> int:
        return int(self.current["weight"]) if self.status == RUNNING else (
            100 if self.status == COMPLETED else 0)

    @property
    def serving(self) -> str:
        """The version that answers most of the traffic now."""
        if self.status == COMPLETED or (self.status == RUNNING and self.weight == 100):
            return self.candidate
        return self.stable

    def event(self, now: float, what: str, **details: Any) -> RolloutRecord:
        entry = {"time": now, "event": what, "step": self.step, **details}
        return replace(self, history=[*self.history, entry], updated_at=now)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RolloutRecord:
        return cls(**json.loads(text))


def record_key(stage: str, endpoint: str) -> str:
    return f"rollouts/{stage}/{endpoint}.json"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass
class RolloutStore:
    s3: Any
    bucket: str

    def get(self, stage: str, endpoint: str) -> tuple[RolloutRecord, str] | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=record_key(stage, endpoint))
        except ClientError as exc:
            if missing(exc):
                return None
            raise
        return RolloutRecord.from_json(obj["Body"].read().decode()), str(obj["ETag"])

    def put(self, record: RolloutRecord, etag: str | None) -> str:
        """Write ``record`` if the stored one still has ``etag`` (None: if there is none)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket,
                                  "Key": record_key(record.stage, record.endpoint),
                                  "Body": record.to_json().encode(),
                                  "ContentType": "application/json"}
        if etag is None:
            kwargs["IfNoneMatch"] = "*"
        else:
            kwargs["IfMatch"] = etag
        try:
            return str(self.s3.put_object(**kwargs)["ETag"])
        except ClientError as exc:
            if _code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise RolloutConflictError(
                    f"the rollout of endpoint '{record.endpoint}' was changed by another "
                    "command", hint="run `mlops rollout status` and try again") from exc
            raise
