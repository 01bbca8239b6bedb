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
- What must not change — a version's files, approvals and alias history records — is written
  with the bucket's Object Lock retention (``framework.apply.audit.Retention``) where the
  bucket has Object Lock, so no version of it can be deleted before then without
  ``s3:BypassGovernanceRetention``; on AWS the bucket policy also refuses to overwrite it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from framework.apply.audit import AuditLog, Retention, bucket_retention
from framework.config.semver import SemVer
from framework.monitoring.store import missing
from framework.registry import identity as identities
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
DENIED = {"AccessDenied", "403"}
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
    retention: Retention | None = None  # of locked files; None: read from the bucket
    # Who acts (approvals, registrations); None: from ``actor`` (the STS ARN) and, off AWS,
    # MLOPS_IDENTITY (see framework.registry.identity)
    identity: identities.Identity | None = None

    def caller(self) -> identities.Identity:
        if self.identity is None:
            self.identity = identities.resolve(self.actor,
                                               configurable=identities.off_aws(self.s3),
                                               warnings=self.warnings)
        return self.identity

    def _locked(self) -> dict[str, Any]:
        """PutObject parameters that lock a file of a released version (none without Object
        Lock on the bucket)."""
        if self.retention is None:
            self.retention = bucket_retention(self.s3, self.bucket)
        return self.retention.put_args()

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
                               IfNoneMatch="*", **self._locked())
        except ClientError as exc:
            if _code(exc) in PRECONDITION:
                return False
            raise
        return True

    def _replace_leftover(self, key: str, body: bytes, content_type: str) -> None:
        """Write over a file a registration that died before its commit left behind (never
        visible: no metadata.json names it). Where the bucket policy refuses overwrites of
        version files (AWS), say what to do instead."""
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                               Metadata={"sha256": hashlib.sha256(body).hexdigest()},
                               **self._locked())
        except ClientError as exc:
            if _code(exc) not in DENIED:
                raise
            raise ImmutableVersionError(
                f"s3://{self.bucket}/{key} holds other bytes, left by a registration of this "
                "version that did not finish; the registry bucket's policy keeps them",
                where=key, hint="register the model under a new version") from exc

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
            self.audit.record(actor=self.caller().principal, command=f"mlops models {action}",
                              action=f"models.{action}", resource=f"model.{name}", model=name,
                              kind="model_registry", outcome="succeeded", **fields)
        except ClientError as exc:  # the local mirror has it
            self.warnings.append(f"audit record not stored in the registry: {exc}")

    def ensure_bucket(self, region: str, retention_days: int | None = None) -> None:
        """Create the registry bucket if it does not exist yet (versioned, Object Lock
        enabled, with ``retention_days`` as its lock retention tag); a deploy configures the
        rest (``s3_bucket``)."""
        try:
            self.s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.s3.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise
        self.s3.put_bucket_versioning(Bucket=self.bucket,
                                      VersioningConfiguration={"Status": "Enabled"})
        if retention_days is not None:
            from framework.apply.audit import RETENTION_TAG

            self.s3.put_bucket_tagging(Bucket=self.bucket, Tagging={"TagSet": [
                {"Key": RETENTION_TAG, "Value": str(retention_days)}]})
            self.retention = None

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

    def stored_sha256(self, name: str, version: str) -> str | None:
        """SHA-256 of the stored artifact, read in chunks (None when it is missing)."""
        try:
            obj = self.s3.get_object(Bucket=self.bucket,
                                     Key=refs.version_key(name, version, refs.ARTIFACT))
        except ClientError as exc:
            if missing(exc):
                return None
            raise
        digest = hashlib.sha256()
        for chunk in iter(lambda: obj["Body"].read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def damage(self, name: str, version: str, meta: dict[str, Any] | None = None) -> str | None:
        """What is wrong with the stored artifact of a committed version (None: it has the
        bytes metadata.json records)."""
        meta = self.metadata(name, version) if meta is None else meta
        actual = self.stored_sha256(name, version)
        key = f"s3://{self.bucket}/{refs.version_key(name, version, refs.ARTIFACT)}"
        if actual is None:
            return f"{key} is missing (metadata.json commits the version)"
        if actual != meta.get("sha256"):
            return (f"{key} has SHA-256 {actual[:16]}…, metadata.json records "
                    f"{str(meta.get('sha256'))[:16]}…")
        return None

    def verify(self, name: str, version: str) -> dict[str, Any]:
        """Metadata of ``name@version`` after checking the stored artifact's SHA-256."""
        meta = self.metadata(name, version)
        damage = self.damage(name, version, meta)
        if damage is not None:
            raise integrity_error(name, version, damage)
        return meta

    def restore(self, name: str, version: str, candidate: bytes | None = None) -> str:
        """Put the recorded bytes of ``name@version`` back as its artifact: ``candidate``
        (e.g. the original file) if it has them, else the newest earlier version of the
        object in the (versioned) bucket that has them. Returns where they came from; an
        intact artifact is left alone."""
        meta = self.metadata(name, version)
        want = str(meta.get("sha256"))
        if self.damage(name, version, meta) is None:
            return "intact"
        key = refs.version_key(name, version, refs.ARTIFACT)
        good, source = None, ""
        if candidate is not None and hashlib.sha256(candidate).hexdigest() == want:
            good, source = candidate, "the given file"
        if good is None:
            listing = self.s3.list_object_versions(Bucket=self.bucket, Prefix=key)
            older = sorted((v for v in listing.get("Versions", [])
                            if v["Key"] == key and not v.get("IsLatest")),
                           key=lambda v: v["LastModified"], reverse=True)
            for v in older:
                body = self.s3.get_object(Bucket=self.bucket, Key=key,
                                          VersionId=v["VersionId"])["Body"].read()
                if hashlib.sha256(body).hexdigest() == want:
                    good, source = body, f"object version {v['VersionId']}"
                    break
        if good is None:
            raise RegistryIntegrityError(
                f"no copy of {name}@{version} with SHA-256 {want[:16]}… was found: neither "
                f"{'the given file nor ' if candidate is not None else ''}an earlier version "
                f"of s3://{self.bucket}/{key} has those bytes", where=f"{name}@{version}",
                hint="restore from the original artifact file (`mlops models restore "
                     f"{name}@{version} --from PATH`), or ship the model as a new version")
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=good,
                           ContentType="application/octet-stream", Metadata={"sha256": want},
                           **self._locked())
        self._audit("restore", name, version=version, before={"damaged": True},
                    after={"version": version, "sha256": want, "from": source})
        return source

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
                self._replace_leftover(art_key, artifact, "application/octet-stream")
        full = dict(metadata)
        full.update(provenance)
        full["registered_by"] = self.caller().to_dict()
        full["lineage"] = {"parent": parent, "data": (metadata.get("data") or {}).get("sha256"),
                           "code": (provenance.get("code") or {}).get("commit")}
        if reference is not None:
            body = _dump(reference)
            ref_key = refs.version_key(name, version, refs.REFERENCE)
            if not self._put_new(ref_key, body, "application/json"):
                got = self._get(ref_key)
                if got is None or got[0] != body:
                    self._replace_leftover(ref_key, body, "application/json")
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
               "changed_by": self.caller().principal, "action": action, "reason": reason}
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
        """Record an approval by the caller (``identity``: verified, what counts); ``by`` is
        the name shown beside it."""
        self.metadata(name, version)
        if alias is not None:
            refs.check_alias(alias)
        if not by.strip():
            raise RegistryInputError("an approval needs a name", where="--by",
                                     hint="say who approves: --by 'Dr. Jane Doe'")
        who = self.caller()
        record_id = f"{now_iso().replace(':', '').replace('.', '')}-{uuid.uuid4().hex[:8]}"
        rec = {"id": record_id, "model": name, "version": version, "by": by.strip(),
               "note": note, "alias": alias, "time": now_iso(), "actor": who.principal,
               "identity": who.to_dict()}
        self._put_new(refs.approval_key(name, version, record_id), _dump(rec),
                      "application/json")
        self._audit("approve", name, version=version, alias=alias, before=None,
                    after={"approved_by": rec["by"], "principal": who.principal,
                           "note": note})
        return rec

    def approvals(self, name: str, version: str) -> list[dict[str, Any]]:
        prefix = refs.version_prefix(name, version) + "approvals/"
        recs = [self._get_json(k) for k in self._list(prefix)]
        return sorted((r for r in recs if r is not None), key=lambda r: str(r["time"]))


def integrity_error(name: str, version: str, damage: str) -> RegistryIntegrityError:
    """The refusal to use a damaged version, with how to recover it."""
    return RegistryIntegrityError(
        f"INTEGRITY FAILURE: {name}@{version} is damaged: {damage}", where=f"{name}@{version}",
        hint=f"the artifact was changed outside mlops; nothing uses it until it is restored: "
             f"`mlops models restore {name}@{version}` puts the recorded bytes back (from an "
             "earlier version of the object in the versioned bucket, or `--from PATH` the "
             "original file), or ship the model as a new version")


def _bump(version: str) -> str:
    v = SemVer.parse(version)
    return f"{v.major}.{v.minor}.{v.patch + 1}" if not v.prerelease else \
        f"{v.major}.{v.minor}.{v.patch}"

