"""The local mail outbox: every SES message sent to the local control plane, kept as ``.eml``.

``MailMiddleware`` sits in front of the control plane's WSGI app (outside the write journal,
so a journal replay on start never writes a message twice). For SES v1 ``SendRawEmail``
(query API, ``RawMessage.Data``) and SESv2 ``SendEmail`` with ``Content.Raw`` it decodes the
raw MIME and writes it, byte for byte, to ``<home>/outbox/<UTC time>-<n>-<id>.eml``
(atomically: temporary file, fsync, rename) *before* moto answers, so a message is never lost
whatever moto says. A sidecar ``<same name>.json`` records the envelope (source,
destinations), moto's answer (HTTP status, MessageId) and the relay's outcome.

With ``MLOPS_SMTP_RELAY=host:port`` in the daemon's environment, accepted messages are also
relayed to that SMTP server by a background thread: the ``.eml`` bytes with CRLF line endings
(SMTP's wire form), envelope from the SES request, retried with exponential backoff
(``MLOPS_SMTP_RELAY_ATTEMPTS``, default 5; ``MLOPS_SMTP_RELAY_BACKOFF_S``, default 1.0).
Every attempt that fails, and every success, is a line in ``<home>/outbox/relay.log``; the
``.eml`` stays whatever happens. Messages still pending when the daemon stopped are relayed
on the next start.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import email.utils
import itertools
import json
import logging
import os
import queue
import re
import smtplib
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .files import OUTBOX_DIR
from .journal import Environ, StartResponse, WSGIApp, _drain, action_name, read_body

log = logging.getLogger(__name__)

RELAY_LOG = "relay.log"
_V2_SEND = "/v2/email/outbound-emails"
_MESSAGE_ID = re.compile(rb"<MessageId>([^<]+)</MessageId>")
_counter = itertools.count(1)


@dataclass(frozen=True)
class OutgoingMessage:
    """A raw message as an SES API call carried it."""

    raw: bytes
    source: str
    destinations: tuple[str, ...]
    api: str  # ses:SendRawEmail | sesv2:SendEmail


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return None


def _from_headers(raw: bytes) -> tuple[str, tuple[str, ...]]:
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    sender = email.utils.parseaddr(str(msg.get("From", "")))[1]
    rcpts = email.utils.getaddresses([str(v) for h in ("To", "Cc", "Bcc")
                                      for v in msg.get_all(h, [])])
    return sender, tuple(a for _, a in rcpts if a)


def extract(environ: Environ, body: bytes) -> OutgoingMessage | None:
    """The raw message of an SES send request, or None for any other request."""
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if method != "POST":
        return None
    if str(environ.get("PATH_INFO", "")).rstrip("/") == _V2_SEND:
        try:
            data = json.loads(body or b"{}")
            raw = _b64(str(data["Content"]["Raw"]["Data"]))
        except (ValueError, KeyError, TypeError):
            return None
        if raw is None:
            return None
        sender, headers_to = _from_headers(raw)
        dest = data.get("Destination") or {}
        listed = tuple(a for k in ("ToAddresses", "CcAddresses", "BccAddresses")
                       for a in dest.get(k) or [])
        return OutgoingMessage(raw, str(data.get("FromEmailAddress") or sender),
                               listed or headers_to, "sesv2:SendEmail")
    if action_name(environ, body) != "SendRawEmail":
        return None
    form = parse_qs(body.decode("utf-8", "replace"))
    form.update({k: v for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()
                 if k not in form})
    data_b64 = (form.get("RawMessage.Data") or [""])[0]
    raw = _b64(data_b64) if data_b64 else None
    if raw is None:
        return None
    sender, headers_to = _from_headers(raw)
    listed = tuple(v[0] for k, v in sorted(form.items(), key=lambda kv: _member(kv[0]))
                   if k.startswith("Destinations.member."))
    return OutgoingMessage(raw, (form.get("Source") or [sender])[0], listed or headers_to,
                           "ses:SendRawEmail")


def _member(key: str) -> tuple[str, int]:
    head, _, index = key.rpartition(".")
    return (head, int(index)) if index.isdigit() else (key, 0)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Outbox:
    """The ``outbox`` folder: ``.eml`` files, their ``.json`` sidecars and ``relay.log``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._lock = threading.Lock()

    def messages(self) -> list[Path]:
        """Every kept message, oldest first (names sort by time)."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.eml") if not p.name.startswith("."))

    def keep(self, msg: OutgoingMessage) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        stem = f"{now:%Y%m%dT%H%M%S}{now.microsecond:06d}Z-{next(_counter):06d}-" \
               f"{uuid.uuid4().hex[:8]}"
        path = self.dir / f"{stem}.eml"
        _write_atomic(path, msg.raw)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        self.update(path, {"api": msg.api, "source": msg.source,
                           "destinations": list(msg.destinations),
                           "received_at": now.isoformat(), "status": None})
        log.info("mail: kept %s (%s -> %s)", path.name, msg.source, ", ".join(msg.destinations))
        return path

    def meta(self, eml: Path) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(eml.with_suffix(".json").read_text())
            return data
        except (OSError, ValueError):
            return {}

    def update(self, eml: Path, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            data = {**self.meta(eml), **changes}
            _write_atomic(eml.with_suffix(".json"), json.dumps(data, indent=2).encode())
            return data

    def log_relay(self, line: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.dir / RELAY_LOG).open("a") as fh:
            fh.write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}\n")


def crlf(raw: bytes) -> bytes:
    """SMTP's wire form: every line ending CRLF."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


class Relay:
    """Relays kept messages to an SMTP server, with retries; never deletes anything."""

    def __init__(self, outbox: Outbox, host: str, port: int, *, attempts: int = 5,
                 backoff_s: float = 1.0, timeout_s: float = 10.0) -> None:
        self.outbox = outbox
        self.host, self.port = host, port
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smtp-relay", daemon=True)

    @classmethod
    def from_env(cls, outbox: Outbox, env: dict[str, str] | None = None) -> Relay | None:
        env = dict(os.environ) if env is None else env
        target = env.get("MLOPS_SMTP_RELAY", "").strip()
        if not target:
            return None
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"MLOPS_SMTP_RELAY={target!r}: expected host:port")
        return cls(outbox, host, int(port),
                   attempts=int(env.get("MLOPS_SMTP_RELAY_ATTEMPTS") or 5),
                   backoff_s=float(env.get("MLOPS_SMTP_RELAY_BACKOFF_S") or 1.0))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        for eml in self.outbox.messages():  # left pending by a daemon that stopped
            if (self.outbox.meta(eml).get("relay") or {}).get("state") == "pending":
                self._queue.put(eml)
        self._thread.start()

    def submit(self, eml: Path) -> None:
        self.outbox.update(eml, {"relay": {"state": "pending", "to": self.address}})
        self._queue.put(eml)

    def close(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            eml = self._queue.get()
            if eml is None:
                return
            try:
                self.deliver(eml)
            except Exception:
                log.exception("mail: relay of %s failed unexpectedly", eml.name)

    def deliver(self, eml: Path) -> bool:
        meta = self.outbox.meta(eml)
        raw = eml.read_bytes()
        sender = str(meta.get("source") or "")
        rcpts = [str(r) for r in meta.get("destinations") or []]
        if not sender or not rcpts:
            sender, headers_to = _from_headers(raw)
            rcpts = rcpts or list(headers_to)
        for attempt in range(1, self.attempts + 1):
            try:
                with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                    refused = smtp.sendmail(sender, rcpts, crlf(raw))
                note = f"; refused {sorted(refused)}" if refused else ""
                self.outbox.log_relay(f"{eml.name} relayed to {self.address} "
                                      f"(attempt {attempt}){note}")
                self.outbox.update(eml, {"relay": {"state": "sent", "to": self.address,
                                                   "attempts": attempt}})
                return True
            except (OSError, smtplib.SMTPException) as e:
                error = f"{type(e).__name__}: {e}"
                permanent = isinstance(e, smtplib.SMTPResponseException) and e.smtp_code >= 500
                self.outbox.log_relay(f"{eml.name} attempt {attempt}/{self.attempts} to "
                                      f"{self.address} failed: {error}")
                if permanent or attempt == self.attempts:
                    self.outbox.log_relay(f"{eml.name} NOT relayed after {attempt} attempt(s); "
                                          f"the message stays in the outbox")
                    self.outbox.update(eml, {"relay": {"state": "failed", "to": self.address,
                                                       "attempts": attempt, "error": error}})
                    return False
                if self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                    return False  # shutting down: still pending, retried on the next start
        return False


class MailMiddleware:
    """WSGI middleware: keep every SES send in the outbox before the app answers."""

    def __init__(self, app: WSGIApp, outbox: Outbox, relay: Relay | None = None) -> None:
        self.app = app
        self.outbox = outbox
        self.relay = relay

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = read_body(environ)
        msg = extract(environ, body)
        if msg is None:
            return self.app(environ, start_response)
        try:
            eml = self.outbox.keep(msg)
        except OSError:
            log.exception("mail: could not keep a message in %s", self.outbox.dir)
            return self.app(environ, start_response)
        status: list[str] = []

        def recording(s: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(s)
            return start_response(s, headers, exc_info) if exc_info is not None \
                else start_response(s, headers)

        result = _drain(self.app(environ, recording))
        code = int(status[0].split()[0]) if status else 0
        answer = b"".join(result)
        message_id = None
        found = _MESSAGE_ID.search(answer)
        if found:
            message_id = found.group(1).decode()
        elif answer.startswith(b"{"):
            with contextlib.suppress(ValueError):
                message_id = json.loads(answer).get("MessageId")
        accepted = 200 <= code < 300
        self.outbox.update(eml, {"status": code, "message_id": message_id,
                                 **({} if accepted else {"rejected": answer.decode(
                                     "utf-8", "replace")[:2000]})})
        if accepted and self.relay is not None:
            self.relay.submit(eml)
        elif not accepted:
            log.info("mail: %s was rejected by SES (HTTP %d); kept anyway", eml.name, code)
        return result


def outbox_of(home: Path) -> Outbox:
    return Outbox(home / OUTBOX_DIR)
