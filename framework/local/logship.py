"""Lambda's log delivery and CloudWatch Logs' subscription filters, for the local functions.

Execution environments write stdout/stderr to ``logs/<function>.log`` (kept on disk, appended
by each write: what a handler printed before it answered is on disk when the answer leaves).
Every second the shipper reads what is new in each file and

- sends it, one event per line, to the function's log group ``/aws/lambda/<function>`` in a
  stream ``YYYY/MM/DD/[local]<id>`` (as Lambda's agent does, off the request path);
- for each subscription filter of that group (``PutSubscriptionFilter`` on the control plane)
  whose destination is a Firehose stream, sends the events that match its pattern the way
  CloudWatch Logs does: a gzip-compressed ``DATA_MESSAGE`` envelope per ``PutRecordBatch``
  record, to the stream (whose engine, ``firehose.py``, decompresses and extracts them).
  moto's own delivery (every event, unfiltered, straight into S3) is switched off by the
  daemon (``disable_moto_delivery``).

Where each file was read up to (for its group, and for its subscriptions: a destination that
fails is retried without holding the group back) is saved (``logship.json``) after each round,
and files named there are shipped again after a restart from those offsets: a crash at any
moment loses nothing; the lines of a round whose offsets were not saved yet are sent twice,
which is what CloudWatch Logs and Firehose promise too (at least once). A file seen for the first
time resends its last ``RESHIP_BYTES`` to the log group only (not to subscriptions), so recent
logs stay queryable after the control plane's store was rebuilt.

Filter patterns: the empty pattern and JSON patterns made of ``$.a.b <op> value`` terms joined
by ``&&`` (``=``/``!=`` with a string, a number or ``*``; ``<``, ``<=``, ``>``, ``>=`` with a
number). A pattern outside that subset matches nothing locally, with one error in the log.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
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
RESHIP_BYTES = 1 << 20  # of a log file seen for the first time, sent again to its group
RECORD_BYTES = 900_000  # one Firehose record (limit 1,000 KiB): events of one envelope
OFFSETS_FILE = "logship.json"
FILTERS_TTL_S = 5.0


@dataclass
class _Source:
    path: Path
    region: str
    function: str
    stream: str
    offset: int  # sent to the log group up to here
    delivered: int  # sent to the group's subscriptions up to here
    created: bool = False

    @property
    def group(self) -> str:
        return f"/aws/lambda/{self.function}"


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


# -- filter patterns ------------------------------------------------------------------------
_TERM = re.compile(r'\s*\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*(=|!=|<=|>=|<|>)\s*'
                   r'("(?:[^"\\]|\\.)*"|\*|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*')
Matcher = Callable[[str], bool]


def compile_pattern(pattern: str) -> Matcher | None:
    """A matcher for a CloudWatch Logs filter pattern of the supported subset, else None."""
    text = pattern.strip()
    if not text:
        return lambda _message: True
    if not (text.startswith("{") and text.endswith("}")):
        return None
    terms = []
    for part in text[1:-1].split("&&"):
        m = _TERM.fullmatch(part)
        if m is None:
            return None
        path, op, raw = m.groups()
        value: Any = "*" if raw == "*" else json.loads(raw)
        if op not in ("=", "!=") and not isinstance(value, (int, float)):
            return None
        terms.append((path[1:].split("."), op, value))

    def match(message: str) -> bool:
        try:
            doc = json.loads(message)
        except ValueError:
            return False
        return all(_term(doc, *t) for t in terms)

    return match


def _term(doc: Any, path: list[str], op: str, value: Any) -> bool:
    for name in path:
        if not isinstance(doc, dict) or name not in doc:
            return False
        doc = doc[name]
    if value == "*":
        return (doc is not None) == (op == "=")
    if op in ("=", "!="):
        equal = doc == value and type(doc) is not bool
        return equal == (op == "=")
    if isinstance(doc, bool) or not isinstance(doc, (int, float)):
        return False
    number = float(doc)
    compared: bool = {"<": number < value, "<=": number <= value, ">": number > value,
                      ">=": number >= value}[op]
    return compared


def envelopes(owner: str, group: str, stream: str, filter_name: str,
              events: list[dict[str, Any]]) -> list[bytes]:
    """CloudWatch Logs' subscription records: gzip JSON ``DATA_MESSAGE``s of up to
    ``RECORD_BYTES`` of events each."""
    out: list[bytes] = []
    batch: list[dict[str, Any]] = []
    size = 0

    def seal() -> None:
        body = {"messageType": "DATA_MESSAGE", "owner": owner, "logGroup": group,
                "logStream": stream, "subscriptionFilters": [filter_name], "logEvents": batch}
        out.append(gzip.compress(json.dumps(body, separators=(",", ":")).encode(), mtime=0))

    for event in events:
        n = len(event["message"]) + 100
        if batch and size + n > RECORD_BYTES:
            seal()
            batch, size = [], 0
        batch.append(event)
        size += n
    if batch:
        seal()
    return out


# -- the shipper ----------------------------------------------------------------------------
class LogShipper:
    def __init__(self, client: Callable[[str, str], Any], home: Path | None = None,
                 interval_s: float = 1.0, account: str = "123456789012") -> None:
        self.client = client  # (service, region) → boto3 client of the control plane
        self.interval_s = interval_s
        self.account = account
        self._offsets_path = home / OFFSETS_FILE if home is not None else None
        self._sources: dict[Path, _Source] = {}
        self._lock = threading.Lock()
        self._ship_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._id = uuid.uuid4().hex
        self._filters: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
        self._refused: set[tuple[str, str]] = set()
        self.shipped = 0
        self.delivered = 0  # events sent to subscription destinations
        for path, saved in self._load_offsets().items():
            self._add(Path(path), saved["region"], saved["function"], int(saved["offset"]),
                      int(saved.get("delivered", saved["offset"])))

    def _load_offsets(self) -> dict[str, dict[str, Any]]:
        if self._offsets_path is None:
            return {}
        try:
            data: dict[str, dict[str, Any]] = json.loads(self._offsets_path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _save_offsets(self) -> None:
        if self._offsets_path is None:
            return
        with self._lock:
            data = {str(s.path): {"region": s.region, "function": s.function,
                                  "offset": s.offset, "delivered": s.delivered}
                    for s in self._sources.values()}
        tmp = self._offsets_path.with_name(f".{OFFSETS_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._offsets_path)

    def _add(self, path: Path, region: str, function: str, offset: int,
             delivered: int) -> None:
        stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[local]{self._id}"
        self._sources[path] = _Source(path, region, function, stream, offset, delivered)

    def register(self, path: Path, region: str, function: str) -> None:
        with self._lock:
            if path in self._sources:
                return
            size = path.stat().st_size if path.exists() else 0
            self._add(path, region, function, size, size)
            src = self._sources[path]
        start = _tail_start(path, RESHIP_BYTES)
        if start < size:  # a file from before this shipper: its tail, to the group only
            with contextlib.suppress(Exception):
                self._put_logs(src, start, size)
        self._save_offsets()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="logship", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.ship()

    def ship(self) -> int:
        """Ship what is new in every file; the number of events sent to log groups."""
        with self._ship_lock:
            with self._lock:
                sources = list(self._sources.values())
            sent = 0
            before = [(src.offset, src.delivered) for src in sources]
            for src in sources:
                try:
                    sent += self._ship_one(src)
                except Exception as exc:  # the log group may be gone (destroyed); try later
                    log.debug("log shipping of %s failed: %s", src.path, exc)
            if before != [(src.offset, src.delivered) for src in sources]:
                self._save_offsets()
            self.shipped += sent
            return sent

    def _ship_one(self, src: _Source) -> int:
        try:
            size = src.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size < min(src.offset, src.delivered):
            src.offset = src.delivered = 0  # truncated
        sent = 0
        if src.offset < size:
            sent, src.offset = self._put_logs(src, src.offset, size)
        if src.delivered < size:
            try:
                src.delivered = self._deliver(src, src.delivered, size)
            except Exception as exc:  # retried next round, from the same offset
                log.warning("subscription delivery of %s failed: %s", src.path, exc)
        return sent

    def _events(self, src: _Source, start: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """The events of the whole lines in ``[start, size)`` and the offset after them."""
        with src.path.open("rb") as fh:
            fh.seek(start)
            data = fh.read(size - start)
        end = data.rfind(b"\n")
        if end < 0:
            return [], start
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line[:MAX_EVENT]}
                  for line in data[: end + 1].decode("utf-8", "replace").splitlines()
                  if line.strip()]
        return events, start + end + 1

    def _put_logs(self, src: _Source, start: int, size: int) -> tuple[int, int]:
        """Send the whole lines of ``[start, size)`` to the group; (events, offset after)."""
        events, end = self._events(src, start, size)
        if not events:
            return 0, end
        logs = self.client("logs", src.region)
        if not src.created:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_stream(logGroupName=src.group, logStreamName=src.stream)
            src.created = True
        for first in range(0, len(events), MAX_BATCH):
            logs.put_log_events(logGroupName=src.group, logStreamName=src.stream,
                                logEvents=events[first:first + MAX_BATCH])
        return len(events), end

    def _subscriptions(self, src: _Source) -> list[dict[str, Any]]:
        key = (src.region, src.group)
        cached = self._filters.get(key)
        if cached is not None and time.monotonic() - cached[0] < FILTERS_TTL_S:
            return cached[1]
        logs = self.client("logs", src.region)
        try:
            found = logs.describe_subscription_filters(logGroupName=src.group)
        except logs.exceptions.ResourceNotFoundException:
            found = {"subscriptionFilters": []}
        filters = list(found.get("subscriptionFilters", []))
        self._filters[key] = (time.monotonic(), filters)
        return filters

    def _deliver(self, src: _Source, start: int, size: int) -> int:
        """Send the lines of ``[start, size)`` that match each subscription filter of the
        group to its destination; the offset delivered up to."""
        subscriptions = self._subscriptions(src)
        if not subscriptions:
            return size  # a filter created later sees only what arrives after it
        events, end = self._events(src, start, size)
        for sub in subscriptions:
            arn = str(sub.get("destinationArn", ""))
            pattern = str(sub.get("filterPattern", ""))
            match = compile_pattern(pattern)
            if match is None or ":firehose:" not in arn:
                if (pattern, arn) not in self._refused:
                    self._refused.add((pattern, arn))
                    log.error("subscription filter %s on %s: the local CloudWatch Logs delivers "
                              "JSON patterns ($.field = value && ...) to Firehose streams only; "
                              "not %r to %s", sub.get("filterName"), src.group, pattern, arn)
                continue
            chosen = [{"id": uuid.uuid4().hex, **e} for e in events if match(e["message"])]
            records = envelopes(self.account, src.group, src.stream,
                                str(sub.get("filterName")), chosen) if chosen else []
            firehose = self.client("firehose", src.region)
            stream = arn.rsplit("/", 1)[-1]
            for first in range(0, len(records), 500):
                resp = firehose.put_record_batch(
                    DeliveryStreamName=stream,
                    Records=[{"Data": r} for r in records[first:first + 500]])
                if resp.get("FailedPutCount"):
                    raise RuntimeError(f"{resp['FailedPutCount']} record(s) refused by {stream}")
            self.delivered += len(chosen)
        return end

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.ship()


def disable_moto_delivery() -> None:
    """moto's PutLogEvents hands every event of a subscribed group, unfiltered, to its
    Firehose, which writes it straight to S3 without the stream's processors; the shipper
    above delivers instead (in this process: the daemon hosts moto)."""
    from moto.firehose.models import FirehoseBackend

    def send_log_event(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    FirehoseBackend.send_log_event = send_log_event  # type: ignore[method-assign]


def patch_moto_filters() -> None:
    """PutSubscriptionFilter with a filter name the group already has replaces that filter,
    as CloudWatch Logs does; moto checks the limit of two filters a group first, so changing
    one of a group's two filters failed with LimitExceededException."""
    from moto.logs.models import LogGroup

    original = LogGroup.put_subscription_filter

    def put_subscription_filter(self: Any, filter_name: str, *args: Any, **kwargs: Any) -> None:
        existing = self.subscription_filters.get(filter_name)
        if existing is not None:
            existing.update(*args, **kwargs)
            return None
        return original(self, filter_name, *args, **kwargs)

    LogGroup.put_subscription_filter = put_subscription_filter  # type: ignore[method-assign]


def index_moto_streams() -> None:
    """moto's log streams read in time to what is new, not to all they hold: moto scans every
    event of a stream for each ``GetLogEvents`` (the metrics engine's read of the last second)
    and twice more for each ``DescribeLogStreams`` (first and last timestamps), so a stream
    of a day's traffic cost tens of milliseconds a second of the daemon's lock on Python.
    Each stream now keeps its first and last timestamps as events are added, and a read from a
    ``startTime`` starts at it by bisection while the stream's events are in time order (the
    shipper's are); answers, tokens included, stay moto's."""
    from bisect import bisect_left
    from types import SimpleNamespace

    from moto.logs.models import LogStream

    if getattr(LogStream, "_mlops_indexed", False):
        return
    lock = threading.Lock()
    standard_get, standard_update = LogStream.get_log_events, LogStream._update

    def catch_up(stream: Any) -> tuple[int, int | None, int | None, bool]:
        """(events counted, first, last, in time order) of the stream's events, from those
        added since."""
        with lock:
            events = stream.events
            seen, first, last, ordered = getattr(stream, "_mlops_index", (0, None, None, True))
            if len(events) < seen:  # not only appended to: start over
                seen, first, last, ordered = 0, None, None, True
            added = events[seen:]  # moto may append more meanwhile: counted next time
            for event in added:
                ts = event.timestamp
                ordered = ordered and (last is None or ts >= last)
                first = ts if first is None or ts < first else first
                last = ts if last is None or ts > last else last
            stream._mlops_index = (seen + len(added), first, last, ordered)
            return stream._mlops_index  # type: ignore[no-any-return]

    def _update(self: Any) -> None:
        _, self.first_event_timestamp, self.last_event_timestamp, _ = catch_up(self)

    def get_log_events(self: Any, start_time: Any, *args: Any, **kwargs: Any) -> Any:
        counted, _, _, ordered = catch_up(self)
        if start_time and ordered:
            # In the events counted (in time order), those before start_time; moto's filter
            # drops them, and any added since are still filtered by it: the same answer.
            start = bisect_left(self.events, start_time, hi=counted,
                                key=lambda event: event.timestamp)
            return standard_get(SimpleNamespace(events=self.events[start:]), start_time,  # type: ignore[arg-type]
                                *args, **kwargs)
        return standard_get(self, start_time, *args, **kwargs)

    _update.__wrapped__ = standard_update  # type: ignore[attr-defined]
    get_log_events.__wrapped__ = standard_get  # type: ignore[attr-defined]
    LogStream._update = _update  # type: ignore[method-assign]
    LogStream.get_log_events = get_log_events  # type: ignore[method-assign]
    LogStream._mlops_indexed = True  # type: ignore[attr-defined]
