"""Large models: streamed from the registry into a memory-mapped file in /tmp, hashed on the way.

A model is normally read whole (``get_object(...)["Body"].read()``) and handed to onnxruntime
as bytes. With ``MLOPS_STREAM_MODEL_MB`` set in the function's environment, a model above that
many MiB is streamed instead: read in 8 MiB chunks, each hashed (SHA-256) and written into a
file under ``/tmp`` (Lambda's ephemeral storage: 512 MB by default, up to 10 GB) preallocated
to the object's size and written through an ``mmap``; onnxruntime builds the session from the
file's path. The bytes are never all in the Python heap; the digest is checked before the
session is built, as for a model read whole.

Measured (``bench/large_model.py``, README *Large models*): onnxruntime's own load dominates
INIT (about 18 s per GB for a single-file model) and parses the whole protobuf either way, so
streaming saved no peak memory there and cost 30-60 % more INIT; it is off unless set.

Stdlib only (the Lambda zip imports it).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

CHUNK = 8 << 20
NEVER = 1 << 62
ENV = "MLOPS_STREAM_MODEL_MB"


def stream_threshold() -> int:
    """Bytes above which a model is streamed to a file (``MLOPS_STREAM_MODEL_MB``; 0: every
    model; unset or not a number: none, as measured it costs INIT time and saves no memory)."""
    try:
        return max(0, int(float(os.environ[ENV]) * (1 << 20)))
    except (KeyError, ValueError):
        return NEVER


def scratch_dir() -> Path:
    """Where streamed models go: ``/tmp`` on Lambda (its ephemeral storage)."""
    return Path(os.environ.get("MLOPS_MODEL_DIR") or tempfile.gettempdir())


class StreamError(Exception):
    """The object is not the size metadata.json records (its digest is checked after)."""


def fetch(s3: Any, bucket: str, key: str, size: int, directory: Path | None = None,
          ) -> tuple[Path, str]:
    """Stream ``s3://bucket/key`` into a file of ``size`` bytes in ``directory``; returns its
    path and SHA-256 (hex)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    folder = directory or scratch_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"mlops-model-{uuid.uuid4().hex}.onnx"
    digest = hashlib.sha256()
    offset = 0
    try:
        with path.open("w+b") as fh:
            fh.truncate(size)
            with mmap.mmap(fh.fileno(), size) if size else _Empty() as view:
                for chunk in iter(lambda: body.read(CHUNK), b""):
                    end = offset + len(chunk)
                    if end > size:
                        raise StreamError(f"s3://{bucket}/{key} is larger than the {size} bytes "
                                          "metadata.json records")
                    view[offset:end] = chunk
                    digest.update(chunk)
                    offset = end
                if size:
                    view.flush()
        if offset != size:
            raise StreamError(f"s3://{bucket}/{key} is {offset} bytes, metadata.json records "
                              f"{size}")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest()


class _Empty:
    """A zero-length file has no mapping."""

    def __enter__(self) -> _Empty:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def __setitem__(self, _key: slice, _value: bytes) -> None:
        raise StreamError("the object has bytes but metadata.json records 0")

    def flush(self) -> None:
        return None
