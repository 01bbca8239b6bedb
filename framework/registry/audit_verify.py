"""``mlops audit --verify``: is the audit trail as it was written?

Every writer's chain (``framework.apply.audit``) is walked from its links
(``audit-chain/{writer}/{seq}.json``), reading every version of every object under
``audit/`` and ``audit-chain/`` (``ListObjectVersions``), so what a plain listing no longer
shows is found too:

- a chain number with no link at all: a record *removed* (its link deleted for good);
- a link or record whose newest version is a delete marker: *hidden behind a delete marker*,
  and whether a version with the linked bytes survives (under Object Lock it does);
- a record whose current bytes are not the SHA-256 its link names: *altered*, and whether the
  original version survives;
- a record whose ``prev`` is not the SHA-256 of the chain's previous record: the chain is
  *broken* there (a record forged into it);
- a record that claims a chain number no link gives it: *unlinked*.

Records written before the chain existed (no ``seq``) are counted, not judged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from framework.apply.audit import CHAIN_PREFIX, digest

FETCHERS = 8
PREFIXES = ("audit/", CHAIN_PREFIX)


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str
    latest: bool
    delete_marker: bool
    modified: str


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the trail: what (removed, hidden, altered, broken, unlinked), where
    (chain and number, key) and the sentence for people."""

    problem: str
    chain: str
    seq: int | None
    key: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.problem, "chain": self.chain, "seq": self.seq, "key": self.key,
                "detail": self.detail}


@dataclass
class Verification:
    bucket: str
    chains: dict[str, int] = field(default_factory=dict)  # writer → links checked
    records: int = 0  # records checked against their links
    unchained: int = 0  # records written before the chain existed
    findings: list[Finding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "intact": self.intact, "chains": self.chains,
                "records": self.records, "unchained": self.unchained,
                "findings": [f.to_dict() for f in self.findings]}


def _versions(s3: Any, bucket: str) -> dict[str, list[Version]]:
    """Every version and delete marker under the trail's prefixes: per key the latest first,
    then the versions as S3 lists them (newest first), then the other delete markers."""
    out: dict[str, list[Version]] = defaultdict(list)
    markers: dict[str, list[Version]] = defaultdict(list)
    for prefix in PREFIXES:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                     Prefix=prefix):
            for v in page.get("Versions", []):
                out[v["Key"]].append(Version(v["Key"], str(v["VersionId"]), bool(v["IsLatest"]),
                                             False, str(v["LastModified"])))
            for m in page.get("DeleteMarkers", []):
                markers[m["Key"]].append(Version(m["Key"], str(m["VersionId"]),
                                                 bool(m["IsLatest"]), True,
                                                 str(m["LastModified"])))
    merged: dict[str, list[Version]] = {}
    for key in set(out) | set(markers):
        found = out.get(key, []) + markers.get(key, [])
        merged[key] = ([v for v in found if v.latest] + out.get(key, [])
                       + markers.get(key, []))
        merged[key] = list(dict.fromkeys(merged[key]))
    return merged


class _Reader:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket
        self.cache: dict[tuple[str, str], bytes | None] = {}

    def body(self, v: Version) -> bytes | None:
        got = self.cache.get((v.key, v.version_id))
        if got is None and (v.key, v.version_id) not in self.cache:
            try:
                got = self.s3.get_object(Bucket=self.bucket, Key=v.key,
                                         VersionId=v.version_id)["Body"].read()
            except ClientError:
                got = None
            self.cache[(v.key, v.version_id)] = got
        return got

    def prefetch(self, versions: list[Version]) -> None:
        with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
            list(pool.map(self.body, versions))


def _json(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _parse_link_key(key: str) -> tuple[str, int] | None:
    rest = key[len(CHAIN_PREFIX):]
    writer, _, name = rest.partition("/")
    number = name.removesuffix(".json")
    if not writer or not number.isdigit():
        return None
    return writer, int(number)


def verify(s3: Any, bucket: str) -> Verification:
    """Walk every chain of the trail in ``bucket``; see the module's docstring."""
    result = Verification(bucket)
    versions = _versions(s3, bucket)
    reader = _Reader(s3, bucket)
    reader.prefetch([v for found in versions.values() for v in found if not v.delete_marker])

    links: dict[str, dict[int, str]] = defaultdict(dict)  # writer → seq → link key
    for key in versions:
        parsed = _parse_link_key(key) if key.startswith(CHAIN_PREFIX) else None
        if parsed is not None:
            links[parsed[0]][parsed[1]] = key

    linked: set[str] = set()
    for writer in sorted(links):
        chain = links[writer]
        result.chains[writer] = len(chain)
        prev_sha: str | None = None
        for seq in range(1, max(chain) + 1):
            if seq not in chain:
                result.findings.append(Finding(
                    "removed", writer, seq, f"{CHAIN_PREFIX}{writer}/{seq:012d}.json",
                    f"record {seq} of chain {writer} was removed: its link is gone, with "
                    "every version of it"))
                prev_sha = None
                continue
            link_sha = _check_link(result, reader, versions, writer, seq, chain[seq],
                                   prev_sha, linked)
            prev_sha = link_sha
    _unlinked(result, reader, versions, linked)
    return result


def _original(found: list[Version]) -> Version | None:
    """The first version written (links are written once, with If-None-Match): the oldest
    S3 lists."""
    real = [v for v in found if not v.delete_marker]
    return real[-1] if real else None


def _check_link(result: Verification, reader: _Reader, versions: dict[str, list[Version]],
                writer: str, seq: int, key: str, prev_sha: str | None,
                linked: set[str]) -> str | None:
    found = versions[key]
    original = _original(found)
    link = _json(reader.body(original)) if original is not None else None
    if found[0].delete_marker:
        result.findings.append(Finding(
            "hidden", writer, seq, key,
            f"the link of record {seq} of chain {writer} is hidden behind a delete marker"
            + (f"; its version {original.version_id} survives" if original else "")))
    if link is None:
        result.findings.append(Finding("altered", writer, seq, key,
                                       f"the link of record {seq} of chain {writer} is not "
                                       "readable"))
        return None
    if len([v for v in found if not v.delete_marker]) > 1:
        result.findings.append(Finding("altered", writer, seq, key,
                                       f"the link of record {seq} of chain {writer} was "
                                       "written over (its first version is checked)"))
    record_key, want = str(link.get("key", "")), str(link.get("sha256", ""))
    linked.add(record_key)
    _check_record(result, reader, versions, writer, seq, record_key, want)
    if seq > 1 and prev_sha is not None and link.get("prev") != prev_sha:
        result.findings.append(Finding(
            "broken", writer, seq, record_key,
            f"record {seq} of chain {writer} does not follow record {seq - 1}: it names "
            f"{str(link.get('prev'))[:12]}… as its predecessor, which is "
            f"{prev_sha[:12]}…"))
    return want


def _check_record(result: Verification, reader: _Reader, versions: dict[str, list[Version]],
                  writer: str, seq: int, key: str, want: str) -> None:
    result.records += 1
    found = versions.get(key, [])
    survivor = next((v for v in found if not v.delete_marker
                     and digest(reader.body(v) or b"") == want), None)
    kept = (f"; its original version {survivor.version_id} survives" if survivor else
            "; no version of it with the linked bytes is left")
    if not found:
        result.findings.append(Finding("removed", writer, seq, key,
                                       f"record {seq} of chain {writer} ({key}) was removed"
                                       ", every version of it"))
        return
    latest = found[0]
    if latest.delete_marker:
        result.findings.append(Finding("hidden", writer, seq, key,
                                       f"record {seq} of chain {writer} ({key}) is hidden "
                                       f"behind a delete marker{kept}"))
        return
    body = reader.body(latest)
    if body is None or digest(body) != want:
        result.findings.append(Finding("altered", writer, seq, key,
                                       f"record {seq} of chain {writer} ({key}) was altered: "
                                       f"its bytes are not the SHA-256 its link names{kept}"))
        return
    record = _json(body) or {}
    if record.get("seq") != seq or record.get("chain") != writer:
        result.findings.append(Finding("altered", writer, seq, key,
                                       f"record {seq} of chain {writer} ({key}) names another "
                                       f"place in the chain ({record.get('chain')} "
                                       f"{record.get('seq')})"))


def _unlinked(result: Verification, reader: _Reader, versions: dict[str, list[Version]],
              linked: set[str]) -> None:
    for key in sorted(versions):
        if not key.startswith("audit/") or key in linked:
            continue
        current = versions[key][0]
        if current.delete_marker:
            continue  # a record no link names, deleted: nothing of the chain's is missing
        record = _json(reader.body(current))
        if record is None or "seq" not in record:
            result.unchained += 1
            continue
        result.findings.append(Finding(
            "unlinked", str(record.get("chain", "?")), record.get("seq"), key,
            f"{key} claims to be record {record.get('seq')} of chain {record.get('chain')}, "
            "but no link names it (written outside mlops)"))
