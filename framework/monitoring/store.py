"""Where a monitor reads captures and writes reports: the registry bucket, or memory in tests.

``missing`` is the one place that decides whether an S3 error means "no such object", for
every reader of the registry bucket (monitors, deploy state and lock, registry, rollouts).
"""

from __future__ import annotations

from typing import Any, Protocol

# S3 answers 404 NoSuchKey for a missing key only to a caller allowed s3:ListBucket; to anyone
# else it answers 403 AccessDenied, so as not to tell whether the key exists. A HEAD has no
# body, so its code is the bare status. A missing bucket holds no object either.
MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchBucket", "AccessDenied", "403"})


def missing(exc: BaseException) -> bool:
    """Whether ``exc`` (a botocore ``ClientError`` from a GET or HEAD of an object) means the
    object is not there: 404 and 403 alike. Stdlib-only: the monitor's Lambda zip imports it."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in MISSING_CODES or status in (403, 404)


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...


class S3Store:
    """The registry bucket through a boto3 S3 client."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def get(self, key: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore's ClientError, caught without importing botocore
            if missing(exc):
                return None
            raise
        return body

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)


class MemoryStore:
    """A dict of keys to bytes (tests, and the benchmark)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    def list(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))
