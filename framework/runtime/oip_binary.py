"""The binary tensor data extension of the Open Inference Protocol v2 (Triton's; what
``tritonclient`` and KServe clients send by default).

A request with the header ``Inference-Header-Content-Length: N`` carries its JSON inference
header in the first N bytes of the body; the rest is the raw data of the inputs whose
``parameters.binary_data_size`` is set, concatenated in the order of ``inputs``: little-endian,
row-major, no padding; ``BOOL`` one byte (0 or 1); ``BYTES`` one 4-byte little-endian length
before each element. Each size is checked exactly against the tensor's shape and datatype, and
the decoded values go through the same checks as JSON ``data``.

An answer is binary when the request asks for it (``parameters.binary_data_output: true``, or
``parameters.binary_data: true`` on a requested output, which overrides the former): the JSON
response header (each binary output with ``parameters.binary_data_size`` instead of
``data``), then the outputs' raw data, with ``Inference-Header-Content-Length`` and
``Content-Type: application/octet-stream``. Lambda returns it base64-encoded
(``isBase64Encoded``); API Gateway decodes it.

Stdlib and numpy only: this module ships in the Lambda zip.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from framework.runtime import http
from framework.runtime.errors import RequestError

HEADER = "inference-header-content-length"  # request header names are lower-cased
# Fixed-size datatypes: their little-endian numpy element type.
FIXED: dict[str, np.dtype[Any]] = {name: np.dtype(code) for name, code in (
    ("BOOL", "u1"), ("INT8", "i1"), ("INT16", "<i2"), ("INT32", "<i4"), ("INT64", "<i8"),
    ("UINT8", "u1"), ("UINT16", "<u2"), ("UINT32", "<u4"), ("UINT64", "<u8"),
    ("FP16", "<f2"), ("FP32", "<f4"), ("FP64", "<f8"))}
_LENGTH = struct.Struct("<I")
SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


def _bad(message: str) -> RequestError:
    return RequestError.bad_request(message)


def read_body(request: http.Request) -> tuple[Any, Tail]:
    """The JSON inference header of an infer request and the binary data after it.

    Without ``Inference-Header-Content-Length`` the whole body is JSON (415 for a content
    type other than JSON or ``application/octet-stream``). With it, the content type is not
    read: the header says how the body is framed."""
    raw = request.headers.get(HEADER)
    if raw is None:
        if _media(request.headers.get("content-type")) == "application/octet-stream":
            return http.json_bytes(request.body), Tail(None)
        return http.json_body(request), Tail(None)
    size = len(request.body)
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or not 0 < int(text) <= size:
        raise _bad(f"Inference-Header-Content-Length must be the length in bytes of the JSON "
                   f"inference header, between 1 and the body's {size}; got {raw[:40]!r}")
    n = int(text)
    payload = http.json_bytes(request.body[:n], f"the inference header (first {n} bytes)")
    return payload, Tail(request.body[n:])


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class Tail:
    """The binary data after the inference header, handed out input by input."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self.offset = 0

    def take(self, label: str, size: int) -> bytes:
        if self.data is None:
            raise _bad(f"{label}: parameters.binary_data_size needs the binary tensor data "
                       "extension (the Inference-Header-Content-Length header)")
        left = len(self.data) - self.offset
        if size > left:
            raise _bad(f"{label}: binary_data_size is {size} bytes but only {left} bytes of "
                       "binary data are left in the body")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def finish(self) -> None:
        """400 when bytes follow the last binary input (sizes that do not add up)."""
        if self.data is not None and self.offset != len(self.data):
            extra = len(self.data) - self.offset
            raise _bad(f"{extra} bytes of binary data follow the last input's "
                       f"binary_data_size ({self.offset} bytes of inputs declared)")


def binary_size(params: Mapping[str, Any] | None, label: str) -> int | None:
    """``parameters.binary_data_size`` of an input (None when absent); shared memory is 400."""
    if not params:
        return None
    shared = [k for k in SHARED_MEMORY if k in params]
    if shared:
        raise _bad(f"{label}: shared memory ({shared[0]}) is not supported over HTTP here; "
                   "send the data as JSON or as binary tensor data")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _bad(f"{label}: parameters.binary_data_size must be a non-negative integer")
    return size


def decode(tail: Tail, label: str, datatype: str, shape: list[int], size: int) -> list[Any]:
    """The ``prod(shape)`` values of one binary input, as JSON ``data`` would hold them."""
    count = math.prod(shape)
    dtype = FIXED.get(datatype)
    if dtype is not None and size != count * dtype.itemsize:
        raise _bad(f"{label}: binary_data_size is {size} bytes; shape {shape} of {datatype} "
                   f"needs {count * dtype.itemsize} ({count} x {dtype.itemsize})")
    raw = tail.take(label, size)
    if dtype is None:  # BYTES
        return _strings(raw, count, shape, label)
    values = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL":
        if values.size and int(values.max()) > 1:
            j = int(np.argmax(values > 1))
            raise _bad(f"{label}: element {j} is {int(values[j])}; a BOOL is one byte, 0 or 1")
        return values.astype(bool).tolist()  # type: ignore[no-any-return]
    return values.tolist()  # type: ignore[no-any-return]


def _strings(raw: bytes, count: int, shape: list[int], label: str) -> list[Any]:
    out: list[Any] = []
    offset, end = 0, len(raw)
    while offset < end:
        if len(out) == count:
            raise _bad(f"{label}: {end - offset} bytes follow the {count} BYTES elements of "
                       f"shape {shape}; binary_data_size does not match")
        if end - offset < 4:
            raise _bad(f"{label}: element {len(out)} is cut short (a BYTES element starts with "
                       "a 4-byte little-endian length)")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if length > end - offset:
            raise _bad(f"{label}: element {len(out)} says {length} bytes, only "
                       f"{end - offset} are left in its binary_data_size")
        try:
            out.append(raw[offset:offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad(f"{label}: element {len(out)} is not UTF-8 text") from None
        offset += length
    if len(out) != count:
        raise _bad(f"{label}: binary_data_size holds {len(out)} BYTES elements; shape "
                   f"{shape} needs {count}")
    return out


def encode(datatype: str, data: list[Any]) -> bytes:
    """The raw little-endian bytes of one output tensor's (flat) ``data``."""
    dtype = FIXED.get(datatype)
    if dtype is None:  # BYTES
        parts: list[bytes] = []
        for v in data:
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts += (_LENGTH.pack(len(b)), b)
        return b"".join(parts)
    return np.asarray(data, dtype=dtype).tobytes()


def binary_answer(answer: dict[str, Any], binary: set[str]) -> http.Binary:
    """An infer answer with the outputs named in ``binary`` as raw data after the header."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in answer["outputs"]:
        if output["name"] not in binary:
            outputs.append(output)
            continue
        raw = encode(output["datatype"], output["data"])
        chunks.append(raw)
        outputs.append({**{k: v for k, v in output.items() if k != "data"},
                        "parameters": {"binary_data_size": len(raw)}})
    return http.Binary({**answer, "outputs": outputs}, b"".join(chunks))
