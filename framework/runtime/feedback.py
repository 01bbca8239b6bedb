"""Ground-truth feedback: ``POST <route>/feedback`` with one item or a list of items.

Item: ``{"request_id": str, "row": int >= 0 (default 0), "label": value}``. The label must be
one of the model's classes when the model declares them (string, number or boolean
otherwise; a string of at most ``MAX_LABEL`` characters).

Where the labels go — the same on every target: one JSON line per item on stdout,
``{"msg": "feedback", "endpoint", "request_id", "row", "label", "time"}``, written and flushed
before the 202 answer, so an accepted label is as durable as a captured row (both are events
of the function's log group once the answer leaves). The group's second subscription filter
(``{ $.msg = "feedback" }``, ``framework.compile.compiler.FEEDBACK_FILTER_PATTERN``; the first
selects capture rows) hands them to the endpoint's feedback Firehose stream, which buffers them
(60 s or 5 MB on AWS, 2 s locally) and writes one gzip JSON lines object per buffer under
``feedback/<endpoint>/dt=YYYY-MM-DD/`` (the day the labels arrived).

Why through the log rather than an S3 object per request (as before): a PUT per request is a
network call on the request path, a request-priced write ($5 per million on S3) and one object
per request for every monitor run to GET — a million labels were a million objects; batched by
the stream they are a few dozen. Why not ``PutRecordBatch`` from the handler: a network call
and a permission the handler does not need; the log line is written anyway. Delivery is at
least once (CloudWatch Logs and Firehose both retry): a reader keeps one label per
(request id, row), the latest posted (``time``), so a repeated line and a corrected label
both end as one label.

Labels join captured predictions: an endpoint that captures nothing (``capture`` omitted, its
sink ``off``) answers 409 instead of accepting labels that nothing could use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from framework.runtime.capture import MAX_FEEDBACK, iso_utc
from framework.runtime.errors import MAX_DETAILS, RequestError

ITEM_KEYS = frozenset({"request_id", "row", "label"})
MAX_LABEL = 1024  # characters of a string label (a log event holds at most 256 KB)


def _problem(i: int, field: str, problem: str) -> dict[str, Any]:
    return {"row": i, "field": field, "problem": problem}


def parse_feedback(payload: object, classes: Sequence[Any] | None) -> list[dict[str, Any]]:
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise RequestError.bad_request("the body is an empty list; send at least one item")
    if len(items) > MAX_FEEDBACK:
        raise RequestError(413, "payload_too_large",
                           f"{len(items)} feedback items; the limit is {MAX_FEEDBACK}")
    problems: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError.bad_request(
                f"item {i} must be an object {{\"request_id\", \"row\", \"label\"}}")
        for k in item:
            if k not in ITEM_KEYS:
                problems.append(_problem(i, str(k)[:64], "is not a feedback field"))
        rid = item.get("request_id")
        if not isinstance(rid, str) or not rid or len(rid) > 128:
            problems.append(_problem(i, "request_id", "must be a non-empty string (<= 128)"))
        row = item.get("row", 0)
        if type(row) is float and row.is_integer():  # 3.0 is the integer 3 in JSON
            row = int(row)
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < 1_000_000:
            problems.append(_problem(i, "row", "must be a non-negative integer"))
        if "label" not in item or item["label"] is None:
            problems.append(_problem(i, "label", "is required"))
        else:
            label = item["label"]
            problem = _label_problem(label, classes)
            if problem:
                problems.append(_problem(i, "label", problem))
        out.append({"request_id": rid, "row": row, "label": item.get("label")})
    if problems:
        raise RequestError.invalid(problems[:MAX_DETAILS], len(problems))
    return out


def _label_problem(label: object, classes: Sequence[Any] | None) -> str | None:
    if isinstance(label, dict | list):
        return "must be a string, number or boolean"
    if isinstance(label, float) and not math.isfinite(label):
        return "must be finite"
    if isinstance(label, str) and len(label) > MAX_LABEL:
        return f"must be at most {MAX_LABEL} characters"
    if classes:
        same_kind = isinstance(label, bool) == any(isinstance(c, bool) for c in classes)
        if label in classes and same_kind:
            return None
        shown = ", ".join(json.dumps(c) for c in list(classes)[:10])
        return f"must be one of the model's classes ({shown})"
    return None


def feedback_lines(items: list[dict[str, Any]], ts: float, endpoint: str) -> str:
    """The log lines of accepted ``items`` (one per item, newline-terminated)."""
    head = '{"msg":"feedback","endpoint":' + json.dumps(endpoint) + ","
    tail = ',"time":"' + iso_utc(ts) + '"}\n'
    return "".join(head + json.dumps(item, separators=(",", ":"))[1:-1] + tail
                   for item in items)
