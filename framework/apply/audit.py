"""Append-only audit records: one per change, in the registry and mirrored locally.

Records are immutable objects (``If-None-Match: *``) under
``audit/YYYY/MM/DD/{timestamp}-{id}.json``; the local mirror ``.mlops/audit.jsonl`` keeps them
readable after the registry itself is destroyed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class AuditLog:
    s3: Any | None  # boto3 S3 client, or None when the registry is gone
    bucket: str
    local_file: Path

    def record(self, **fields: Any) -> dict[str, Any]:
        when = datetime.now(UTC)
        rec_id = uuid.uuid4().hex[:12]
        record = {"id": rec_id, "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **fields}
        body = json.dumps(record, sort_keys=True)
        self.local_file.parent.mkdir(parents=True, exist_ok=True)
        with self.local_file.open("a") as fh:
            fh.write(body + "\n")
        if self.s3 is not None:
            key = f"audit/{when:%Y/%m/%d}/{when:%Y%m%dT%H%M%S%fZ}-{rec_id}.json"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode(),
                               ContentType="application/json", IfNoneMatch="*")
        return record

    def read_local(self) -> list[dict[str, Any]]:
        if not self.local_file.exists():
            return []
        return [json.loads(line) for line in self.local_file.read_text().splitlines() if line]
