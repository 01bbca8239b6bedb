"""Where a rollout's health signals come from.

- ``GatewayHealth``: the local data plane's Prometheus metrics (``/metrics`` of the gateway),
  per endpoint and executed version: answers, 4xx, 5xx/crashes/timeouts, latency histogram
  (p99 without the cold starts, as Lambda's Duration metric leaves out init time).
  Counters are cumulative, so each step is judged on the difference from its baseline.
- ``CloudWatchHealth``: Lambda's own metrics in CloudWatch (``AWS/Lambda`` Invocations,
  Errors, Duration p99 by ``ExecutedVersion``) on AWS and LocalStack.
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from framework.rollout.record import RolloutRecord
from framework.rollout.strategy import Health

LINE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+'
                  r'(?P<value>[-+0-9.eEinfINF]+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        match = LINE.match(line.strip())
        if match:
            labels = dict(LABEL.findall(match.group("labels") or ""))
            out.append((match.group("name"), labels, float(match.group("value"))))
    return out


def _quantile(buckets: list[tuple[float, float]], q: float,
              slowest_excluded: float = 0.0) -> float | None:
    """Quantile from cumulative (upper bound, count) buckets, interpolated within a bucket.

    ``slowest_excluded`` leaves out that many of the slowest observations: cold starts, whose
    init time Lambda's own Duration metric does not count either."""
    if not buckets or buckets[-1][1] - slowest_excluded <= 0:
        return None
    total = buckets[-1][1] - slowest_excluded
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            frac = (rank - prev_count) / span if span > 0 else 1.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_count = bound, count
    return prev_bound


@dataclass
class GatewayHealth:
    gateway_url: str

    def sample(self, record: RolloutRecord) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.gateway_url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        want = {"endpoint": record.endpoint, "version": record.candidate}
        figures: dict[str, Any] = {"requests": 0.0, "invalid": 0.0, "errors": 0.0,
                                   "cold": 0.0, "compared": 0.0, "agreed": 0.0,
                                   "buckets": {}}
        for name, labels, value in parse_prometheus(text):
            if any(labels.get(k) != v for k, v in want.items()):
                continue
            if name == "mlops_requests_total":
                figures["requests"] += value
            elif name == "mlops_errors_total":
                key = "invalid" if labels.get("kind") == "client" else "errors"
                figures[key] += value
            elif name == "mlops_request_duration_seconds_bucket":
                figures["buckets"][labels["le"]] = value
            elif name == "mlops_invocations_total" and labels.get("start") == "cold":
                figures["cold"] += value
            elif name == "mlops_shadow_compared_total":
                figures["compared"] += value
            elif name == "mlops_shadow_agreed_total":
                figures["agreed"] += value
            elif name == "mlops_shadow_errors_total":
                figures["errors"] += value  # a mirrored request the candidate failed
                figures["requests"] += value
        return figures

    def health(self, record: RolloutRecord, since: float,
               baseline: dict[str, Any]) -> Health:
        now = self.sample(record)
        if now["requests"] < baseline.get("requests", 0):
            baseline = {}  # the gateway restarted: its counters began again
        delta = {k: now[k] - baseline.get(k, 0.0)
                 for k in ("requests", "invalid", "errors", "cold", "compared", "agreed")}
        base_buckets = baseline.get("buckets", {})
        buckets = sorted(((float(le), c - base_buckets.get(le, 0.0))
                          for le, c in now["buckets"].items()), key=lambda b: b[0])
        p99 = _quantile(buckets, 0.99, slowest_excluded=delta["cold"])
        compared = int(delta["compared"])
        return Health(requests=int(delta["requests"]) + compared, errors=int(delta["errors"]),
                      invalid=int(delta["invalid"]),
                      p99_ms=None if p99 is None else p99 * 1000.0, compared=compared,
                      agreement=delta["agreed"] / compared if compared else None)


@dataclass
class CloudWatchHealth:
    cloudwatch: Any  # boto3 CloudWatch client

    def sample(self, record: RolloutRecord) -> dict[str, Any]:
        return {}  # CloudWatch answers for any time window: the step's start is enough

    def health(self, record: RolloutRecord, since: float,
               baseline: dict[str, Any]) -> Health:
        dims = [{"Name": "FunctionName", "Value": record.function},
                {"Name": "Resource", "Value": f"{record.function}:{record.alias}"},
                {"Name": "ExecutedVersion", "Value": record.candidate}]
        start = datetime.fromtimestamp(since, UTC)
        end = datetime.now(UTC)

        def stat(metric: str, statistic: str) -> float | None:
            got = self.cloudwatch.get_metric_statistics(
                Namespace="AWS/Lambda", MetricName=metric, Dimensions=dims, StartTime=start,
                EndTime=end, Period=60, **({"ExtendedStatistics": [statistic]}
                                           if statistic.startswith("p")
                                           else {"Statistics": [statistic]}))
            points = got.get("Datapoints", [])
            if not points:
                return None
            if statistic.startswith("p"):
                return float(max(p["ExtendedStatistics"][statistic] for p in points))
            return float(sum(p[statistic] for p in points))

        return Health(requests=int(stat("Invocations", "Sum") or 0),
                      errors=int(stat("Errors", "Sum") or 0), p99_ms=stat("Duration", "p99"))
