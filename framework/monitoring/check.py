"""One monitor check: captured window vs reference profile → the body of ``report.json``.

Reads only (captures, feedback, the reference profile, the prediction baseline); history,
charts, alarms, writing and actions are ``framework.monitoring.run``'s job.

Performance (a monitor with ``performance``): the window's labels are read first (in
parallel; those posted up to ``FEEDBACK_LAG_DAYS`` after the window's last day count: the
rule is in ``framework.monitoring.capture``), then joined to the predictions of each partial
profile as the window's profile is merged (``framework.monitoring.labels``): no request-id
map, no window-wide predictions. Memory per labelled row: ~17 B of label side (hash, label,
matched flag), 26 B of joined arrays (label, prediction, score, version code) and the
metrics' scratch; measured by ``bench/labels_join.py`` (one run, every row labelled): ~116 B
per further labelled row where the maps of before needed ~615 B (peak RSS growth 158 MB
against 640 MB for a 1M-row window, 268 MB against 1,254 MB for 2M). Figures per model
version, and overall.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framework.monitoring import drift, labels, partial
from framework.monitoring.capture import ReadLog
from framework.monitoring.partial import LATENCY_EDGES, Settings, percentile
from framework.monitoring.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    Profile,
    category_key,
    reference_edges,
)
from framework.monitoring.spec import MonitorSpec, Window
from framework.monitoring.store import Store

PLOT_BINS = 30


class CheckFailed(Exception):
    """The check could not run (no reference profile, unreadable metadata)."""


@dataclass
class WindowFacts:
    """The window's facts beside its feature profile: rows per model version, errors, the
    latency and answers sketches, and (with labels) the labelled rows."""

    latency: NumericProfile = field(default_factory=lambda: NumericProfile.empty(LATENCY_EDGES))
    versions: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    classes: list[str] = field(default_factory=list)
    answers: FeatureProfile | None = None  # predicted labels (frequencies) or values
    profiles: dict[str, int] = field(default_factory=dict)  # how the profile was made
    joined: labels.Joined | None = None  # the labelled rows (a monitor with performance)


def reference_key(model: str, version: str) -> str:
    return f"models/{model}/{version}/reference.json"


def baseline_key(monitor: str) -> str:
    return f"reports/{monitor}/baseline/predictions.json"


def _load_json(store: Store, key: str) -> Any:
    data = store.get(key)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as e:
        raise CheckFailed(f"{key} is not valid JSON ({e})") from e


def load_reference(store: Store, spec: MonitorSpec,
                   ) -> tuple[Profile, dict[str, str], dict[str, Any] | None]:
    """(feature profile, feature types, profile of the version's answers if recorded)."""
    key = reference_key(spec.model, spec.version)
    data = _load_json(store, key)
    if data is None:
        raise CheckFailed(f"no reference profile at {key}; register the model with reference "
                          "data (models.<name>.reference)")
    try:
        profile = Profile.from_dict(data)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckFailed(f"{key} is not a reference profile ({e})") from e
    types = {str(k): str(v) for k, v in (data.get("feature_types") or {}).items()}
    answers = data.get("predictions")
    return profile, types, answers if isinstance(answers, dict) else None


def positive_score(rec: Mapping[str, Any], positive: str | None) -> float | None:
    """The positive class's probability of a record that ``unusable`` accepted."""
    probs, classes = rec.get("probabilities"), rec.get("classes")
    if not isinstance(probs, list) or not probs:
        return None
    if isinstance(classes, list) and positive is not None:
        keys = [category_key(c) for c in classes]
        if positive in keys and keys.index(positive) < len(probs):
            return float(probs[keys.index(positive)])
    return float(probs[-1])


def finite_number(value: Any) -> bool:
    """A JSON number (not a boolean) that is a finite float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


def as_number(value: Any) -> float | None:
    """A finite number, or a string that spells one, as a float; else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return float(value) if finite_number(value) else None


def unusable(rec: Mapping[str, Any], task: str) -> str | None:
    """Why a capture record cannot be used (completing "records ..."), or None if it can."""
    if not isinstance(rec.get("inputs"), dict):
        return "without an inputs object"
    row = rec.get("row", 0)
    if type(row) is not int or row < 0:
        return "whose row is not a non-negative integer"
    if "prediction" in rec:
        prediction = rec["prediction"]
        if task == "regression" and not finite_number(prediction):
            return "whose prediction is not a finite number"
        if prediction is None or isinstance(prediction, dict | list) or (
                isinstance(prediction, float) and not finite_number(prediction)):
            return "whose prediction is null or not a value"
    probs = rec.get("probabilities")
    if probs is not None and not (isinstance(probs, list)
                                  and all(finite_number(p) for p in probs)):
        return "whose probabilities are null or not numbers"
    return None


def partial_settings(spec: MonitorSpec, reference: Profile, positive: str | None,
                     reference_bytes: bytes, feature_types: Mapping[str, str] | None = None,
                     answers: Mapping[str, Any] | None = None) -> Settings:
    """What the window's partial profiles are built against (the run and its workers
    alike)."""
    types = feature_types or {}
    features = [{"name": name, "type": types.get(name) or (
        "category" if isinstance(ref, CategoricalProfile) else "float")}
        for name, ref in reference.features.items()]
    edges = None
    if answers is not None and answers.get("kind") == "numeric":
        edges = [float(e) for e in answers["edges"]]
    elif answers is None and spec.task == "regression":
        edges = []  # one bin: exact values decide while the window is small
    with_predictions = spec.performance is not None
    return Settings(reference=reference, features=features, task=spec.task,
                    positive=positive, answers_edges=edges, predictions=with_predictions,
                    tag=partial.digest(reference_bytes, spec.task, positive, with_predictions))


def load_settings(store: Store, spec: MonitorSpec, positive: str | None = None,
                  ) -> tuple[Settings, dict[str, Any] | None]:
    """The partial-profile settings of ``spec``'s served version, read from the registry,
    and the reference's answers."""
    reference, types, answers = load_reference(store, spec)
    # Scores are the declared positive class's probability (not the last class's).
    positive = positive or (spec.performance or {}).get("positive")
    raw = store.get(reference_key(spec.model, spec.version)) or b""
    return partial_settings(spec, reference, positive, raw, types, answers), answers


def profile_window(store: Store, spec: MonitorSpec, window: Window, reference: Profile,
                   log: ReadLog, positive: str | None, *, reference_bytes: bytes = b"",
                   feature_types: Mapping[str, str] | None = None,
                   answers: Mapping[str, Any] | None = None,
                   fan: partial.Fan | None = None) -> tuple[Profile, WindowFacts]:
    """The window's profile, merged from the partial profiles of its capture objects (those
    missing are made now, by ``fan``'s workers for many of them, and stored:
    ``framework.monitoring.partial``)."""
    settings = partial_settings(spec, reference, positive, reference_bytes, feature_types,
                                answers)
    return profile_with(store, spec, window, settings, log, fan)


def profile_with(store: Store, spec: MonitorSpec, window: Window, settings: Settings,
                 log: ReadLog, fan: partial.Fan | None = None,
                 read: labels.Labels | None = None) -> tuple[Profile, WindowFacts]:
    """The window's profile and facts; with the labels ``read``, its labelled rows too."""
    join = labels.Join(read) if read is not None else None
    acc, usage = partial.window_profile(
        store, spec.endpoint, window, settings, log, fan=fan,
        fan_objects=int(spec.fan_out.get("objects", 200)),
        fan_workers=int(spec.fan_out.get("workers", 8)),
        fan_partials=int(spec.fan_out.get("partials", 1000)), join=join)
    facts = WindowFacts(latency=acc.latency.result(),
                        versions=acc.versions, errors=acc.errors, classes=acc.classes,
                        answers=acc.answers.result(), profiles=usage.to_dict(),
                        joined=join.result() if join is not None else None)
    return acc.profile(), facts


def quality_issues(reference: Profile, current: Profile,
                   redacted: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Redacted and missing features, NaNs, unseen categories: each one a sentence in the
    report."""
    issues: list[dict[str, Any]] = []
    rows = current.rows
    for name, cur in current.features.items():
        ref = reference.features[name]
        absent = cur.missing
        if name in redacted:
            issues.append({"kind": "redacted", "feature": name,
                           "message": f"'{name}' is redacted at capture (the endpoint's "
                                      "capture.redact): never recorded, not tested"})
        elif rows and absent == rows:
            issues.append({"kind": "missing_feature", "feature": name,
                           "message": f"'{name}' is missing from every captured record; "
                                      "not tested"})
        elif absent:
            issues.append({"kind": "missing_values", "feature": name,
                           "message": f"'{name}' is missing in {absent} of {rows} records"})
        if isinstance(cur, NumericProfile) and cur.invalid:
            issues.append({"kind": "nan", "feature": name,
                           "message": f"'{name}' has {cur.invalid} NaN, infinite or non-numeric "
                                      "values; excluded from the tests"})
        if isinstance(cur, CategoricalProfile) and isinstance(ref, CategoricalProfile):
            unseen = sorted(set(cur.frequencies) - set(ref.frequencies))
            if unseen:
                n = sum(cur.frequencies[k] for k in unseen)
                issues.append({"kind": "unseen_category", "feature": name, "values": unseen,
                               "message": f"'{name}' has {n} values never seen in the reference: "
                                          f"{', '.join(unseen[:10])}"})
    return issues


def choose_tests(spec: MonitorSpec, reference: Profile, current: Profile,
                 ) -> dict[str, tuple[str, float | None]]:
    settings = spec.drift
    overrides: Mapping[str, Any] = settings.get("features") or {}
    alpha = float(settings.get("alpha", 0.05))
    chosen: dict[str, tuple[str, float | None]] = {}
    for name, ref in reference.features.items():
        over = overrides.get(name) or {}
        if over.get("skip") or name in spec.redacted or current.features[name].count == 0:
            continue
        default = settings.get("categorical", "chi2") if isinstance(ref, CategoricalProfile) \
            else settings.get("numeric", "ks")
        test = str(over.get("test") or default)
        threshold = over.get("threshold")
        if threshold is None and drift.detector(test).uses_p_value:
            threshold = alpha
        chosen[name] = (test, None if threshold is None else float(threshold))
    return chosen


def plot_data(ref: FeatureProfile, cur: FeatureProfile) -> dict[str, Any]:
    """Shares of reference and current on a common grid, for the report's overlay plot."""
    if isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
        keys = sorted(set(ref.frequencies) | set(cur.frequencies))[:40]
        r, c = max(ref.count, 1), max(cur.count, 1)
        return {"kind": "categorical", "labels": keys,
                "reference": [ref.frequencies.get(k, 0) / r for k in keys],
                "current": [cur.frequencies.get(k, 0) / c for k in keys]}
    assert isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile)
    edges = np.asarray(ref.edges, dtype=np.float64)
    lo = min(float(edges[0]), cur.minimum if cur.minimum is not None else float(edges[0]))
    hi = max(float(edges[-1]), cur.maximum if cur.maximum is not None else float(edges[-1]))
    if hi <= lo:
        hi = lo + 1.0
    grid = np.linspace(lo, hi, PLOT_BINS + 1)
    mids = np.concatenate([[edges[0]], (edges[1:] + edges[:-1]) / 2.0, [edges[-1]]])
    mids[0] = cur.minimum if cur.minimum is not None and cur.minimum < edges[0] else edges[0]
    mids[-1] = cur.maximum if cur.maximum is not None and cur.maximum > edges[-1] else edges[-1]
    idx = np.clip(np.searchsorted(grid, mids, side="right") - 1, 0, PLOT_BINS - 1)

    def shares(p: NumericProfile) -> list[float]:
        counts = np.bincount(idx, weights=np.asarray(p.counts, dtype=np.float64),
                             minlength=PLOT_BINS)
        return [float(x) for x in counts / max(counts.sum(), 1.0)]

    return {"kind": "numeric", "edges": [float(g) for g in grid],
            "reference": shares(ref), "current": shares(cur)}


def prediction_profile(labels: Sequence[Any], numeric: bool) -> FeatureProfile:
    """The profile of a model's answers: predicted values (regression) or labels."""
    if numeric:
        arr = np.asarray([float(v) for v in labels], dtype=np.float64)
        num = NumericProfile.empty(reference_edges(arr, 256))
        num.add_array(arr)
        return num
    cat = CategoricalProfile()
    cat.add_values(labels)
    return cat


def prediction_drift(store: Store, spec: MonitorSpec, facts: WindowFacts, alpha: float,
                     reference_answers: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Predicted labels (or values) vs the served version's answers on its reference data
    (``reference_answers``, recorded at registration); for versions registered without them,
    vs the monitor's first window."""
    cur = facts.answers
    if cur is None or cur.count == 0:
        return None
    saved = reference_answers
    baseline = f"reference predictions of {spec.model}@{spec.version}"
    if saved is None:
        baseline = "first window"
        saved = _load_json(store, baseline_key(spec.name))
    if saved is None:
        first = _first_baseline(cur)
        if first is None:
            return {"baseline": None, "message": "too many predicted values in the first "
                    "window to keep as a baseline", "drifted": False}
        store.put(baseline_key(spec.name), json.dumps(first.to_dict()).encode(),
                  "application/json")
        return {"baseline": "created", "message": "this window is the prediction baseline "
                "for later runs", "drifted": False}
    base: FeatureProfile
    if saved.get("kind") == "numeric":
        base = NumericProfile.from_dict(saved)
        if not isinstance(cur, NumericProfile):
            return None
        if cur.edges != base.edges:
            exact = cur.exact()
            if exact is None:
                return {"baseline": baseline, "message": "the window's predicted values are "
                        "on other bins than the baseline's; not compared", "drifted": False}
            rebinned = NumericProfile.empty(base.edges)
            rebinned.add_array(exact)
            cur = rebinned
        result = drift.detector("ks").test("prediction", base, cur, alpha)
    else:
        base = CategoricalProfile.from_dict(saved)
        if not isinstance(cur, CategoricalProfile):
            return None
        result = drift.detector("chi2").test("prediction", base, cur, alpha)
    return {"baseline": baseline, **result.to_dict(), "plot": plot_data(base, cur)}


def _first_baseline(cur: FeatureProfile) -> FeatureProfile | None:
    """The first window's answers as a baseline (predicted values on 256 bins of their own)."""
    if isinstance(cur, CategoricalProfile):
        return cur
    exact = cur.exact()
    if exact is None:
        return None
    return prediction_profile(exact.tolist(), True)


def performance_section(spec: MonitorSpec, facts: WindowFacts, log: ReadLog,
                        positive: str | None) -> dict[str, Any] | None:
    """Performance figures of the window's labelled rows, overall and per model version."""
    settings = spec.performance
    if settings is None or facts.joined is None:
        return None
    joined = facts.joined.usable(log)
    read = joined.labels_read
    positive = positive or settings.get("positive") or (facts.classes[-1] if facts.classes
                                                         else None)
    metric = str(settings.get("metric", "accuracy"))
    out: dict[str, Any] = {"metric": metric, "min": settings.get("min"),
                           "max": settings.get("max"), "labelled": len(joined),
                           "feedback_records": read.records, "labels": len(read),
                           "feedback_days": {"first": read.days[0], "last": read.days[1]},
                           "positive": positive}
    out["overall"] = joined.metrics(positive)
    out["by_version"] = joined.by_version(positive)
    value = out["overall"].get(metric)
    out["value"] = value
    enough = len(joined) >= int(settings.get("min_labels", 20))
    out["judged"] = enough and value is not None
    lo, hi = settings.get("min"), settings.get("max")
    out["degraded"] = bool(out["judged"] and ((lo is not None and value < lo)
                                               or (hi is not None and value > hi)))
    if not enough:
        out["message"] = (f"only {len(joined)} labelled predictions in the window "
                          f"(< {settings.get('min_labels', 20)}); performance not judged")
    return out


def run_check(spec: MonitorSpec, store: Store, window: Window,
              positive: str | None = None, fan: partial.Fan | None = None) -> dict[str, Any]:
    """The check's findings (no history, no side effects besides the prediction baseline)."""
    settings, reference_answers = load_settings(store, spec, positive)
    reference = settings.reference
    positive = settings.positive
    log = ReadLog()
    read = (labels.read_labels(store, spec.endpoint, window, log, spec.task == "regression")
            if spec.performance is not None else None)  # first: joined as partials merge
    current, facts = profile_with(store, spec, window, settings, log, fan, read)
    min_rows = int(spec.drift.get("min_rows", 30))
    alpha = float(spec.drift.get("alpha", 0.05))
    correction = str(spec.drift.get("correction", "benjamini_hochberg"))
    body: dict[str, Any] = {
        "data": {"rows": current.rows, "files": log.files, "records_outside_window": log.outside,
                 "versions": facts.versions, "errors": facts.errors,
                 "latency_p50_ms": percentile(facts.latency, 50),
                 "latency_p99_ms": percentile(facts.latency, 99),
                 "reference_rows": reference.rows, "profiles": facts.profiles,
                 "redacted": list(spec.redacted)},
        "issues": log.issues + quality_issues(reference, current, spec.redacted),
    }
    if current.rows < min_rows:
        skipped = sum(log.skipped.values())
        body["insufficient"] = (
            f"only {current.rows} usable captured rows in the window (< {min_rows}; {skipped} "
            "skipped); drift not tested" if skipped else
            f"no captured traffic between {window.to_dict()['start']} and "
            f"{window.to_dict()['end']}" if current.rows == 0 else
            f"only {current.rows} captured rows in the window (< {min_rows}); drift not tested")
        body["drift"] = {"tests": [], "drifted": [], "tested": 0,
                         "features": len(reference.features), "alpha": alpha,
                         "correction": correction, "share": None}
        body["prediction_drift"] = None
    else:
        results = drift.run_tests(reference.features, current.features,
                                  choose_tests(spec, reference, current), correction)
        drifted = [r.feature for r in results if r.drifted]
        body["drift"] = {
            "tests": [r.to_dict() for r in results], "drifted": drifted,
            "tested": len(results), "features": len(reference.features), "alpha": alpha,
            "correction": correction, "share": len(drifted) / len(results) if results else None,
        }
        body["distributions"] = {
            r.feature: plot_data(reference.features[r.feature], current.features[r.feature])
            for r in sorted(results, key=lambda r: -_severity(r))[:12] if r.drifted}
        body["prediction_drift"] = (
            prediction_drift(store, spec, facts, alpha, reference_answers)
            if spec.drift.get("prediction", True) else None)
    body["performance"] = performance_section(spec, facts, log, positive)
    skipped_issue = log.skipped_issue()  # capture and feedback records alike
    if skipped_issue is not None:
        body["issues"].insert(0, skipped_issue)
    body["data"]["skipped"] = sum(log.skipped.values())
    return body


def _severity(result: drift.TestResult) -> float:
    if result.p_adjusted is not None:
        return -math.log10(max(result.p_adjusted, 1e-300))
    return result.statistic / result.threshold if result.threshold else result.statistic
