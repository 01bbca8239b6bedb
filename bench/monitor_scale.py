"""Monitoring at scale: the capture parser, and monitor runs over big windows in the local S3.

    .venv/bin/python bench/monitor_scale.py parser                  # µs per captured row
    .venv/bin/python bench/monitor_scale.py scale --rows 1000000 10000000 [--evidently PY]

``parser``: capture objects of 30-feature rows written exactly as the endpoint handler writes
them (``framework.runtime.capture.LineFormat``), gzip as Firehose delivers them, profiled
against a reference: the records read one by one (``json.loads`` per line and a per-value loop:
the monitor before partial profiles) against the column decoder (``framework.monitoring
.columns``: msgspec's typed decoding, ISA-L's gunzip) building the object's partial profile.
CPU time (``time.process_time``) per row, best of 3, with full-precision random values (17
significant digits: the worst case for text) and values of 4 decimals (sensor-like).

``scale``: for each row count, synthetic capture objects (30 features, 5 of them shifted by
0.1 σ, 5,000 rows per object as Firehose's 5 MB buffer holds, or ``--per-object``) are
written to S3 on a moto server (the local AWS's control plane) and, each in a fresh process
(peak RSS from
``getrusage``): the monitor's check backfilling every partial profile (first run), the check
merging the stored partials (every later run), and the same data read into pandas and checked
by a ``scipy.stats.ks_2samp`` loop. With ``--evidently PY`` (a python whose venv has evidently
and pandas, see bench/README.md), Evidently's ``DataDriftPreset`` on the same pandas frame.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FEATURES = 30
SHIFTED = (0, 6, 12, 18, 24)
SHIFT = 0.1
PER_OBJECT = 5000
NAMES = [f"f{i:02d}" for i in range(FEATURES)]
DAY = datetime(2026, 11, 30, tzinfo=UTC)
BUCKET = "bench-registry"


# -- data -------------------------------------------------------------------------------------
def capture_object(rng: np.random.Generator, n: int, first: int, decimals: int | None,
                   shifted: bool = True) -> bytes:
    """``n`` capture lines as the handler writes them, gzip as Firehose delivers them."""
    from framework.runtime.capture import LineFormat, iso_utc
    from framework.runtime.features import FeatureSpec
    from framework.runtime.inference import PredictionText

    fmt = LineFormat(endpoint="score", model="clf", version="1.0.0", lambda_version="1",
                     features=[FeatureSpec(name=n_) for n_ in NAMES])
    x = rng.normal(0.0, 1.0, (n, FEATURES))
    if shifted:
        x[:, list(SHIFTED)] += SHIFT
    if decimals is not None:
        x = np.round(x, decimals)
    start = DAY.timestamp() + first * 0.0864  # rows spread over the day
    out = []
    for i, row in enumerate(x.tolist()):
        p = 0.3 + 0.4 * (row[0] > 0)
        text = PredictionText([json.dumps("yes" if p > 0.5 else "no")],
                              [f"[{1 - p:.3f},{p:.3f}]"], '["no","yes"]')
        line = fmt.lines(f"req-{first + i:010d}", iso_utc(start + i * 0.0864),
                         1.0 + (i % 7) * 0.25, [row], text)
        assert line is not None
        out.append(line)
    return gzip.compress("".join(out).encode(), compresslevel=1, mtime=0)


REFERENCE_ROWS = 20_000
REFERENCE_SEED = 1


def reference_matrix() -> np.ndarray:
    """The registered reference data (the same in every process and venv)."""
    return np.random.default_rng(REFERENCE_SEED).normal(0.0, 1.0, (REFERENCE_ROWS, FEATURES))


def reference_body(rng: np.random.Generator | None = None, n: int = REFERENCE_ROWS) -> bytes:
    from framework.monitoring.profile import build_reference

    x = reference_matrix() if rng is None else rng.normal(0.0, 1.0, (n, FEATURES))
    columns: dict[str, Any] = {name: x[:, i] for i, name in enumerate(NAMES)}
    ref = build_reference(columns, [{"name": name, "type": "float"} for name in NAMES])
    body = ref.to_dict()
    body["feature_types"] = {name: "float" for name in NAMES}
    body["predictions"] = {"kind": "categorical", "count": n, "missing": 0,
                           "frequencies": {"no": n // 2, "yes": n - n // 2}}
    return json.dumps(body).encode()


def spec_dict() -> dict[str, Any]:
    return {"name": "bench-drift", "project": "bench", "stage": "dev", "endpoint": "score",
            "model": "clf", "version": "1.0.0", "bucket": BUCKET}


# -- parser -----------------------------------------------------------------------------------
def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def parser(rows: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    ref = reference_body(rng)
    out: dict[str, Any] = {"rows": rows}
    for label, decimals in (("full precision", None), ("4 decimals", 4)):
        out[label] = _parser_case(rng, ref, rows, decimals)
    return out


def _parser_case(rng: np.random.Generator, ref: bytes, rows: int,
                 decimals: int | None) -> dict[str, Any]:
    from framework.monitoring import columns, partial
    from framework.monitoring.capture import ReadLog, read_captures
    from framework.monitoring.check import load_reference, positive_score, unusable
    from framework.monitoring.profile import Profile, ProfileBuilder
    from framework.monitoring.spec import MonitorSpec, Window
    from framework.monitoring.store import MemoryStore

    spec = MonitorSpec.from_dict(spec_dict())
    window = Window(DAY, DAY + timedelta(days=1))
    store = MemoryStore()
    store.put("models/clf/1.0.0/reference.json", ref, "application/json")
    for k in range(rows // PER_OBJECT):
        store.put(f"capture/score/dt=2026-11-30/o{k:05d}.jsonl.gz",
                  capture_object(rng, PER_OBJECT, k * PER_OBJECT, decimals), "application/gzip")
    keys = store.list("capture/")
    reference: Profile = load_reference(store, spec)[0]

    def before() -> None:  # the records one by one, as the monitor read them before
        builder = ProfileBuilder(reference)
        predictions = {}
        for rec in read_captures(store, "score", window, ReadLog()):
            if unusable(rec, spec.task) is None:
                builder.add(rec["inputs"])
                predictions[(rec["request_id"], rec["row"])] = (
                    rec["version"], rec["prediction"], positive_score(rec, None))
        builder.result()

    feats = [{"name": n, "type": "float"} for n in NAMES]
    settings = partial.Settings(reference=reference, features=feats, task="classification",
                                positive=None, answers_edges=None, predictions=False,
                                tag="bench")
    blobs = [store.get(k) or b"" for k in keys]
    texts = [columns.inflate(b, k) for b, k in zip(blobs, keys, strict=True)]

    def after() -> None:  # each object decoded into columns and profiled
        for blob, key in zip(blobs, keys, strict=True):
            partial.build(columns.decode(blob, key, feats, "classification"), settings, key)

    def gunzip() -> None:
        for blob, key in zip(blobs, keys, strict=True):
            columns.inflate(blob, key)

    def decode() -> None:
        for text in texts:
            columns._typed(text, feats, "classification")

    n = len(keys) * PER_OBJECT
    out = {"bytes_per_row": round(sum(len(t) for t in texts) / n, 1),
           "before_us": round(_best(before, 1) / n * 1e6, 2),
           "after_us": round(_best(after) / n * 1e6, 2),
           "gunzip_us": round(_best(gunzip) / n * 1e6, 2),
           "decode_us": round(_best(decode) / n * 1e6, 2)}
    out["profile_us"] = round(out["after_us"] - out["gunzip_us"] - out["decode_us"], 2)
    return out


def print_parser(res: dict[str, Any]) -> None:
    print(f"capture parser, {res['rows']:,} rows of {FEATURES} features, CPU µs per row "
          "(best of 3)")
    print("| values | bytes/row | records one by one | column decoder | of which gunzip | "
          "typed decode | profile | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in ("full precision", "4 decimals"):
        r = res[label]
        print(f"| {label} | {r['bytes_per_row']} | {r['before_us']} | {r['after_us']} | "
              f"{r['gunzip_us']} | {r['decode_us']} | {r['profile_us']} | "
              f"{r['before_us'] / r['after_us']:.1f}x |")


# -- scale ------------------------------------------------------------------------------------
MEMORY_CAP_GB = 10  # address space of each measured process (--memory-cap)
TEMPLATES = 16  # distinct objects of generated values; every object gets its own request ids


def _templates(rng: np.random.Generator, per: int) -> list[str]:
    """Object texts with a placeholder in every request id (filled per object)."""
    out = []
    for t in range(TEMPLATES):
        text = gzip.decompress(capture_object(rng, per, t * per, None)).decode()
        out.append(text.replace('"request_id":"req-', '"request_id":"req-@@@@@@-'))
    return out


def write_window(s3: Any, bucket: str, rows: int, per: int = PER_OBJECT) -> list[str]:
    """``rows`` captured rows of one day in ``bucket`` (objects of ``per`` rows), and the
    registered reference; the capture keys."""
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="models/clf/1.0.0/reference.json", Body=reference_body())
    templates = _templates(np.random.default_rng(2), per)
    keys = []
    for k in range(rows // per):
        key = f"capture/score/dt=2026-11-30/score-capture-1-{k:07d}.jsonl.gz"
        text = templates[k % TEMPLATES].replace("@@@@@@", f"{k:06d}")
        s3.put_object(Bucket=bucket, Key=key,
                      Body=gzip.compress(text.encode(), compresslevel=1, mtime=0))
        keys.append(key)
    return keys


def child(mode: str, url: str, bucket: str, keys_file: str) -> dict[str, Any]:
    """One measured run, in its own process: wall time, peak RSS, objects read, flagged."""
    t0 = time.perf_counter()
    if mode == "mlops":
        out = _mlops(url, bucket)
    else:
        out = _frame(mode, Path(keys_file).with_suffix(".urls").read_text().split())
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["peak_mib"] = peak_mib()
    return out


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM: counted from its exec, unlike getrusage's
    ru_maxrss, which a child starts with its parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _mlops(url: str, bucket: str) -> dict[str, Any]:
    from framework.monitoring.check import run_check
    from framework.monitoring.spec import MonitorSpec, Window
    from framework.monitoring.store import S3Store
    from framework.runtime.clients import Connection

    class Counted(S3Store):
        reads = 0

        def get(self, key: str) -> bytes | None:
            if key.startswith("capture/"):
                Counted.reads += 1
            return super().get(key)

    s3 = Connection("us-east-1", url, dummy_credentials=True).client("s3")
    spec = MonitorSpec.from_dict({**spec_dict(), "bucket": bucket})
    t0 = time.perf_counter()
    body = run_check(spec, Counted(s3, bucket), Window(DAY, DAY + timedelta(days=1)))
    return {"check_s": round(time.perf_counter() - t0, 2),
            "objects_read": Counted.reads, "rows": body["data"]["rows"],
            "profiles": body["data"]["profiles"],
            "flagged": sorted(int(f[1:]) for f in body["drift"]["drifted"])}


def _frame(mode: str, urls: list[str]) -> dict[str, Any]:
    """The same objects read into pandas (as a user would: read_json per object, inputs
    to columns, the packed float inputs decoded), then a scipy ks_2samp loop or Evidently's
    DataDriftPreset."""
    import base64
    import io
    import urllib.request

    import pandas as pd

    t0 = time.perf_counter()
    frames = []
    for link in urls:  # presigned GETs of the capture objects
        with urllib.request.urlopen(link) as resp:
            data = gzip.decompress(resp.read())
        records = pd.read_json(io.BytesIO(data), lines=True)
        if "input_f64" in records:  # float inputs packed as the handler writes them
            names = list(records["input_names"].iloc[0])
            raw = b"".join(base64.b64decode(text) for text in records["input_f64"])
            frames.append(pd.DataFrame(np.frombuffer(raw, "<f8").reshape(-1, len(names)),
                                       columns=names))
        else:
            frames.append(pd.DataFrame(records["inputs"].tolist()))
    cur = pd.concat(frames, ignore_index=True)
    ref = pd.DataFrame(reference_matrix(), columns=NAMES)
    if mode == "scipy":
        from scipy import stats

        flagged = [i for i, n in enumerate(NAMES)
                   if stats.ks_2samp(ref[n].to_numpy(), cur[n].to_numpy()).pvalue < 0.05]
    else:
        from evidently.legacy.metric_preset import DataDriftPreset
        from evidently.legacy.report import Report

        report = Report(metrics=[DataDriftPreset()])
        report.run(reference_data=ref, current_data=cur)
        found = report.as_dict()["metrics"][1]["result"]["drift_by_columns"]
        flagged = sorted(int(c[1:]) for c, v in found.items() if v["drift_detected"])
    return {"check_s": round(time.perf_counter() - t0, 2), "objects_read": len(urls),
            "rows": len(cur), "flagged": flagged}


def _run_child(python: str, mode: str, url: str, bucket: str, keys_file: Path,
               cap_gb: float = MEMORY_CAP_GB) -> dict[str, Any] | None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    limit = int(cap_gb * (1 << 30))

    def cap() -> None:  # a run that needs more fails alone, not its neighbours on the machine
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([python, str(Path(__file__).resolve()), "_child", mode, url, bucket,
                           str(keys_file)], capture_output=True, text=True, env=env,
                          preexec_fn=cap)
    if proc.returncode != 0:
        print(f"{mode}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    got = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{bucket} {mode}: {json.dumps(got)}", file=sys.stderr, flush=True)
    return got


def _drop_rollups(s3: Any, bucket: str) -> int:
    """Delete the day rollups the first run stored: the next run merges every partial, as the
    first scheduled run does once every object was profiled when it landed."""
    from framework.monitoring.partial import PREFIX, ROLLUP

    dropped = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(ROLLUP):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
                dropped += 1
    return dropped


def scale(rows_list: list[int], evidently: str | None, pandas_python: str | None,
          work: Path, cap_gb: float = MEMORY_CAP_GB, per: int = PER_OBJECT) -> dict[str, Any]:
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    from framework.runtime.clients import Connection

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = Connection("us-east-1", url, dummy_credentials=True).client("s3")
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    try:
        for rows in rows_list:
            bucket = f"bench-{rows}"
            t0 = time.perf_counter()
            keys = write_window(s3, bucket, rows, per)
            keys_file = work / f"{bucket}.keys"
            keys_file.write_text("\n".join(keys))
            keys_file.with_suffix(".urls").write_text("\n".join(  # for the pandas readers
                s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k},
                                          ExpiresIn=86400) for k in keys))
            res: dict[str, Any] = {"objects": len(keys),
                                   "generated_s": round(time.perf_counter() - t0, 1)}
            print(f"{rows:,} rows: {len(keys)} objects written in {res['generated_s']} s",
                  file=sys.stderr)
            res["mlops_first"] = _run_child(sys.executable, "mlops", url, bucket, keys_file,
                                            cap_gb)
            res["rollups_dropped"] = _drop_rollups(s3, bucket)
            res["mlops_partials"] = _run_child(sys.executable, "mlops", url, bucket, keys_file,
                                               cap_gb)
            res["mlops_merge"] = _run_child(sys.executable, "mlops", url, bucket, keys_file,
                                            cap_gb)
            if pandas_python:
                res["pandas_scipy"] = _run_child(pandas_python, "scipy", url, bucket, keys_file,
                                                 cap_gb)
            if evidently:
                res["evidently"] = _run_child(evidently, "evidently", url, bucket, keys_file,
                                              cap_gb)
            out[str(rows)] = res
            print(json.dumps(res), file=sys.stderr)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):  # free the server's memory
                    s3.delete_object(Bucket=bucket, Key=obj["Key"])
    finally:
        server.stop()
    return out


def print_scale(res: dict[str, Any]) -> None:
    print("| rows | objects | check | process s | check s | peak RSS MiB | objects read | "
          "flagged |")
    print("|---:|---:|---|---:|---:|---:|---:|---|")
    names = {"mlops_first": "mlops, first run (profiles every object, stores partials and "
                            "the day's rollup)",
             "mlops_partials": "mlops, the day's rollup deleted (merges every stored "
                               "partial, as after profiling on landing)",
             "mlops_merge": "mlops, next run (merges the day's rollup)",
             "pandas_scipy": "pandas + scipy ks_2samp loop",
             "evidently": "pandas + Evidently DataDriftPreset"}
    for rows, r in res.items():
        for key, label in names.items():
            m = r.get(key)
            if m is None:
                continue
            print(f"| {int(rows):,} | {r['objects']} | {label} | {m['seconds']} | "
                  f"{m['check_s']} | {m['peak_mib']} | {m['objects_read']} | {m['flagged']} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("parser")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--json", type=Path)
    p = sub.add_parser("scale")
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--evidently", help="python of a venv with evidently and pandas")
    p.add_argument("--pandas", help="python of a venv with pandas and scipy "
                   "(default: --evidently's)")
    p.add_argument("--per-object", type=int, default=PER_OBJECT,
                   help="rows an object (5,000: the capture stream's default 5 MiB buffer)")
    p.add_argument("--work", type=Path, default=Path("/tmp/mlops-bench-scale"))
    p.add_argument("--memory-cap", type=float, default=MEMORY_CAP_GB,
                   help="GiB of address space each measured process may take")
    p.add_argument("--json", type=Path)
    p = sub.add_parser("_child")
    p.add_argument("mode")
    p.add_argument("url")
    p.add_argument("bucket")
    p.add_argument("keys")
    args = ap.parse_args(argv)
    if args.what == "_child":
        print(json.dumps(child(args.mode, args.url, args.bucket, args.keys)))
        return 0
    if args.what == "scale":
        res = scale(args.rows, args.evidently, args.pandas or args.evidently, args.work,
                    args.memory_cap, args.per_object)
        print_scale(res)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return 0
    if args.what == "parser":
        res = parser(args.rows)
        print_parser(res)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
