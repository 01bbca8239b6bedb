"""Query the append-only audit trail: registry and deploy changes, newest last.

Records live under ``audit/YYYY/MM/DD/{timestamp}-{id}.json`` in the registry bucket, so a
``since`` bound starts the listing at that day's prefix instead of reading everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from framework.registry.service import parse_time

FETCHERS = 8  # concurrent GETs when reading the trail


def about_model(rec: dict[str, Any], model: str) -> bool:
    if rec.get("model") == model:
        return True
    resource = str(rec.get("resource", ""))
    return resource == f"model.{model}" or resource.startswith(f"model.{model}@")


def select(records: Iterable[dict[str, Any]], *, model: str | None,
           since: datetime | None) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        if model is not None and not about_model(rec, model):
            continue
        if since is not None and parse_time(str(rec["time"])) < since:
            continue
        out.append(rec)
    return sorted(out, key=lambda r: str(r["time"]))


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
        record: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return record

    # One object per record (each under Object Lock): fetched concurrently, in listing order.
    with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
        return list(pool.map(fetch, keys))
