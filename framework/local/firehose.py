"""The local Firehose: what moto only stores, delivered the way Firehose delivers it.

Captured rows reach a stream as CloudWatch Logs subscription records (``logship.py``), any
other producer's with ``PutRecord(Batch)``. moto would write each call as its own uncompressed
object under a literal prefix; this engine answers the call itself (``FirehoseMiddleware``, in
front of the control plane) for streams with an S3 destination, as Firehose does:

- a stream whose processing configuration has ``Decompression`` (GZIP) and
  ``CloudWatchLogProcessing`` (``DataMessageExtraction``) gunzips each record, drops
  CloudWatch Logs' ``CONTROL_MESSAGE``s and keeps the message of each log event (one per
  line); a record that cannot be decompressed is written, as received, under the stream's
  error prefix with ``!{firehose:error-output-type}`` = ``decompression-failed``;

- the records are appended to a spool file on disk before the call is answered (accepted
  means durable: a crash of the daemon loses nothing that was accepted);
- a batch is sealed when it holds the stream's ``SizeInMBs`` (MiB of records as written,
  before compression; 5 when the stream says none, as Firehose) or is ``max_age_s`` old
  (Firehose's ``IntervalInSeconds``; locally 2 s, so a monitor sees traffic at once), then
  written to the destination bucket, compressed as the stream says (GZIP), under the stream's
  prefix with its ``!{timestamp:...}`` expressions evaluated at the batch's first arrival (or,
  without expressions, ``YYYY/MM/DD/HH/``), named
  ``<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<id>``;
- the key is fixed when the batch opens, so re-delivering a spool left by a crash overwrites
  the same object: none lost, none doubled;
- a failed delivery is retried with exponential backoff (0.5 s doubling to 60 s); a batch
  whose bucket no longer exists moves to ``firehose-spool/dead/`` after ``DEAD_AFTER``
  attempts, with one error in the log.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .journal import Environ, StartResponse, WSGIApp, json_answer, read_body
from .motoapp import scope_of

log = logging.getLogger(__name__)

SPOOL_DIR = "firehose-spool"
DEAD_DIR = "dead"
DEFAULT_SIZE_MB = 5  # Firehose's, when BufferingHints says none
MAX_AGE_S = 2.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 60.0
DEAD_AFTER = 5  # attempts, when the bucket is gone

Uploader = Callable[[str, str, str, bytes], None]  # region, bucket, key, object bytes


_EXPRESSION = re.compile(r"!\{(timestamp|firehose):([^}]*)\}")
_JAVA_TIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
              ("ss", "%S"))
FIREHOSE_TARGET = "Firehose_20150804."
AMZ_JSON = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Stream:
    """A delivery stream's S3 destination, as its configuration says."""

    name: str
    version: str
    bucket: str
    prefix: str
    gzip: bool
    error_prefix: str = ""
    logs_extraction: bool = False  # Decompression + CloudWatchLogProcessing
    size_bytes: int = DEFAULT_SIZE_MB << 20  # BufferingHints.SizeInMBs, in bytes

    def object_key(self, arrival: float, unique: str, error: str | None = None) -> str:
        """Where Firehose writes a batch whose first record arrived at ``arrival`` (of records
        that failed with ``error``: under the error prefix)."""
        when = time.gmtime(arrival)

        template = self.prefix if error is None else self.error_prefix

        def expand(match: re.Match[str]) -> str:
            namespace, arg = match.groups()
            if namespace == "timestamp":
                fmt = arg
                for java, c in _JAVA_TIME:
                    fmt = fmt.replace(java, c)
                return time.strftime(fmt, when)
            if arg == "error-output-type" and error is not None:
                return error
            return unique if arg == "random-string" else match.group(0)

        prefix = (_EXPRESSION.sub(expand, template) if _EXPRESSION.search(template)
                  else template + time.strftime("%Y/%m/%d/%H/", when))
        name = f"{self.name}-{self.version}-{time.strftime('%Y-%m-%d-%H-%M-%S', when)}-{unique}"
        return prefix + name + (".gz" if self.gzip else "")


def lookup_stream(account: str, region: str, name: str) -> Stream | None:
    """The S3 destination of stream ``name`` in moto's store (None: no such stream, or not
    delivering to S3)."""
    from moto.firehose.models import firehose_backends

    stream = firehose_backends[account][region].delivery_streams.get(name)
    if stream is None:
        return None
    for destination in stream.destinations:
        s3 = destination.get("ExtendedS3") or destination.get("S3")
        if s3:
            processors = {
                str(p.get("Type")): {str(q.get("ParameterName")): str(q.get("ParameterValue"))
                                     for q in p.get("Parameters") or []}
                for p in (s3.get("ProcessingConfiguration") or {}).get("Processors") or []
            } if (s3.get("ProcessingConfiguration") or {}).get("Enabled") else {}
            extraction = (
                processors.get("Decompression", {}).get("CompressionFormat", "").upper() == "GZIP"
                and processors.get("CloudWatchLogProcessing", {}).get(
                    "DataMessageExtraction", "").lower() == "true")
            size_mb = int((s3.get("BufferingHints") or {}).get("SizeInMBs") or DEFAULT_SIZE_MB)
            return Stream(name, str(stream.version_id), str(s3["BucketARN"]).split(":")[-1],
                          str(s3.get("Prefix") or ""),
                          str(s3.get("CompressionFormat") or "").upper() == "GZIP",
                          str(s3.get("ErrorOutputPrefix") or ""), extraction, size_mb << 20)
    return None


def extract_messages(record: bytes) -> bytes:
    """A CloudWatch Logs subscription record, decompressed, as its events' messages (one per
    line); b"" for a ``CONTROL_MESSAGE``. Raises ValueError if it is not one."""
    try:
        body = json.loads(gzip.decompress(record))
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a gzip CloudWatch Logs record: {exc}") from exc
    if not isinstance(body, dict) or body.get("messageType") not in (
            "DATA_MESSAGE", "CONTROL_MESSAGE"):
        raise ValueError("not a CloudWatch Logs subscription record")
    if body["messageType"] == "CONTROL_MESSAGE":
        return b""
    out = []
    for event in body.get("logEvents") or []:
        message = str(event.get("message", ""))
        out.append(message if message.endswith("\n") else message + "\n")
    return "".join(out).encode()


class FirehoseMiddleware:
    """Answers ``PutRecord``/``PutRecordBatch`` for S3-bound streams (the rest goes to moto)."""

    def __init__(self, app: WSGIApp, engine: FirehoseEngine) -> None:
        self.app = app
        self.engine = engine

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
        if target not in (FIREHOSE_TARGET + "PutRecordBatch", FIREHOSE_TARGET + "PutRecord"):
            return self.app(environ, start_response)
        body = read_body(environ)
        scope = scope_of(environ)
        try:
            call = json.loads(body)
            name = str(call["DeliveryStreamName"])
            records = ([base64.b64decode(r["Data"]) for r in call["Records"]]
                       if target.endswith("Batch") else [base64.b64decode(call["Record"]["Data"])])
        except (ValueError, KeyError, TypeError):
            return json_answer(start_response, 400, {"__type": "InvalidArgumentException",
                                                     "message": "malformed request"},
                               content_type=AMZ_JSON)
        stream = lookup_stream(scope[0], scope[1], name) if scope else None
        if stream is None or scope is None:
            return self.app(environ, start_response)  # moto answers (e.g. not found)
        self.engine.add(scope[1], stream, records)
        ids = [{"RecordId": uuid.uuid4().hex} for _ in records]
        if target.endswith("Batch"):
            return json_answer(start_response, 200, {
                "FailedPutCount": 0, "Encrypted": False, "RequestResponses": ids},
                content_type=AMZ_JSON)
        return json_answer(start_response, 200, {
            "RecordId": ids[0]["RecordId"], "Encrypted": False}, content_type=AMZ_JSON)


@dataclass
class _Batch:
    path: Path
    fd: int
    region: str
    bucket: str
    key: str
    opened: float
    rows: int = 0
    size: int = 0  # bytes of records


class FirehoseEngine:
    def __init__(self, spool: Path, upload: Uploader, *, max_age_s: float = MAX_AGE_S) -> None:
        self.spool = spool
        self.upload = upload
        self.max_age_s = max_age_s
        self.spool.mkdir(parents=True, exist_ok=True)
        self._open: dict[tuple[str, str, str | None], _Batch] = {}  # (region, stream, error)
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
    def add(self, region: str, stream: Stream, records: list[bytes]) -> None:
        """Commit records to the spool (durable before the call is answered)."""
        failed: list[bytes] = []
        if stream.logs_extraction:
            lines = []
            for record in records:
                try:
                    lines.append(extract_messages(record))
                except ValueError as exc:
                    log.warning("firehose %s: %s; written under its error prefix",
                                stream.name, exc)
                    failed.append(base64.b64encode(record) + b"\n")
            records = [line for line in lines if line]
        if records:
            self._append(region, stream, None, records)
        if failed:
            self._append(region, stream, "decompression-failed", failed)

    def _append(self, region: str, stream: Stream, error: str | None,
                records: list[bytes]) -> None:
        data = b"".join(records)
        rows = data.count(b"\n") if stream.logs_extraction or error else len(records)
        sealed = None
        with self._lock:
            key = (region, stream.name, error)
            batch = self._open.get(key)
            if batch is None:
                batch = self._open_batch(region, stream, error)
                self._open[key] = batch
            os.write(batch.fd, data)
            batch.rows += rows
            batch.size += len(data)
            self.records += rows
            if batch.size >= stream.size_bytes:
                sealed = self._open.pop(key)
        if sealed is not None:
            self._seal(sealed)

    def _open_batch(self, region: str, stream: Stream, error: str | None) -> _Batch:
        self._seq += 1
        now = time.time()
        batch_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{self._instance}-" \
                   f"{self._seq:06d}"
        key = stream.object_key(now, f"{self._instance}-{self._seq:06d}", error)
        path = self.spool / f"{batch_id}.open"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        header = json.dumps({"region": region, "bucket": stream.bucket, "key": key,
                             "gzip": stream.gzip}) + "\n"
        os.write(fd, header.encode())
        return _Batch(path, fd, region, stream.bucket, key, time.monotonic())

    def _seal(self, batch: _Batch) -> None:
        os.close(batch.fd)
        sealed = batch.path.with_suffix(".sealed")
        os.replace(batch.path, sealed)

    # -- background -----------------------------------------------------------------------
    def start(self) -> None:
        # Seal what a crash left open, but upload nothing yet: the daemon starts this before
        # its control plane serves. The loop below uploads sealed batches once it answers.
        self._seal_leftovers()
        self._thread = threading.Thread(target=self._loop, name="firehose", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.flush(only_old=True)
            except Exception:
                log.exception("firehose delivery failed")

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
                    data = (gzip.compress(body, compresslevel=6, mtime=0)
                            if where.get("gzip") else body)
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
            log.error("firehose batch %s: its bucket no longer exists; moved to %s after %d "
                      "attempts", path.name, dead, failed)
            return
        wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failed - 1))
        self._retry[path.name] = (failed, time.monotonic() + wait)
        if failed == 1:
            log.exception("firehose delivery of %s failed; retrying with backoff", path.name)
        else:
            log.warning("firehose delivery of %s failed again (%d attempts, next in %.1fs): %s",
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
            log.exception("final firehose delivery failed; spool kept for the next start")
