"""Per-request CloudWatch metrics, written as Embedded Metric Format (EMF) log lines.

Beside its request line, the handler writes one JSON line per request to stdout. On AWS,
Lambda sends it to CloudWatch Logs, which extracts the metrics from it (the line carries an
``_aws`` member); on the local target the log shipper puts it in the function's log group and
the local CloudWatch (``framework/local/metrics_engine.py``) does the same extraction. No API
call is made on the request path. The line (one line; wrapped here)::

    {"_aws": {"Timestamp": <ms>, "CloudWatchMetrics": [{"Namespace": "mlops",
      "Dimensions": [["FunctionName", "ModelVersion"], ["FunctionName"]],
      "Metrics": [{"Name": "Requests", "Unit": "Count"}, ...]}]},
     "FunctionName": "fraud-prod-predict", "Endpoint": "predict", "ModelVersion": "1.2.0",
     "Requests": 1, "ClientErrors": 0,
     "ServerErrors": 0, "InvalidInput": 0, "Latency": 3.217, "Rows": 2,
     "PredictionMean": 0.73, "Confidence": 0.91}

Metrics, in namespace ``mlops``, per (FunctionName, ModelVersion) and per FunctionName.
The dimension is the endpoint's Lambda function name, not the endpoint's name: a function
name is unique in its account and region and carries the project and the stage
(``<project>-<stage>-<endpoint>``), so two projects, or two stages of one, that both serve an
endpoint ``predict`` in one account and region write distinct metrics, and an alarm on one
never sees the other's requests. It is also the dimension Lambda's own metrics
(``AWS/Lambda``) use, so one dashboard or metric-math expression can read both. The endpoint's
name is still on the line, as a plain member (no dimension) for CloudWatch Logs Insights.

| metric         | unit         | value                                                          |
|----------------|--------------|----------------------------------------------------------------|
| Requests       | Count        | 1 for every request the handler answered (every route)         |
| ClientErrors   | Count        | 1 when it answered 4xx                                         |
| ServerErrors   | Count        | 1 when it answered 5xx (crashes and timeouts write no line:   |
|                |              | Lambda's ``AWS/Lambda`` ``Errors`` counts those)               |
| InvalidInput   | Count        | 1 when the request's content broke the contract: 400, 413, 415 |
|                |              | or 422 (not auth's 401/403 nor unknown routes' 404/405)        |
| Latency        | Milliseconds | the handler's time for the request                             |
| Rows           | Count        | rows predicted (answered predictions only)                     |
| PredictionMean | None         | regressors: the mean predicted value; binary classifiers: the  |
|                |              | mean probability of the positive class (the second of          |
|                |              | ``classes``, scikit-learn's ``classes_[1]``), or without       |
|                |              | probabilities the share of rows labelled with it               |
| Confidence     | None         | classifiers with probabilities: the mean of each row's highest |
|                |              | probability (falls when inputs move away from the training data)|

Sums give counts (``Requests`` Sum = requests), averages give rates (``ServerErrors``
Average = the share of 5xx answers); ``PredictionMean`` and ``Confidence`` are one value per
request (each the mean over its rows), so their Average weighs requests alike.

``MLOPS_METRICS_SINK``: ``emf`` (the default) or ``off`` (no line). Stdlib only: this module
ships in the function zip.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

NAMESPACE = "mlops"
SINKS = ("emf", "off")
DIMENSIONS = (("FunctionName", "ModelVersion"), ("FunctionName",))
INVALID_INPUT = frozenset({400, 413, 415, 422})
COUNTERS = (("Requests", "Count"), ("ClientErrors", "Count"), ("ServerErrors", "Count"),
            ("InvalidInput", "Count"), ("Latency", "Milliseconds"))
SUMMARY = (("Rows", "Count"), ("PredictionMean", "None"), ("Confidence", "None"))

Summary = tuple[int, float | None, float | None]  # rows, PredictionMean, Confidence


def summary(task: str, labels: Sequence[Any], probabilities: Sequence[Sequence[float]] | None,
            classes: Sequence[Any] | None) -> Summary | None:
    """The prediction summary of one answered batch (None for no rows)."""
    n = len(labels)
    if not n:
        return None
    mean = confidence = None
    try:
        if task == "regression":
            mean = sum(labels) / n
        elif probabilities is not None:
            columns = list(zip(*probabilities, strict=False))
            if len(columns) == 2:  # max(a, b) = (a + b + |a - b|) / 2, summed column-wise
                first, second = columns
                positive = sum(second)
                mean = positive / n
                confidence = (sum(first) + positive
                              + sum(map(abs, map(operator.sub, first, second)))) / (2 * n)
            else:
                confidence = sum(map(max, probabilities)) / n
        elif classes is not None and len(classes) == 2:
            positive = classes[1]
            mean = sum(1 for label in labels if label == positive) / n
    except (TypeError, ValueError, IndexError):  # outputs of another shape: no summary
        return n, None, None
    if mean is not None and not math.isfinite(mean):
        mean = None
    if confidence is not None and not math.isfinite(confidence):
        confidence = None
    return n, mean, confidence


class MetricLine:
    """Writes the EMF line of each request of one endpoint (served by ``function``) and
    model version; the parts that never change (the metric directives, the dimensions) are
    encoded once."""

    def __init__(self, function: str, endpoint: str, model_version: str) -> None:
        self._dims = (',"FunctionName":' + encode_basestring_ascii(function)
                      + ',"Endpoint":' + encode_basestring_ascii(endpoint)
                      + ',"ModelVersion":' + encode_basestring_ascii(model_version))
        self._heads: dict[tuple[bool, bool, bool], str] = {}
        self._counts: dict[int, str] = {}

    def _head(self, present: tuple[bool, bool, bool]) -> str:
        head = self._heads.get(present)
        if head is None:
            metrics = list(COUNTERS) + [m for m, on in zip(SUMMARY, present, strict=True) if on]
            directive = ('{"Namespace":' + encode_basestring_ascii(NAMESPACE)
                         + ',"Dimensions":['
                         + ",".join("[" + ",".join(encode_basestring_ascii(d) for d in dims)
                                    + "]" for dims in DIMENSIONS)
                         + '],"Metrics":['
                         + ",".join('{"Name":' + encode_basestring_ascii(name) + ',"Unit":'
                                    + encode_basestring_ascii(unit) + "}"
                                    for name, unit in metrics) + "]}")
            head = self._heads[present] = ',"CloudWatchMetrics":[' + directive + "]}"
        return head

    def _counters(self, status: int) -> str:
        text = self._counts.get(status)
        if text is None:
            client = 400 <= status < 500
            server = status >= 500
            text = self._counts[status] = (
                ',"Requests":1,"ClientErrors":' + ("1" if client else "0")
                + ',"ServerErrors":' + ("1" if server else "0")
                + ',"InvalidInput":' + ("1" if status in INVALID_INPUT else "0"))
        return text

    def line(self, ts: float, status: int, latency: str, scores: Summary | None) -> str:
        """The EMF line (with its newline) of a request that started at ``ts`` (epoch s) and
        was answered ``status`` after ``latency`` ms (its decimal text); "" if ``latency``
        is no finite number."""
        if "n" in latency:  # "nan", "inf"
            return ""
        if scores is None:
            present = (False, False, False)
            tail = ""
        else:
            rows, mean, confidence = scores
            present = (True, mean is not None, confidence is not None)
            tail = (',"Rows":' + repr(rows)
                    + ("" if mean is None else ',"PredictionMean":' + repr(mean))
                    + ("" if confidence is None else ',"Confidence":' + repr(confidence)))
        return ('{"_aws":{"Timestamp":' + repr(int(ts * 1000)) + self._head(present)
                + self._dims + self._counters(status) + ',"Latency":' + latency + tail + "}\n")
