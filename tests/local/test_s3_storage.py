"""The local S3 keeps objects' bytes in files opened only while read (framework/local/s3store.py).

Against a real daemon over HTTP: many objects hold no descriptor each and no memory each, a
plain PutObject's bytes are the journal's blob (no second copy), and get, range get, copy,
overwrite, delete, multipart, versions and a restart's replay return the same bytes as before.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from framework import local
from framework.local.files import JOURNAL_BLOBS_DIR, S3_OBJECTS_DIR
from framework.local.s3store import Store
from tests.ports import free_port_pair

from .conftest import start_daemon
from .support import REGION

MB = 1_000_000
PART = 5 * 1024 * 1024  # S3's smallest part but the last


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _own_files(home: Path) -> list[str]:
    objects = home / S3_OBJECTS_DIR
    return sorted(p.name for p in objects.iterdir()) if objects.exists() else []


def _body(s3: Any, bucket: str, key: str, **extra: Any) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return data


def test_many_objects_hold_no_descriptor_and_no_memory_each(tmp_path: Path) -> None:
    home = tmp_path / "home"
    aws = start_daemon(home, free_port_pair())
    try:
        s3 = local.connection(aws, REGION).client("s3")
        s3.create_bucket(Bucket="capture-window")
        count, size = 40, 4 * MB  # below moto's 5 MB spill size: moto kept them in memory

        def put_batch(batch: int) -> None:
            for i in range(count):
                s3.put_object(Bucket="capture-window", Key=f"b{batch}/{i:04d}",
                              Body=os.urandom(size))

        for batch in range(2):  # the server's threads and allocator reach their working size
            put_batch(batch)
        fds, rss = _fds(aws.pid), _rss(aws.pid)
        put_batch(2)
        # moto alone: 160 MB more in memory, or (objects over 5 MB) 40 more open temp files
        assert _fds(aws.pid) - fds < 5
        assert _rss(aws.pid) - rss < count * size // 4
        assert _own_files(home) == []  # each object is the journal's blob of its PutObject
        blobs = list((home / JOURNAL_BLOBS_DIR).iterdir())
        assert len(blobs) == 3 * count
        sample = _body(s3, "capture-window", "b2/0021")
        assert (home / JOURNAL_BLOBS_DIR / hashlib.sha256(sample).hexdigest()).is_file()
    finally:
        local.stop(home)


def _multipart(s3: Any, bucket: str, key: str, parts: list[bytes]) -> dict[str, Any]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                              Body=data)["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    answer: dict[str, Any] = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
    return answer


def test_objects_read_back_the_same_through_every_operation_and_a_restart(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port_pair()
    big, big2, small = os.urandom(300_000), os.urandom(250_000), b"s" * 100
    v1, v2 = os.urandom(120_000), os.urandom(130_000)
    parts = [os.urandom(PART), os.urandom(100_000)]
    whole = b"".join(parts)
    aws = start_daemon(home, port)
    try:
        s3 = local.connection(aws, REGION).client("s3")
        s3.create_bucket(Bucket="plain-bucket")
        put = s3.put_object(Bucket="plain-bucket", Key="big", Body=big,
                            ChecksumAlgorithm="SHA256")
        assert put["ETag"] == f'"{hashlib.md5(big).hexdigest()}"'
        got = s3.get_object(Bucket="plain-bucket", Key="big", ChecksumMode="ENABLED")
        assert got["Body"].read() == big
        assert got["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(big).digest()).decode()
        assert _body(s3, "plain-bucket", "big", Range="bytes=1000-1999") == big[1000:2000]
        assert _body(s3, "plain-bucket", "big", Range="bytes=-10") == big[-10:]
        s3.put_object(Bucket="plain-bucket", Key="small", Body=small)
        assert _body(s3, "plain-bucket", "small") == small

        # a copy shares the bytes; overwriting or deleting the source leaves the copy whole
        s3.copy_object(Bucket="plain-bucket", Key="copy",
                       CopySource={"Bucket": "plain-bucket", "Key": "big"})
        s3.put_object(Bucket="plain-bucket", Key="big", Body=big2)
        assert _body(s3, "plain-bucket", "big") == big2
        assert _body(s3, "plain-bucket", "copy") == big
        s3.delete_object(Bucket="plain-bucket", Key="big")
        assert _body(s3, "plain-bucket", "copy") == big

        # a multipart object is no request body: a file of its own, counted by its keys
        answer = _multipart(s3, "plain-bucket", "multi", parts)
        assert answer["ETag"].endswith('-2"')
        assert _own_files(home) == [hashlib.sha256(whole).hexdigest()]
        s3.copy_object(Bucket="plain-bucket", Key="multi-copy",
                       CopySource={"Bucket": "plain-bucket", "Key": "multi"})
        s3.delete_object(Bucket="plain-bucket", Key="multi")
        assert _body(s3, "plain-bucket", "multi-copy") == whole
        assert _body(s3, "plain-bucket", "multi-copy",
                     Range=f"bytes={PART - 5}-{PART + 4}") == whole[PART - 5:PART + 5]
        s3.delete_object(Bucket="plain-bucket", Key="multi-copy")
        assert _own_files(home) == []  # its last key gone, the file goes too
        _multipart(s3, "plain-bucket", "multi", parts)  # kept for the restart

        # versions: each keeps its bytes; ListObjectVersions's deep copies release nothing
        s3.create_bucket(Bucket="versioned-bucket")
        s3.put_bucket_versioning(Bucket="versioned-bucket",
                                 VersioningConfiguration={"Status": "Enabled"})
        first = s3.put_object(Bucket="versioned-bucket", Key="k", Body=v1)["VersionId"]
        second = s3.put_object(Bucket="versioned-bucket", Key="k", Body=v2)["VersionId"]
        mp_version = _multipart(s3, "versioned-bucket", "mp", parts)["VersionId"]
        s3.put_object(Bucket="versioned-bucket", Key="mp", Body=small)
        s3.delete_object(Bucket="versioned-bucket", Key="k")  # a delete marker
        listed = s3.list_object_versions(Bucket="versioned-bucket")
        assert len(listed["Versions"]) == 4 and len(listed["DeleteMarkers"]) == 1
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket="versioned-bucket", Key="k")
        assert _body(s3, "versioned-bucket", "k", VersionId=first) == v1
        assert _body(s3, "versioned-bucket", "k", VersionId=second) == v2
        s3.delete_object(Bucket="versioned-bucket", Key="k", VersionId=second)
        with pytest.raises(s3.exceptions.ClientError):
            s3.get_object(Bucket="versioned-bucket", Key="k", VersionId=second)
        assert _body(s3, "versioned-bucket", "k", VersionId=first) == v1
        s3.list_object_versions(Bucket="versioned-bucket")
        assert _body(s3, "versioned-bucket", "mp", VersionId=mp_version) == whole
        before = {
            "copy": s3.head_object(Bucket="plain-bucket", Key="copy")["ETag"],
            "multi": s3.head_object(Bucket="plain-bucket", Key="multi")["ETag"],
        }
        files = _own_files(home)
        assert files == [hashlib.sha256(whole).hexdigest()]  # both multipart objects share it
    finally:
        assert local.stop(home)

    aws = start_daemon(home, port)  # the journal's replay builds the same objects again
    try:
        s3 = local.connection(aws, REGION).client("s3")
        assert _body(s3, "plain-bucket", "copy") == big
        assert _body(s3, "plain-bucket", "small") == small
        assert _body(s3, "plain-bucket", "multi") == whole
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket="plain-bucket", Key="big")
        assert _body(s3, "versioned-bucket", "k", VersionId=first) == v1
        assert _body(s3, "versioned-bucket", "mp", VersionId=mp_version) == whole
        assert _body(s3, "versioned-bucket", "mp") == small
        assert {key: s3.head_object(Bucket="plain-bucket", Key=key)["ETag"]
                for key in before} == before
        assert _own_files(home) == files
    finally:
        local.stop(home)


def test_store_counts_its_own_files_and_never_removes_a_journal_blob(tmp_path: Path) -> None:
    blobs, objects = tmp_path / "blobs", tmp_path / "objects"
    blobs.mkdir()
    store = Store(blobs, objects, threshold=10)
    assert store.put(b"0123456789") == b"0123456789"  # at the threshold: kept in memory
    journaled = b"a journaled body"
    (blobs / hashlib.sha256(journaled).hexdigest()).write_bytes(journaled)
    ref = store.put(journaled)
    assert ref == str(blobs / hashlib.sha256(journaled).hexdigest())
    store.release(ref)
    assert store.read(ref) == journaled
    own = store.put(bytearray(b"bytes of no request"))
    assert isinstance(own, str) and Path(own).parent == objects
    assert store.put(b"bytes of no request") == own
    store.acquire(own)
    store.release(own)
    store.release(own)
    assert b"".join(store.chunks(own)) == b"bytes of no request"
    store.release(own)
    assert not Path(own).exists() and store.files() == 0
