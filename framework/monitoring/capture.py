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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


def _lines(store: Store, key: str, log: ReadLog) -> Iterator[dict[str, Any]]:
    data = store.get(key)
    if data is None:
        return
    try:
        text = gzip.decompress(data) if key.endswith(".gz") else data
        lines = text.decode("utf-8").splitlines()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        log.issue("corrupt_file", f"{key}: cannot be read ({type(e).__name__}: {e}); skipped",
                  key=key)
        return
    log.files += 1
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
            yield rec
        else:
            bad += 1
    if bad:
        log.issue("corrupt_records", f"{key}: {bad} line(s) are not JSON records; skipped",
                  key=key, lines=bad)


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


def read_feedback(store: Store, endpoint: str, window: Window,
                  log: ReadLog) -> dict[tuple[str, int], Any]:
    """Labels by ``(request_id, row)`` for the window (and a few days after it)."""
    labels: dict[tuple[str, int], Any] = {}
    for key in _keys(store, f"feedback/{endpoint}", window, FEEDBACK_LAG_DAYS):
        for rec in _lines(store, key, log):
            row = rec.get("row", 0)
            label = rec.get("label")
            if "request_id" not in rec or label is None or isinstance(label, dict | list):
                log.skip("feedback records without a request id or a label")
            elif type(row) is not int or row < 0:
                log.skip("feedback records whose row is not a non-negative integer")
            else:
                labels[(str(rec["request_id"]), row)] = label
    return labels
