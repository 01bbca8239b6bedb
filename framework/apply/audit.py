"""Append-only audit records: one per change, in the registry and mirrored locally, chained.

Records are immutable objects (``If-None-Match: *``) under
``audit/YYYY/MM/DD/{timestamp}-{id}.json`` (a monitor function's: ``...-{id}.{writer}.json``);
the local mirror ``.mlops/audit.jsonl`` keeps them readable after the registry itself is
destroyed.

**The chain.** Each writer — the CLI (``mlops``) or a monitor function (``mon-NAME``), each
allowed to write only its own keys — keeps one chain. Record number ``seq`` of a chain carries
the SHA-256 of the chain's record ``seq - 1`` (``prev``), and is claimed by a link object
``audit-chain/{writer}/{seq:012d}.json`` (``{seq, key, sha256, prev}``) written with
``If-None-Match: *`` before the record: of two writers racing for a number exactly one gets
it, the other takes the next. ``mlops audit --verify`` (``framework.registry.audit_verify``)
walks the links: a number missing, a record whose bytes are not the linked SHA-256, one hidden
behind a delete marker, or a ``prev`` that is not its predecessor's digest is reported.
``audit-head/{writer}.json`` remembers a recent link (rewritten once it lags ten), so a writer
does not list the whole chain to find its end: it lists the links after the hint.

**Object Lock.** Records and links are put with governance-mode retention when the bucket has
Object Lock (``Retention``: the days the bucket's ``mlops:lock-retention-days`` tag names), so
no version of them can be deleted before then without ``s3:BypassGovernanceRetention``.

Stdlib-only (the monitor function packages this module; boto3 is its layer's): AWS errors are
recognised by their ``response``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CLI_WRITER = "mlops"
CHAIN_PREFIX = "audit-chain/"
HEAD_PREFIX = "audit-head/"
RETENTION_TAG = "mlops:lock-retention-days"
LOCK_MODE = "GOVERNANCE"
CLAIM_ATTEMPTS = 50  # racing writers: each failed claim means another writer's record landed
HINT_EVERY = 10  # the head hint is rewritten once it lags this many links (a listing finds them)
PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
# Answers meaning "no Object Lock here" (or not readable by this caller): no retention.
NO_LOCK = {"ObjectLockConfigurationNotFoundError", "NoSuchBucket", "404", "NotFound",
           "AccessDenied", "403", "NoSuchTagSet", "NoSuchTagSetError", "MethodNotAllowed"}


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (None for any other exception)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code", ""))


def record_key(when: datetime, rec_id: str, writer: str = CLI_WRITER) -> str:
    suffix = "" if writer == CLI_WRITER else f".{writer}"
    return f"audit/{when:%Y/%m/%d}/{when:%Y%m%dT%H%M%S%fZ}-{rec_id}{suffix}.json"


def link_key(writer: str, seq: int) -> str:
    return f"{CHAIN_PREFIX}{writer}/{seq:012d}.json"


def head_key(writer: str) -> str:
    return f"{HEAD_PREFIX}{writer}.json"


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Retention:
    """How long a locked object is kept (days; 0: not retained), in governance mode."""

    days: int
    mode: str = LOCK_MODE

    def until(self, now: datetime | None = None) -> datetime:
        return ((now or datetime.now(UTC)) + timedelta(days=self.days)).replace(microsecond=0)

    def put_args(self, now: datetime | None = None) -> dict[str, Any]:
        """PutObject parameters of a locked object; S3 wants a checksum with them (botocore
        computes the one named)."""
        if self.days <= 0:
            return {}
        return {"ObjectLockMode": self.mode, "ObjectLockRetainUntilDate": self.until(now),
                "ChecksumAlgorithm": "SHA256"}


NO_RETENTION = Retention(0)


def lock_enabled(s3: Any, bucket: str) -> bool:
    """Whether Object Lock is enabled on the bucket (False when it cannot be read)."""
    try:
        got = s3.get_object_lock_configuration(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) in NO_LOCK:
            return False
        raise
    return bool(got.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")


def bucket_retention(s3: Any, bucket: str) -> Retention:
    """The retention of locked objects in ``bucket``: the days its ``mlops:lock-retention-days``
    tag names when Object Lock is enabled on it, else none."""
    if not lock_enabled(s3, bucket):
        return NO_RETENTION
    try:
        tags = s3.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
    except Exception as exc:
        if error_code(exc) in NO_LOCK:
            return NO_RETENTION
        raise
    for tag in tags:
        if tag.get("Key") == RETENTION_TAG:
            try:
                return Retention(max(0, int(str(tag.get("Value")))))
            except ValueError:
                return NO_RETENTION
    return NO_RETENTION


@dataclass
class AuditLog:
    s3: Any | None  # boto3 S3 client, or None when the registry is gone
    bucket: str
    local_file: Path
    writer: str = CLI_WRITER  # whose chain: the CLI, or a monitor function ("mon-NAME")
    retention: Retention | None = None  # None: read from the bucket on first use
    # (seq, SHA-256) of the newest link this log knows of; None: look it up
    _head: tuple[int, str | None] | None = field(default=None, init=False, repr=False)
    _hint: int = field(default=0, init=False, repr=False)  # the head hint's number, as read

    def record(self, **fields: Any) -> dict[str, Any]:
        when = datetime.now(UTC)
        rec_id = uuid.uuid4().hex[:12]
        record: dict[str, Any] = {"id": rec_id,
                                  "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **fields}
        if self.s3 is None:
            self._mirror(json.dumps(record, sort_keys=True))
            return record
        key = record_key(when, rec_id, self.writer)
        body = self._claim(record, key, when)
        self._mirror(body.decode())
        self._put(key, body, when)
        self._put_head()
        return record

    def read_local(self) -> list[dict[str, Any]]:
        if not self.local_file.exists():
            return []
        return [json.loads(line) for line in self.local_file.read_text().splitlines() if line]

    # -- the chain ------------------------------------------------------------------------
    def _claim(self, record: dict[str, Any], key: str, when: datetime) -> bytes:
        """Take the next number of the writer's chain for ``record`` (its link written with
        ``If-None-Match: *``); returns the record's bytes, chain fields included."""
        seq, prev = self._head if self._head is not None else self._find_head()
        for _ in range(CLAIM_ATTEMPTS):
            seq += 1
            record.update(chain=self.writer, seq=seq, prev=prev)
            body = json.dumps(record, sort_keys=True).encode()
            sha = digest(body)
            link = {"seq": seq, "writer": self.writer, "key": key, "sha256": sha, "prev": prev,
                    "time": record["time"]}
            if self._put(link_key(self.writer, seq), json.dumps(link, sort_keys=True).encode(),
                         when):
                self._head = (seq, sha)
                return body
            prev = self._link_sha(seq)  # another writer took it: chain after theirs
        raise RuntimeError(f"could not claim an audit chain number for {self.writer} after "
                           f"{CLAIM_ATTEMPTS} attempts")

    def _find_head(self) -> tuple[int, str | None]:
        """The newest link of the chain: from the head hint on, the links listed after it."""
        seq = 0
        try:
            hint = json.loads(self.s3.get_object(  # type: ignore[union-attr]
                Bucket=self.bucket, Key=head_key(self.writer))["Body"].read())
            seq = self._hint = int(hint.get("seq", 0))
        except Exception as exc:
            if error_code(exc) is None and not isinstance(exc, ValueError | TypeError):
                raise
        start = link_key(self.writer, seq) if seq else f"{CHAIN_PREFIX}{self.writer}/"
        newest: str | None = None
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket,
                                      "Prefix": f"{CHAIN_PREFIX}{self.writer}/"}
            if token:
                kwargs["ContinuationToken"] = token
            else:
                kwargs["StartAfter"] = start
            page = self.s3.list_objects_v2(**kwargs)  # type: ignore[union-attr]
            keys = [o["Key"] for o in page.get("Contents", [])]
            if keys:
                newest = keys[-1]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        if newest is not None:
            seq = int(newest.rsplit("/", 1)[1].split(".", 1)[0])
        return (seq, self._link_sha(seq)) if seq else (0, None)

    def _link_sha(self, seq: int) -> str | None:
        try:
            link = json.loads(self.s3.get_object(  # type: ignore[union-attr]
                Bucket=self.bucket, Key=link_key(self.writer, seq))["Body"].read())
        except Exception as exc:
            if error_code(exc) is None:
                raise
            return None
        return str(link.get("sha256")) if link.get("sha256") else None

    # -- S3 ---------------------------------------------------------------------------------
    def _retention(self) -> Retention:
        if self.retention is None:
            self.retention = bucket_retention(self.s3, self.bucket)
        return self.retention

    def _put(self, key: str, body: bytes, when: datetime) -> bool:
        """Write an immutable object (locked when the bucket retains); False when the key is
        already taken."""
        try:
            self.s3.put_object(  # type: ignore[union-attr]
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
                IfNoneMatch="*", **self._retention().put_args(when))
        except Exception as exc:
            if error_code(exc) in PRECONDITION:
                return False
            raise
        return True

    def _put_head(self) -> None:
        if self._head is None or self._head[0] - self._hint < HINT_EVERY:
            return
        seq, sha = self._head
        self._hint = seq
        try:
            self.s3.put_object(  # type: ignore[union-attr]
                Bucket=self.bucket, Key=head_key(self.writer), ContentType="application/json",
                Body=json.dumps({"seq": seq, "sha256": sha}).encode())
        except Exception as exc:  # a hint only: the next writer lists the links after it
            if error_code(exc) is None:
                raise

    def _mirror(self, line: str) -> None:
        self.local_file.parent.mkdir(parents=True, exist_ok=True)
        with self.local_file.open("a") as fh:
            fh.write(line + "\n")
