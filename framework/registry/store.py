"""The model registry on S3: versions, aliases with history, approvals.

- A version is committed by its ``metadata.json``, written last with ``If-None-Match: *``;
  the artifact (and reference profile) are written first, also conditionally. A registration
  that dies half-way leaves no visible version: readers only see versions with metadata.
- Registering identical bytes again is a no-op; other bytes are refused; a new version must be
  greater than every committed one.
- An alias object is changed only by compare-and-swap (``If-Match`` its ETag, or
  ``If-None-Match: *`` when it does not exist yet); each change also writes an immutable
  history record, so "what did production point at, at time T" has an answer.
- Every change is one audit record (before → after) through ``AuditLog``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from framework.apply.audit import AuditLog
from framework.config.semver import SemVer
from framework.monitoring.store import missing
from framework.registry import refs
from framework.registry.errors import (
    AliasConflictError,
    ImmutableVersionError,
    RegistryInputError,
    RegistryIntegrityError,
)
from framework.registry.metadata import contract_differences
from framework.registry.provenance import now_iso

PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}  # of a listing: 403 is denied


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _dump(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()


@dataclass(frozen=True)
class AliasState:
    """An alias as read: its document (None when unset) and the ETag to swap against."""

    name: str
    alias: str
    doc: dict[str, Any] | None
    etag: str | None

    @property
    def version(self) -> str | None:
        return None if self.doc is None else str(self.doc["version"])

    @property
    def seq(self) -> int:
        return 0 if self.doc is None else int(self.doc.get("seq", 0))


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    created: bool  # False: the identical version was already there
    metadata: dict[str, Any]


@dataclass
class Registry:
    s3: Any  # boto3 S3 client
    bucket: str
    audit: AuditLog | None = None
    actor: str = "unknown"
    warnings: list[str] = field(default_factory=list)

    # -- low level --------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, str] | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if missing(exc):  # 404, or 403 to a caller without s3:ListBucket
                return None
            raise
        return obj["Body"].read(), str(obj["ETag"])

    def _get_json(self, key: str) -> dict[str, Any] | None:
        got = self._get(key)
        if got is None:
            return None
        value: dict[str, Any] = json.loads(got[0])
        return value

    def _put_new(self, key: str, body: bytes, content_type: str) -> bool:
        """Write ``key`` only if absent; False when something is already there."""
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                               Metadata={"sha256": hashlib.sha256(body).hexdigest()},
                               IfNoneMatch="*")
        except ClientError as exc:
            if _code(exc) in PRECONDITION:
                return False
            raise
        return True

    def _list(self, prefix: str, delimiter: str | None = None) -> list[str]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        out: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(**kwargs):
                if delimiter:
                    out += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
                else:
                    out += [o["Key"] for o in page.get("Contents", [])]
        except ClientError as exc:
            if _code(exc) in MISSING:
                return []
            raise
        return out

    def _audit(self, action: str, name: str, **fields: Any) -> None:
        if self.audit is None:
            return
        try:
            self.audit.record(actor=self.actor, command=f"mlops models {action}",
                              action=f"models.{action}", resource=f"model.{name}", model=name,
                              kind="model_registry", outcome="succeeded", **fields)
        except ClientError as exc:  # the local mirror has it
            self.warnings.append(f"audit record not stored in the registry: {exc}")

    def ensure_bucket(self, region: str) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.s3.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise
        self.s3.put_bucket_versioning(Bucket=self.bucket,
                                      VersioningConfiguration={"Status": "Enabled"})

    # -- reading ----------------------------------------------------------------------
    def models(self) -> list[str]:
        return sorted(p[len(refs.ROOT):].rstrip("/") for p in self._list(refs.ROOT, "/"))

    def versions(self, name: str) -> list[str]:
        """Committed versions (metadata.json present), oldest first."""
        prefix = refs.model_prefix(name)
        found: list[SemVer] = []
        for key in self._list(prefix):
            rest = key[len(prefix):].split("/")
            if len(rest) == 2 and rest[1] == refs.METADATA:
                try:
                    found.append(SemVer.parse(rest[0]))
                except ValueError:
                    continue
        return [str(v) for v in sorted(found)]

    def latest(self, name: str) -> str | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def metadata(self, name: str, version: str) -> dict[str, Any]:
        meta = self._get_json(refs.version_key(name, version, refs.METADATA))
        if meta is None:
            known = self.versions(name)
            hint = (f"registered versions: {', '.join(known)}" if known else
                    f"'{name}' has no registered version; run `mlops models register {name}`")
            raise RegistryInputError(f"{name}@{version} is not in the registry",
                                     where=f"{name}@{version}", hint=hint)
        return meta

    def artifact(self, name: str, version: str) -> bytes:
        got = self._get(refs.version_key(name, version, refs.ARTIFACT))
        if got is None:
            raise RegistryIntegrityError(f"{name}@{version} has metadata but no model.onnx",
                                         hint="the registry was changed outside mlops")
        return got[0]

    def verify(self, name: str, version: str) -> dict[str, Any]:
        """Metadata of ``name@version`` after checking the stored artifact's SHA-256."""
        meta = self.metadata(name, version)
        actual = hashlib.sha256(self.artifact(name, version)).hexdigest()
        if actual != meta.get("sha256"):
            raise RegistryIntegrityError(
                f"INTEGRITY FAILURE: s3://{self.bucket}/"
                f"{refs.version_key(name, version, refs.ARTIFACT)} has SHA-256 {actual[:16]}…, "
                f"metadata.json records {str(meta.get('sha256'))[:16]}…",
                where=f"{name}@{version}",
                hint="the artifact was changed outside mlops; refusing to use it. Register a "
                     "new version from the original file")
        return meta

    def resolve(self, ref: refs.ModelRef) -> str:
        """The version a reference names: explicit, via an alias, or the latest."""
        if ref.version is not None:
            self.metadata(ref.name, ref.version)
            return ref.version
        if ref.alias is not None:
            state = self.alias(ref.name, ref.alias)
            if state.version is None:
                raise RegistryInputError(
                    f"alias '{ref.alias}' of model '{ref.name}' is not set", where=str(ref),
                    hint=f"point it at a version: `mlops models promote {ref.name}@VERSION "
                         f"--alias {ref.alias}`")
            return state.version
        latest = self.latest(ref.name)
        if latest is None:
            raise RegistryInputError(f"model '{ref.name}' is not in the registry",
                                     where=ref.name, hint=self._known_hint())
        return latest

    def _known_hint(self) -> str:
        known = self.models()
        return (f"registered models: {', '.join(known)}" if known else
                "nothing is registered yet; run `mlops models register`")

    # -- registering ------------------------------------------------------------------
    def register(self, name: str, version: str, artifact: bytes, metadata: dict[str, Any],
                 provenance: dict[str, Any], *, reference: dict[str, Any] | None = None,
                 parent: str | None = None) -> Registered:
        """Write ``name@version``: artifact, reference, then metadata.json (the commit)."""
        semver = refs.check_version(version)
        sha = hashlib.sha256(artifact).hexdigest()
        if metadata.get("sha256") != sha or metadata.get("name") != name or \
                metadata.get("version") != version:
            raise ValueError("metadata does not describe these bytes")
        existing = self._get_json(refs.version_key(name, version, refs.METADATA))
        if existing is not None:
            return self._same_again(name, version, existing, metadata)
        committed = self.versions(name)
        newer = [v for v in committed if SemVer.parse(v) >= semver]
        if newer:
            raise RegistryInputError(
                f"version {version} of '{name}' does not increase: {newer[-1]} is registered",
                where=f"models.{name}.version",
                hint=f"use a version above {newer[-1]}, e.g. {_bump(newer[-1])}")
        if parent is None:
            declared = metadata.get("declared_parent")
            parent = declared if declared else (committed[-1] if committed else None)
        if parent is not None and parent not in committed:
            raise RegistryInputError(f"parent {name}@{parent} is not in the registry",
                                     where=f"models.{name}.parent",
                                     hint=f"registered versions: {', '.join(committed) or 'none'}")

        art_key = refs.version_key(name, version, refs.ARTIFACT)
        if not self._put_new(art_key, artifact, "application/octet-stream"):
            # Left by a registration that died before its commit: never visible, so replace
            # it when it differs (the commit below is still conditional).
            got = self._get(art_key)
            if got is None or hashlib.sha256(got[0]).hexdigest() != sha:
                self.s3.put_object(Bucket=self.bucket, Key=art_key, Body=artifact,
                                   ContentType="application/octet-stream",
                                   Metadata={"sha256": sha})
        full = dict(metadata)
        full.update(provenance)
        full["lineage"] = {"parent": parent, "data": (metadata.get("data") or {}).get("sha256"),
                           "code": (provenance.get("code") or {}).get("commit")}
        if reference is not None:
            body = _dump(reference)
            ref_key = refs.version_key(name, version, refs.REFERENCE)
            self.s3.put_object(Bucket=self.bucket, Key=ref_key, Body=body,
                               ContentType="application/json")
            full["reference"] = {"sha256": hashlib.sha256(body).hexdigest(),
                                 "key": ref_key}
        if not self._put_new(refs.version_key(name, version, refs.METADATA), _dump(full),
                             "application/json"):
            raced = self._get_json(refs.version_key(name, version, refs.METADATA)) or {}
            return self._same_again(name, version, raced, metadata)
        self._audit("register", name, version=version, before=None,
                    after={"version": version, "sha256": sha, "parent": parent})
        return Registered(name, version, True, full)

    def _same_again(self, name: str, version: str, existing: dict[str, Any],
                    metadata: dict[str, Any]) -> Registered:
        if existing.get("sha256") != metadata.get("sha256"):
            raise ImmutableVersionError(
                f"{name}@{version} is already registered with other bytes (sha256 "
                f"{str(existing.get('sha256'))[:12]}…, this file {metadata['sha256'][:12]}…)",
                where=f"models.{name}.version",
                hint="a released version never changes: bump the version in mlops.yaml")
        diffs = contract_differences(existing, metadata)
        if diffs:
            raise ImmutableVersionError(
                f"{name}@{version} is already registered with other metadata ({'; '.join(diffs)})",
                where=f"models.{name}", hint="a released version never changes: bump the version")
        self.verify(name, version)
        return Registered(name, version, False, existing)

    # -- aliases ----------------------------------------------------------------------
    def alias(self, name: str, alias: str) -> AliasState:
        got = self._get(refs.alias_key(name, alias))
        if got is None:
            return AliasState(name, alias, None, None)
        return AliasState(name, alias, json.loads(got[0]), got[1])

    def aliases(self, name: str) -> dict[str, str]:
        prefix = refs.model_prefix(name) + "aliases/"
        out: dict[str, str] = {}
        for key in self._list(prefix):
            alias = key[len(prefix):].removesuffix(".json")
            state = self.alias(name, alias)
            if state.version:
                out[alias] = state.version
        return dict(sorted(out.items()))

    def set_alias(self, expected: AliasState, version: str, *, action: str,
                  reason: str = "") -> dict[str, Any]:
        """Point the alias at ``version`` if it still is what ``expected`` read (CAS)."""
        name, alias = expected.name, expected.alias
        seq = expected.seq + 1
        doc: dict[str, Any] = {"model": name, "alias": alias, "version": version,
               "previous": expected.version, "seq": seq, "changed_at": now_iso(),
               "changed_by": self.actor, "action": action, "reason": reason}
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": refs.alias_key(name, alias),
                                  "Body": _dump(doc), "ContentType": "application/json"}
        if expected.etag is None:
            kwargs["IfNoneMatch"] = "*"
        else:
            kwargs["IfMatch"] = expected.etag
        try:
            self.s3.put_object(**kwargs)
        except ClientError as exc:
            if _code(exc) not in PRECONDITION:
                raise
            now = self.alias(name, alias)
            raise AliasConflictError(
                f"alias '{alias}' of '{name}' changed while this {action} was in flight: it "
                f"was {expected.version or 'unset'}, now points at {now.version or 'nothing'} "
                f"(changed by {(now.doc or {}).get('changed_by', '?')})",
                where=f"{name}@{alias}",
                hint="nothing was changed by this command; review the new state with "
                     f"`mlops models history {name}` and run it again if still wanted") from exc
        # The history record is immutable; a gap (crash right here) is filled from the alias.
        self._put_new(refs.history_key(name, alias, seq), _dump(doc), "application/json")
        self._audit(action, name, alias=alias, version=version,
                    before={"alias": alias, "version": expected.version},
                    after={"alias": alias, "version": version}, reason=reason)
        return doc

    def history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every alias change of ``name`` (optionally one alias), oldest first."""
        aliases = [alias] if alias else self._history_aliases(name)
        out: list[dict[str, Any]] = []
        for a in aliases:
            seen: dict[int, dict[str, Any]] = {}
            for key in self._list(refs.history_prefix(name, a)):
                rec = self._get_json(key)
                if rec is not None:
                    seen[int(rec["seq"])] = rec
            current = self.alias(name, a).doc
            if current is not None:
                seen.setdefault(int(current["seq"]), current)
            out += [seen[s] for s in sorted(seen)]
        return sorted(out, key=lambda r: (str(r["changed_at"]), r["alias"], int(r["seq"])))

    def _history_aliases(self, name: str) -> list[str]:
        base = refs.model_prefix(name)
        found = {p[len(base + "history/"):].rstrip("/")
                 for p in self._list(base + "history/", "/")}
        found |= {k[len(base + "aliases/"):].removesuffix(".json")
                  for k in self._list(base + "aliases/")}
        return sorted(found)

    # -- approvals --------------------------------------------------------------------
    def approve(self, name: str, version: str, by: str, note: str,
                alias: str | None = None) -> dict[str, Any]:
        self.metadata(name, version)
        if alias is not None:
            refs.check_alias(alias)
        if not by.strip():
            raise RegistryInputError("an approval needs a name", where="--by",
                                     hint="say who approves: --by 'Dr. Jane Doe'")
        record_id = f"{now_iso().replace(':', '').replace('.', '')}-{uuid.uuid4().hex[:8]}"
        rec = {"id": record_id, "model": name, "version": version, "by": by.strip(),
               "note": note, "alias": alias, "time": now_iso(), "actor": self.actor}
        self._put_new(refs.approval_key(name, version, record_id), _dump(rec),
                      "application/json")
        self._audit("approve", name, version=version, alias=alias, before=None,
                    after={"approved_by": rec["by"], "note": note})
        return rec

    def approvals(self, name: str, version: str) -> list[dict[str, Any]]:
        prefix = refs.version_prefix(name, version) + "approvals/"
        recs = [self._get_json(k) for k in self._list(prefix)]
        return sorted((r for r in recs if r is not None), key=lambda r: str(r["time"]))


def _bump(version: str) -> str:
    v = SemVer.parse(version)
    return f"{v.major}.{v.minor}.{v.patch + 1}" if not v.prerelease else \
        f"{v.major}.{v.minor}.{v.patch}"

