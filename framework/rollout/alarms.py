"""The CloudWatch alarms that watch an endpoint, declared from its rollout watch. Pure.

Each alarm is the parameters of a ``PutMetricAlarm`` request, on the metrics the handler
writes as EMF lines (``framework.runtime.emf``: namespace ``mlops``, per ``Endpoint`` and per
``Endpoint`` and ``ModelVersion``); CloudWatch evaluates them on AWS, the local metrics engine
(``framework/local/metrics_engine.py``) on the local target.

| signal        | alarm                                                | threshold (watch)        |
|---------------|------------------------------------------------------|--------------------------|
| error rate    | ``100 * ServerErrors / Requests`` (Sums), percent    | ``error_rate`` × 100     |
| invalid input | ``100 * InvalidInput / Requests`` (Sums), percent    | ``invalid_rate`` × 100   |
| p99 latency   | ``Latency`` p99, ms                                  | ``p99_latency_ms``       |

The invalid-input and latency alarms exist when the watch sets their threshold. An alarm is
in ``ALARM`` when its value is above the threshold over one period as long as the rollout's
bake time (``every``, in whole minutes, at least one): the window the rollout judges a step
on. A rate counts as 0 over a window with fewer than ``min_requests`` requests, and a window
without requests is not breaching, so an idle endpoint is never in alarm. ``model_version``
narrows the alarms to one model version's requests (a rollout's candidate), else they watch
every request of the endpoint.

The error rate counts the 5xx answers the handler gave; a crash or a timeout writes no line
(on AWS, Lambda's own ``Errors`` metric counts those). The invalid-input rate counts requests
whose content broke the contract (400, 413, 415, 422), not authentication or routing errors.
"""

from __future__ import annotations

import math
from typing import Any

from framework.config.models import Rollout, parse_duration
from framework.runtime import emf

PERIOD_MAX_S = 86400  # CloudWatch: period × evaluation periods is at most one day
SIGNALS = ("error-rate", "invalid-input", "p99-latency")


def alarm_name(prefix: str, signal: str, model_version: str | None = None) -> str:
    """``<prefix>-<signal>``, or ``<prefix>-<model version>-<signal>`` for one version's."""
    return f"{prefix}-{model_version}-{signal}" if model_version else f"{prefix}-{signal}"


def period_of(rollout: Rollout) -> int:
    """The alarms' period: the bake time in whole minutes (rounded up), one minute at least."""
    minutes = math.ceil(parse_duration(rollout.every) / 60 - 1e-9)
    return min(max(60, minutes * 60), PERIOD_MAX_S)


def _dimensions(endpoint: str, model_version: str | None) -> list[dict[str, str]]:
    dims = [{"Name": "Endpoint", "Value": endpoint}]
    if model_version:
        dims.append({"Name": "ModelVersion", "Value": model_version})
    return dims


def _stat(query_id: str, metric: str, dims: list[dict[str, str]], period: int) -> dict[str, Any]:
    return {"Id": query_id, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": emf.NAMESPACE, "MetricName": metric, "Dimensions": dims},
        "Period": period, "Stat": "Sum", "Unit": "Count"}}


def _percent(fraction: float) -> float:
    return round(fraction * 100, 10)


def _rate_alarm(name: str, description: str, metric: str, threshold: float,
                dims: list[dict[str, str]], period: int, min_requests: int,
                tags: list[dict[str, str]]) -> dict[str, Any]:
    rate = f"100 * {metric.lower()} / requests"
    expression = f"IF(requests >= {min_requests}, {rate}, 0)" if min_requests > 1 else rate
    return {
        "AlarmName": name, "AlarmDescription": description,
        "Metrics": [
            {"Id": "rate", "Expression": expression, "Label": f"{metric} (% of requests)",
             "ReturnData": True},
            _stat(metric.lower(), metric, dims, period),
            _stat("requests", "Requests", dims, period)],
        "ComparisonOperator": "GreaterThanThreshold", "Threshold": _percent(threshold),
        "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "TreatMissingData": "notBreaching",
        "Tags": tags}


def endpoint_alarms(prefix: str, endpoint: str, rollout: Rollout, *,
                    model_version: str | None = None) -> list[dict[str, Any]]:
    """The PutMetricAlarm requests that watch ``endpoint`` with the thresholds of
    ``rollout.watch``; alarm names start with ``prefix`` (e.g. the endpoint's function)."""
    watch = rollout.watch
    period = period_of(rollout)
    dims = _dimensions(endpoint, model_version)
    who = f"{endpoint} ({model_version})" if model_version else endpoint
    window = f"{period // 60} min"
    tags = [{"Key": "mlops:endpoint", "Value": endpoint}]
    if model_version:
        tags.append({"Key": "mlops:model-version", "Value": model_version})
    alarms = [_rate_alarm(
        alarm_name(prefix, "error-rate", model_version),
        f"Server errors (5xx) of {who} above {_percent(watch.error_rate)}% of its requests over "
        f"{window}", "ServerErrors", watch.error_rate, dims, period, watch.min_requests, tags)]
    if watch.invalid_rate is not None:
        alarms.append(_rate_alarm(
            alarm_name(prefix, "invalid-input", model_version),
            f"Requests to {who} refused for their content (400, 413, 415, 422) above "
            f"{_percent(watch.invalid_rate)}% over {window}", "InvalidInput",
            watch.invalid_rate, dims, period, watch.min_requests, tags))
    if watch.p99_latency_ms is not None:
        alarms.append({
            "AlarmName": alarm_name(prefix, "p99-latency", model_version),
            "AlarmDescription": f"p99 latency of {who} above {watch.p99_latency_ms:g} ms over "
                                f"{window}",
            "Namespace": emf.NAMESPACE, "MetricName": "Latency", "Dimensions": dims,
            "ExtendedStatistic": "p99", "Unit": "Milliseconds", "Period": period,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": float(watch.p99_latency_ms), "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1, "TreatMissingData": "notBreaching", "Tags": tags})
    return alarms
