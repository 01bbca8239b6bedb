"""The label join's memory: a window of N captured rows, every one labelled, joined the way
the monitor did before (a request-id → prediction dict for every row and a label dict) and
the way it does now (``framework.monitoring.labels``: labels as hashed arrays in partitions,
the predictions streamed through them block by block).

    .venv/bin/python bench/labels_join.py --rows 1000000

The feedback objects (gzip JSON lines, as the feedback stream writes them, 5,000 labels
each) are made once, on disk; each way runs in a child process that loads them into a
``MemoryStore`` and then joins. Reported: the growth of peak RSS during the join
(``VmHWM`` after − ``VmRSS`` before), its wall time, and the accuracy each way found (they
must agree). The predictions arrive in blocks of 1,000 rows, as partial profiles hand them
over; a block is made when it is asked for, so neither way is charged for holding them
besides what it keeps.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = datetime(2026, 5, 1, tzinfo=UTC)
PER_OBJECT = 5000
BLOCK = 1000
CLASSES = ("benign", "malignant")


def _label(i: int) -> str:
    return CLASSES[(i * 7919) % 11 == 0]  # 1 in 11 malignant


def _predicted(i: int) -> str:
    return _label(i) if i % 10 else CLASSES[_label(i) == "benign"]  # 90% right


def make_feedback(rows: int, folder: Path) -> None:
    for first in range(0, rows, PER_OBJECT):
        lines = [json.dumps({"msg": "feedback", "endpoint": "score", "request_id": f"req-{i:09d}",
                             "row": 0, "label": _label(i),
                             "time": (START + timedelta(seconds=i % 86400)).strftime(
                                 "%Y-%m-%dT%H:%M:%S.000000Z")}, separators=(",", ":"))
                 for i in range(first, min(first + PER_OBJECT, rows))]
        (folder / f"{first:09d}.jsonl.gz").write_bytes(
            gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0))


def blocks(rows: int) -> Iterator[dict[str, list[Any]]]:
    """The predictions of a window, as the partials hand them over."""
    for first in range(0, rows, BLOCK):
        ids = range(first, min(first + BLOCK, rows))
        yield {"ids": [f"req-{i:09d}" for i in ids], "rows": [0] * len(ids),
               "versions": ["1.0.0" if i % 2 else "1.1.0" for i in ids],
               "labels": [_predicted(i) for i in ids],
               "scores": [0.9 if _predicted(i) == "malignant" else 0.1 for i in ids]}


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(way: str, rows: int, folder: Path) -> dict[str, Any]:
    from framework.monitoring import labels, performance
    from framework.monitoring.capture import ReadLog, read_feedback
    from framework.monitoring.spec import Window
    from framework.monitoring.store import MemoryStore

    store = MemoryStore()
    for path in sorted(folder.iterdir()):
        store.put(f"feedback/score/dt=2026-05-01/{path.name}", path.read_bytes(), "")
    window = Window(START, START + timedelta(days=1))
    before = _rss("VmRSS")
    t0 = time.perf_counter()
    if way == "before":  # check.py's join until this change
        found = read_feedback(store, "score", window, ReadLog())
        predictions: dict[tuple[str, int], tuple[str, Any, float | None]] = {}
        for b in blocks(rows):
            for key in zip(b["ids"], b["rows"], b["versions"], b["labels"], b["scores"],
                           strict=True):
                predictions[(key[0], key[1])] = (key[2], key[3], key[4])
        joined = [(predictions[k], lab) for k, lab in found.items() if k in predictions]
        metrics = performance.classification_metrics(
            [lab for _, lab in joined], [p[1] for p, _ in joined], [p[2] for p, _ in joined],
            "malignant")
        labelled = len(joined)
    else:
        read = labels.read_labels(store, "score", window, ReadLog(), False)
        join = labels.Join(read)
        for b in blocks(rows):
            join.add(b)
        result = join.result()
        metrics = result.metrics("malignant")
        result.by_version("malignant")
        labelled = len(result)
    seconds = time.perf_counter() - t0
    peak = _rss("VmHWM")
    return {"way": way, "rows": rows, "labelled": labelled, "seconds": round(seconds, 2),
            "peak_growth_mb": round((peak - before) / 2**20, 1),
            "bytes_per_labelled_row": round((peak - before) / max(labelled, 1)),
            "accuracy": metrics["accuracy"], "roc_auc": metrics["roc_auc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("before", "after"))
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.folder)))
        return
    with tempfile.TemporaryDirectory(prefix="labels-bench-") as tmp:
        folder = Path(tmp)
        make_feedback(args.rows, folder)
        results = []
        for way in ("before", "after"):
            out = subprocess.run([sys.executable, __file__, "--child", way, "--rows",
                                  str(args.rows), "--folder", str(folder)],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONHASHSEED": "0"})
            results.append(json.loads(out.stdout))
    print(f"{'way':8} {'rows':>10} {'labelled':>10} {'peak +MB':>9} {'B/row':>6} "
          f"{'seconds':>8} {'accuracy':>9}")
    for r in results:
        print(f"{r['way']:8} {r['rows']:>10} {r['labelled']:>10} {r['peak_growth_mb']:>9} "
              f"{r['bytes_per_labelled_row']:>6} {r['seconds']:>8} {r['accuracy']:>9.4f}")
    a, b = results
    assert a["labelled"] == b["labelled"] and abs(a["accuracy"] - b["accuracy"]) < 1e-12
    assert a["roc_auc"] == b["roc_auc"] or abs(a["roc_auc"] - b["roc_auc"]) < 1e-12
    print(f"memory: {a['peak_growth_mb'] / max(b['peak_growth_mb'], 0.1):.1f}x less")


if __name__ == "__main__":
    main()
