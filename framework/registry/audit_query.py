"""Query the append-only audit trail: registry and deploy changes, newest last.

Records live under ``audit/YYYY/MM/DD/{timestamp}-{id}.json`` in the registry bucket, so a
``since`` bound starts the listing at that day's prefix instead of reading everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from framework.errors import MlopsError
from framework.registry.service import parse_time

FETCHERS = 8  # concurrent GETs when reading the trail


def about_model(rec: dict[str, Any], model: str) -> bool:
    if rec.get("model") == model:
        return True
    resource = str(rec.get("resource", ""))
    return resource == f"model.{model}" or resource.startswith(f"model.{model}@")


def parse_record(raw: bytes | str, where: str) -> dict[str, Any]:
    """One audit record; one that is not a JSON object with a time is kept as a record that
    says so (an audit trail does not drop what it cannot read)."""
    try:
        rec = json.loads(raw)
    except ValueError as exc:
        return _unreadable(where, f"not JSON ({getattr(exc, 'msg', exc)})")
    if not isinstance(rec, dict):
        return _unreadable(where, f"a JSON {type(rec).__name__}, not an object")
    if not isinstance(rec.get("time"), str):
        return {**_unreadable(where, "no time"), "record": rec}
    return rec


def _unreadable(where: str, why: str) -> dict[str, Any]:
    return {"time": "", "action": "unreadable record", "resource": where,
            "outcome": f"unreadable: {why}"}


def _after(rec: dict[str, Any], since: datetime) -> bool:
    try:
        return parse_time(str(rec.get("time", ""))) >= since
    except MlopsError:  # an unreadable record is shown, not filtered out
        return True


def select(records: Iterable[dict[str, Any]], *, model: str | None,
           since: datetime | None) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        if model is not None and not about_model(rec, model):
            continue
        if since is not None and not _after(rec, since):
            continue
        out.append(rec)
    return sorted(out, key=lambda r: str(r.get("time", "")))


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The local mirror (JSON lines), each line parsed as ``parse_record`` does."""
    if not path.exists():
        return []
    return [parse_record(line, f"{path}:{number}")
            for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]


def read_registry(s3: Any, bucket: str, since: datetime | None) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": "audit/"}
    if since is not None:
        kwargs["StartAfter"] = f"audit/{since:%Y/%m/%d}/"
    try:
        keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(**kwargs)
                for obj in page.get("Contents", [])]
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in {"NoSuchBucket", "404"}:
            return []
        raise

    def fetch(key: str) -> dict[str, Any]:
        return parse_record(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), key)

    # One object per record (each under Object Lock): fetched concurrently, in listing order.
    with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
        return list(pool.map(fetch, keys))
