"""Validation gates: what a model version must pass before it ships.

Declared per model in ``mlops.yaml`` (``gates:`` and ``holdout:``) and checked by ``mlops test``
and before every deploy of a new version:

- metric gates are *measured* on the hold-out set with the same runtime code the endpoint
  runs (not copied from metadata);
- ``p50_latency_ms``/``p99_latency_ms`` are measured on the packaged handler (the zip that
  ships), single-row requests, after warm-up;
- ``size_mb`` is the artifact's size;
- the input contract must stay compatible with the version it replaces: a removed or retyped
  feature, a new required feature or a dropped category breaks callers and is refused unless
  the major version moved.

A threshold may be relative to the *champion*, the version serving the model's endpoints now
(``>= champion - 0.01``, ``<= champion * 1.2``: ``framework.config.thresholds``). The
champion's ONNX, fetched from the registry and checked against its recorded SHA-256, runs on
the candidate's hold-out through the same code, so both figures come from the same rows; its
latency is measured the same way, on the same packaged handler. Without a champion (the
model's first version) a relative gate passes and says so: ``no champion: first version``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.config.models import METRIC_GATES, Model
from framework.config.semver import SemVer
from framework.config.thresholds import parse_threshold
from framework.errors import MlopsError
from framework.rollout import pretraffic

BATCH = 500
FIRST_VERSION = "no champion: first version"


class GateFailedError(MlopsError):
    """A version failed its gates: nothing was shipped."""

    exit_code = 5

    def __init__(self, model: str, version: str, results: Sequence[GateResult]) -> None:
        self.results = list(results)
        self.model = f"{model}@{version}"
        failed = [r for r in results if not r.passed]
        lines = [f"{r.gate}: {r.detail}" for r in failed]
        super().__init__(
            f"{model}@{version} failed {len(failed)} of {len(results)} gate(s): "
            + "; ".join(lines),
            hint="fix the model or the thresholds in mlops.yaml; the serving version is "
                 "unchanged")


@dataclass(frozen=True)
class GateResult:
    gate: str
    expected: str  # as declared, e.g. ">=0.95" or ">= champion - 0.01"
    measured: float | str | None  # the candidate's figure
    passed: bool
    detail: str
    bound: float | None = None  # what ``measured`` was compared with (resolved)
    relative: bool = False  # the threshold names the champion
    champion: float | None = None  # the champion's figure
    champion_version: str | None = None
    no_champion: str = ""  # why a relative threshold had nothing to compare with

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gate": self.gate, "expected": self.expected,
                               "measured": self.measured, "passed": self.passed,
                               "detail": self.detail, "bound": self.bound}
        if self.relative:
            out.update(champion=self.champion, champion_version=self.champion_version)
            if self.no_champion:
                out["no_champion"] = self.no_champion
        return out


@dataclass(frozen=True)
class Champion:
    """The version a candidate challenges: its metadata.json and its ONNX bytes, already
    checked against the SHA-256 the registry records."""

    version: str
    metadata: Mapping[str, Any]
    artifact: bytes
    serves: str  # where it serves, for people: "endpoint predict", "alias production"


@dataclass(frozen=True)
class Versus:
    """The champion's side of one relative threshold: its version and figure, or why there
    is none (``version`` None: no champion; ``value`` None: it could not be measured)."""

    version: str | None
    value: float | None = None
    reason: str = FIRST_VERSION


def _g(value: float) -> str:
    return f"{value:.4g}"


def check_threshold(gate: str, expression: str, measured: float | None,
                    versus: Versus | None = None) -> GateResult:
    """Compare ``measured`` with ``expression``; a relative one with ``versus`` (the
    champion's figure; no champion when None)."""
    threshold = parse_threshold(expression)
    text = str(expression)
    if not threshold.relative:
        bound = threshold.value
        if measured is None:
            return GateResult(gate, text, None, False,
                              f"could not be measured ({threshold.canonical})", bound)
        passed = threshold.holds(measured, bound)
        return GateResult(gate, text, round(measured, 6), passed,
                          f"{_g(measured)} {'meets' if passed else 'misses'} "
                          f"{threshold.op}{bound:g} ({'ok' if passed else 'FAILED'})", bound)
    versus = versus or Versus(None)
    figure = None if measured is None else round(measured, 6)
    if versus.version is None:  # nothing to compare with: the gate cannot fail
        shown = "" if measured is None else f"; candidate {_g(measured)}"
        return GateResult(gate, text, figure, True, f"{versus.reason}{shown} (ok)",
                          relative=True, no_champion=versus.reason)
    if versus.value is None:
        return GateResult(gate, text, figure, False,
                          f"champion {versus.version} could not be measured: {versus.reason} "
                          "(FAILED)", relative=True, champion_version=versus.version)
    resolved = threshold.bound(versus.value)
    assert resolved is not None
    theirs = round(versus.value, 6)
    if measured is None:
        return GateResult(gate, text, None, False,
                          f"could not be measured ({threshold.canonical} = {_g(resolved)}; "
                          f"champion {versus.version}: {_g(versus.value)}) (FAILED)",
                          round(resolved, 6), True, theirs, versus.version)
    passed = threshold.holds(measured, resolved)
    return GateResult(
        gate, text, figure, passed,
        f"candidate {_g(measured)} {'meets' if passed else 'misses'} {threshold.canonical} "
        f"= {_g(resolved)} (champion {versus.version}: {_g(versus.value)}) "
        f"({'ok' if passed else 'FAILED'})", round(resolved, 6), True, theirs, versus.version)


# -- hold-out metrics -------------------------------------------------------------------


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows as records (numbers parsed) and the header, from a CSV."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        records = [{k: pretraffic.csv_number(v) for k, v in row.items()} for row in reader]
        return records, list(reader.fieldnames or [])


def read_holdout(path: Path, label: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows as records (numbers parsed) and the label column (as written: labels are compared
    as text), from a CSV with a header; read as the pre-traffic hook reads it."""
    try:
        return pretraffic.read_holdout(path.read_bytes(), label)
    except pretraffic.CheckFailedError:
        raise MlopsError(f"{path}: no '{label}' column",
                         hint="name the label column with holdout.label") from None


def predict_records(bundle: Any, records: Sequence[Mapping[str, Any]], features: list[str],
                    ) -> tuple[list[Any], list[list[float]], list[Any] | None]:
    """(predictions, probabilities, classes) of ``records`` through a runtime ``ModelBundle``,
    validated against the version's own input contract."""
    predictions: list[Any] = []
    probabilities: list[list[float]] = []
    classes: list[Any] | None = None
    for start in range(0, len(records), BATCH):
        batch = [{f: r.get(f) for f in features} for r in records[start:start + BATCH]]
        answer = bundle.predict({"instances": batch})
        predictions += answer["predictions"]
        probabilities += answer.get("probabilities") or []
        classes = answer.get("classes") or classes
    return predictions, probabilities, classes


def holdout_metrics(bundle: Any, model: Model, root: Path,
                    features: Sequence[str] | None = None) -> dict[str, float | None]:
    """Run ``model``'s hold-out set through ``bundle`` (a runtime ``ModelBundle``) and score
    it; ``features`` are the columns the bundle takes (default: ``model``'s)."""
    from framework.monitoring.performance import classification_metrics, regression_metrics

    assert model.holdout is not None
    features = list(features) if features is not None else [f.name for f in model.features]
    records, labels = read_holdout(root / model.holdout.path, model.holdout.label)
    predictions, probabilities, classes = predict_records(bundle, records, features)
    if model.task.value == "regression":
        return dict(regression_metrics([float(v) for v in labels],
                                       [float(v) for v in predictions]))
    positive = model.holdout.positive or (str(classes[-1]) if classes else str(labels[0]))
    scores: list[float | None] = [None] * len(predictions)
    if classes and probabilities:
        index = [str(c) for c in classes].index(positive)
        scores = [p[index] for p in probabilities]
    out = dict(classification_metrics(labels, predictions, scores, positive))
    out["pr_auc"] = average_precision([str(v) == positive for v in labels], scores)
    return out


def average_precision(truth: Sequence[bool], scores: Sequence[float | None]) -> float | None:
    """Area under the precision-recall curve as average precision (step-wise, like
    scikit-learn's ``average_precision_score``); None without positives or scores."""
    pairs = [(s, t) for s, t in zip(scores, truth, strict=True) if s is not None]
    positives = sum(1 for _, t in pairs if t)
    if not pairs or positives == 0:
        return None
    pairs.sort(key=lambda p: -p[0])
    ap, tp, seen, i = 0.0, 0, 0, 0
    while i < len(pairs):  # walk thresholds; ties form one step
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        step_tp = sum(1 for _, t in pairs[i:j] if t)
        tp += step_tp
        seen = j
        ap += (step_tp / positives) * (tp / seen)
        i = j
    return ap


# -- contract compatibility -----------------------------------------------------------


def contract_breaks(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Changes to the input contract that break existing callers."""
    before = {f["name"]: f for f in old.get("features", [])}
    after = {f["name"]: f for f in new.get("features", [])}
    out = []
    for name, feature in before.items():
        if name not in after:
            out.append(f"feature '{name}' was removed")
        elif after[name].get("type") != feature.get("type"):
            out.append(f"feature '{name}' changed type {feature.get('type')} → "
                       f"{after[name].get('type')}")
        else:
            new = after[name]
            lost = sorted(set(feature.get("values") or []) - set(new.get("values") or []))
            if lost:
                out.append(f"feature '{name}' no longer accepts {', '.join(lost)}")
            for bound, sign in (("min", 1), ("max", -1)):  # a higher min, a lower max
                old_b, new_b = feature.get(bound), new.get(bound)
                if new_b is not None and (old_b is None or sign * (new_b - old_b) > 0):
                    out.append(f"feature '{name}' {bound} narrowed {old_b} → {new_b}")
            if feature.get("nullable") and not new.get("nullable"):
                out.append(f"feature '{name}' no longer accepts missing values")
    for name, feature in after.items():
        if name not in before and not feature.get("nullable"):
            out.append(f"feature '{name}' is new and required")
    if old.get("task") and new.get("task") and old["task"] != new["task"]:
        out.append(f"task changed {old['task']} → {new['task']}")
    return out


def compatibility(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> GateResult:
    if previous is None:
        return GateResult("schema", "compatible", "first version", True,
                          "no earlier version to compare with (ok)")
    breaks = contract_breaks(previous, new)
    old_v, new_v = SemVer.parse(str(previous["version"])), SemVer.parse(str(new["version"]))
    major_moved = new_v.major > old_v.major
    passed = not breaks or major_moved
    if not breaks:
        detail = f"compatible with {old_v} (ok)"
    elif major_moved:
        detail = f"breaking changes allowed by the major bump {old_v} → {new_v}: " + \
                 "; ".join(breaks)
    else:
        detail = (f"breaking changes against {old_v} without a major version bump: "
                  + "; ".join(breaks) + " (FAILED)")
    return GateResult("schema", "compatible", "; ".join(breaks) or "compatible", passed, detail)


# -- all gates --------------------------------------------------------------------------


def evaluate(name: str, model: Model, root: Path, metadata: Mapping[str, Any],
             previous: Mapping[str, Any] | None,
             latency: Callable[[], dict[str, float]] | None = None, *,
             champion: Champion | None = None, no_champion: str = FIRST_VERSION,
             champion_latency: Callable[[], dict[str, float]] | None = None,
             ) -> list[GateResult]:
    """Every gate of ``model``; ``metadata`` is the new version's metadata.json. Relative
    thresholds compare with ``champion`` (measured here, on the same hold-out), or pass with
    ``no_champion`` as their reason when there is none."""
    results = [compatibility(previous, metadata)]
    gates = model.gates
    relative = {g for g, t in gates.items() if parse_threshold(t).relative}

    def versus(gate: str, figures: Mapping[str, float | None], why: str) -> Versus | None:
        if gate not in relative:
            return None
        if champion is None:
            return Versus(None, reason=no_champion)
        value = figures.get(gate)
        return Versus(champion.version, value,
                      why or ("" if value is not None else f"no {gate} figure"))

    artifact = root / model.artifact
    if "size_mb" in gates:
        sizes = {"size_mb": len(champion.artifact) / 1e6} if champion is not None else {}
        results.append(check_threshold("size_mb", gates["size_mb"],
                                       artifact.stat().st_size / 1e6,
                                       versus("size_mb", sizes, "")))
    metric_gates = {g: e for g, e in gates.items() if g in METRIC_GATES}
    if metric_gates:
        measured, problem = _scored(model, root, metadata, artifact.read_bytes())
        theirs: dict[str, float | None] = {}
        why = ""
        if champion is not None and relative & set(metric_gates):
            theirs, why = _scored(model, root, champion.metadata, champion.artifact)
        for gate, expression in sorted(metric_gates.items()):
            if problem:
                results.append(GateResult(gate, expression, None, False, problem))
            else:
                results.append(check_threshold(gate, expression, measured.get(gate),
                                               versus(gate, theirs, why)))
    timing = {g: e for g, e in gates.items() if g.endswith("_latency_ms")}
    if timing:
        figures = latency() if latency is not None else {}
        theirs, why = {}, ""
        if champion is not None and relative & set(timing):
            if champion_latency is None:
                why = "its latency was not measured"
            else:
                try:
                    theirs = dict(champion_latency())
                except MlopsError as exc:
                    why = exc.what
        for gate, expression in sorted(timing.items()):
            results.append(check_threshold(gate, expression, figures.get(gate),
                                           versus(gate, theirs, why)))
    return results


def _scored(model: Model, root: Path, metadata: Mapping[str, Any], data: bytes,
            ) -> tuple[dict[str, float | None], str]:
    """Hold-out metrics of one version (its metadata.json and ONNX bytes), each version
    taking the hold-out rows through its own input contract; or why they are missing."""
    from framework.runtime.errors import ModelUnavailableError, RequestError
    from framework.runtime.inference import ModelBundle

    try:
        bundle = ModelBundle.from_bytes(metadata, data, str(metadata["sha256"]), max_rows=BATCH)
    except ModelUnavailableError as exc:
        return {}, f"the model does not load: {exc}"
    features = [str(f["name"]) for f in metadata.get("features", [])]
    try:
        return holdout_metrics(bundle, model, root, features), ""
    except RequestError as exc:  # the hold-out data breaks the version's own contract
        return {}, f"the hold-out set does not fit the input contract: {exc.message}"


def results_json(results: Sequence[GateResult]) -> str:
    return json.dumps([r.to_dict() for r in results], indent=2)


def audit_fields(model: str, version: str, results: Sequence[GateResult],
                 champion: Champion | None = None) -> dict[str, Any]:
    """The audit record of one version's gates: every result (with the champion's figure
    and the resolved bound beside the candidate's), and the champion it was compared with,
    or why there was none."""
    failed = [r for r in results if not r.passed]
    relative = [r for r in results if r.relative]
    why = next((r.no_champion for r in relative if r.no_champion), "")
    after: dict[str, Any] = {"version": version, "passed": not failed,
                             "gates": [r.to_dict() for r in results]}
    if relative:
        after["champion"] = None if champion is None else {
            "version": champion.version, "serves": champion.serves,
            "sha256": champion.metadata.get("sha256")}
        if why:
            after["no_champion"] = why
    if failed:
        reason = "failed " + "; ".join(f"{r.gate}: {r.detail}" for r in failed)
    else:
        reason = f"passed {len(results)} gate(s)"
        if relative:
            reason += f" ({why})" if why else \
                f" (against champion {champion.version if champion else '?'})"
    return {"action": "gates", "resource": f"model.{model}@{version}", "kind": "gates",
            "model": model, "outcome": "failed" if failed else "succeeded", "reason": reason,
            "after": after}
