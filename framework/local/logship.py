"""Ship worker logs to CloudWatch Logs on the control plane, as Lambda's agent does.

Workers write stdout/stderr to ``logs/<function>.log`` (kept on disk). Every second the
shipper reads what is new in each registered file and sends it, one event per line, to the
function's log group ``/aws/lambda/<function>`` in a stream ``YYYY/MM/DD/[local]<id>`` — off
the request path. The handler's per-request JSON lines thus become queryable structured logs.

The control plane's journal does not keep these events (the files are their source): when a
file is first registered after the daemon starts, its last ``RESHIP_BYTES`` (whole lines) are
sent again, so recent logs are queryable after a restart too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # CloudWatch: at most 10,000 events / 1 MB per call
MAX_EVENT = 200_000
RESHIP_BYTES = 1 << 20  # of each log file, sent again after a restart


@dataclass
class _Source:
    path: Path
    region: str
    group: str
    stream: str
    offset: int
    created: bool = False


def _tail_start(path: Path, limit: int) -> int:
    """The offset of the first whole line within the last ``limit`` bytes of ``path``."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size <= limit:
        return 0
    with path.open("rb") as fh:
        fh.seek(size - limit - 1)
        data = fh.read(limit + 1)
    newline = data.find(b"\n")
    return size if newline < 0 else size - limit - 1 + newline + 1


class LogShipper:
    def __init__(self, client: Callable[[str], Any], interval_s: float = 1.0) -> None:
        self.client = client  # region → boto3 logs client
        self.interval_s = interval_s
        self._sources: dict[Path, _Source] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._id = uuid.uuid4().hex
        self.shipped = 0

    def register(self, path: Path, region: str, function: str) -> None:
        with self._lock:
            if path in self._sources:
                return
            offset = _tail_start(path, RESHIP_BYTES)
            stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[local]{self._id}"
            self._sources[path] = _Source(path, region, f"/aws/lambda/{function}", stream,
                                          offset)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="logship", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.ship()

    def ship(self) -> int:
        with self._lock:
            sources = list(self._sources.values())
        sent = 0
        for src in sources:
            try:
                sent += self._ship_one(src)
            except Exception as exc:  # the log group may be gone (destroyed); try later
                log.debug("log shipping of %s failed: %s", src.path, exc)
        self.shipped += sent
        return sent

    def _ship_one(self, src: _Source) -> int:
        try:
            size = src.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size < src.offset:
            src.offset = 0  # truncated
        if size == src.offset:
            return 0
        with src.path.open("rb") as fh:
            fh.seek(src.offset)
            data = fh.read(size - src.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        chunk = data[: end + 1]
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line[:MAX_EVENT]}
                  for line in chunk.decode("utf-8", "replace").splitlines() if line.strip()]
        client = self.client(src.region)
        if not src.created:
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_stream(logGroupName=src.group, logStreamName=src.stream)
            src.created = True
        for start in range(0, len(events), MAX_BATCH):
            client.put_log_events(logGroupName=src.group, logStreamName=src.stream,
                                  logEvents=events[start:start + MAX_BATCH])
        src.offset += len(chunk)
        return len(events)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.ship()
