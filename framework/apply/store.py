"""Deployed state in the registry bucket, a local cache beside mlops.yaml, and the deploy lock.

The lock is an S3 object written with ``If-None-Match: *``: exactly one writer wins. A lock
left by a process of this host that no longer runs is stale and is taken over with a warning;
any other holder is named in the refusal.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from framework.compile import names
from framework.errors import StateLockedError
from framework.monitoring.store import missing
from framework.plan.state import State, now_iso
from framework.procs import pid_alive


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass
class StateStore:
    s3: Any  # boto3 S3 client
    bucket: str
    project: str
    stage: str
    cache_dir: Path
    warnings: list[str] = field(default_factory=list)
    _lock_held: bool = False

    @property
    def cache_file(self) -> Path:
        return self.cache_dir / f"{self.stage}.json"

    # -- state ------------------------------------------------------------------------
    def bucket_exists(self) -> bool:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchBucket", "NotFound", "403"}:
                return False
            raise
        return True

    def _remote(self) -> State | None:
        if not self.bucket_exists():
            return None
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=names.state_key(self.stage))
        except ClientError as exc:
            if missing(exc):
                return None
            raise
        return State.from_json(body["Body"].read().decode())

    def _local(self) -> State | None:
        if not self.cache_file.exists():
            return None
        return State.from_json(self.cache_file.read_text())

    def load(self) -> State:
        """The newest known state: remote, or the local cache when it is ahead of it (an
        apply whose remote write failed), or an empty state with no lineage yet."""
        remote, local = self._remote(), self._local()
        if remote and local and remote.lineage == local.lineage:
            return local if local.serial > remote.serial else remote
        if remote:
            if local and local.lineage != remote.lineage and local.resources:
                self.warnings.append("local state cache belongs to another history; "
                                     "using the state stored in the registry")
            return remote
        if local:
            return local  # e.g. after destroy: the registry is gone, the cache says so
        return State(project=self.project, stage=self.stage, lineage="")

    def save(self, state: State, *, remote: bool = True) -> State:
        if not state.lineage:
            import uuid

            state = replace(state, lineage=uuid.uuid4().hex)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.cache_file)
        if remote:
            self.s3.put_object(Bucket=self.bucket, Key=names.state_key(self.stage),
                               Body=state.to_json().encode(), ContentType="application/json")
        return state

    # -- lock -------------------------------------------------------------------------
    def acquire(self, actor: str, command: str) -> None:
        holder = {"actor": actor, "host": socket.gethostname(), "pid": os.getpid(),
                  "since": now_iso(), "command": command}
        for _ in range(2):
            try:
                self.s3.put_object(Bucket=self.bucket, Key=names.lock_key(self.stage),
                                   Body=json.dumps(holder).encode(), IfNoneMatch="*")
                self._lock_held = True
                return
            except ClientError as exc:
                if _code(exc) not in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                    raise
            other = self.holder() or {}
            pid = int(other.get("pid", 0))
            if other.get("host") == holder["host"] and (pid == os.getpid() or not pid_alive(pid)):
                self.warnings.append(
                    f"took over the lock left by pid {pid} (since {other.get('since')}), "
                    "whose apply stopped without releasing it")
                self.release(force=True)
                continue
            raise StateLockedError(
                f"stage '{self.stage}' is locked by {other.get('actor', '?')} "
                f"(pid {other.get('pid', '?')} on {other.get('host', '?')}, "
                f"running `{other.get('command', '?')}` since {other.get('since', '?')})",
                hint="wait for that deploy to finish; if it died on another machine, "
                     "run `mlops unlock`")
        raise StateLockedError(f"could not take the lock of stage '{self.stage}'")

    def holder(self) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=names.lock_key(self.stage))
        except ClientError as exc:
            if missing(exc):
                return None
            raise
        result: dict[str, Any] = json.loads(body["Body"].read())
        return result

    def release(self, *, force: bool = False) -> None:
        if self._lock_held or force:
            self.s3.delete_object(Bucket=self.bucket, Key=names.lock_key(self.stage))
            self._lock_held = False
