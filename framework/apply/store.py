"""Deployed state in the registry bucket, a local cache beside mlops.yaml, and the deploy lock.

Each is keyed by project and stage — ``state/{project}/{stage}.json`` and ``.lock`` in the
registry bucket, ``.mlops/state/{project}/{stage}.json`` beside mlops.yaml — so two projects
deployed from one folder, or sharing one registry bucket, never read each other's state. A
state kept where it was before (keyed by stage only) is taken over when it records this project
(the cache file is moved; the registry copy is rewritten under the new key on the next save).
The cache folder also records which config file deployed the project (``source.json``), so a
project renamed in its file is told apart from a second project: see ``renamed_from``.

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

LOCKED_HINT = ("wait for it to finish, then run the command again (it plans against the new "
               "state); if that process died on another machine, `mlops unlock` removes its "
               "lock (one left on this host by a process that no longer runs is taken over)")

SOURCE = "source.json"  # in a project's cache folder: the config file that deployed it
DEFAULT_CONFIG = "mlops.yaml"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _read_state(path: Path) -> State | None:
    """A cached state, or None (absent, or not a state file)."""
    try:
        return State.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _source(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / SOURCE).read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class StateStore:
    s3: Any  # boto3 S3 client
    bucket: str
    project: str
    stage: str
    cache_dir: Path  # .mlops/state: one folder per project inside
    config: str = "mlops.yaml"  # the config file (relative to its folder) this store serves
    warnings: list[str] = field(default_factory=list)
    _lock_held: bool = False
    _legacy_remote: bool = False  # the state was read from its key of before: move it on save

    @property
    def cache_file(self) -> Path:
        return self.cache_dir / self.project / f"{self.stage}.json"

    @property
    def _legacy_cache(self) -> Path:
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

    def _get_state(self, key: str) -> State | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if missing(exc):
                return None
            raise
        return State.from_json(body["Body"].read().decode())

    def _mine(self, state: State | None) -> bool:
        return state is not None and (state.project, state.stage) == (self.project, self.stage)

    def _remote(self) -> State | None:
        if not self.bucket_exists():
            return None
        state = self._get_state(names.state_key(self.project, self.stage))
        if state is None:
            legacy = self._get_state(names.legacy_state_key(self.stage))
            if self._mine(legacy):
                self._legacy_remote = True
                return legacy
        return state if state is None or self._mine(state) else None

    def _local(self) -> State | None:
        legacy = self._legacy_cache
        if not self.cache_file.exists() and legacy.exists():
            old = _read_state(legacy)
            if self._mine(old):  # kept by stage only before: this project's, so move it
                self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                legacy.replace(self.cache_file)
                self._write_source()
        if not self.cache_file.exists():
            return None
        state = State.from_json(self.cache_file.read_text())
        return state if self._mine(state) else None

    def _write_source(self) -> None:
        (self.cache_dir / self.project / SOURCE).write_text(
            json.dumps({"config": self.config}) + "\n")

    def renamed_from(self) -> tuple[str, State] | None:
        """Another project that this config file deployed to this stage, with its state, when
        this project has none here: the project was renamed in the file (a plan now would
        create everything again and leave the other's resources running). A project deployed
        from another file of the folder is not this."""
        if self.cache_file.exists() or not self.cache_dir.is_dir():
            return None
        found: list[tuple[str, State]] = []
        legacy = _read_state(self._legacy_cache)  # kept before sources were: mlops.yaml's
        if legacy is not None and self.config == DEFAULT_CONFIG:
            found.append((legacy.project, legacy))
        for folder in sorted(p for p in self.cache_dir.iterdir() if p.is_dir()):
            state = _read_state(folder / f"{self.stage}.json")
            if state is not None and _source(folder) == self.config:
                found.append((folder.name, state))
        for project, state in found:
            if project != self.project and state.resources and not state.destroyed_at:
                return project, state
        return None

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
        body = state.to_json()  # once: a state of hundreds of resources takes tens of ms
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp")
        tmp.write_text(body)
        tmp.replace(self.cache_file)
        self._write_source()
        if remote:
            self.s3.put_object(Bucket=self.bucket, Key=names.state_key(self.project, self.stage),
                               Body=body.encode(), ContentType="application/json")
            if self._legacy_remote:  # now kept under its project's key
                self.s3.delete_object(Bucket=self.bucket,
                                      Key=names.legacy_state_key(self.stage))
                self._legacy_remote = False
        return state

    # -- lock -------------------------------------------------------------------------
    def acquire(self, actor: str, command: str) -> None:
        holder = {"actor": actor, "host": socket.gethostname(), "pid": os.getpid(),
                  "since": now_iso(), "command": command}
        for _ in range(2):
            try:
                self.s3.put_object(Bucket=self.bucket, Key=names.lock_key(self.project, self.stage),
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
            raise StateLockedError(self.held_by(other), hint=LOCKED_HINT)
        raise StateLockedError(f"could not take the lock of {self.project}/{self.stage}: its "
                               "holder released it and another took it", hint=LOCKED_HINT)

    def held_by(self, other: dict[str, Any]) -> str:
        """Who holds the lock, in one line: what runs, by whom, where and since when."""
        command = str(other.get("command") or "mlops deploy")
        what = "deploy" if command == "mlops deploy" else f"`{command}`"
        return (f"another {what} of {self.project}/{self.stage} is running (pid "
                f"{other.get('pid', '?')} on {other.get('host', '?')}, by "
                f"{other.get('actor', '?')}, since {other.get('since', '?')})")

    def holder(self) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket,
                                      Key=names.lock_key(self.project, self.stage))
        except ClientError as exc:
            if missing(exc):
                return None
            raise
        result: dict[str, Any] = json.loads(body["Body"].read())
        return result

    def release(self, *, force: bool = False) -> None:
        if self._lock_held or force:
            self.s3.delete_object(Bucket=self.bucket, Key=names.lock_key(self.project, self.stage))
            self._lock_held = False
