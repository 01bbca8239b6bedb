"""Read captured requests and feedback for a window, file by file, noting every problem.

Capture files are gzip JSON lines under ``capture/{endpoint}/dt=YYYY-MM-DD/``; feedback files
likewise under ``feedback/``. A file that cannot be read (bad gzip, bad JSON) is skipped *and
reported*; so is a line without a parseable time. Records are yielded one at a time, so callers
fold them into profiles without holding the window in memory.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from framework.monitoring.columns import unpack
from framework.monitoring.spec import Window, parse_time
from framework.monitoring.store import Store

FEEDBACK_LAG_DAYS = 2  # labels may arrive this many days after the predictions
NO_TIME = "capture records without a valid time"


@dataclass
class ReadLog:
    files: int = 0
    records: int = 0
    outside: int = 0
    repeated: int = 0  # records delivered again (delivery is at least once); dropped
    shadow: int = 0  # a shadow version's rows (copies of requests served by another); left out
    issues: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> records skipped

    def issue(self, kind: str, message: str, **where: Any) -> None:
        self.issues.append({"kind": kind, "message": message, **where})

    def skip(self, reason: str) -> None:
        """Count one record that cannot be used (``reason`` completes "records that ...")."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def skipped_issue(self) -> dict[str, Any] | None:
        """One issue saying how many records were skipped, and why; None when none were."""
        if not self.skipped:
            return None
        total = sum(self.skipped.values())
        why = "; ".join(f"{n} {reason}" for reason, n in
                        sorted(self.skipped.items(), key=lambda item: -item[1]))
        return {"kind": "skipped_records", "count": total, "reasons": dict(self.skipped),
                "message": f"{total} record{'s' if total != 1 else ''} could not be used and "
                           f"{'were' if total != 1 else 'was'} skipped: {why}"}


def _keys(store: Store, root: str, window: Window, extra_days: int = 0) -> list[str]:
    keys: list[str] = []
    for day in window.days(extra_days):
        keys.extend(store.list(f"{root}/dt={day.isoformat()}/"))
    return keys


def _parse(data: bytes, key: str) -> tuple[list[dict[str, Any]], int]:
    """An object's JSON records and how many of its lines are not one; raises ``ValueError``
    (saying why) when the object cannot be read at all."""
    try:
        text = gzip.decompress(data) if key.endswith(".gz") else data
        lines = text.decode("utf-8").splitlines()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise ValueError(f"cannot be read ({type(e).__name__}: {e})") from e
    records: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict):
            records.append(unpack(rec))
        else:
            bad += 1
    return records, bad


def _logged(key: str, parsed: tuple[list[dict[str, Any]], int] | str | None,
            log: ReadLog) -> list[dict[str, Any]]:
    """What reading an object tells the log (``parsed``: its records, or why it cannot be
    read, or None when it is gone); its records."""
    if parsed is None:
        return []
    if isinstance(parsed, str):
        log.issue("corrupt_file", f"{key}: {parsed}; skipped", key=key)
        return []
    records, bad = parsed
    log.files += 1
    if bad:
        log.issue("corrupt_records", f"{key}: {bad} line(s) are not JSON records; skipped",
                  key=key, lines=bad)
    return records


def _fetch(store: Store, key: str) -> tuple[list[dict[str, Any]], int] | str | None:
    data = store.get(key)
    if data is None:
        return None
    try:
        return _parse(data, key)
    except ValueError as e:
        return str(e)


def _lines(store: Store, key: str, log: ReadLog) -> Iterator[dict[str, Any]]:
    yield from _logged(key, _fetch(store, key), log)


def read_captures(store: Store, endpoint: str, window: Window,
                  log: ReadLog) -> Iterator[dict[str, Any]]:
    """Capture records of ``endpoint`` whose time falls in ``window``, each (request_id, row)
    once; the rows a shadow version captured (``"shadow": true``) are not the endpoint's
    traffic and are left out."""
    seen: set[int] = set()
    for key in _keys(store, f"capture/{endpoint}", window):
        for rec in _lines(store, key, log):
            try:
                when = parse_time(str(rec["time"]))
            except (KeyError, ValueError):
                log.skip(NO_TIME)
                continue
            if not window.contains(when):
                log.outside += 1
                continue
            if rec.get("shadow") is True:  # a shadow's answer to a copy: not what was served
                log.shadow += 1
                continue
            if _repeated(rec, seen, log):
                continue
            log.records += 1
            yield rec


def _repeated(rec: dict[str, Any], seen: set[int], log: ReadLog) -> bool:
    """Whether ``rec``'s (request_id, row) was read already (CloudWatch Logs subscriptions and
    Firehose deliver at least once); a 64-bit hash of the pair is kept, not the pair."""
    ident = hash((rec.get("request_id"), rec.get("row"), rec.get("shadow") is True))
    if ident in seen:
        log.repeated += 1
        return True
    seen.add(ident)
    return False


class CaptureCache:
    """Capture records of one endpoint for a caller that asks again and again about a window
    that grows (a rollout's watch, once a second): each object is listed every time but read
    once (capture objects are written once, under a new key)."""

    def __init__(self, store: Store, endpoint: str) -> None:
        self.store = store
        self.endpoint = endpoint
        self._objects: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
        self.reads = 0  # objects fetched, ever

    def read(self, window: Window, log: ReadLog) -> Iterator[dict[str, Any]]:
        seen: set[int] = set()
        for key in _keys(self.store, f"capture/{self.endpoint}", window):
            records = self._objects.get(key)
            if records is None:
                records = self._objects[key] = []
                self.reads += 1
                for rec in _lines(self.store, key, log):
                    try:
                        records.append((parse_time(str(rec["time"])), rec))
                    except (KeyError, ValueError):
                        log.skip(NO_TIME)
            for when, rec in records:
                if not window.contains(when):
                    log.outside += 1
                elif not _repeated(rec, seen, log):
                    log.records += 1
                    yield rec


# -- feedback -------------------------------------------------------------------------------
#
# The rule for late labels: a label counts in the window of the prediction it labels (joined by
# request id and row), whenever it arrived, provided it arrived by the end of the
# FEEDBACK_LAG_DAYS-th day after the window's last day (UTC). A run reads the feedback objects
# of the window's days and of those lag days (feedback lands under the day it arrived); a label
# that arrives after a window was reported counts when that window is run again
# (``mlops monitor run <name> --window START..END``), which reads those days anew.
FEEDBACK_FETCHERS = 16  # feedback objects fetched and parsed at once (a thread pool)
T = TypeVar("T")
NO_LABEL = "feedback records without a request id or a label"
BAD_ROW = "feedback records whose row is not a non-negative integer"


@dataclass(frozen=True)
class Label:
    """One feedback record: a label for row ``row`` of request ``request_id``, posted at
    ``time`` (ISO, UTC; ``""`` when the record has none)."""

    request_id: str
    row: int
    label: Any
    time: str


def feedback_keys(store: Store, endpoint: str, window: Window) -> list[str]:
    """The feedback objects a run of ``window`` reads: its days and the FEEDBACK_LAG_DAYS
    after its last."""
    return _keys(store, f"feedback/{endpoint}", window, FEEDBACK_LAG_DAYS)


def feedback_objects(store: Store, endpoint: str, window: Window, log: ReadLog,
                     convert: Callable[[list[Label]], T]) -> Iterator[T]:
    """``convert`` of the valid labels of each feedback object ``feedback_keys`` names, object
    by object in key order. A thread pool fetches, parses and converts ``FEEDBACK_FETCHERS``
    objects at a time (S3 GETs wait on the network), so what is held is at most that many
    objects' ``convert`` results; what cannot be used is counted in ``log``."""
    keys = feedback_keys(store, endpoint, window)
    if not keys:
        return

    def work(key: str) -> tuple[int | str | None, T | None, dict[str, int]]:
        parsed = _fetch(store, key)
        if parsed is None or isinstance(parsed, str):
            return parsed, None, {}
        records, bad = parsed
        skipped: dict[str, int] = {}
        return bad, convert(_labels(records, skipped)), skipped

    with ThreadPoolExecutor(min(FEEDBACK_FETCHERS, len(keys)),
                            thread_name_prefix="feedback") as pool:
        for start in range(0, len(keys), FEEDBACK_FETCHERS):
            part = keys[start:start + FEEDBACK_FETCHERS]
            for key, (bad, converted, skipped) in zip(part, pool.map(work, part), strict=True):
                _logged(key, ([], bad) if isinstance(bad, int) else bad, log)
                for reason, n in skipped.items():
                    log.skipped[reason] = log.skipped.get(reason, 0) + n
                if converted is not None:
                    yield converted


def _labels(records: list[dict[str, Any]], skipped: dict[str, int]) -> list[Label]:
    out: list[Label] = []
    for rec in records:
        row = rec.get("row", 0)
        label = rec.get("label")
        rid = rec.get("request_id")
        if not isinstance(rid, str) or not rid or label is None or isinstance(
                label, dict | list):
            skipped[NO_LABEL] = skipped.get(NO_LABEL, 0) + 1
        elif type(row) is not int or row < 0:
            skipped[BAD_ROW] = skipped.get(BAD_ROW, 0) + 1
        else:
            when = rec.get("time")
            out.append(Label(rid, row, label, when if isinstance(when, str) else ""))
    return out


def read_feedback(store: Store, endpoint: str, window: Window,
                  log: ReadLog) -> dict[tuple[str, int], Any]:
    """Labels by ``(request_id, row)`` for the window (the latest posted of each), as a dict:
    for a reader of every row (the data export); the monitor joins labels without one
    (``framework.monitoring.labels``)."""
    latest: dict[tuple[str, int], tuple[str, Any]] = {}
    for labels in feedback_objects(store, endpoint, window, log, list):
        for lab in labels:
            key = (lab.request_id, lab.row)
            had = latest.get(key)
            if had is None or lab.time >= had[0]:
                latest[key] = (lab.time, lab.label)
    return {key: label for key, (_, label) in latest.items()}
