"""Prediction capture and feedback records.

Capture: for a sampled request, one JSON line per row::

    {"request_id", "row", "time", "endpoint", "model", "version", "lambda_version",
     "latency_ms", "inputs": {feature: value}, "prediction", "probabilities", "classes"}

Sampling is a deterministic function of the request id (``sampled``), so the set of captured
requests is reproducible: exactly those whose id hashes below the sample rate.

Where the lines go (``MLOPS_CAPTURE_SINK``):

- ``local`` — set by the local runner: the lines travel back with the response
  (``CAPTURE_KEY`` in the result) and the runner commits them to its spool *before* the
  caller sees the answer, then uploads gzip batches. A worker killed mid-request never
  delivered a response, so it has no record either: none lost, none doubled.
- ``firehose:<stream>`` — on AWS: one ``PutRecordBatch`` per request, before the answer;
  Firehose buffers and writes gzip objects under ``capture/<endpoint>/dt=YYYY-MM-DD/``.
- ``off`` — nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from framework.runtime.features import FeatureSpec, Rows
from framework.runtime.http import finite
from framework.runtime.inference import Prediction

CAPTURE_KEY = "mlopsCapture"  # private key of a handler result, removed by the local runner
FIREHOSE_BATCH = 500


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` falls in the sample (stable across processes)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "big")
    return h < rate * 2**64


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def capture_lines(*, request_id: str, ts: float, endpoint: str, model: str, version: str,
                  lambda_version: str, latency_ms: float, features: Sequence[FeatureSpec],
                  rows: Rows, prediction: Prediction) -> str:
    """The JSON lines (one per row, newline-terminated) of one request."""
    names = [f.name for f in features]
    time_text = iso_utc(ts)
    probs = prediction.probabilities
    lines = []
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    for i, row in enumerate(rows):
        record = {
            "request_id": request_id, "row": i, "time": time_text, "endpoint": endpoint,
            "model": model, "version": version, "lambda_version": lambda_version,
            "latency_ms": round(latency_ms, 3), "inputs": dict(zip(names, row, strict=True)),
            "prediction": prediction.labels[i],
            "probabilities": probs[i] if probs is not None else None,
            "classes": prediction.classes,
        }
        try:
            lines.append(dumps(record))
        except ValueError:  # NaN/inf (e.g. probabilities of a row with missing values) → null
            lines.append(dumps(finite(record)))
    return "\n".join(lines) + "\n"


def firehose_put(client: Any, stream: str, lines: str) -> None:
    """Send newline-terminated JSON lines to a Firehose stream; retry the failed ones once."""
    records = [{"Data": (line + "\n").encode()} for line in lines.splitlines() if line]
    for start in range(0, len(records), FIREHOSE_BATCH):
        batch = records[start:start + FIREHOSE_BATCH]
        for _attempt in range(3):
            resp = client.put_record_batch(DeliveryStreamName=stream, Records=batch)
            if not resp.get("FailedPutCount"):
                break
            batch = [r for r, res in zip(batch, resp["RequestResponses"], strict=True)
                     if res.get("ErrorCode")]
        else:
            raise RuntimeError(f"{len(batch)} capture record(s) refused by Firehose {stream}")


# -- feedback -----------------------------------------------------------------------------

MAX_FEEDBACK = 1000


def feedback_key(endpoint: str, ts: float, request_id: str) -> str:
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%H%M%S%f")
    return f"feedback/{endpoint}/dt={day(ts)}/{stamp}-{request_id}.jsonl.gz"


def gzip_lines(lines: str) -> bytes:
    return gzip.compress(lines.encode(), compresslevel=6, mtime=0)
