"""API keys: format, hashing, and the check the inference handler runs on every request.

A key reads ``mlk.<endpoint>.<key id>.<secret>`` (the secret is 32 random bytes, url-safe
base64). Only ``sha256(key)`` is stored, at ``keys/<endpoint>/<key id>.json`` in the registry
bucket; with 256 bits of entropy a single SHA-256 is as strong as any slow hash. The check
compares digests with ``hmac.compare_digest`` (constant time).

Answers: no key or an unknown/malformed one → 401; a revoked key, or a key issued for another
endpoint → 403. Lookups are cached for ``MLOPS_KEY_CACHE_S`` seconds (default 5), so a
revocation takes effect within that time and bad keys do not hammer S3.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from framework.runtime.errors import RequestError

PREFIX = "mlk"
KEY_RE = re.compile(r"^mlk\.([a-z][a-z0-9-]{0,63})\.([0-9a-f]{12})\.([A-Za-z0-9_-]{20,100})$")
CACHE_MAX = 1024


def key_object(endpoint: str, key_id: str) -> str:
    return f"keys/{endpoint}/{key_id}.json"


def digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once
    key_id: str
    record: dict[str, Any]  # what is stored


def generate(endpoint: str, *, name: str = "", now: str = "") -> NewKey:
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}.{endpoint}.{key_id}.{secrets.token_urlsafe(32)}"
    record = {"key_id": key_id, "endpoint": endpoint, "hash": digest(key), "name": name,
              "created_at": now, "revoked_at": None}
    return NewKey(key, key_id, record)


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _unauthorized(message: str) -> RequestError:
    return RequestError(401, "unauthorized", message)


def _forbidden(message: str) -> RequestError:
    return RequestError(403, "forbidden", message)


Fetch = Callable[[str], dict[str, Any] | None]  # object key → record, None when absent


class KeyChecker:
    """Verify presented keys for one endpoint; records come from ``fetch`` (S3), cached."""

    def __init__(self, endpoint: str, fetch: Fetch, ttl_s: float = 5.0) -> None:
        self.endpoint = endpoint
        self.fetch = fetch
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def _record(self, key_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        record = self.fetch(key_object(self.endpoint, key_id))
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key_id] = (now, record)
        return record

    def check(self, headers: Mapping[str, str]) -> str:
        """Return the key id, or raise a 401/403 ``RequestError``."""
        key = presented_key(headers)
        if not key:
            raise _unauthorized("an API key is required: send it in the x-api-key header")
        match = KEY_RE.match(key)
        if match is None:
            raise _unauthorized("the API key is not valid")
        endpoint, key_id, _secret = match.groups()
        if endpoint != self.endpoint:
            raise _forbidden("the API key is not valid for this endpoint")
        record = self._record(key_id)
        stored = str((record or {}).get("hash") or "")
        if not hmac.compare_digest(stored.encode(), digest(key).encode()) or record is None:
            raise _unauthorized("the API key is not valid")
        if record.get("revoked_at"):
            raise _forbidden("the API key has been revoked")
        return key_id


def s3_fetch(s3: Any, bucket: str) -> Fetch:
    """A ``Fetch`` reading key records from the registry bucket (absent → None)."""

    def fetch(key: str) -> dict[str, Any] | None:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "AccessDenied", "403"):
                return None
            raise
        record: dict[str, Any] = json.loads(body)
        return record

    return fetch
