"""Partial profiles: each capture object profiled once, stored beside it, merged per window.

A capture object ``capture/{endpoint}/dt=D/{name}`` gets its partial profile at
``capture-profiles/{endpoint}/{digest}/dt=D/{name}.profile.gz``: its records' features on the
reference's bin edges (counts, sums, min/max; exact sorted values too while the object holds
at most ``PARTIAL_EXACT_ROWS`` usable records), rows per model version, errors, a latency
sketch, a sketch of the answers (label frequencies, or predicted values on the reference
answers' edges), the time span of its records, the records it skipped and why, and — for a
monitor that judges performance — each row's request id, row, version, prediction and score,
which the merge hands to the label join (``framework.monitoring.labels.Join``) partial by
partial, never keeping them. ``digest`` names what the numbers depend on (the reference
profile's bytes, the task, the positive class, whether predictions are kept), so a new model
version or reference gets new partials and never merges with old ones.

Each object is profiled as it lands (``profile_landed``: the monitor function, invoked by its
landing rule with S3's ``Object Created`` event, ``landed``). A monitor run
(``window_profile``) lists the window's days once for captures and once for partials; an
object whose partial lies inside the window is merged without reading the object (work ∝
objects, not rows); an object without one is read, profiled and its partial written (the
backfill); the few objects that straddle the window's ends are read and profiled on the
window's part only. Merging adds numpy arrays (``Accumulator``); the result is the same as
``Profile.merge`` over the partials (pinned by a test).

Day rollups: a run that merged every object of a day lying wholly inside its window stores
that day's partials merged, ``capture-profiles/{endpoint}/{digest}/dt=D/_day.rollup.gz``, with
what proves it current (the day's capture keys, as a digest and a count; its records' time
span; its objects' record digests). A later run merges the rollup instead of the day's
partials while it still covers the day's listed objects (a late-delivered object makes it
stale: that run merges the day per object and stores it again); days partly in the window are
merged per object. The sums are kept exact (``_Exact``), so merging a rollup gives the same
report as merging each partial. A monitor judging performance stores none: its partials carry
each row's prediction for the label join, which a rollup would have to carry too.

Repeated deliveries (delivery is at least once): a record delivered twice in one object counts
once; an object delivered twice (the same records under another key) counts once. A record
repeated in two different objects counts twice here (a partial keeps no per-row keys).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Protocol, TypeVar

import numpy as np

from framework.monitoring import columns
from framework.monitoring.capture import NO_TIME, ReadLog
from framework.monitoring.columns import MISSING, Batch, canonical, probabilities_of
from framework.monitoring.labels import Join
from framework.monitoring.profile import (
    WINDOW_EXACT_LIMIT,
    CategoricalProfile,
    NumericProfile,
    Profile,
    category_key,
)
from framework.monitoring.spec import Window
from framework.monitoring.store import Store

FORMAT = "mlops.partial/1"
PREFIX = "capture-profiles"
SUFFIX = ".profile.gz"
FETCHERS = 16  # partials fetched at once (S3 GETs wait on the network, not the CPU)
FETCH_BATCH = 64  # partials fetched ahead of the one being merged (held in memory at once)
T = TypeVar("T")
R = TypeVar("R")
PARTIAL_EXACT_ROWS = 1000  # exact values kept in a partial of at most this many usable rows
LATENCY_EDGES = [float(x) for x in 10 ** np.linspace(-2, 6, 801)]  # 0.01 ms .. 1000 s, ±1.2%
_LATENCY = np.asarray(LATENCY_EDGES, dtype=np.float64)


def digest(reference: bytes, task: str, positive: str | None, predictions: bool) -> str:
    """What a partial's numbers depend on, as 16 hex digits."""
    h = hashlib.sha256(reference)
    h.update(json.dumps([FORMAT, task, positive, predictions]).encode())
    return h.hexdigest()[:16]


def profile_key(capture_key: str, tag: str) -> str:
    """``capture/{ep}/dt=D/{name}`` → ``capture-profiles/{ep}/{tag}/dt=D/{name}.profile.gz``."""
    _root, endpoint, rest = capture_key.split("/", 2)
    return f"{PREFIX}/{endpoint}/{tag}/{rest}{SUFFIX}"


# -- encoding ---------------------------------------------------------------------------------
def _pack(values: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode()


def _unpack(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


_COUNT_TYPES = (("u1", 0xFF), ("<u2", 0xFFFF), ("<u4", 0xFFFF_FFFF))


def _pack_counts(counts: np.ndarray) -> dict[str, str]:
    """Bin counts in the narrowest unsigned type that holds them (an object's few thousand
    rows over the reference's 2,049 bins fit in bytes: an eighth of the partial to decode
    and merge, against int64)."""
    top = int(counts.max()) if counts.size else 0
    dtype = next((t for t, limit in _COUNT_TYPES if top <= limit), "<i8")
    return {"counts": _pack(counts, dtype), "counts_type": dtype}


def _unpack_counts(p: Mapping[str, Any]) -> np.ndarray:
    """A partial's counts, packed by ``_pack_counts`` (int64 when no type is said)."""
    return _unpack(p["counts"], p.get("counts_type", "<i8"))


def encode(payload: Mapping[str, Any]) -> bytes:
    return gzip.compress(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode(),
                         compresslevel=6, mtime=0)


def _load(data: bytes) -> Any:
    """A stored partial's or rollup's JSON value: ISA-L's gunzip and msgspec's decoder where
    the layer has them (a third of ``gzip`` + ``json``'s time), the standard library else."""
    text = columns.inflate(data, ".gz")
    return columns.msgspec.json.decode(text) if columns.msgspec is not None else json.loads(text)


def decode(data: bytes) -> dict[str, Any] | None:
    """A stored partial, or None when it is not one (then the object is profiled again)."""
    try:
        value = _load(data)
    except (OSError, EOFError, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("format") == FORMAT else None


# -- building a partial from an object's records ----------------------------------------------
@dataclass
class Settings:
    """What a partial is built against."""

    reference: Profile
    features: list[dict[str, Any]]  # name + type, in the reference's order
    task: str
    positive: str | None
    answers_edges: list[float] | None  # numeric answers' edges; None: answers are labels
    predictions: bool  # keep each row's prediction (for the label join)
    tag: str
    _edges: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def edges(self, name: str) -> np.ndarray:
        """The reference's bin edges of numeric feature ``name``, as an array (made once)."""
        found = self._edges.get(name)
        if found is None:
            ref = self.reference.features[name]
            assert isinstance(ref, NumericProfile)
            found = self._edges[name] = np.asarray(ref.edges, dtype=np.float64)
        return found


def _keys_digest(batch: Batch, rows: np.ndarray) -> str:
    """The object's records, in order (a batch delivered again has the same digest)."""
    h = hashlib.sha256()
    ids, nums = batch.request_ids, batch.rows
    picked = rows.tolist()
    h.update("\x00".join(str(ids[i]) for i in picked).encode())
    h.update(np.asarray([nums[i] if type(nums[i]) is int else -1 for i in picked],
                        dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def first_of_each(batch: Batch) -> tuple[np.ndarray, int]:
    """Indices of each (request_id, row)'s first record in the object, and how many repeat."""
    n = len(batch)
    pairs = list(zip(batch.request_ids, batch.rows, strict=True))
    try:
        if len(set(pairs)) == n:
            return np.arange(n, dtype=np.int64), 0
    except TypeError:  # an unhashable row (a list): compare by hash below
        pass
    seen: set[int] = set()
    keep: list[int] = []
    for i, pair in enumerate(pairs):
        ident = hash(repr(pair))
        if ident not in seen:
            seen.add(ident)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64), n - len(keep)


def numeric_part(values: np.ndarray, missing: int, edges: np.ndarray,
                 keep_values: bool) -> dict[str, Any]:
    """``NumericProfile.add_array`` on an empty profile, as a partial's payload."""
    finite = np.sort(values[np.isfinite(values)])
    below = np.searchsorted(finite, edges, side="left")
    counts = np.diff(np.concatenate([[0], below, [finite.size]]))
    empty = finite.size == 0
    return {"kind": "numeric", "count": int(finite.size), "missing": int(missing),
            "invalid": int(values.size - finite.size),
            "min": None if empty else float(finite[0]),
            "max": None if empty else float(finite[-1]),
            "sum": float(finite.sum()), "sum_sq": float(np.dot(finite, finite)),
            **_pack_counts(counts),
            "values": _pack(finite, "<f8") if keep_values else None}


def categorical_part(values: Sequence[Any], missing: int = 0) -> dict[str, Any]:
    """``CategoricalProfile.add_values`` on an empty profile, as a partial's payload: each
    distinct (type, value) counted at C speed, then keyed once."""
    freq: dict[str, int] = {}
    for (kind, value), n in Counter(zip(map(type, values), values, strict=True)).items():
        if value is None or (kind is float and math.isnan(value)):
            missing += n
        else:
            key = category_key(value)
            freq[key] = freq.get(key, 0) + n
    return {"kind": "categorical", "missing": missing, "frequencies": dict(sorted(freq.items()))}


def build(batch: Batch, s: Settings, key: str, window: Window | None = None,
          exact: bool = True) -> dict[str, Any]:
    """The partial profile of ``batch`` (the records inside ``window`` only, when given)."""
    from framework.monitoring.check import positive_score

    idx, repeated = first_of_each(batch)
    times = batch.times
    outside = 0
    if window is not None:
        lo, hi = canonical(window.start), canonical(window.end)
        inside = np.asarray([lo <= times[i] < hi for i in idx.tolist()], dtype=np.bool_)
        outside = int(idx.size - inside.sum())
        idx = idx[inside]
    skipped: dict[str, int] = {}
    if batch.no_time:
        skipped[NO_TIME] = batch.no_time
    usable_rows = [i for i in idx.tolist() if batch.unusable[i] is None]
    for i in idx.tolist():
        why = batch.unusable[i]
        if why is not None:
            skipped[f"capture records {why}"] = skipped.get(f"capture records {why}", 0) + 1
    use = np.asarray(usable_rows, dtype=np.int64)
    keep_values = exact and use.size <= PARTIAL_EXACT_ROWS
    feats: dict[str, Any] = {}
    for name, ref in s.reference.features.items():
        if isinstance(ref, NumericProfile):
            col = batch.numeric.get(name)
            if col is None:
                feats[name] = numeric_part(np.empty(0), int(use.size), s.edges(name),
                                           keep_values)
            else:
                vals, miss = col[0][use], col[1][use]
                feats[name] = numeric_part(vals[~miss], int(miss.sum()), s.edges(name),
                                           keep_values)
        else:
            raw = batch.categorical.get(name)
            feats[name] = (categorical_part([], int(use.size)) if raw is None
                           else categorical_part([raw[i] for i in usable_rows]))
    versions = dict(Counter(batch.versions[i] for i in usable_rows))
    lat = batch.latencies[use] if use.size else np.empty(0)
    latency = numeric_part(lat[np.isfinite(lat)], 0, _LATENCY, keep_values)
    answered = [i for i in usable_rows if batch.predictions[i] is not MISSING]
    labels = [batch.predictions[i] for i in answered]
    if s.answers_edges is not None:
        answers = numeric_part(np.asarray(labels, dtype=np.float64), 0,
                               np.asarray(s.answers_edges, dtype=np.float64), keep_values)
    else:
        answers = categorical_part(labels)
    classes = next((batch.classes[i] for i in usable_rows if batch.classes[i]), None)
    used_times = [times[i] for i in idx.tolist()]
    out: dict[str, Any] = {
        "format": FORMAT, "object": key, "tag": s.tag, "typed": batch.typed,
        "start": min(used_times) if used_times else None,
        "end": max(used_times) if used_times else None,
        "records": int(idx.size), "rows": int(use.size), "repeated": repeated,
        "outside": outside, "skipped": skipped, "bad_lines": batch.bad_lines,
        "keys": _keys_digest(batch, idx), "features": feats, "versions": versions,
        "errors": sum(1 for i in usable_rows if batch.errors[i]),
        "classes": [category_key(c) for c in classes] if classes else [],
        "latency": latency, "answers": answers,
        "predictions": None,
    }
    if s.predictions:
        out["predictions"] = {
            "ids": [str(batch.request_ids[i]) for i in answered],
            "rows": [batch.rows[i] for i in answered],
            "versions": [batch.versions[i] for i in answered],
            "labels": [batch.predictions[i] for i in answered],
            "scores": [positive_score({"probabilities": probabilities_of(
                                           batch.probabilities[i]),
                                       "classes": batch.classes[i]}, s.positive)
                       for i in answered]}
    return out


# -- merging ----------------------------------------------------------------------------------
class _Exact:
    """A float sum kept exact (Shewchuk's non-overlapping expansion, as ``math.fsum``): the
    window's sums do not depend on how its partials are grouped (one by one, or a day rollup
    at a time); ``value`` is the exact sum rounded once. Infinite or NaN terms (and an
    overflowing sum) are summed apart, as plain floats."""

    __slots__ = ("parts", "odd")

    def __init__(self) -> None:
        self.parts: list[float] = []
        self.odd = 0.0

    def add_all(self, terms: Sequence[float]) -> None:
        for x in terms:
            self.add(float(x))

    def add(self, x: float) -> None:
        if not math.isfinite(x):
            self.odd += x
            return
        parts, i = self.parts, 0
        for y in parts:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            if not math.isfinite(hi):  # beyond the float range, as a plain sum would be
                self.odd += hi
                self.parts = []
                return
            lo = y - (hi - x)
            if lo:
                parts[i] = lo
                i += 1
            x = hi
        parts[i:] = [x]

    def finite(self) -> bool:
        return self.odd == 0.0

    def value(self) -> float:
        if not self.finite():
            return self.odd
        try:
            return math.fsum(self.parts)
        except OverflowError:
            return math.copysign(math.inf, sum(self.parts))


class _Numeric:
    """A numeric profile being summed (numpy counts; exact values while all partials have
    them and their total stays within the window's exact limit)."""

    def __init__(self, edges: Sequence[float]) -> None:
        self.edges = list(edges)
        self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.count = self.missing = self.invalid = 0
        self.minimum: float | None = None
        self.maximum: float | None = None
        self.total, self.total_sq = _Exact(), _Exact()
        self.values: list[np.ndarray] | None = []

    def add(self, p: Mapping[str, Any]) -> None:
        counts = _unpack_counts(p)
        if counts.size != self.counts.size:
            raise ValueError("a partial profile on other bin edges")
        self.counts += counts
        self.count += int(p["count"])
        self.missing += int(p["missing"])
        self.invalid += int(p["invalid"])
        for bound, pick in (("min", min), ("max", max)):
            v = p.get(bound)
            if v is not None:
                cur = self.minimum if bound == "min" else self.maximum
                new = float(v) if cur is None else pick(cur, float(v))
                if bound == "min":
                    self.minimum = new
                else:
                    self.maximum = new
        self.total.add_all(p.get("sum_x") or (float(p["sum"]),))
        self.total_sq.add_all(p.get("sum_sq_x") or (float(p["sum_sq"]),))
        if self.values is not None:
            if p.get("values") is None or self.count > WINDOW_EXACT_LIMIT:
                self.values = None
            else:
                self.values.append(_unpack(p["values"], "<f8"))

    def result(self) -> NumericProfile:
        values = None
        if self.values is not None and self.count <= WINDOW_EXACT_LIMIT:
            values = np.sort(np.concatenate(self.values) if self.values
                             else np.empty(0)).tolist()
        return NumericProfile(edges=self.edges, counts=self.counts.tolist(), count=self.count,
                              missing=self.missing, invalid=self.invalid, minimum=self.minimum,
                              maximum=self.maximum, total=self.total.value(),
                              total_sq=self.total_sq.value(), values=values,
                              exact_limit=WINDOW_EXACT_LIMIT)

    def part(self) -> dict[str, Any] | None:
        """What was summed as one partial's numeric payload, the sums as their exact
        expansions (``sum_x``, ``sum_sq_x``); None when a sum is not finite (JSON has no
        infinity)."""
        if not (self.total.finite() and self.total_sq.finite()):
            return None
        values = None
        if self.values is not None and self.count <= WINDOW_EXACT_LIMIT:
            values = _pack(np.sort(np.concatenate(self.values) if self.values
                                   else np.empty(0)), "<f8")
        return {"kind": "numeric", "count": self.count, "missing": self.missing,
                "invalid": self.invalid, "min": self.minimum, "max": self.maximum,
                "sum": self.total.value(), "sum_x": list(self.total.parts),
                "sum_sq": self.total_sq.value(), "sum_sq_x": list(self.total_sq.parts),
                **_pack_counts(self.counts), "values": values}


class _Categorical:
    def __init__(self) -> None:
        self.frequencies: dict[str, int] = {}
        self.missing = 0

    def add(self, p: Mapping[str, Any]) -> None:
        freq = self.frequencies
        for k, n in p["frequencies"].items():
            freq[k] = freq.get(k, 0) + int(n)
        self.missing += int(p["missing"])

    def result(self) -> CategoricalProfile:
        return CategoricalProfile(dict(sorted(self.frequencies.items())), self.missing)

    def part(self) -> dict[str, Any]:
        return {"kind": "categorical", "missing": self.missing, "frequencies": self.frequencies}


def _summer(edges: Sequence[float] | None) -> _Numeric | _Categorical:
    return _Categorical() if edges is None else _Numeric(edges)


@dataclass
class Accumulator:
    """The window's profile and facts, summed partial by partial."""

    s: Settings
    rows: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    classes: list[str] = field(default_factory=list)
    join: Join | None = None  # takes each partial's predictions (the label join)

    def __post_init__(self) -> None:
        self.features: dict[str, _Numeric | _Categorical] = {
            name: _summer(ref.edges if isinstance(ref, NumericProfile) else None)
            for name, ref in self.s.reference.features.items()}
        self.latency = _Numeric(LATENCY_EDGES)
        self.answers = _summer(self.s.answers_edges)

    def add(self, p: Mapping[str, Any]) -> None:
        for name, summer in self.features.items():
            summer.add(p["features"][name])
        self.rows += int(p["rows"])
        for v, n in p["versions"].items():
            self.versions[v] = self.versions.get(v, 0) + int(n)
        self.errors += int(p["errors"])
        if not self.classes and p.get("classes"):
            self.classes = list(p["classes"])
        self.latency.add(p["latency"])
        self.answers.add(p["answers"])
        pred = p.get("predictions")
        if pred and self.join is not None:
            self.join.add(pred)

    def profile(self) -> Profile:
        return Profile({k: v.result() for k, v in self.features.items()}, self.rows)


def log_partial(log: ReadLog, p: Mapping[str, Any]) -> None:
    """What reading the object would have told the log: its records, repeats, skips, bad
    lines."""
    log.files += 1
    log.records += int(p["records"])
    log.repeated += int(p["repeated"])
    log.outside += int(p.get("outside", 0))
    for reason, n in p["skipped"].items():
        log.skipped[reason] = log.skipped.get(reason, 0) + int(n)
    if p.get("bad_lines"):
        _bad_lines(log, p["object"], int(p["bad_lines"]))


def _bad_lines(log: ReadLog, key: str, lines: int) -> None:
    log.issue("corrupt_records", f"{key}: {lines} line(s) are not JSON records; skipped",
              key=key, lines=lines)


@dataclass
class Usage:
    """How a window's profile was made: objects merged from stored partials, profiled now
    (their partials written), profiled on their in-window part only, or skipped."""

    objects: int = 0
    cached: int = 0
    built: int = 0
    boundary: int = 0
    outside: int = 0
    duplicates: int = 0
    typed: int = 0  # objects read by the typed decoder (the rest: the general one)
    workers: int = 0  # fan-out: invocations that profiled shares of objects
    fanned: int = 0  # ... and the objects they profiled
    deferred: int = 0  # objects left out: their shares were not handed out in time
    rollups: int = 0  # days merged from their day rollup (instead of their objects' partials)
    rolled: int = 0  # ... and the objects those rollups cover
    rollups_stored: int = 0  # day rollups written by this run (new, or a stale one rebuilt)
    merge_workers: int = 0  # fan-out: invocations that merged shares of a day's partials
    merged_there: int = 0  # ... and the partials they merged

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _listed(store: Store, prefix: str, log: ReadLog) -> set[str] | None:
    """The partials stored under ``prefix``; None (said once) when they cannot be listed."""
    try:
        return set(store.list(prefix))
    except Exception as e:  # botocore's ClientError (AccessDenied, ...), without botocore
        log.issue("profiles_not_stored", f"partial profiles cannot be listed ({type(e).__name__}"
                  f": {str(e).splitlines()[0] if str(e) else ''}); every object is profiled "
                  "again", key=prefix)
        return None


def _store(store: Store, key: str, payload: Mapping[str, Any], log: ReadLog) -> bool:
    """Write a partial; on failure say so once (the run goes on, profiling from the objects)
    and write no more."""
    try:
        store.put(key, encode(payload), "application/gzip")
    except Exception as e:  # botocore's ClientError (AccessDenied, ...), without botocore
        log.issue("profiles_not_stored", f"partial profiles cannot be stored ({type(e).__name__}"
                  f": {str(e).splitlines()[0] if str(e) else ''}); the next run profiles these "
                  "objects again", key=key)
        return False
    return True


def _inside(p: Mapping[str, Any], lo: str, hi: str) -> bool:
    return p["start"] is None or (lo <= p["start"] and p["end"] < hi)


def _outside(p: Mapping[str, Any], lo: str, hi: str) -> bool:
    return p["start"] is not None and (p["end"] < lo or p["start"] >= hi)


class Fan(Protocol):
    """A share handed to another invocation of the monitor function: ``keys`` (capture
    objects) profiled and their partials stored; with ``merge_day``, their stored partials
    (all of that day) merged into one segment returned (``merge_partials``)."""

    def __call__(self, keys: list[str], merge_day: str | None = None) -> dict[str, Any]: ...


HAND_OUT_UNTIL = 0.5  # a run hands out shares while more than this part of its time is left
MERGE_SHARE = 1000  # stored partials a merge worker adds up (fan_out.partials)


class NoTimeLeft(Exception):
    """A share a ``Fan`` does not hand out: the run keeps the rest of its time (the shares
    under way, the merge and the report); the share's objects wait for the next run."""


def in_time(fan: Fan, remaining_ms: Callable[[], int]) -> Fan:
    """``fan``, handing a share out only while more than ``HAND_OUT_UNTIL`` of the time left
    when it was made (a Lambda run's ``get_remaining_time_in_millis``) is left."""
    budget = remaining_ms()

    def timed(keys: list[str], merge_day: str | None = None) -> dict[str, Any]:
        left = remaining_ms()
        if left < budget * HAND_OUT_UNTIL:
            raise NoTimeLeft(f"{left / 1000:.0f} s of the run's {budget / 1000:.0f} s left")
        return fan(keys, merge_day) if merge_day is not None else fan(keys)
    return timed


def profile_objects(store: Store, keys: Sequence[str], s: Settings) -> dict[str, Any]:
    """Profile each capture object of ``keys`` and store its partial (a fan-out worker's
    share); what was done."""
    built, failed = 0, []
    for key in keys:
        data = store.get(key)
        if data is None:
            continue
        try:
            payload = build(columns.decode(data, key, s.features, s.task), s, key)
            store.put(profile_key(key, s.tag), encode(payload), "application/gzip")
        except Exception as e:  # this object stays without a partial: the run profiles it
            failed.append({"key": key, "error": f"{type(e).__name__}: {e}"})
            continue
        built += 1
    return {"objects": len(keys), "built": built, "failed": failed}


# -- profiled on landing ----------------------------------------------------------------------
CREATED = "Object Created"  # S3's EventBridge detail-type of PutObject, POST Object, CopyObject
#                             and CompleteMultipartUpload


@dataclass(frozen=True)
class Landed:
    """The object of an S3 ``Object Created`` event, as EventBridge delivers it::

        {"source": "aws.s3", "detail-type": "Object Created", "region", "account", "time",
         "detail": {"bucket": {"name"}, "object": {"key", "size", "etag", "version-id",
                    "sequencer"}, "reason": "PutObject", ...}}
    """

    bucket: str
    key: str
    reason: str = ""

    def candidates(self) -> list[str]:
        """The object's key as given, then URL-decoded when that differs (S3's notifications
        URL-encode keys; a capture key has nothing to encode)."""
        from urllib.parse import unquote_plus

        plain = unquote_plus(self.key)
        return [self.key] if plain == self.key else [self.key, plain]


def landed(event: Any) -> Landed | None:
    """The object an S3 ``Object Created`` event names; None when ``event`` is not one (a
    schedule's fire, a fan-out share). Raises ValueError for one without bucket or key."""
    if not isinstance(event, Mapping) or event.get("source") != "aws.s3" \
            or event.get("detail-type") != CREATED:
        return None
    detail = event.get("detail")
    detail = detail if isinstance(detail, Mapping) else {}

    def text(part: str, name: str) -> str:
        value = detail.get(part)
        found = value.get(name) if isinstance(value, Mapping) else None
        if not isinstance(found, str) or not found:
            raise ValueError(f"an S3 Object Created event without detail.{part}.{name}")
        return found
    return Landed(text("bucket", "name"), text("object", "key"), str(detail.get("reason") or ""))


def profile_landed(store: Store, obj: Landed, bucket: str, endpoint: str,
                   s: Settings) -> dict[str, Any]:
    """Profile the capture object that just landed and store its partial: what was done.

    Only ``capture/{endpoint}/`` objects of ``bucket`` are profiled (anything else the rule
    let through is skipped, said so); a partial already stored for the object under these
    settings' tag is kept (events are delivered at least once); an object gone before its
    event arrived is skipped (the run has nothing to merge either). A failure to read, decode
    or store raises: the invocation fails and reaches the monitor's failure notifier, and the
    next run profiles the object (the backfill)."""
    if obj.bucket != bucket:
        return {"object": obj.key, "skipped": f"not in the registry bucket ({obj.bucket})"}
    prefix = f"capture/{endpoint}/"
    keys = [k for k in obj.candidates() if k.startswith(prefix) and not k.endswith("/")]
    if not keys:
        return {"object": obj.key, "skipped": f"not a capture object of endpoint {endpoint}"}
    for key in keys:
        pkey = profile_key(key, s.tag)
        if pkey in store.list(pkey):
            return {"object": key, "partial": pkey, "kept": True}
        data = store.get(key)
        if data is None:
            continue
        try:
            batch = columns.decode(data, key, s.features, s.task)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from e
        payload = build(batch, s, key)
        store.put(pkey, encode(payload), "application/gzip")
        return {"object": key, "partial": pkey, "built": True, "rows": payload["rows"]}
    return {"object": obj.key, "skipped": "the object is gone"}


def _fan_out(fan: Fan, missing: list[str], per_worker: int, workers: int, log: ReadLog,
             usage: Usage) -> set[str]:
    """Hand the objects without a partial out in shares of ``per_worker`` (in key order), to
    at most ``workers`` parallel invocations at a time; a share that fails is profiled by the
    run itself afterwards. The objects of shares not handed out (``NoTimeLeft``) are
    returned: this run leaves them out."""
    shares = [missing[i:i + per_worker] for i in range(0, len(missing), per_worker)]
    with ThreadPoolExecutor(min(workers, len(shares)), thread_name_prefix="fan-out") as pool:
        futures = [pool.submit(fan, share) for share in shares]
    deferred: set[str] = set()
    late = ""
    for share, future in zip(shares, futures, strict=True):
        try:
            got = future.result()
            usage.workers += 1
            usage.fanned += int(got.get("built", 0))
        except NoTimeLeft as e:
            deferred.update(share)
            late = late or str(e)
        except Exception as e:  # the worker failed as a whole: its objects are read here
            usage.workers += 1
            log.issue("fan_out_failed", f"a worker could not profile {len(share)} object(s) "
                      f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                      "this run profiled them", objects=len(share))
    if deferred:
        usage.deferred = len(deferred)
        log.issue("window_incomplete", f"{len(deferred)} of the window's {len(missing)} "
                  f"objects without a partial profile were not profiled in time ({late} "
                  "when their shares' turn came): this report leaves their records out; the "
                  "next run profiles them, and merges what this run's workers stored",
                  objects=len(deferred))
    return deferred


# -- day rollups ------------------------------------------------------------------------------
DAY_FORMAT = "mlops.day/1"
ROLLUP = "_day.rollup.gz"  # never a partial's name: those end with SUFFIX


def rollup_key(endpoint: str, tag: str, day: date) -> str:
    """``capture-profiles/{ep}/{tag}/dt=D/_day.rollup.gz``: day D's partials merged."""
    return f"{PREFIX}/{endpoint}/{tag}/dt={day.isoformat()}/{ROLLUP}"


def listing_digest(keys: Sequence[str]) -> str:
    """What a day's capture objects were: their sorted keys, as 32 hex digits (a capture
    object is never rewritten under its key: the stream names each one afresh)."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def whole_day(window: Window, day: date) -> bool:
    """Whether all of ``day`` (UTC) lies inside ``window``."""
    first = datetime.combine(day, dtime(), tzinfo=UTC)
    return window.start <= first and first + timedelta(days=1) <= window.end


@dataclass
class DayRollup:
    """A day's partials merged as a window over exactly that day's objects would merge them
    (repeats found inside the day only), with what the log would have counted and what
    proves the rollup current: the day's capture keys (``listing_digest``) and its records'
    time span. A later run merges it instead of the day's partials while the day lies inside
    its window, its objects are the same, its records' span is inside the window and none of
    its objects repeats one of an earlier day of the window; otherwise the run merges the
    day's partials and stores a new rollup."""

    s: Settings
    day: date
    keys: Sequence[str]  # the day's capture objects, as listed
    ok: bool = True  # every object merged whole (none gone, unreadable or left out)
    acc: Accumulator = field(init=False)
    seen: set[str] = field(default_factory=set)
    digests: list[str] = field(default_factory=list)  # merged objects with records
    files: int = 0
    records: int = 0
    repeated: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    bad: list[list[Any]] = field(default_factory=list)
    start: str | None = None
    end: str | None = None

    def __post_init__(self) -> None:
        self.acc = Accumulator(self.s)

    def add(self, p: Mapping[str, Any]) -> None:
        """One object's whole partial (as ``_Merge`` sees it before cutting to the window)."""
        self.files += 1
        if p["keys"] in self.seen and p["records"]:
            self.repeated += int(p["records"]) + int(p["repeated"])
            self.duplicates += 1
            return
        self.seen.add(p["keys"])
        if p["records"]:
            self.digests.append(p["keys"])
        self.records += int(p["records"])
        self.repeated += int(p["repeated"])
        for reason, n in p["skipped"].items():
            self.skipped[reason] = self.skipped.get(reason, 0) + int(n)
        if p.get("bad_lines"):
            self.bad.append([p["object"], int(p["bad_lines"])])
        if p["start"] is not None:
            self.start = p["start"] if self.start is None else min(self.start, p["start"])
            self.end = p["end"] if self.end is None else max(self.end, p["end"])
        self.acc.add(p)

    def add_segment(self, r: Mapping[str, Any]) -> None:
        """A merge worker's segment of the day (``merge_partials``: consecutive objects of
        the day, none repeating one merged before)."""
        self.files += int(r["objects"])
        self.seen.update(r["digests"])
        self.digests.extend(r["digests"])
        self.records += int(r["records"])
        self.repeated += int(r["repeated"])
        self.duplicates += int(r["duplicates"])
        for reason, n in r["skipped"].items():
            self.skipped[reason] = self.skipped.get(reason, 0) + int(n)
        self.bad.extend([key, int(lines)] for key, lines in r["bad"])
        if r["start"] is not None:
            self.start = r["start"] if self.start is None else min(self.start, r["start"])
            self.end = r["end"] if self.end is None else max(self.end, r["end"])
        self.acc.add(r)

    def payload(self) -> dict[str, Any] | None:
        """The rollup to store; None when it cannot stand for the day."""
        acc = self.acc
        feats = {name: summer.part() for name, summer in acc.features.items()}
        latency, answers = acc.latency.part(), acc.answers.part()
        if not self.ok or self.files != len(self.keys) or latency is None or answers is None \
                or any(f is None for f in feats.values()):
            return None
        return {"format": DAY_FORMAT, "tag": self.s.tag, "day": self.day.isoformat(),
                "objects": len(self.keys), "listing": listing_digest(self.keys),
                "start": self.start, "end": self.end, "records": self.records,
                "repeated": self.repeated, "duplicates": self.duplicates,
                "skipped": self.skipped, "bad": self.bad, "digests": self.digests,
                "rows": acc.rows, "versions": acc.versions, "errors": acc.errors,
                "classes": acc.classes, "features": feats, "latency": latency,
                "answers": answers, "predictions": None}


def current_rollup(data: bytes | None, s: Settings, day: date, keys: Sequence[str],
                   window: Window, seen: set[str]) -> dict[str, Any] | None:
    """The stored rollup of ``day`` when it stands for the day's objects ``keys`` in
    ``window`` (after the window's earlier days, whose objects' digests are ``seen``)."""
    if data is None:
        return None
    try:
        r = _load(data)
    except (OSError, EOFError, ValueError):
        return None
    if not isinstance(r, dict) or r.get("format") != DAY_FORMAT or r.get("tag") != s.tag \
            or r.get("day") != day.isoformat() or r.get("objects") != len(keys) \
            or r.get("listing") != listing_digest(keys):
        return None  # another day's objects: an object delivered late, or one gone
    lo, hi = canonical(window.start), canonical(window.end)
    if r["start"] is not None and not (lo <= r["start"] and r["end"] < hi):
        return None  # records timed outside the window: those objects are cut per object
    if not seen.isdisjoint(r["digests"]):
        return None  # an object repeats one of an earlier day: it counts once, per object
    return r


def merge_rollup(r: Mapping[str, Any], acc: Accumulator, log: ReadLog, usage: Usage,
                 seen: set[str], segment: bool = False) -> None:
    """A day's rollup (or a merge worker's ``segment`` of a day) into the window, as its
    objects' partials would have been merged."""
    log.files += int(r["objects"])
    log.records += int(r["records"])
    log.repeated += int(r["repeated"])
    for reason, n in r["skipped"].items():
        log.skipped[reason] = log.skipped.get(reason, 0) + int(n)
    for key, lines in r["bad"]:
        _bad_lines(log, key, int(lines))
    acc.add(r)
    seen.update(r["digests"])
    usage.objects += int(r["objects"])
    usage.duplicates += int(r["duplicates"])
    if segment:
        usage.cached += int(r["objects"])
        usage.merge_workers += 1
        usage.merged_there += int(r["objects"])
    else:
        usage.rollups += 1
        usage.rolled += int(r["objects"])


def window_profile(store: Store, endpoint: str, window: Window, s: Settings, log: ReadLog,
                   *, write: bool = True, fan: Fan | None = None, fan_objects: int = 200,
                   fan_workers: int = 8, fan_partials: int = MERGE_SHARE,
                   join: Join | None = None,
                   ) -> tuple[Accumulator, Usage]:
    """The window's profile and facts, merged from the partial profiles of its objects.

    With ``fan``, when more than ``fan_objects`` objects have no partial yet, they are first
    profiled in shares of ``fan_objects`` by up to ``fan_workers`` parallel workers (the merge
    step below then finds their partials stored); and a whole day whose rollup is made now
    with more than ``fan_partials`` stored partials is merged in shares of that many by such
    workers, the run adding up the segments they return (``merge_partials``). With ``join``,
    each partial's predictions are handed to it as the partial is merged (and not kept)."""
    acc = Accumulator(s, join=join)
    usage = Usage()
    days = [f"dt={day.isoformat()}/" for day in window.days()]
    captures = {part: store.list(f"capture/{endpoint}/{part}") for part in days}
    listed_keys = dict(captures)  # as listed (before leaving out objects not profiled in time)
    listed: dict[str, set[str] | None] = {
        part: _listed(store, f"{PREFIX}/{endpoint}/{s.tag}/{part}", log) if write else set()
        for part in days}
    write = write and all(v is not None for v in listed.values())
    if write and fan is not None and fan_workers > 1:
        missing = [k for part in days for k in captures[part]
                   if profile_key(k, s.tag) not in (listed[part] or set())]
        if len(missing) > fan_objects:
            deferred = _fan_out(fan, missing, fan_objects, fan_workers, log, usage)
            listed = {part: _listed(store, f"{PREFIX}/{endpoint}/{s.tag}/{part}", log)
                      for part in days}
            captures = {part: [k for k in keys if k not in deferred]
                        for part, keys in captures.items()}
    merge = _Merge(store, s, window, acc, usage, log, write)
    # Day rollups: not for a monitor judging performance (its partials carry each row's
    # prediction for the label join: a rollup would hold every row of the day).
    rollups = write and not s.predictions
    with ThreadPoolExecutor(FETCHERS, thread_name_prefix="partials") as pool:
        for day, part in zip(window.days(), days, strict=True):
            keys, have = captures[part], listed[part] or set()
            merge.day = None
            if rollups and keys and whole_day(window, day):
                rkey = rollup_key(endpoint, s.tag, day)
                found = current_rollup(store.get(rkey) if rkey in have else None, s, day,
                                       listed_keys[part], window, merge.seen)
                if found is not None and len(keys) == len(listed_keys[part]):
                    merge_rollup(found, acc, log, usage, merge.seen)
                    continue
                merge.day = DayRollup(s, day, listed_keys[part],
                                      ok=len(keys) == len(listed_keys[part]))
            pending = [(key, profile_key(key, s.tag), profile_key(key, s.tag) in have)
                       for key in keys]
            fanned = fan if merge.day is not None and fan_workers > 1 else None
            for share, data in _merge_shares(fanned, pending, day, fan_workers, fan_partials,
                                             log):
                segment = current_rollup(data, s, day, [k for k, _, _ in share], window,
                                         merge.seen)
                if segment is not None and merge.day is not None \
                        and merge.day.seen.isdisjoint(segment["digests"]):
                    merge_rollup(segment, acc, log, usage, merge.seen, segment=True)
                    merge.day.add_segment(segment)
                    continue
                for (key, pkey, _), data in _ahead(
                        pool, share, lambda item: store.get(item[1]) if item[2] else None):
                    merge.add(key, pkey, data)
            payload = merge.day.payload() if merge.day is not None else None
            if payload is not None and merge.write:
                merge.write = _store(store, rollup_key(endpoint, s.tag, day), payload, log)
                usage.rollups_stored += int(merge.write)
    return acc, usage


Pending = tuple[str, str, bool]  # a capture object's key, its partial's key, partial stored


def _merge_shares(fan: Fan | None, pending: list[Pending], day: date, workers: int,
                  per_worker: int, log: ReadLog,
                  ) -> Iterator[tuple[list[Pending], bytes | None]]:
    """A day's objects in shares of ``per_worker``, in order, each with the segment a
    merge worker made of its stored partials (``merge_partials``), or None: the run merges
    that share itself (too few objects to fan out, an object without a partial, no time left
    to hand it out, a worker that failed). Shares go to at most ``workers`` invocations at a
    time and are merged as they come back, in order."""
    shares = [pending[i:i + per_worker] for i in range(0, len(pending), per_worker)]
    if fan is None or len(shares) < 2:
        yield from ((share, None) for share in shares)
        return

    def ask(share: list[Pending]) -> bytes | None:
        if not all(stored for _, _, stored in share):
            return None
        got = fan([key for key, _, _ in share], day.isoformat())
        text = got.get("segment")
        return base64.b64decode(text) if isinstance(text, str) else None

    with ThreadPoolExecutor(min(workers, len(shares)), thread_name_prefix="merge") as pool:
        futures = [pool.submit(ask, share) for share in shares]
        for share, future in zip(shares, futures, strict=True):
            try:
                got = future.result()
            except NoTimeLeft:
                got = None
            except Exception as e:  # the worker failed as a whole: this run merges its share
                got = None
                log.issue("fan_out_failed", f"a worker could not merge {len(share)} partial "
                          f"profile(s) of {day.isoformat()} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); this run merged them",
                          objects=len(share))
            yield share, got


def merge_partials(store: Store, keys: Sequence[str], day: str, s: Settings) -> dict[str, Any]:
    """A merge worker's share: the stored partials of the capture objects ``keys`` (all of
    ``day``, in key order) merged into a segment (a day rollup over these objects only,
    gzip JSON, base64), or ``segment: null`` when one of them has no readable partial (the
    run then merges the share itself)."""
    seg = DayRollup(s, date.fromisoformat(day), list(keys))
    with ThreadPoolExecutor(FETCHERS, thread_name_prefix="partials") as pool:
        for key, data in _ahead(pool, list(keys), lambda k: store.get(profile_key(k, s.tag))):
            whole = decode(data) if data is not None else None
            if whole is None:
                return {"objects": len(keys), "segment": None, "unreadable": key}
            seg.add(whole)
    payload = seg.payload()
    return {"objects": len(keys), "segment": None if payload is None
            else base64.b64encode(encode(payload)).decode()}


def _ahead(pool: ThreadPoolExecutor, items: Sequence[T], fetch: Callable[[T], R],
           ahead: int = FETCH_BATCH) -> Iterator[tuple[T, R]]:
    """``(item, fetch(item))`` in order, fetched by ``pool`` up to ``ahead`` items beyond the
    one handed out: the S3 reads go on while the caller merges, and memory holds ``ahead``
    partials at most."""
    futures: deque[Future[R]] = deque()
    for i, item in enumerate(items):
        futures.append(pool.submit(fetch, item))
        if i >= ahead:
            yield items[i - ahead], futures.popleft().result()
    for j in range(max(0, len(items) - ahead), len(items)):
        yield items[j], futures.popleft().result()


@dataclass
class _Merge:
    """Adds the window's capture objects to its sums, one at a time."""

    store: Store
    s: Settings
    window: Window
    acc: Accumulator
    usage: Usage
    log: ReadLog
    write: bool  # store the partials made now (until a write fails)
    seen: set[str] = field(default_factory=set)  # digests of the objects' records
    day: DayRollup | None = None  # the day's rollup being made, if it is to be stored

    def add(self, key: str, pkey: str, data: bytes | None) -> None:
        """One object: its stored partial (``data``), or the object profiled now."""
        self.write = self._add(key, pkey, data)

    def _add(self, key: str, pkey: str, data: bytes | None) -> bool:
        store, s, window, acc, usage, log, seen, write = (
            self.store, self.s, self.window, self.acc, self.usage, self.log, self.seen,
            self.write)
        lo, hi = canonical(window.start), canonical(window.end)
        whole = decode(data) if data is not None else None
        batch: Batch | None = None
        if whole is None:
            data = store.get(key)
            if data is None:
                if self.day is not None:
                    self.day.ok = False
                return write
            try:
                batch = columns.decode(data, key, s.features, s.task)
            except ValueError as e:
                log.issue("corrupt_file", f"{key}: {e}; skipped", key=key)
                if self.day is not None:  # its issue is said by a run reading the object
                    self.day.ok = False
                return write
            whole = build(batch, s, key, exact=True)
            usage.built += 1
            usage.typed += int(batch.typed)
            if write:
                write = _store(store, pkey, whole, log)
        else:
            usage.cached += 1
        usage.objects += 1
        if self.day is not None:
            self.day.add(whole)
        if _outside(whole, lo, hi):
            log.files += 1
            log.outside += int(whole["records"])
            usage.outside += 1
            return write
        if whole["keys"] in seen and whole["records"]:
            log.files += 1
            log.repeated += int(whole["records"]) + int(whole["repeated"])
            usage.duplicates += 1
            return write
        seen.add(whole["keys"])
        if not _inside(whole, lo, hi):
            if batch is None:
                data = store.get(key)
                if data is None:
                    return write
                batch = columns.decode(data, key, s.features, s.task)
            whole = build(batch, s, key, window)
            usage.boundary += 1
        log_partial(log, whole)
        acc.add(whole)
        return write


def percentile(p: NumericProfile, q: float) -> float | None:
    """The q-th percentile of a sketch: exact from its values while it has them, else
    interpolated inside the bin where it falls."""
    if p.count == 0:
        return None
    exact = p.exact()
    if exact is not None:
        return float(np.percentile(exact, q))
    target = q / 100.0 * (p.count - 1)
    cum = np.cumsum(p.counts)
    b = int(np.searchsorted(cum, target, side="right"))
    edges = p.edges
    left = p.minimum if b == 0 else max(edges[b - 1], p.minimum or -math.inf)
    right = p.maximum if b >= len(edges) else min(edges[b], p.maximum or math.inf)
    assert left is not None and right is not None
    before = 0 if b == 0 else int(cum[b - 1])
    inside = max(int(p.counts[b]), 1)
    return float(left + (right - left) * min(max((target - before) / inside, 0.0), 1.0))
