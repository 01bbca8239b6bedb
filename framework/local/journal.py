"""A write journal in front of moto: the local control plane's persistence.

moto keeps everything in memory. This WSGI middleware appends every *write* request to
``journal.jsonl`` (fsynced) before dispatching it, and seeds moto's random generator from the
request's sequence number, so replaying the journal through the same app on start rebuilds
the same resources with the same generated IDs.

Reads run concurrently; a write runs alone (a readers-writer lock), so nothing else can draw
from moto's random generator between the seed and the write's own draws.

CloudWatch Logs' ``PutLogEvents`` and ``CreateLogStream`` are applied but not journaled: the
daemon's log shipper makes them from the worker log files kept on disk (and sends their
recent tail again after a restart, see ``logship.py``), and they would otherwise make the
journal grow with traffic (four log lines per request) and every restart replay them all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .files import JOURNAL_BLOBS_DIR

log = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

READ_PREFIXES = ("Get", "List", "Describe", "Head")
# Environ keys that describe the request (besides HTTP_* headers) and are journaled.
_REQUEST_KEYS = ("CONTENT_TYPE", "CONTENT_LENGTH")
_PRESERVED_NAMES_KEY = "moto.preserved_header_names"
_SEED_BASE = 0x6D6C6F7073  # "mlops"
PROGRESS_EVERY_S = 0.5  # how often a replay says how far it is


def seed_for(seq: int) -> int:
    """The moto random seed used for the write with sequence number ``seq``."""
    return _SEED_BASE * 1_000_003 + seq


class RWLock:
    """Many readers or one writer; waiting writers block new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def action_name(environ: Environ, body: bytes) -> str | None:
    """The API action of a query/JSON-protocol request, if it names one."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    if "Action" in query:
        return query["Action"][0]
    if str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    return None


UNJOURNALED = frozenset({"PutLogEvents", "CreateLogStream"})  # CloudWatch Logs (Logs_*)


def is_unjournaled(environ: Environ) -> bool:
    """A write the journal leaves out (see the module's docstring)."""
    target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
    return target.startswith("Logs_") and target.rsplit(".", 1)[-1] in UNJOURNALED


def is_write(environ: Environ, body: bytes) -> bool:
    """GET/HEAD/OPTIONS and Get*/List*/Describe*/Head* actions read; everything else writes."""
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    action = action_name(environ, body)
    return not (action and action.startswith(READ_PREFIXES))


def read_body(environ: Environ) -> bytes:
    """Read the whole request body and put it back as a re-readable stream."""
    stream = environ.get("wsgi.input")
    body = b""
    if stream is not None:
        if environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = stream.read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


def json_answer(start_response: StartResponse, status: int, payload: Any,
                headers: list[tuple[str, str]] | None = None,
                content_type: str = "application/json") -> list[bytes]:
    """A JSON answer from a WSGI engine in front of moto (202/204 with no payload: no body)."""
    data = b"" if payload is None and status in (202, 204) else json.dumps(payload).encode()
    start_response(f"{status} {HTTPStatus(status).phrase}", [
        ("Content-Type", content_type), ("Content-Length", str(len(data))), *(headers or [])])
    return [data]


INLINE_BODY_MAX = 64 * 1024  # larger bodies (layer and model uploads) are kept as files


class Journal:
    """Append-only JSON-lines file of write requests. A body over ``INLINE_BODY_MAX`` is
    kept raw in ``journal-blobs/<sha256>`` beside it (written before the line that names
    it): base64 inside JSON costs the local AWS about a CPU-second per 50 MB uploaded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.blobs = path.parent / JOURNAL_BLOBS_DIR
        self.seq = 0

    def body_fields(self, body: bytes) -> dict[str, str]:
        """The journal entry's fields that hold ``body``."""
        if len(body) <= INLINE_BODY_MAX:
            return {"body": base64.b64encode(body).decode()}
        name = hashlib.sha256(body).hexdigest()
        blob = self.blobs / name
        if not blob.exists():
            self.blobs.mkdir(exist_ok=True)
            partial = blob.with_suffix(".partial")
            with partial.open("wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            partial.replace(blob)
        return {"body_file": name}

    def body(self, entry: dict[str, Any]) -> bytes | None:
        """The body an entry recorded; None when its blob is missing."""
        if "body_file" not in entry:
            return base64.b64decode(entry.get("body", ""))
        blob = self.blobs / str(entry["body_file"])
        return blob.read_bytes() if blob.exists() else None

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out: list[dict[str, Any]] = []
        with self.path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    # A crash mid-append leaves a torn last line; the write never ran.
                    log.warning("journal line %d is unreadable; ignored", lineno)
        return out

    def append(self, entry: dict[str, Any]) -> None:
        data = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self.path.open("ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def _record(environ: Environ, seq: int) -> dict[str, Any]:
    headers = {k: v for k, v in environ.items() if k.startswith("HTTP_") and isinstance(v, str)}
    for key in _REQUEST_KEYS:
        if environ.get(key):
            headers[key] = str(environ[key])
    entry: dict[str, Any] = {
        "seq": seq,
        "method": environ.get("REQUEST_METHOD", "GET"),
        "path": environ.get("PATH_INFO", ""),
        "query": environ.get("QUERY_STRING", ""),
        "raw_uri": environ.get("RAW_URI") or environ.get("REQUEST_URI") or "",
        "headers": headers,
    }
    preserved = environ.get(_PRESERVED_NAMES_KEY)
    if preserved:
        entry["preserved_header_names"] = preserved
    return entry


def _environ_from(entry: dict[str, Any], body: bytes) -> Environ:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(method=entry["method"], path="/")
    try:
        environ: Environ = builder.get_environ()
    finally:
        builder.close()
    environ.update(entry["headers"])
    environ["PATH_INFO"] = entry["path"]
    environ["QUERY_STRING"] = entry["query"]
    if entry.get("raw_uri"):
        environ["RAW_URI"] = environ["REQUEST_URI"] = entry["raw_uri"]
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    if "preserved_header_names" in entry:
        environ[_PRESERVED_NAMES_KEY] = entry["preserved_header_names"]
    return environ


class JournalMiddleware:
    """WSGI middleware: journal + seed every write, serialize writes against reads."""

    def __init__(
        self,
        app: WSGIApp,
        journal: Journal,
        seed: Callable[[int], None],
        prepare: Callable[[Environ], None] | None = None,
    ) -> None:
        self.app = app
        self.journal = journal
        self.seed = seed
        self.prepare = prepare  # e.g. create the target backend before seeding
        self.lock = RWLock()
        self._seq_lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = read_body(environ)
        if not is_write(environ, body):
            with self.lock.read():
                return _drain(self.app(environ, start_response))
        if is_unjournaled(environ):
            with self.lock.write():  # alone, like any write; its random draws are its own
                return _drain(self.app(environ, start_response))
        with self.lock.write():
            self.journal.seq += 1
            seq = self.journal.seq
            self.journal.append({**_record(environ, seq), **self.journal.body_fields(body)})
            return self._dispatch(environ, start_response, seq)

    def _dispatch(self, environ: Environ, start_response: StartResponse, seq: int) -> list[bytes]:
        if self.prepare is not None:
            try:
                self.prepare(environ)
            except Exception:  # best effort: a failure here only costs determinism
                log.debug("prepare failed for write %d", seq, exc_info=True)
        self.seed(seed_for(seq))
        return _drain(self.app(environ, start_response))

    def replay(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-apply the journal (before serving). Returns the number of writes replayed.
        ``progress(done, total)`` is called before the first write and then about twice a
        second: a big journal takes minutes, and whoever waits on the start sees it move."""
        count = 0
        entries = self.journal.entries()
        said = 0.0
        for done, entry in enumerate(entries):
            if progress is not None and time.monotonic() - said >= PROGRESS_EVERY_S:
                progress(done, len(entries))
                said = time.monotonic()
            seq = int(entry["seq"])
            body = self.journal.body(entry)
            self.journal.seq = max(self.journal.seq, seq)
            if body is None:
                log.warning("journaled write %d lost its body (%s): not replayed", seq,
                            self.journal.blobs / str(entry["body_file"]))
                continue
            environ = _environ_from(entry, body)
            status: list[str] = []
            start_response = _collector(status)

            with self.lock.write():
                try:
                    self._dispatch(environ, start_response, seq)
                except Exception:
                    log.exception("replay of write %d failed", seq)
            if status and not status[0].startswith(("2", "3")):
                log.info("replayed write %d answered %s", seq, status[0])
            self.journal.seq = max(self.journal.seq, seq)
            count += 1
        return count


def _collector(status: list[str]) -> StartResponse:
    def start_response(s: str, headers: Any, exc_info: Any = None) -> None:
        status.append(s)

    return start_response


def _drain(result: Iterable[bytes]) -> list[bytes]:
    """Run the app's response iterable to completion while the lock is held."""
    try:
        return list(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
