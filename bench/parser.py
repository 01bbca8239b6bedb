"""The capture parser: gzip capture lines to column arrays, µs per 30-feature row.

    .venv/bin/python bench/parser.py [--rows 100000] [--repeat 7] [--json out.json]

Capture objects of 30 float features written by the handler's own line encoder
(``framework.runtime.capture.LineFormat``: float inputs packed as base64 float64s), gzip as
Firehose delivers them (5,000 rows an object), against the same records in the earlier shape
(every input in the ``inputs`` object as JSON numbers; ``columns.unpack`` of the packed line,
re-encoded as the handler wrote it). For each: bytes a line and gzip, then CPU time per row
(``time.process_time``, best of ``--repeat``, both shapes in the same run, interleaved) of the
gunzip (ISA-L) and of ``columns.decode`` (gunzip and the typed decoder) to the columns a
partial profile is built from. Full-precision random values (17 significant digits, the worst
case for text) and 4-decimal values.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.monitor_scale import FEATURES, NAMES, PER_OBJECT, capture_object  # noqa: E402
from framework.monitoring import columns  # noqa: E402

DUMPS = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def earlier_shape(blob: bytes) -> bytes:
    """The object's lines with every input back in the ``inputs`` object (as written before
    packing), gzip alike."""
    text = gzip.decompress(blob).decode()
    lines = [DUMPS(columns.unpack(json.loads(line))) for line in text.splitlines()]
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1, mtime=0)


def case(rows: int, decimals: int | None, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    packed = [capture_object(rng, PER_OBJECT, k * PER_OBJECT, decimals, shifted=False)
              for k in range(max(1, rows // PER_OBJECT))]
    earlier = [earlier_shape(b) for b in packed]
    feats = [{"name": n, "type": "float"} for n in NAMES]
    n = len(packed) * PER_OBJECT
    a = columns.decode(packed[0], "o.gz", feats, "classification")
    b = columns.decode(earlier[0], "o.gz", feats, "classification")
    assert a.typed and b.typed
    for name in NAMES:  # the same columns from both shapes
        assert np.array_equal(a.numeric[name][0], b.numeric[name][0])

    def gunzip(objs: list[bytes]) -> Callable[[], Any]:
        return lambda: [columns.inflate(o, "o.gz") for o in objs]

    def decode(objs: list[bytes]) -> Callable[[], Any]:
        return lambda: [columns.decode(o, "o.gz", feats, "classification") for o in objs]

    jobs = {"earlier gunzip": gunzip(earlier), "earlier decode": decode(earlier),
            "packed gunzip": gunzip(packed), "packed decode": decode(packed)}
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(repeat):  # interleaved: both shapes see the same load
        for name, job in jobs.items():
            t = time.process_time()
            job()
            best[name] = min(best[name], time.process_time() - t)
    out: dict[str, Any] = {}
    for shape, objs in (("earlier", earlier), ("packed", packed)):
        out[shape] = {
            "line_bytes": round(sum(len(gzip.decompress(o)) for o in objs) / n, 1),
            "gzip_bytes": round(sum(map(len, objs)) / n, 1),
            "gunzip_us": round(best[f"{shape} gunzip"] / n * 1e6, 2),
            "to_columns_us": round(best[f"{shape} decode"] / n * 1e6, 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    res = {"rows": args.rows, "features": FEATURES}
    print(f"capture parser: {args.rows:,} rows of {FEATURES} float features, CPU µs per row, "
          f"best of {args.repeat}")
    print("| values | shape | bytes a line | gzip bytes | gunzip | gzip → columns |")
    print("|---|---|---:|---:|---:|---:|")
    for label, decimals in (("full precision", None), ("4 decimals", 4)):
        res[label] = r = case(args.rows, decimals, args.repeat)
        for shape in ("earlier", "packed"):
            s = r[shape]
            print(f"| {label} | {shape} | {s['line_bytes']} | {s['gzip_bytes']} | "
                  f"{s['gunzip_us']} | {s['to_columns_us']} |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
