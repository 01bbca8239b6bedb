"""The CloudWatch alarms that watch an endpoint, declared from its rollout watch. Pure.

Each alarm is the parameters of a ``PutMetricAlarm`` request. Three watch the metrics the
handler writes as EMF lines (``framework.runtime.emf``: namespace ``mlops``, per
``FunctionName`` and per ``FunctionName`` and ``ModelVersion``; the function name is unique in
an account and region, so two projects or stages never watch each other's requests); one
watches Lambda's own metrics of the endpoint's alias (``AWS/Lambda``, ``FunctionName`` and
``Resource`` = ``<function>:<alias>``), as SAM's ``DeploymentPreference`` examples do.
CloudWatch evaluates them on AWS, the local metrics engine
(``framework/local/metrics_engine.py``) on the local target, where the local Lambda publishes
the same ``AWS/Lambda`` metrics.

| signal          | alarm                                                 | threshold (watch)    |
|-----------------|-------------------------------------------------------|----------------------|
| error rate      | ``ServerErrors / Requests`` (Sums), 95% lower bound,  | ``error_rate`` × 100 |
|                 | percent                                               |                      |
| function errors | ``Errors / Invocations`` (``AWS/Lambda`` Sums of the  | ``error_rate`` × 100 |
|                 | alias), 95% lower bound, percent                      |                      |
| invalid input   | ``InvalidInput / Requests`` (Sums), 95% lower bound,  | ``invalid_rate`` ×   |
|                 | percent                                               | 100                  |
| p99 latency     | ``Latency`` p99, ms                                   | ``p99_latency_ms``   |

The invalid-input and latency alarms exist when the watch sets their threshold. An alarm is
in ``ALARM`` when its value is above the threshold over one period as long as the rollout's
bake time (``every``, in whole minutes, at least one): the window the rollout judges a step
on. A rate is judged by the lower bound of its 95% Wilson score interval (one-sided), written
in metric math (``wilson_lower``): the alarm fires when the rate is above the threshold with
95% confidence, so one unlucky error among few requests does not roll a version back (1 of 20
at a 2% threshold: 5% raw, 1.1% bound, no alarm; 3 of 20: 15% raw, 6.2% bound, alarm). A rate
counts as 0 over a window with fewer than ``min_requests`` requests (invocations), and a
window without requests is not breaching, so an idle endpoint is never in alarm. Client
errors (4xx) are never the candidate's errors: the error rate counts 5xx answers only.
``model_version`` narrows the handler's alarms to one model version's requests (a rollout's
candidate), else they watch every request of the endpoint.

The error rate counts the 5xx answers the handler gave; a crash, an out-of-memory or a
timeout writes no line, and those are what the function-errors alarm counts: Lambda's
``Errors`` are the invocations that ended in a function error (an unhandled exception, a
timeout, running out of memory, the runtime exiting), and the handler answers every error it
catches itself, so ``Errors`` counts exactly what its own metrics cannot. Lambda's metrics know
no model version, and the Lambda version a rollout deploys is published only at apply, so
this alarm watches the alias: during a canary, the invocations of both versions it routes to.
The invalid-input rate counts requests whose content broke the contract (400, 413, 415,
422), not authentication or routing errors.
"""

from __future__ import annotations

import math
from typing import Any

from framework.config.models import Rollout, parse_duration
from framework.runtime import emf

PERIOD_MAX_S = 86400  # CloudWatch: period × evaluation periods is at most one day
SIGNALS = ("error-rate", "function-errors", "invalid-input", "p99-latency")
LAMBDA_NAMESPACE = "AWS/Lambda"


def alarm_name(prefix: str, signal: str, model_version: str | None = None) -> str:
    """``<prefix>-<signal>``, or ``<prefix>-<model version>-<signal>`` for one version's."""
    return f"{prefix}-{model_version}-{signal}" if model_version else f"{prefix}-{signal}"


def period_of(rollout: Rollout) -> int:
    """The alarms' period: the bake time in whole minutes (rounded up), one minute at least."""
    minutes = math.ceil(parse_duration(rollout.every) / 60 - 1e-9)
    return min(max(60, minutes * 60), PERIOD_MAX_S)


def _dimensions(function: str, model_version: str | None) -> list[dict[str, str]]:
    dims = [{"Name": "FunctionName", "Value": function}]
    if model_version:
        dims.append({"Name": "ModelVersion", "Value": model_version})
    return dims


def _stat(query_id: str, namespace: str, metric: str, dims: list[dict[str, str]],
          period: int) -> dict[str, Any]:
    return {"Id": query_id, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims},
        "Period": period, "Stat": "Sum", "Unit": "Count"}}


def _percent(fraction: float) -> float:
    return round(fraction * 100, 10)


CONFIDENCE_Z = 1.645  # one-sided 95%: a rate alarms when it is above its threshold with 95%
# confidence (the Wilson score interval's lower bound), not when one unlucky period's raw
# ratio is


def wilson_lower(part: str, whole: str, z: float = CONFIDENCE_Z) -> str:
    """The metric math expression of the Wilson score interval's lower bound of the rate
    ``part / whole`` (query ids): ``(p + z²/2n − z·√((p(1−p) + z²/4n)/n)) / (1 + z²/n)``.
    ``^`` is CloudWatch's exponent operator; every power is parenthesized whole."""
    z2 = round(z * z, 6)
    p = f"({part} / {whole})"
    spread = f"(({p} * (1 - {p}) + {z2} / (4 * {whole})) / {whole})"
    return (f"(({p} + {z2} / (2 * {whole}) - {z} * ({spread} ^ 0.5)) / "
            f"(1 + {z2} / {whole}))")


def _rate_alarm(name: str, description: str, metric: str, threshold: float,
                dims: list[dict[str, str]], period: int, min_requests: int,
                tags: list[dict[str, str]], *, namespace: str = emf.NAMESPACE,
                total: str = "Requests") -> dict[str, Any]:
    """In ALARM when the rate ``metric / total`` (their Sums over the period) is above the
    threshold with 95% confidence (``wilson_lower``); 0 under ``min_requests`` of ``total``."""
    part, whole = metric.lower(), total.lower()
    rate = f"100 * {wilson_lower(part, whole)}"
    expression = f"IF({whole} >= {min_requests}, {rate}, 0)" if min_requests > 1 else rate
    return {
        "AlarmName": name, "AlarmDescription": description,
        "Metrics": [
            {"Id": "rate", "Expression": expression,
             "Label": f"{metric} (% of {whole}, 95% lower bound)", "ReturnData": True},
            _stat(part, namespace, metric, dims, period),
            _stat(whole, namespace, total, dims, period)],
        "ComparisonOperator": "GreaterThanThreshold", "Threshold": _percent(threshold),
        "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "TreatMissingData": "notBreaching",
        "Tags": tags}


def endpoint_alarms(function: str, endpoint: str, rollout: Rollout, *, alias: str,
                    model_version: str | None = None) -> list[dict[str, Any]]:
    """The PutMetricAlarm requests that watch ``endpoint``, served by the Lambda function
    ``function`` through its alias ``alias``, with the thresholds of ``rollout.watch``;
    alarm names start with ``function``."""
    watch = rollout.watch
    period = period_of(rollout)
    dims = _dimensions(function, model_version)
    who = f"{endpoint} ({model_version})" if model_version else endpoint
    window = f"{period // 60} min"
    tags = [{"Key": "mlops:endpoint", "Value": endpoint}]
    if model_version:
        tags.append({"Key": "mlops:model-version", "Value": model_version})
    alarms = [_rate_alarm(
        alarm_name(function, "error-rate", model_version),
        f"Server errors (5xx) of {who} above {_percent(watch.error_rate)}% of its requests over "
        f"{window}, with 95% confidence", "ServerErrors", watch.error_rate, dims, period,
        watch.min_requests, tags),
        _rate_alarm(
            alarm_name(function, "function-errors", model_version),
            f"Function errors (crashes, timeouts, out of memory) of {function}:{alias}, every "
            f"version it routes to, above {_percent(watch.error_rate)}% of its invocations "
            f"over {window}, with 95% confidence", "Errors", watch.error_rate,
            [{"Name": "FunctionName", "Value": function},
             {"Name": "Resource", "Value": f"{function}:{alias}"}],
            period, watch.min_requests, tags, namespace=LAMBDA_NAMESPACE, total="Invocations")]
    if watch.invalid_rate is not None:
        alarms.append(_rate_alarm(
            alarm_name(function, "invalid-input", model_version),
            f"Requests to {who} refused for their content (400, 413, 415, 422) above "
            f"{_percent(watch.invalid_rate)}% over {window}, with 95% confidence",
            "InvalidInput",
            watch.invalid_rate, dims, period, watch.min_requests, tags))
    if watch.p99_latency_ms is not None:
        alarms.append({
            "AlarmName": alarm_name(function, "p99-latency", model_version),
            "AlarmDescription": f"p99 latency of {who} above {watch.p99_latency_ms:g} ms over "
                                f"{window}",
            "Namespace": emf.NAMESPACE, "MetricName": "Latency", "Dimensions": dims,
            "ExtendedStatistic": "p99", "Unit": "Milliseconds", "Period": period,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": float(watch.p99_latency_ms), "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1, "TreatMissingData": "notBreaching", "Tags": tags})
    return alarms
