"""Mergeable per-feature profiles: the reference baseline and windows of captured traffic.

A profile holds, per feature, enough to run every drift test without the raw data:

- numeric features: count, missing, NaN count, min/max/sum/sum of squares, a fine histogram
  over bin edges taken from the *reference* quantiles (so every profile built against the same
  reference shares its edges and merges by adding counts), and the exact sorted values while
  there are at most ``exact_limit`` of them (then tests run on exact data, matching scipy);
- categorical (and bool) features: frequencies of each value.

``profile_reference`` builds the baseline from a CSV (the registry stores it as
``reference.json``); ``ProfileBuilder`` streams window records into a profile that uses the
reference's edges; ``Profile.merge`` combines partial profiles (many files, many workers).
Only the standard library and numpy are used: this module runs inside the monitor Lambda.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT = "mlops.profile/1"
REFERENCE_BINS = 2048  # quantile bins of the reference: KS on sketches within ~1/2048 + noise
REFERENCE_EXACT_LIMIT = 10_000  # reference values kept exactly (per feature) up to this count
WINDOW_EXACT_LIMIT = 100_000  # window values kept exactly while the window is at most this big
CATEGORICAL_TYPES = ("category", "bool")

Floats = npt.NDArray[np.float64]


def is_categorical(feature: Mapping[str, Any]) -> bool:
    return str(feature.get("type", "float")) in CATEGORICAL_TYPES


@dataclass
class NumericProfile:
    """Histogram over shared edges (+ exact values while small) of one numeric feature."""

    edges: list[float]
    counts: list[int]  # len(edges) + 1: (-inf, e0), [e0, e1), ..., [e_last, +inf)
    count: int = 0  # finite values
    missing: int = 0  # absent or null
    invalid: int = 0  # NaN, infinite or not a number
    minimum: float | None = None
    maximum: float | None = None
    total: float = 0.0
    total_sq: float = 0.0
    values: list[float] | None = field(default_factory=list)  # sorted; None once over the limit
    exact_limit: int = WINDOW_EXACT_LIMIT

    kind = "numeric"

    @classmethod
    def empty(cls, edges: Sequence[float], exact_limit: int = WINDOW_EXACT_LIMIT) -> NumericProfile:
        return cls(edges=list(edges), counts=[0] * (len(edges) + 1), exact_limit=exact_limit)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def std(self) -> float | None:
        if self.count < 2:
            return None
        var = (self.total_sq - self.total * self.total / self.count) / (self.count - 1)
        return math.sqrt(max(var, 0.0))

    def add_array(self, raw: Floats, missing: int = 0) -> None:
        """Add a chunk of values (NaN/inf count as invalid) and ``missing`` absent ones."""
        self.missing += missing
        finite = raw[np.isfinite(raw)]
        self.invalid += int(raw.size - finite.size)
        if finite.size == 0:
            return
        # Sorting the chunk (vectorised) and locating the few edges in it is much faster
        # than locating every value among the edges.
        finite = np.sort(finite)
        edges = np.asarray(self.edges, dtype=np.float64)
        below = np.searchsorted(finite, edges, side="left")  # values < each edge
        bins = np.diff(np.concatenate([[0], below, [finite.size]]))
        self.counts = (np.asarray(self.counts, dtype=np.int64) + bins).tolist()
        self.count += int(finite.size)
        lo, hi = float(finite[0]), float(finite[-1])
        self.minimum = lo if self.minimum is None else min(self.minimum, lo)
        self.maximum = hi if self.maximum is None else max(self.maximum, hi)
        self.total += float(finite.sum())
        self.total_sq += float(np.dot(finite, finite))
        if self.values is not None:
            if self.count > self.exact_limit:
                self.values = None
            else:
                self.values = np.sort(np.concatenate([np.asarray(self.values), finite])).tolist()


    def merge(self, other: NumericProfile) -> NumericProfile:
        if self.edges != other.edges:
            raise ValueError("numeric profiles with different bin edges cannot be merged")
        out = NumericProfile(
            edges=self.edges,
            counts=[a + b for a, b in zip(self.counts, other.counts, strict=True)],
            count=self.count + other.count, missing=self.missing + other.missing,
            invalid=self.invalid + other.invalid,
            minimum=_opt(min, self.minimum, other.minimum),
            maximum=_opt(max, self.maximum, other.maximum),
            total=self.total + other.total, total_sq=self.total_sq + other.total_sq,
            exact_limit=min(self.exact_limit, other.exact_limit),
        )
        if self.values is not None and other.values is not None and out.count <= out.exact_limit:
            out.values = sorted(self.values + other.values)
        else:
            out.values = None
        return out

    def exact(self) -> Floats | None:
        return None if self.values is None else np.asarray(self.values, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "count": self.count, "missing": self.missing,
            "invalid": self.invalid, "min": self.minimum, "max": self.maximum,
            "sum": self.total, "sum_sq": self.total_sq, "edges": self.edges,
            "counts": self.counts, "values": self.values, "exact_limit": self.exact_limit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        return cls(
            edges=[float(e) for e in data["edges"]], counts=[int(c) for c in data["counts"]],
            count=int(data["count"]), missing=int(data.get("missing", 0)),
            invalid=int(data.get("invalid", 0)), minimum=data.get("min"),
            maximum=data.get("max"), total=float(data.get("sum", 0.0)),
            total_sq=float(data.get("sum_sq", 0.0)),
            values=None if data.get("values") is None else [float(v) for v in data["values"]],
            exact_limit=int(data.get("exact_limit", WINDOW_EXACT_LIMIT)),
        )


@dataclass
class CategoricalProfile:
    """Value frequencies of one category (or bool) feature."""

    frequencies: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    kind = "categorical"

    @property
    def count(self) -> int:
        return sum(self.frequencies.values())

    def add_values(self, values: Iterable[Any]) -> None:
        for value in values:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                self.missing += 1
                continue
            key = category_key(value)
            self.frequencies[key] = self.frequencies.get(key, 0) + 1

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        freq = dict(self.frequencies)
        for key, n in other.frequencies.items():
            freq[key] = freq.get(key, 0) + n
        return CategoricalProfile(dict(sorted(freq.items())), self.missing + other.missing)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "missing": self.missing,
                "frequencies": dict(sorted(self.frequencies.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        return cls({str(k): int(v) for k, v in data["frequencies"].items()},
                   int(data.get("missing", 0)))


FeatureProfile = NumericProfile | CategoricalProfile


def category_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Profile:
    """Profiles of every feature of one data set (reference or window), plus its row count."""

    features: dict[str, FeatureProfile]
    rows: int = 0

    def merge(self, other: Profile) -> Profile:
        merged: dict[str, FeatureProfile] = {}
        for name in sorted(set(self.features) | set(other.features)):
            a, b = self.features.get(name), other.features.get(name)
            if a is None or b is None:
                merged[name] = a if b is None else b  # type: ignore[assignment]
            elif isinstance(a, NumericProfile) and isinstance(b, NumericProfile):
                merged[name] = a.merge(b)
            elif isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile):
                merged[name] = a.merge(b)  # noqa: SIM114 (different merge methods)
            else:
                raise ValueError(f"feature '{name}' is numeric in one profile, not the other")
        return Profile(merged, self.rows + other.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "rows": self.rows,
                "features": {k: v.to_dict() for k, v in self.features.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a profile (format {data.get('format')!r}, expected {FORMAT})")
        feats: dict[str, FeatureProfile] = {}
        for name, item in data["features"].items():
            feats[name] = (CategoricalProfile.from_dict(item) if item["kind"] == "categorical"
                           else NumericProfile.from_dict(item))
        return cls(feats, int(data.get("rows", 0)))


def reference_edges(values: Floats, bins: int = REFERENCE_BINS) -> list[float]:
    """Bin edges at the reference's quantiles (unique, increasing)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0]
    qs = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))
    return [float(e) for e in np.unique(qs)]


class ProfileBuilder:
    """Streams records (``{feature: value}`` mappings) into a profile against a reference.

    Records are buffered in chunks and folded into numpy histograms, so memory stays bounded
    by the chunk size (plus exact values, capped by ``exact_limit``) whatever the row count.
    """

    def __init__(self, reference: Profile, exact_limit: int = WINDOW_EXACT_LIMIT,
                 chunk: int = 20_000) -> None:
        self.reference = reference
        self.chunk = chunk
        self.profile = Profile({}, 0)
        for name, ref in reference.features.items():
            self.profile.features[name] = (
                NumericProfile.empty(ref.edges, exact_limit) if isinstance(ref, NumericProfile)
                else CategoricalProfile())
        self._buffer: list[Mapping[str, Any]] = []

    def add(self, record: Mapping[str, Any]) -> None:
        self._buffer.append(record)
        if len(self._buffer) >= self.chunk:
            self.flush()

    def add_columns(self, columns: Mapping[str, Floats]) -> None:
        """Add a chunk given as numeric columns (the fast path: no per-row Python work)."""
        self.flush()
        rows = {len(v) for v in columns.values()}
        if len(rows) > 1:
            raise ValueError("columns of different lengths")
        n = rows.pop() if rows else 0
        for name, prof in self.profile.features.items():
            col = columns.get(name)
            if col is None:
                if isinstance(prof, NumericProfile):
                    prof.add_array(np.empty(0), missing=n)
                else:
                    prof.missing += n
            elif isinstance(prof, NumericProfile):
                prof.add_array(np.asarray(col, dtype=np.float64))
            else:
                prof.add_values(col.tolist())
        self.profile.rows += n

    def flush(self) -> None:
        if not self._buffer:
            return
        rows = self._buffer
        self._buffer = []
        for name, prof in self.profile.features.items():
            if isinstance(prof, NumericProfile):
                raw, missing = _numeric_column(r.get(name) for r in rows)
                prof.add_array(raw, missing)
            else:
                prof.add_values(r.get(name) for r in rows)
        self.profile.rows += len(rows)

    def result(self) -> Profile:
        self.flush()
        return self.profile


def _numeric_column(values: Iterable[Any]) -> tuple[Floats, int]:
    out: list[float] = []
    missing = 0
    for v in values:
        if v is None or v == "":
            missing += 1
        elif isinstance(v, bool | int | float):
            try:
                out.append(float(v))
            except OverflowError:  # an integer beyond the float range: invalid
                out.append(math.nan)
        else:
            try:
                out.append(float(v))
            except (TypeError, ValueError):
                out.append(math.nan)  # not a number: counted as invalid
    return np.asarray(out, dtype=np.float64), missing


def _opt(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(fn(a, b))


def build_reference(columns: Mapping[str, Sequence[Any]], features: Sequence[Mapping[str, Any]],
                    bins: int = REFERENCE_BINS,
                    exact_limit: int = REFERENCE_EXACT_LIMIT) -> Profile:
    """The reference profile of in-memory columns (``{feature: values}``)."""
    profile = Profile({}, 0)
    rows = 0
    for feat in features:
        name = str(feat["name"])
        raw = columns.get(name, [])
        rows = max(rows, len(raw))
        if is_categorical(feat):
            cat = CategoricalProfile()
            cat.add_values(None if v == "" else v for v in list(raw))
            profile.features[name] = cat
        else:
            col = columns.get(name)
            if isinstance(col, np.ndarray) and col.dtype.kind == "f":
                arr, missing = col.astype(np.float64, copy=False), 0
            else:
                arr, missing = _numeric_column(raw)
            num = NumericProfile.empty(reference_edges(arr, bins), exact_limit)
            num.add_array(arr, missing)
            profile.features[name] = num
    profile.rows = rows
    return profile


def profile_reference(path: Path, features: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON-able reference profile of the CSV at ``path`` (header row names the features).

    ``features`` are metadata.json's feature dicts (``name``, ``type``, ``min``, ``max``,
    ``values``, ``nullable``). A declared feature missing from the CSV is an error.
    """
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [str(f["name"]) for f in features if f["name"] not in header]
        if missing:
            raise ValueError(f"{path}: reference data has no column for {', '.join(missing)}")
        columns: dict[str, list[Any]] = {str(f["name"]): [] for f in features}
        for row in reader:
            for name, col in columns.items():
                col.append(row.get(name))
    profile = build_reference(columns, features)
    out = profile.to_dict()
    out["source"] = Path(path).name
    out["feature_types"] = {str(f["name"]): str(f.get("type", "float")) for f in features}
    return out
