"""The local data plane's capture buffer: what Firehose is on AWS.

Handlers return their capture lines with the response (``framework.runtime.capture``); the
runner hands them to ``CaptureStore.add`` *before* the caller gets the answer. ``add`` appends
them to a spool file on disk (one per open batch, first line = the batch's S3 location), so a
crash of the daemon loses nothing that was answered. A batch is sealed when it holds
``max_rows`` records or is ``max_age_s`` old, then uploaded gzip-compressed to
``capture/<endpoint>/dt=YYYY-MM-DD/<batch id>.jsonl.gz`` and its spool file deleted. The key is
fixed when the batch opens, so re-uploading a spool left by a crash (``recover``) overwrites
the same object: none lost, none doubled.

A failed upload is retried by the background loop with exponential backoff (0.5 s doubling to
60 s; an explicit ``flush`` tries at once). A batch whose bucket no longer exists (the stage
was destroyed) is moved to ``capture-spool/dead/`` after ``DEAD_AFTER`` attempts, with one
error in the log, instead of being retried forever.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SPOOL_DIR = "capture-spool"
DEAD_DIR = "dead"
MAX_ROWS = 5000
MAX_AGE_S = 2.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 60.0
DEAD_AFTER = 5  # attempts, when the bucket is gone

Uploader = Callable[[str, str, str, bytes], None]  # region, bucket, key, gzip bytes


@dataclass
class _Batch:
    path: Path
    fd: int
    region: str
    bucket: str
    key: str
    opened: float
    rows: int = 0


class CaptureStore:
    def __init__(self, spool: Path, upload: Uploader, *, max_rows: int = MAX_ROWS,
                 max_age_s: float = MAX_AGE_S) -> None:
        self.spool = spool
        self.upload = upload
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.spool.mkdir(parents=True, exist_ok=True)
        self._open: dict[tuple[str, str, str, str], _Batch] = {}
        self._lock = threading.Lock()
        self._upload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records = 0  # added since start
        self.uploaded_rows = 0
        self.uploaded_objects = 0
        self.failures = 0
        self.dead = 0  # batches moved to the dead-letter folder
        self._retry: dict[str, tuple[int, float]] = {}  # spool name -> (failures, next try)
        self._instance = uuid.uuid4().hex[:8]
        self._seq = 0

    # -- request path ---------------------------------------------------------------------
    def add(self, region: str, capture: dict[str, Any]) -> None:
        """Commit one request's lines to the spool (durable before the answer leaves)."""
        lines = str(capture["lines"])
        count = int(capture["count"])
        bucket, endpoint, day = str(capture["bucket"]), str(capture["endpoint"]), str(
            capture["day"])
        sealed = None
        with self._lock:
            key = (region, bucket, endpoint, day)
            batch = self._open.get(key)
            if batch is None:
                batch = self._open_batch(region, bucket, endpoint, day)
                self._open[key] = batch
            os.write(batch.fd, lines.encode())
            batch.rows += count
            self.records += count
            if batch.rows >= self.max_rows:
                sealed = self._open.pop(key)
        if sealed is not None:
            self._seal(sealed)

    def _open_batch(self, region: str, bucket: str, endpoint: str, day: str) -> _Batch:
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        batch_id = f"{stamp}-{self._instance}-{self._seq:06d}"
        key = f"capture/{endpoint}/dt={day}/{batch_id}.jsonl.gz"
        path = self.spool / f"{batch_id}.open"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        header = json.dumps({"region": region, "bucket": bucket, "key": key}) + "\n"
        os.write(fd, header.encode())
        return _Batch(path, fd, region, bucket, key, time.monotonic())

    def _seal(self, batch: _Batch) -> None:
        os.close(batch.fd)
        sealed = batch.path.with_suffix(".sealed")
        os.replace(batch.path, sealed)

    # -- background -----------------------------------------------------------------------
    def start(self) -> None:
        # Seal what a crash left open, but upload nothing yet: the daemon starts this before
        # its control plane serves. The loop below uploads sealed batches once it answers.
        self._seal_leftovers()
        self._thread = threading.Thread(target=self._loop, name="capture", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.flush(only_old=True)
            except Exception:
                log.exception("capture flush failed")

    def flush(self, *, only_old: bool = False) -> int:
        """Seal (old or all) open batches and upload every sealed one; return rows uploaded."""
        now = time.monotonic()
        with self._lock:
            keys = [k for k, b in self._open.items()
                    if not only_old or now - b.opened >= self.max_age_s]
            batches = [self._open.pop(k) for k in keys]
        for batch in batches:
            self._seal(batch)
        return self._upload_sealed(backoff=only_old)

    def recover(self) -> int:
        """After a crash: seal every spool file left open and upload everything."""
        self._seal_leftovers()
        return self._upload_sealed()

    def _seal_leftovers(self) -> None:
        with self._lock:
            open_paths = {b.path for b in self._open.values()}
        for path in self.spool.glob("*.open"):
            if path not in open_paths:
                os.replace(path, path.with_suffix(".sealed"))

    def _upload_sealed(self, backoff: bool = False) -> int:
        total = 0
        now = time.monotonic()
        with self._upload_lock:
            for path in sorted(self.spool.glob("*.sealed")):
                failed, next_try = self._retry.get(path.name, (0, 0.0))
                if backoff and next_try > now:
                    continue
                raw = path.read_bytes()
                header, _, body = raw.partition(b"\n")
                if not raw.endswith(b"\n"):  # a torn last line (crash mid-write): drop it
                    body = body[: body.rfind(b"\n") + 1]
                rows = body.count(b"\n")
                if rows:
                    where = json.loads(header)
                    data = gzip.compress(body, compresslevel=6, mtime=0)
                    try:
                        self.upload(where["region"], where["bucket"], where["key"], data)
                    except Exception as exc:
                        self._failed(path, failed + 1, exc)
                        continue
                    self.uploaded_objects += 1
                    self.uploaded_rows += rows
                    total += rows
                self._retry.pop(path.name, None)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return total

    def _failed(self, path: Path, failed: int, exc: Exception) -> None:
        self.failures += 1
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        if code == "NoSuchBucket" and failed >= DEAD_AFTER:
            dead = self.spool / DEAD_DIR
            dead.mkdir(exist_ok=True)
            os.replace(path, dead / path.name)
            self._retry.pop(path.name, None)
            self.dead += 1
            log.error("capture batch %s: its bucket no longer exists; moved to %s after %d "
                      "attempts", path.name, dead, failed)
            return
        wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failed - 1))
        self._retry[path.name] = (failed, time.monotonic() + wait)
        if failed == 1:
            log.exception("capture upload of %s failed; retrying with backoff", path.name)
        else:
            log.warning("capture upload of %s failed again (%d attempts, next in %.1fs): %s",
                        path.name, failed, wait, exc)

    def pending(self) -> int:
        with self._lock:
            return sum(b.rows for b in self._open.values())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.flush()
        except Exception:
            log.exception("final capture flush failed; spool kept for the next start")
