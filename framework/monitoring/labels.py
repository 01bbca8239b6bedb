"""Labels at scale: feedback joined to captured predictions by request id, without a map.

The join is a hash join whose build side is the labels and whose probe side is the window's
predictions, streamed:

1. **Labels** (``read_labels``): the feedback objects of the window's days and of the
   ``FEEDBACK_LAG_DAYS`` after (``framework.monitoring.capture``: the rule for late labels),
   fetched and parsed in parallel. Each label becomes three numbers — a 64-bit hash of
   ``(request_id, row)``, its label (a code into the labels' dictionary, or its value for a
   regression), the time it was posted — appended to one of ``PARTITIONS`` partitions chosen
   by the hash's top bits. Each partition is then sorted and de-duplicated on its own (the
   latest posted label of a key wins: a repeated delivery or a corrected label ends as one),
   one partition at a time, into its slice of one array sorted by hash (the partitions are
   contiguous ranges of it): a sort's scratch arrays are one partition's, not the window's.
2. **Predictions** (``Join.add``): the partial profiles the run merges anyway
   (``framework.monitoring.partial``) each carry their rows' predictions; each partial's block
   is hashed and looked up in the label array (``searchsorted``), and only the rows that have
   a label are kept, as compact arrays — label, predicted label (or value), positive-class
   score, model version code. The block is then dropped: the window's predictions are never
   held, neither as a map nor as arrays. A key matched once is not matched again (a
   prediction delivered twice is counted once).
3. **Metrics** (``Joined.metrics``): per model version and overall, from those arrays.

Memory per labelled row: the label side holds 8 (hash) + 8 (label) + 1 (matched flag) bytes
per label, and 8 (time) more while it is read; the joined rows 8 (label) + 8 (prediction) +
8 (score) + 2 (version) bytes; the metrics' ranks and masks ~50 bytes more while they are
computed. Measured by ``bench/labels_join.py`` (every row labelled, one run): peak RSS grows
by 158 MB for 1M rows (before: 640 MB) and by 268 MB for 2M (before: 1,254 MB), i.e. ~116 B
per further labelled row against ~615 B, plus ~50 MB that does not grow with the window (the
``FEEDBACK_FETCHERS`` feedback objects parsed at once, Python's heap).

Why not partition the predictions too (a Grace hash join: both sides spilled to P partitions,
then joined partition by partition): the predictions stream through the profile merge once;
holding them, or re-reading the partials once per partition, costs more than holding the
labels, which are at most as many as the predictions and 3-4 times smaller each. The hash is
Python's ``hash`` of the pair (SipHash for the id), the same within one run, which is all a
join needs; two different keys share a hash with probability n²/2⁶⁵ (1e-7 for a million
labels).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from framework.monitoring import performance
from framework.monitoring.capture import FEEDBACK_LAG_DAYS, Label, ReadLog, feedback_objects
from framework.monitoring.profile import category_key
from framework.monitoring.spec import Window
from framework.monitoring.store import Store

PARTITIONS = 64  # the label side is built (sorted, de-duplicated) one partition at a time
SHIFT = 64 - 6  # a hash's partition: its top 6 bits
NOT_A_NUMBER = "feedback records whose label is not a finite number"

U64 = npt.NDArray[np.uint64]


def key_hash(request_id: Any, row: Any) -> int:
    """The join key of a (request id, row) pair, as an unsigned 64-bit integer (a row that is
    not an integer is -1, which no label has)."""
    return hash((str(request_id), row if type(row) is int else -1)) & 0xFFFF_FFFF_FFFF_FFFF


def key_hashes(ids: Sequence[Any], rows: Sequence[Any]) -> U64:
    return np.fromiter(map(key_hash, ids, rows), dtype=np.uint64, count=len(ids))


def micros(text: str, _cache: dict[str, int] = {}) -> int:  # noqa: B006 - a cache
    """A label's posting time in microseconds since the epoch (0 when it has none):
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` parsed a second at a time, anything else by datetime."""
    if len(text) == 27 and text[19] == "." and text[26] == "Z":
        second = _cache.get(text[:19])
        if second is None:
            if len(_cache) > 4096:
                _cache.clear()
            try:
                second = _cache[text[:19]] = int(datetime.fromisoformat(
                    text[:19] + "+00:00").timestamp()) * 1_000_000
            except ValueError:
                return 0
        return second + int(text[20:26]) if text[20:26].isdigit() else second
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e6)
    except ValueError:
        return 0


@dataclass
class Codes:
    """Labels (and predicted labels) as small integers: one dictionary for both sides."""

    index: dict[str, int] = field(default_factory=dict)

    def code(self, value: Any) -> int:
        key = category_key(value)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.index)
        return found

    def of(self, values: Iterable[Any], count: int) -> npt.NDArray[np.float64]:
        return np.fromiter(map(self.code, values), dtype=np.float64, count=count)


def _number(value: Any) -> float:
    """A regression label as a float; NaN when it is not a finite number (or a string that
    spells one)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    try:
        number = float(value)
    except OverflowError:
        return math.nan
    return number if math.isfinite(number) else math.nan


@dataclass
class Labels:
    """The label side: hashes sorted ascending (partition p is the range of hashes whose top
    bits are p), each hash's label (a code, or a regression value) and whether a prediction
    was matched to it yet."""

    regression: bool
    codes: Codes
    keys: U64
    values: npt.NDArray[np.float64]
    matched: npt.NDArray[np.bool_]
    records: int = 0  # feedback records read (before de-duplication)
    days: tuple[str, str] = ("", "")  # the first and last day of feedback read
    count: int = 0  # labels (one per key)

    def __post_init__(self) -> None:
        self.count = int(self.keys.size)

    def __len__(self) -> int:
        return self.count

    def release(self) -> None:
        """Drop the arrays once the join is done (the counts and codes stay)."""
        self.keys = np.empty(0, dtype=np.uint64)
        self.values = np.empty(0, dtype=np.float64)
        self.matched = np.empty(0, dtype=np.bool_)


class _Partition:
    """One partition's labels as they are read: chunks of arrays."""

    def __init__(self) -> None:
        self.keys: list[U64] = []
        self.values: list[npt.NDArray[np.float64]] = []
        self.times: list[npt.NDArray[np.int64]] = []
        self.size = 0

    def add(self, keys: U64, values: npt.NDArray[np.float64],
            times: npt.NDArray[np.int64]) -> None:
        self.keys.append(keys)
        self.values.append(values)
        self.times.append(times)
        self.size += keys.size

    def latest(self) -> tuple[U64, npt.NDArray[np.float64]]:
        """The partition's keys, sorted and unique, with each one's latest label (by posting
        time, then by reading order); its chunks are released."""
        keys = np.concatenate(self.keys) if self.keys else np.empty(0, np.uint64)
        values = np.concatenate(self.values) if self.values else np.empty(0)
        times = np.concatenate(self.times) if self.times else np.empty(0, np.int64)
        self.keys, self.values, self.times = [], [], []
        order = np.lexsort((np.arange(keys.size), times, keys))  # by key, then time, order
        keys, values = keys[order], values[order]
        last = np.ones(keys.size, dtype=np.bool_)
        last[:-1] = keys[1:] != keys[:-1]
        return keys[last], values[last]


def read_labels(store: Store, endpoint: str, window: Window, log: ReadLog,
                regression: bool) -> Labels:
    """The labels a run of ``window`` joins (the window's days and the lag days after)."""
    codes = Codes()
    parts = [_Partition() for _ in range(PARTITIONS)]
    records = 0
    for obj in feedback_objects(store, endpoint, window, log,
                                lambda labels: _Object.of(labels, regression)):
        records += obj.keys.size
        values = obj.values if regression else np.asarray(
            [codes.code(v) for v in obj.distinct], dtype=np.float64)[obj.values.astype(np.intp)]
        obj.partition(values, parts)
    sizes = [p.size for p in parts]
    keys = np.empty(sum(sizes), dtype=np.uint64)
    values = np.empty(sum(sizes), dtype=np.float64)
    end = 0
    for part in parts:  # one partition sorted at a time, into its slice
        k, v = part.latest()
        keys[end:end + k.size] = k
        values[end:end + k.size] = v
        end += k.size
    days = window.days(FEEDBACK_LAG_DAYS)
    return Labels(regression, codes, keys[:end], values[:end], np.zeros(end, dtype=np.bool_),
                  records, (days[0].isoformat(), days[-1].isoformat()))


@dataclass
class _Object:
    """One feedback object's labels as arrays, made in the reader's thread: key hashes,
    values (regression) or indices into ``distinct`` (the object's distinct labels), times."""

    keys: U64
    values: npt.NDArray[np.float64]
    distinct: list[Any]
    times: npt.NDArray[np.int64]

    @classmethod
    def of(cls, labels: list[Label], regression: bool) -> _Object:
        n = len(labels)
        keys = np.fromiter((key_hash(lab.request_id, lab.row) for lab in labels),
                           dtype=np.uint64, count=n)
        times = np.fromiter((micros(lab.time) for lab in labels), dtype=np.int64, count=n)
        if regression:
            return cls(keys, np.fromiter((_number(lab.label) for lab in labels),
                                         dtype=np.float64, count=n), [], times)
        seen: dict[tuple[type, Any], int] = {}
        local = np.fromiter((seen.setdefault((type(lab.label), lab.label), len(seen))
                             for lab in labels), dtype=np.float64, count=n)
        return cls(keys, local, [value for _, value in seen], times)

    def partition(self, values: npt.NDArray[np.float64], parts: list[_Partition]) -> None:
        part = (self.keys >> np.uint64(SHIFT)).astype(np.intp)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(PARTITIONS + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            pick = order[bounds[p]:bounds[p + 1]]
            parts[p].add(self.keys[pick], values[pick], self.times[pick])


@dataclass
class Join:
    """The probe side: predictions, block by block, joined to ``labels``; only the labelled
    rows are kept."""

    labels: Labels
    versions: dict[str, int] = field(default_factory=dict)
    _label: list[npt.NDArray[np.float64]] = field(default_factory=list)
    _predicted: list[npt.NDArray[np.float64]] = field(default_factory=list)
    _score: list[npt.NDArray[np.float64]] = field(default_factory=list)
    _version: list[npt.NDArray[np.uint16]] = field(default_factory=list)

    def add(self, block: Mapping[str, Sequence[Any]]) -> None:
        """One partial profile's predictions: ``{"ids", "rows", "versions", "labels",
        "scores"}`` (lists of equal length)."""
        lab = self.labels
        ids = block["ids"]
        if not ids or not len(lab):
            return
        keys = key_hashes(ids, block["rows"])
        pos = np.minimum(np.searchsorted(lab.keys, keys), lab.keys.size - 1)
        hit = (lab.keys[pos] == keys) & ~lab.matched[pos]
        rows = np.flatnonzero(hit)
        if rows.size == 0:
            return
        _, first = np.unique(pos[rows], return_index=True)  # a key twice in one block: once
        rows = rows[np.sort(first)]
        at = pos[rows]
        lab.matched[at] = True
        picked = rows.tolist()
        predicted, scores, versions = block["labels"], block["scores"], block["versions"]
        if lab.regression:
            pred = np.fromiter((_number(predicted[i]) for i in picked), dtype=np.float64,
                               count=len(picked))
        else:
            pred = lab.codes.of((predicted[i] for i in picked), len(picked))
        self._label.append(lab.values[at])
        self._predicted.append(pred)
        self._score.append(np.fromiter(
            (math.nan if scores[i] is None else float(scores[i]) for i in picked),
            dtype=np.float64, count=len(picked)))
        self._version.append(np.fromiter(
            (self.versions.setdefault(str(versions[i]), len(self.versions)) for i in picked),
            dtype=np.uint16, count=len(picked)))

    def result(self) -> Joined:
        """The labelled rows; the label side and the chunks are released (one array at a
        time: memory grows by one array, not by the rows' whole size)."""
        self.labels.release()

        def cat(chunks: list[Any], dtype: Any) -> Any:
            out = np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)
            chunks.clear()
            return out

        return Joined(self.labels, dict(self.versions), cat(self._label, np.float64),
                      cat(self._predicted, np.float64), cat(self._score, np.float64),
                      cat(self._version, np.uint16))


@dataclass
class Joined:
    """The labelled rows of a window, as arrays (one entry per row)."""

    labels_read: Labels
    versions: dict[str, int]  # model version -> code
    label: npt.NDArray[np.float64]  # label code, or value (regression)
    predicted: npt.NDArray[np.float64]  # predicted label code, or value
    score: npt.NDArray[np.float64]  # positive-class probability; NaN: unknown
    version: npt.NDArray[np.uint16]

    def __len__(self) -> int:
        return int(self.label.size)

    def usable(self, log: ReadLog) -> Joined:
        """Without the rows a regression cannot use (a label that is not a number: counted
        in ``log``)."""
        if not self.labels_read.regression:
            return self
        ok = ~np.isnan(self.label)
        for _ in range(int(ok.size - ok.sum())):
            log.skip(NOT_A_NUMBER)
        return Joined(self.labels_read, self.versions, self.label[ok], self.predicted[ok],
                      self.score[ok], self.version[ok])

    def metrics(self, positive: str | None,
                rows: npt.NDArray[np.bool_] | None = None) -> dict[str, Any]:
        """The performance figures of the rows (all, or those ``rows`` selects)."""
        label, predicted, score = self.label, self.predicted, self.score
        if rows is not None:
            label, predicted, score = label[rows], predicted[rows], score[rows]
        if self.labels_read.regression:
            return dict(performance.regression_metrics(label, predicted))
        code = self.labels_read.codes.index.get(positive or "", -1)
        return dict(performance.coded_metrics(label, predicted, score, code))

    def by_version(self, positive: str | None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, code in sorted(self.versions.items()):
            rows = self.version == code
            n = int(rows.sum())
            if n:
                out[name] = {**self.metrics(positive, rows), "labelled": n}
        return out
