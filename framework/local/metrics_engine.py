"""The local CloudWatch: metrics extracted from EMF log events, and alarms evaluated.

moto stores CloudWatch metrics and alarms; it never extracts the metrics that log events in
Embedded Metric Format carry, nor evaluates an alarm. The daemon runs this engine every
``MLOPS_LOG_SHIP_S`` seconds (as often as the log shipper), on the control plane's API alone:

1. **Extraction.** For every log group of the control plane (``DescribeLogGroups`` and
   ``DescribeLogStreams`` say which grew since the last round; ``GetLogEvents`` reads on from
   the newest timestamp read in each stream) it takes the events whose JSON carries ``_aws``
   and extracts their metrics as CloudWatch Logs does (``extract``: the EMF specification,
   checked as CloudWatch checks it; an event that breaks it gives no metric and is logged,
   once per group). Lambda may put text before the JSON on a line: the document starts at its
   first ``{``.
2. **Storage.** Values are kept per metric (namespace, name, dimensions, unit) and per
   minute (per second for ``StorageResolution: 1``), the resolutions CloudWatch stores, and
   put with ``PutMetricData`` (``Values``/``Counts``, so percentiles stay exact) once the
   minute is over and lines still on their way (``late_s``) have had time to arrive.
   ``GetMetricStatistics`` and ``GetMetricData`` then answer from them; ``patch_moto`` makes
   moto's ``GetMetricStatistics`` select a metric by its exact dimensions, as CloudWatch does,
   and answer percentiles (``ExtendedStatistics``, and ``pNN`` in ``GetMetricData``).
3. **Alarms.** Each metric alarm (``DescribeAlarms``) is evaluated when a period of it has
   closed, and when values were put, as CloudWatch evaluates it (``decide``): over an
   evaluation range of ``EvaluationPeriods`` + 2 periods, the most recent
   ``EvaluationPeriods`` datapoints, ``DatapointsToAlarm`` of them breaching for ``ALARM``,
   missing datapoints treated by ``TreatMissingData`` (``missing``, the default;
   ``notBreaching``; ``breaching``; ``ignore``). Single-metric alarms (``Statistic`` or
   ``ExtendedStatistic``, ``Unit``) and metric-math alarms (``Metrics``: ``+ - * / ^``,
   comparisons, ``IF(c, a, b)``, ``FILL(m, value)``) are evaluated; anomaly detection bands
   and composite alarms are not. A change of state is made with ``SetAlarmState`` and a
   reason worded as CloudWatch words it (``Threshold Crossed: 1 out of the last 1 datapoints
   [...] was greater than the threshold (1.0) (minimum 1 datapoint for OK -> ALARM
   transition).``, ``Insufficient Data: ...``). Alarm actions are not taken.

Lambda's own metrics: on AWS, Lambda publishes ``AWS/Lambda`` metrics for every invocation;
here the local Lambda (``runner.py``) hands each invocation's to ``record``
(``lambda_points`` says which), and they are stored and put as the extracted ones are, per
minute, stamped with the time the invocation started, as Lambda stamps them.

Restarts: PutMetricData and SetAlarmState are control-plane writes, journaled and replayed
like the others; log events are not (the log shipper sends the recent tail of each function's
log again, into a new stream). ``metrics.json`` keeps the time before which every extracted
value was put; events older than the value read at start are not extracted again. At least
once otherwise, as CloudWatch promises for EMF.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import operator
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "metrics.json"
MAX_VALUES = 150  # distinct values in one MetricDatum
MAX_DATA = 1000  # MetricDatum per PutMetricData call
MAX_METRICS = 100  # MetricDefinitions per directive; values per metric target
MAX_DIMENSIONS = 30  # keys per DimensionSet
PAST_MS = 14 * 86400 * 1000  # CloudWatch takes values up to two weeks old...
FUTURE_MS = 2 * 3600 * 1000  # ... and up to two hours ahead
EXTRA_PERIODS = 2  # the evaluation range: EvaluationPeriods + this many periods
UNITS = frozenset({
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
    "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
    "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
    "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
    "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"})
STATISTICS = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})
PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
OPERATORS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", operator.ge),
    "GreaterThanThreshold": ("greater than", operator.gt),
    "LessThanThreshold": ("less than", operator.lt),
    "LessThanOrEqualToThreshold": ("less than or equal to", operator.le),
}
ALARM, OK, INSUFFICIENT = "ALARM", "OK", "INSUFFICIENT_DATA"
UNCHECKED = "Unchecked"  # moto's reason for an alarm never evaluated (AWS: INSUFFICIENT_DATA)

Client = Callable[[str, str], Any]  # (service, region) → boto3 client of the control plane
Dimensions = tuple[tuple[str, str], ...]


# -- the embedded metric format -------------------------------------------------------------
class EmfError(ValueError):
    """A log event that carries ``_aws`` but breaks the EMF specification."""


@dataclass(frozen=True)
class Point:
    """The values one log event gives one metric."""

    namespace: str
    name: str
    dimensions: Dimensions
    unit: str
    resolution: int  # 60 (standard) or 1 (high resolution)
    timestamp_ms: int
    values: tuple[float, ...]


def _text(value: Any, what: str, limit: int = 255) -> str:
    if type(value) is not str or not 1 <= len(value) <= limit:
        raise EmfError(f"{what} must be a string of 1 to {limit} characters, not {value!r}")
    return value


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def extract(message: str) -> list[Point]:
    """The metric values a log event gives under the EMF specification: none for an event
    without ``_aws``; ``EmfError`` for one that carries it but breaks the specification."""
    start = message.find("{")
    if start < 0 or '"_aws"' not in message:
        return []
    try:
        doc = json.loads(message[start:])
    except ValueError:
        return []  # not a JSON document: an ordinary log line that mentions _aws
    if type(doc) is not dict or "_aws" not in doc:
        return []
    meta = doc["_aws"]
    if type(meta) is not dict:
        raise EmfError("_aws must be an object")
    stamp = meta.get("Timestamp")
    if type(stamp) is not int or stamp < 0:
        raise EmfError(f"_aws.Timestamp must be milliseconds since the epoch, not {stamp!r}")
    directives = meta.get("CloudWatchMetrics")
    if type(directives) is not list:
        raise EmfError("_aws.CloudWatchMetrics must be an array of metric directives")
    points: list[Point] = []
    for directive in directives:
        if type(directive) is not dict:
            raise EmfError("a metric directive must be an object")
        namespace = _text(directive.get("Namespace"), "Namespace")
        if namespace.startswith("AWS/"):
            raise EmfError(f"namespace {namespace!r} is reserved for AWS")
        sets = directive.get("Dimensions")
        if type(sets) is not list or not sets:
            raise EmfError("Dimensions must be a non-empty array of dimension sets")
        dimension_sets: list[Dimensions] = []
        for keys in sets:
            if type(keys) is not list or len(keys) > MAX_DIMENSIONS:
                raise EmfError(f"a dimension set must be an array of at most {MAX_DIMENSIONS} "
                               "keys")
            dims = []
            for key in keys:
                _text(key, "a dimension key")
                value = doc.get(key)
                if type(value) is not str or not 1 <= len(value) <= 1024:
                    raise EmfError(f"dimension {key!r} must be a string member of the root "
                                   f"node (1 to 1024 characters), not {value!r}")
                dims.append((key, value))
            dimension_sets.append(tuple(dims))
        metrics = directive.get("Metrics")
        if type(metrics) is not list or len(metrics) > MAX_METRICS:
            raise EmfError(f"Metrics must be an array of at most {MAX_METRICS} definitions")
        for metric in metrics:
            if type(metric) is not dict:
                raise EmfError("a metric definition must be an object")
            name = _text(metric.get("Name"), "a metric Name")
            unit = metric.get("Unit", "None")
            if unit not in UNITS:
                raise EmfError(f"metric {name!r}: {unit!r} is not a CloudWatch unit")
            resolution = metric.get("StorageResolution", 60)
            if resolution not in (1, 60) or type(resolution) is not int:
                raise EmfError(f"metric {name!r}: StorageResolution must be 1 or 60")
            target = doc.get(name)
            values = target if type(target) is list else [target]
            if not values or len(values) > MAX_METRICS or not all(map(_number, values)):
                raise EmfError(f"metric {name!r} must be a number or an array of at most "
                               f"{MAX_METRICS} numbers on the root node, not {target!r}")
            floats = tuple(float(v) for v in values if v is not None)
            points.extend(Point(namespace, name, dims, unit, resolution, stamp, floats)
                          for dims in dimension_sets)
    return points


# -- Lambda's own metrics ------------------------------------------------------------------
LAMBDA_NAMESPACE = "AWS/Lambda"


def lambda_points(invoked_arn: str, executed_version: str, started_ms: int, *,
                  duration_ms: float | None, function_error: bool) -> list[Point]:
    """The ``AWS/Lambda`` metrics Lambda publishes for one invocation of ``invoked_arn`` (a
    function ARN, qualified by a version or an alias, or not) that ran ``executed_version``:
    ``Invocations`` 1, ``Errors`` 1 when it ended in a function error (the handler raised, the
    runtime exited, it timed out or ran out of memory, its response was not JSON) else 0, and
    ``Duration``; or, with ``duration_ms`` None (refused by the function's reserved
    concurrency, it never ran), ``Throttles`` 1 alone. Each per function (``FunctionName``),
    per qualifier when invoked with one (``FunctionName``, ``Resource`` = ``name:qualifier``),
    per executed version when the qualifier is an alias (and ``ExecutedVersion``), and across
    all functions (no dimension), as Lambda publishes them."""
    parts = invoked_arn.split(":")
    name = parts[6]
    qualifier = parts[7] if len(parts) > 7 else ""
    sets: list[Dimensions] = [(), (("FunctionName", name),)]
    if qualifier:
        resource = (("FunctionName", name), ("Resource", f"{name}:{qualifier}"))
        sets.append(resource)
        if not qualifier.isdigit() and qualifier != "$LATEST":
            sets.append((*resource, ("ExecutedVersion", executed_version)))
    if duration_ms is None:
        values = [("Throttles", "Count", 1.0)]
    else:
        values = [("Invocations", "Count", 1.0),
                  ("Errors", "Count", 1.0 if function_error else 0.0),
                  ("Duration", "Milliseconds", round(duration_ms, 2))]
    return [Point(LAMBDA_NAMESPACE, metric, dims, unit, 60, started_ms, (value,))
            for dims in sets for metric, unit, value in values]


# -- values kept per metric and minute until the minute is over -----------------------------
_Key = tuple[str, Dimensions, str, int, int]  # name, dimensions, unit, resolution, bucket (ms)


@dataclass
class _Pending:
    buckets: dict[tuple[str, str], dict[_Key, Counter[float]]] = field(default_factory=dict)

    def add(self, region: str, point: Point) -> None:
        width = point.resolution * 1000
        key = (point.name, point.dimensions, point.unit, point.resolution,
               point.timestamp_ms - point.timestamp_ms % width)
        self.buckets.setdefault((region, point.namespace), {}).setdefault(
            key, Counter()).update(point.values)

    def closed(self, horizon_ms: int) -> Iterator[tuple[str, str, list[_Key]]]:
        for (region, namespace), keys in self.buckets.items():
            done = [k for k in keys if k[4] + k[3] * 1000 <= horizon_ms]
            if done:
                yield region, namespace, done

    def oldest(self) -> int | None:
        starts = [k[4] for keys in self.buckets.values() for k in keys]
        return min(starts) if starts else None


def metric_data(keys: Mapping[_Key, Counter[float]]) -> list[dict[str, Any]]:
    """PutMetricData's MetricData for the buckets ``keys``: ``Values``/``Counts``, at most
    ``MAX_VALUES`` distinct values a datum."""
    out = []
    for (name, dims, unit, resolution, start), counts in keys.items():
        items = sorted(counts.items())
        for first in range(0, len(items), MAX_VALUES):
            chunk = items[first:first + MAX_VALUES]
            out.append({"MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                        "Timestamp": datetime.fromtimestamp(start / 1000, UTC),
                        "Unit": unit, "StorageResolution": resolution,
                        "Values": [v for v, _ in chunk],
                        "Counts": [float(c) for _, c in chunk]})
    return out


# -- alarm evaluation -----------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    state: str | None  # None: keep the current state (TreatMissingData: ignore)
    reason: str
    evaluated: list[tuple[int, float]]  # (index in the range, value) of the real datapoints


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d/%m/%y %H:%M:%S")


def decide(values: list[float | None], times: list[float], *, evaluation_periods: int,
           datapoints_to_alarm: int, comparison: str, threshold: float,
           treat_missing: str = "missing") -> Decision:
    """The state an alarm goes to, from the datapoints of its evaluation range (oldest first,
    None where missing), as CloudWatch decides it: the most recent ``evaluation_periods``
    real datapoints; fewer than that, all of them and as few missing ones as needed, filled
    by ``treat_missing``."""
    words, breaches = OPERATORS[comparison]
    n, m = evaluation_periods, datapoints_to_alarm
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    chosen = present[-n:]
    filled = n - len(chosen)
    bad = [(i, v) for i, v in chosen if breaches(v, threshold)]
    good = [(i, v) for i, v in chosen if not breaches(v, threshold)]
    breaching = len(bad)
    if filled and treat_missing == "breaching":
        breaching += filled
    elif filled and treat_missing not in ("notBreaching", "breaching") and not good \
            and breaching < m:
        # "missing" and "ignore": real datapoints alone decide, when they can
        if treat_missing == "ignore":
            return Decision(None, "", chosen)
        return Decision(INSUFFICIENT, f"Insufficient Data: {n} "
                        f"{_plural(n, 'datapoint was', 'datapoints were')} unknown.", chosen)
    state = ALARM if breaching >= m else OK
    treated = filled if treat_missing in ("breaching", "notBreaching") else 0
    as_what = "Breaching" if treat_missing == "breaching" else "NonBreaching"
    if not chosen:
        return Decision(state, f"Threshold Crossed: no datapoints were received for {treated} "
                        f"{_plural(treated, 'period', 'periods')} and {treated} missing "
                        f"{_plural(treated, 'datapoint was', 'datapoints were')} treated as "
                        f"[{as_what}].", chosen)
    shown = bad if state == ALARM else good
    count = len(shown) + (treated if (state == ALARM) == (as_what == "Breaching") else 0)
    listed = ", ".join(f"{float(v)!r} ({_stamp(times[i])})" for i, v in reversed(shown))
    need = m if state == ALARM else n - m + 1
    verb = _plural(count, "was", "were")
    reason = (f"Threshold Crossed: {count} out of the last {n} datapoints [{listed}] {verb} "
              f"{'' if state == ALARM else 'not '}{words} the threshold "
              f"({float(threshold)!r})")
    if treated:
        reason += (f" and {treated} missing {_plural(treated, 'datapoint was', 'datapoints were')}"
                   f" treated as [{as_what}]")
    transition = "OK -> ALARM" if state == ALARM else "ALARM -> OK"
    reason += (f" (minimum {need} {_plural(need, 'datapoint', 'datapoints')} for {transition} "
               "transition).")
    return Decision(state, reason, chosen)


class ExpressionError(ValueError):
    """A metric math expression outside what the local engine evaluates."""


Series = dict[float, float]  # period start (epoch s) → value
Value = float | Series

_ARITHMETIC: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow}


def _parse(text: str) -> ast.Expression:
    """Metric math as a Python expression: CloudWatch's exponent ``^`` is Python's ``**``
    (binding tighter than ``*`` and ``/``, as an exponent does)."""
    if "**" in text:
        raise SyntaxError("'**' is no metric math operator (the exponent is '^')")
    return ast.parse(text.strip().replace("^", "**"), mode="eval")
_COMPARE: dict[type, Callable[[float, float], bool]] = {
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Eq: operator.eq, ast.NotEq: operator.ne}


def _combine(a: Value, b: Value, fn: Callable[[float, float], float]) -> Value:
    """``fn`` pointwise; a period missing from either side, or whose result is not a finite
    number (a division by zero), has no value."""
    def one(x: float, y: float) -> float | None:
        try:
            r = float(fn(x, y))
        except ZeroDivisionError:
            return None
        return r if math.isfinite(r) else None

    if isinstance(a, dict) or isinstance(b, dict):
        if isinstance(a, dict) and isinstance(b, dict):
            keys = a.keys() & b.keys()
        else:
            keys = set(a.keys() if isinstance(a, dict) else b.keys())  # type: ignore[union-attr]
        out: Series = {}
        for t in keys:
            r = one(a[t] if isinstance(a, dict) else a, b[t] if isinstance(b, dict) else b)
            if r is not None:
                out[t] = r
        return out
    r = one(a, b)
    if r is None:
        raise ExpressionError("the expression divides a constant by zero")
    return r


def evaluate_expression(text: str, series: Mapping[str, Series], grid: list[float]) -> Series:
    """A metric math expression over the series of its query ids, on the periods ``grid``."""
    try:
        tree = _parse(text)
    except SyntaxError as exc:
        raise ExpressionError(f"cannot read the expression {text!r}") from exc

    def ev(node: ast.AST) -> Value:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in series:
                raise ExpressionError(f"{node.id!r} is no query id of the alarm")
            return series[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return _combine(ev(node.operand), sign, operator.mul)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return _combine(ev(node.left), ev(node.right), _ARITHMETIC[type(node.op)])
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            test = _COMPARE[type(node.ops[0])]
            return _combine(ev(node.left), ev(node.comparators[0]),
                            lambda x, y: 1.0 if test(x, y) else 0.0)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name = node.func.id.upper()
            args = [ev(a) for a in node.args]
            if name == "IF" and len(args) == 3:
                cond, yes, no = args
                times = cond.keys() if isinstance(cond, dict) else grid
                out: Series = {}
                for t in times:
                    c = cond[t] if isinstance(cond, dict) else cond
                    pick = yes if c else no
                    value = pick.get(t) if isinstance(pick, dict) else pick
                    if value is not None:
                        out[t] = value
                return out
            if name == "FILL" and len(args) == 2 and isinstance(args[0], dict) \
                    and not isinstance(args[1], dict):
                filled, value = args[0], args[1]
                return {t: filled.get(t, value) for t in grid}
        raise ExpressionError(f"{ast.unparse(node)!r} is not supported locally (+ - * / ^, "
                              "comparisons, IF(c, a, b) and FILL(m, value) are)")

    result = ev(tree.body)
    return result if isinstance(result, dict) else dict.fromkeys(grid, result)


def _names(text: str) -> set[str]:
    """The query ids an expression reads (function names aside)."""
    try:
        tree = _parse(text)
    except SyntaxError:
        return set()
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


# -- the engine -----------------------------------------------------------------------------
@dataclass
class _Stream:
    stored: int = -1  # storedBytes when last read
    after_ms: int | None = None  # the newest event timestamp read
    edge: int = 0  # events read with that timestamp (the next read starts at it)


class MetricsEngine:
    """Extraction, storage and alarm evaluation for the regions ``regions()`` names."""

    def __init__(self, client: Client, regions: Callable[[], Iterable[str]],
                 home: Path | None = None, interval_s: float = 1.0,
                 late_s: float | None = None) -> None:
        self.client = client
        self.regions = regions
        self.interval_s = interval_s
        self.late_s = 2 * interval_s + 3.0 if late_s is None else late_s
        self._state_path = home / STATE_FILE if home is not None else None
        self._floor_ms = self._load_floor()  # events before it were put by an earlier run
        self._saved_ms = self._floor_ms
        self._groups: dict[tuple[str, str], int] = {}  # (region, group) → storedBytes read
        self._streams: dict[tuple[str, str, str], _Stream] = {}
        self._pending = _Pending()
        self._recorded: deque[tuple[str, Point]] = deque()  # record's, until the next round
        self._evaluated: dict[tuple[str, str], tuple[float, str, int]] = {}
        self._puts: Counter[str] = Counter()  # PutMetricData calls made, per region
        self._refused: set[tuple[str, str]] = set()  # (region, group or alarm) logged once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.extracted = 0  # EMF events read
        self.rejected = 0  # events that carry _aws but break the specification
        self.put = 0  # values put with PutMetricData
        self.transitions = 0  # SetAlarmState calls

    # -- persistence -----------------------------------------------------------------------
    def _load_floor(self) -> int:
        if self._state_path is None:
            return 0
        try:
            return int(json.loads(self._state_path.read_text())["put_before_ms"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _save(self, put_before_ms: int) -> None:
        if self._state_path is None or put_before_ms <= self._saved_ms:
            return
        tmp = self._state_path.with_name(f".{STATE_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps({"put_before_ms": put_before_ms}))
        os.replace(tmp, self._state_path)
        self._saved_ms = put_before_ms

    def record(self, region: str, points: Iterable[Point]) -> None:
        """Values published without a log line (Lambda's own metrics, ``lambda_points``):
        stored with the extracted ones at the next round. Thread-safe and never blocks (the
        local Lambda calls it on its event loop)."""
        self._recorded.extend((region, p) for p in points)

    # -- the loop --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def tick(self, now: float | None = None) -> dict[str, int]:
        """One round: read and extract, put the minutes that are over, evaluate alarms."""
        with self._lock:
            now = time.time() if now is None else now
            horizon_ms = int((now - self.late_s) * 1000)
            counts = {"events": 0, "values": 0, "evaluated": 0, "changed": 0}
            regions = list(self.regions())
            for region in regions:
                try:
                    counts["events"] += self._read(region, int(now * 1000))
                except Exception as exc:  # the control plane is busy or going: next round
                    log.warning("reading the log groups of %s failed: %s", region, exc)
            while self._recorded:
                self._pending.add(*self._recorded.popleft())
            counts["values"] = self._flush(horizon_ms)
            oldest = self._pending.oldest()
            minute = horizon_ms - horizon_ms % 60_000
            self._save(minute if oldest is None else min(minute, oldest))
            for region in regions:
                try:
                    evaluated, changed = self._alarms(region, now)
                except Exception as exc:
                    log.warning("evaluating the alarms of %s failed: %s", region, exc)
                    continue
                counts["evaluated"] += evaluated
                counts["changed"] += changed
            return counts

    # -- 1. extraction ---------------------------------------------------------------------
    def _read(self, region: str, now_ms: int) -> int:
        logs = self.client("logs", region)
        kwargs: dict[str, Any] = {}
        groups: dict[str, int] = {}
        while True:
            page = logs.describe_log_groups(**kwargs)
            for group in page.get("logGroups", []):
                groups[group["logGroupName"]] = int(group.get("storedBytes") or 0)
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
        for gone in [k for k in self._groups if k[0] == region and k[1] not in groups]:
            del self._groups[gone]  # deleted: a group made again under its name starts over
            for key in [s for s in self._streams if s[:2] == gone]:
                del self._streams[key]
        events = 0
        for name, stored in groups.items():
            if self._groups.get((region, name)) == stored:
                continue
            events += self._read_group(logs, region, name, now_ms)
            self._groups[(region, name)] = stored
        return events

    def _read_group(self, logs: Any, region: str, group: str, now_ms: int) -> int:
        kwargs: dict[str, Any] = {"logGroupName": group}
        streams: list[dict[str, Any]] = []
        while True:
            try:
                page = logs.describe_log_streams(**kwargs)
            except logs.exceptions.ResourceNotFoundException:
                return 0
            streams.extend(page.get("logStreams", []))
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
        events = 0
        for stream in streams:
            name = stream["logStreamName"]
            seen = self._streams.setdefault((region, group, name), _Stream())
            stored = int(stream.get("storedBytes") or 0)
            if seen.stored == stored:
                continue
            # from the newest timestamp read (startTime is inclusive; the events of that
            # timestamp read last time come first, in the order they were ingested)
            args: dict[str, Any] = {"logGroupName": group, "logStreamName": name,
                                    "startFromHead": True}
            if seen.after_ms is not None:
                args["startTime"] = seen.after_ms
            skip = seen.edge
            while True:
                page = logs.get_log_events(**args)
                batch = page.get("events", [])
                for event in batch:
                    ts = int(event.get("timestamp", 0))
                    if ts == seen.after_ms and skip:
                        skip -= 1
                        continue
                    if seen.after_ms is None or ts > seen.after_ms:
                        seen.after_ms, seen.edge = ts, 0
                    seen.edge += ts == seen.after_ms
                    events += self._extract(region, group, str(event.get("message", "")),
                                            now_ms)
                token = page.get("nextForwardToken")
                if not batch or not token or token == args.get("nextToken"):
                    break
                args["nextToken"] = token
            seen.stored = stored
        return events

    def _extract(self, region: str, group: str, message: str, now_ms: int) -> int:
        try:
            points = extract(message)
        except EmfError as exc:
            self.rejected += 1
            if (region, group) not in self._refused:
                self._refused.add((region, group))
                log.error("%s: a log event in embedded metric format was not extracted (%s); "
                          "later ones of this group are counted only", group, exc)
            return 0
        if not points:
            return 0
        stamp = points[0].timestamp_ms
        if stamp < self._floor_ms:
            return 0  # put before a restart: its log line was sent again
        if not now_ms - PAST_MS <= stamp <= now_ms + FUTURE_MS:
            self.rejected += 1
            return 0
        for point in points:
            self._pending.add(region, point)
        self.extracted += 1
        return 1

    # -- 2. storage ------------------------------------------------------------------------
    def _flush(self, horizon_ms: int) -> int:
        put = 0
        for region, namespace, keys in list(self._pending.closed(horizon_ms)):
            buckets = self._pending.buckets[(region, namespace)]
            data = metric_data({k: buckets[k] for k in keys})
            try:
                cloudwatch = self.client("cloudwatch", region)
                for first in range(0, len(data), MAX_DATA):
                    cloudwatch.put_metric_data(Namespace=namespace,
                                               MetricData=data[first:first + MAX_DATA])
                    self._puts[region] += 1
            except Exception as exc:  # kept, and put again next round
                log.warning("PutMetricData to %s (%s) failed: %s", namespace, region, exc)
                continue
            for k in keys:
                put += sum(buckets.pop(k).values())
            if not buckets:
                del self._pending.buckets[(region, namespace)]
        self.put += put
        return put

    # -- 3. alarms -------------------------------------------------------------------------
    def _alarms(self, region: str, now: float) -> tuple[int, int]:
        cloudwatch = self.client("cloudwatch", region)
        kwargs: dict[str, Any] = {"AlarmTypes": ["MetricAlarm"]}
        alarms: list[dict[str, Any]] = []
        while True:
            page = cloudwatch.describe_alarms(**kwargs)
            alarms.extend(page.get("MetricAlarms", []))
            token = page.get("NextToken")
            if not token or token == kwargs.get("NextToken"):
                break
            kwargs["NextToken"] = token
        names = {a["AlarmName"] for a in alarms}
        for key in [k for k in self._evaluated if k[0] == region and k[1] not in names]:
            del self._evaluated[key]
        evaluated = changed = 0
        for alarm in alarms:
            period = self._period(alarm)
            if not period:
                continue
            end = (now - self.late_s) // period * period
            # again when a period closes, the alarm changes, or new values were put
            marker = (end, str(alarm.get("AlarmConfigurationUpdatedTimestamp")),
                      self._puts[region])
            if self._evaluated.get((region, alarm["AlarmName"])) == marker:
                continue
            self._evaluated[(region, alarm["AlarmName"])] = marker
            try:
                decision, data = self.evaluate(cloudwatch, alarm, end, period)
            except ExpressionError as exc:
                self._refuse(region, alarm["AlarmName"], str(exc))
                continue
            evaluated += 1
            if self._apply(cloudwatch, alarm, decision, data):
                changed += 1
        return evaluated, changed

    def _refuse(self, region: str, alarm: str, why: str) -> None:
        if (region, alarm) not in self._refused:
            self._refused.add((region, alarm))
            log.error("alarm %s (%s) is not evaluated locally: %s", alarm, region, why)

    @staticmethod
    def _period(alarm: Mapping[str, Any]) -> int:
        if alarm.get("Metrics"):
            periods = [int(q["MetricStat"]["Period"]) for q in alarm["Metrics"]
                       if "MetricStat" in q] + [int(q["Period"]) for q in alarm["Metrics"]
                                                if q.get("Period")]
            return periods[0] if periods else 0
        return int(alarm.get("Period") or 0)

    def _series(self, cloudwatch: Any, metric: Mapping[str, Any], stat: str, unit: str | None,
                start: float, end: float, period: int) -> Series:
        kwargs: dict[str, Any] = {
            "Namespace": metric["Namespace"], "MetricName": metric["MetricName"],
            "Dimensions": list(metric.get("Dimensions") or []),
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC), "Period": period}
        if unit:
            kwargs["Unit"] = unit
        if stat in STATISTICS:
            kwargs["Statistics"] = [stat]
        elif PERCENTILE.match(stat):
            kwargs["ExtendedStatistics"] = [stat]
        else:
            raise ExpressionError(f"the statistic {stat!r} is not supported locally")
        points = cloudwatch.get_metric_statistics(**kwargs).get("Datapoints", [])
        out: Series = {}
        for p in points:
            value = (p.get(stat) if stat in STATISTICS
                     else (p.get("ExtendedStatistics") or {}).get(stat))
            if value is not None:
                out[_epoch(p["Timestamp"])] = float(value)
        return out

    def evaluate(self, cloudwatch: Any, alarm: Mapping[str, Any], end: float,
                 period: int) -> tuple[Decision, dict[str, Any]]:
        """The decision on ``alarm`` for the evaluation range ending at ``end``, and its
        StateReasonData; ``ExpressionError`` for an alarm of a kind not evaluated locally."""
        comparison = str(alarm.get("ComparisonOperator"))
        if comparison not in OPERATORS or alarm.get("ThresholdMetricId"):
            raise ExpressionError(f"{comparison} (anomaly detection bands) is not supported")
        n = int(alarm["EvaluationPeriods"])
        m = int(alarm.get("DatapointsToAlarm") or n)
        start = end - (n + EXTRA_PERIODS) * period
        grid = [start + k * period for k in range(n + EXTRA_PERIODS)]
        data: dict[str, Any] = {"version": "1.0", "queryDate": _iso(time.time()),
                                "startDate": _iso(start), "period": period}
        if alarm.get("Metrics"):
            series: dict[str, Series] = {}
            expressions: dict[str, str] = {}
            returned = None
            for query in alarm["Metrics"]:
                if "MetricStat" in query:
                    stat = query["MetricStat"]
                    series[query["Id"]] = self._series(
                        cloudwatch, stat["Metric"], stat["Stat"], stat.get("Unit"), start, end,
                        period)
                elif "Expression" in query:
                    expressions[query["Id"]] = str(query["Expression"])
                if query.get("ReturnData", True) and returned is None:
                    returned = query["Id"]
            while expressions:  # each once the ids it reads have their series
                ready = [i for i, text in expressions.items() if _names(text) <= series.keys()]
                if not ready:
                    raise ExpressionError(f"the expressions {sorted(expressions)} read ids "
                                          "that no query of the alarm defines")
                for query_id in ready:
                    series[query_id] = evaluate_expression(expressions.pop(query_id), series,
                                                           grid)
            result = series.get(returned or "", {})
        else:
            stat = str(alarm.get("ExtendedStatistic") or alarm.get("Statistic") or "")
            metric = {k: alarm.get(k) for k in ("Namespace", "MetricName", "Dimensions")}
            result = self._series(cloudwatch, metric, stat, alarm.get("Unit"), start, end,
                                  period)
            data["extendedStatistic" if alarm.get("ExtendedStatistic") else "statistic"] = stat
        values = [result.get(t) for t in grid]
        threshold = float(alarm["Threshold"])
        decision = decide(values, grid, evaluation_periods=n, datapoints_to_alarm=m,
                          comparison=comparison, threshold=threshold,
                          treat_missing=str(alarm.get("TreatMissingData") or "missing"))
        data.update({"recentDatapoints": [v for v in values if v is not None],
                     "threshold": threshold,
                     "evaluatedDatapoints": [{"timestamp": _iso(grid[i]), "value": v}
                                             for i, v in reversed(decision.evaluated)]})
        return decision, data

    def _apply(self, cloudwatch: Any, alarm: Mapping[str, Any], decision: Decision,
               data: dict[str, Any]) -> bool:
        current = alarm.get("StateValue")
        unchecked = str(alarm.get("StateReason", "")).startswith(UNCHECKED)
        state, reason = decision.state, decision.reason
        if state is None:  # TreatMissingData "ignore": the current state is kept...
            if not unchecked:
                return False
            state, reason = INSUFFICIENT, "Insufficient Data: no datapoints were received."
        if state == current and not unchecked:
            return False
        cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=state,
                                   StateReason=reason[:1023],
                                   StateReasonData=json.dumps(data))
        self.transitions += 1
        log.info("alarm %s: %s -> %s: %s", alarm["AlarmName"], current, state, reason)
        return True


# -- where the engine looks, and what moto's CloudWatch answers ------------------------------
def local_regions() -> list[str]:
    """``MLOPS_LOCAL_REGIONS``, else the regions of the local account that hold a log group, a
    metric or an alarm (read from moto, which runs in this process)."""
    configured = os.environ.get("MLOPS_LOCAL_REGIONS")
    if configured:
        return [r.strip() for r in configured.split(",") if r.strip()]
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.logs.models import logs_backends

    from framework.runtime.clients import LOCAL_ACCOUNT_ID

    regions: set[str] = set()
    sources: list[tuple[Any, tuple[str, ...]]] = [
        (logs_backends, ("groups",)), (cloudwatch_backends, ("alarms", "metric_data"))]
    for backends, attrs in sources:
        per_account: dict[str, Any] = dict.get(backends, LOCAL_ACCOUNT_ID) or {}
        for region, backend in list(dict.items(per_account)):
            if any(getattr(backend, a, None) for a in attrs):
                regions.add(region)
    return sorted(regions)


def _percentile(values: list[float], stat: str) -> float | None:
    """``pNN`` of ``values`` by nearest rank (None when there are none)."""
    match = PERCENTILE.match(stat)
    if not match or not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(float(match.group(1)) / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def patch_moto() -> None:
    """moto's CloudWatch as CloudWatch answers (in this process, which hosts moto):
    ``GetMetricStatistics`` selects the metric whose dimensions are exactly those asked (moto
    also counts metrics with more), cuts periods from ``StartTime`` and answers
    ``ExtendedStatistics``; ``GetMetricData`` answers ``pNN`` statistics."""
    from moto.cloudwatch import models, responses
    from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue
    from moto.core.responses import ActionResult

    if getattr(models.Statistics, "_mlops_patched", False):
        return
    standard = models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        if PERCENTILE.match(stat):
            return _percentile(self.metric_single_values_list, stat)
        return standard(self, stat)

    def naive_utc(value: datetime) -> datetime:
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value

    def get_metric_statistics(self: Any) -> Any:
        namespace = self._get_param("Namespace")
        name = self._get_param("MetricName")
        start = naive_utc(self._get_param("StartTime")).replace(microsecond=0)
        end = naive_utc(self._get_param("EndTime")).replace(microsecond=0)
        period = self._get_int_param("Period")
        stats = self._get_param("Statistics", []) or []
        extended = self._get_param("ExtendedStatistics", []) or []
        unit = self._get_param("Unit")
        if not stats and not extended:
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics")
        if start >= end:
            raise InvalidParameterValue(
                "The parameter StartTime must be less than the parameter EndTime.")
        want = sorted((d["Name"], d["Value"]) for d in self._get_param("Dimensions", []) or [])
        buckets: dict[int, list[Any]] = {}
        for md in self.cloudwatch_backend.get_all_metrics():
            ts = naive_utc(md.timestamp)
            if (md.namespace == namespace and md.name == name and start <= ts < end
                    and (not unit or md.unit == unit)
                    and sorted((d.name, d.value) for d in md.dimensions) == want):
                buckets.setdefault(int((ts - start).total_seconds()) // period, []).append(md)
        points = []
        for k in sorted(buckets):
            s = models.Statistics(stats, start + timedelta(seconds=k * period))
            s.metric_data = buckets[k]
            s.unit = buckets[k][0].unit
            if extended:
                values = s.metric_single_values_list
                found = {e: _percentile(values, e) for e in extended}
                s.extended_statistics = {  # type: ignore[attr-defined]
                    e: v for e, v in found.items() if v is not None}
            points.append(s)
        return ActionResult({"Label": name, "Datapoints": points})

    models.Statistics.get_statistics_for_type = get_statistics_for_type  # type: ignore
    responses.CloudWatchResponse.get_metric_statistics = get_metric_statistics  # type: ignore
    models.Statistics._mlops_patched = True  # type: ignore[attr-defined]

