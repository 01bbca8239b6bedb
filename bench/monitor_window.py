"""A big capture window checked by one ``mlops monitor run`` on the embedded local AWS.

    nice -n 10 .venv/bin/python bench/monitor_window.py --rows 1000000 10000000 [--no-landing]

For each row count: the project's own example (``mlops.yaml`` and the breast-cancer model, 30
float features) is copied into a fresh folder under ``--work``, its monitor sized for a big
window (``memory``, ``timeout: 900``, ``fan_out``), and deployed with ``mlops deploy`` on its
own embedded local AWS (its own daemon and ports). One day of captured rows is then written
into the registry bucket's ``capture/predict/dt=2026-11-30/``, gzip, 4,400 rows an object
(5.2 MB of lines of 1,185 bytes: what the capture stream's 5 MiB buffer, applied before
compression, delivers), each line exactly as the endpoint handler writes it
(``framework.runtime.capture.LineFormat``: packed float inputs), named as the local Firehose
names its objects. The objects are written to S3 directly (``PutObject``): Firehose's
delivery is not what is measured. Rows are drawn from the model's reference data, 5 features
shifted by half their standard deviation; 16 templates of 4,400 rows are written with each
object's own request ids and hour of the day (so writing 100M rows does not cost 100M
encodings).

Each object written fires the monitor's landing rule (S3 ``Object Created`` → EventBridge →
the monitor's alias), which profiles it into its partial as it lands; the script waits until
those invocations are done (``--no-landing`` disables the rule first: the objects are then as
if they had landed before the monitor existed). Then ``mlops monitor run diagnosis-drift
--window 2026-11-30..2026-12-01`` (the real CLI: it invokes the deployed monitor function on
the local Lambda service) until no object is left without a partial (a run backfills the
objects lacking one, in shares handed to parallel invocations of the function, fan-out, while
half its time is left, then merges every partial), then once more: the later run merges the
stored partials. For each run:
wall time, the monitor function's REPORT lines from its local log (the run's own: Duration,
Max Memory Used; the fan-out workers': count, longest, most memory), the verdict and what the
report counted, the local AWS home's size on disk, the file system's use and the daemon's
peak RSS (VmHWM).

The local AWS keeps an object's bytes over 64 KiB in a file on disk opened only while read —
the journal's own copy of the PutObject body (``framework/local/s3store.py``) — so a window
costs its gzip bytes once on disk, no memory and no open descriptor per object; a size whose
objects would leave less than 15 GB free on the disk is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXAMPLE = "examples/breast_cancer"
MONITOR = "diagnosis-drift"
ENDPOINT = "predict"
DAY = datetime(2026, 11, 30, tzinfo=UTC)
WINDOW = "2026-11-30T00:00:00Z..2026-12-01T00:00:00Z"
PER_OBJECT = 4400  # 5 MiB (the capture stream's default buffer) of 1,185-byte lines
TEMPLATES = 16
SHIFTED = (0, 6, 12, 18, 24)
SHIFT = 0.5  # in standard deviations of the reference
WRITERS = 2  # parallel PutObject calls while generating


# -- project ----------------------------------------------------------------------------------
def free_port_pair() -> int:
    for _ in range(100):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port > 65000:
            continue
        try:
            with socket.socket() as b:
                b.bind(("127.0.0.1", port + 1))
            return int(port)
        except OSError:
            continue
    raise RuntimeError("no free pair of ports")


def make_project(root: Path, memory: int, fan_objects: int, fan_workers: int,
                 buffer_mb: int) -> None:
    """The repository's example, its monitor sized for a big window (and its capture stream's
    buffer at ``buffer_mb``)."""
    root.mkdir(parents=True)
    text = (ROOT / "mlops.yaml").read_text().replace("strategy: canary", "strategy: all_at_once")
    capture = "capture: {sample_rate: 1.0}"
    assert capture in text, "the example's capture changed: update bench/monitor_window.py"
    if buffer_mb != 5:
        text = text.replace(capture, f"capture: {{sample_rate: 1.0, buffer: {{size_mb: "
                                     f"{buffer_mb}}}}}", 1)
    old = "notify: {email: [oncology-ops@example.com], when: drift}"
    assert old in text, "the example's monitor changed: update bench/monitor_window.py"
    text = text.replace(old, old + f"\n    memory: {memory}\n    timeout: 900\n"
                        f"    fan_out: {{objects: {fan_objects}, workers: {fan_workers}}}", 1)
    (root / "mlops.yaml").write_text(text)
    dest = root / EXAMPLE
    dest.mkdir(parents=True)
    for part in ("artifacts", "data"):
        shutil.copytree(ROOT / EXAMPLE / part, dest / part)
    shutil.copy(ROOT / EXAMPLE / "train.py", dest / "train.py")


NOFILE = 100_000  # open files of the CLI, and of the daemon it starts (see the docstring)


def _more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):  # raising the hard limit needs root: keep what there is
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def mlops(root: Path, env: dict[str, str], *args: str) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "framework.cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, preexec_fn=_more_files)
    took = time.perf_counter() - t0
    if proc.returncode not in (0, 9):
        print(f"mlops {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}",
              file=sys.stderr)
    return proc.returncode, proc.stdout + proc.stderr, took


# -- capture objects --------------------------------------------------------------------------
def reference_rows() -> tuple[list[str], np.ndarray]:
    path = ROOT / EXAMPLE / "data" / "reference.csv"
    names = path.read_text().splitlines()[0].split(",")
    return names, np.loadtxt(path, delimiter=",", skiprows=1)


def templates(names: list[str], version: str, lambda_version: str, per: int) -> list[str]:
    """Object texts (``per`` capture lines each) with ``@@@@@@@`` in every request id and
    ``%%`` for the hour in every time: filled per object."""
    from framework.runtime.capture import LineFormat
    from framework.runtime.features import FeatureSpec
    from framework.runtime.inference import PredictionText

    _, ref = reference_rows()
    fmt = LineFormat(endpoint=ENDPOINT, model="diagnosis", version=version,
                     lambda_version=lambda_version,
                     features=[FeatureSpec(name=n, type="float") for n in names])
    rng = np.random.default_rng(5)
    sd = ref.std(axis=0)
    out = []
    for t in range(TEMPLATES):
        x = ref[rng.integers(0, len(ref), per)]
        x[:, list(SHIFTED)] += SHIFT * sd[list(SHIFTED)]
        lines = []
        for i, row in enumerate(x.tolist()):
            p = min(0.99, max(0.01, (row[20] - 12.0) / 10.0))  # worst_radius
            label = '"malignant"' if p > 0.5 else '"benign"'
            text = PredictionText([label], [f"[{p:.4f},{1 - p:.4f}]"],
                                  '["malignant","benign"]')
            second = (t * per + i) * 3599 // (TEMPLATES * per)
            when = f"{DAY:%Y-%m-%d}T%%:{second // 60:02d}:{second % 60:02d}.{i % 1000:03d}000Z"
            line = fmt.lines(f"@@@@@@@-{i:04d}", when, 1.0 + (i % 7) * 0.25, [row], text)
            assert line is not None
            lines.append(line)
        out.append("".join(lines))
    return out


def write_window(s3: Any, bucket: str, stream: str, rows: int, texts: list[str],
                 per: int) -> int:
    """``rows`` captured rows of DAY in ``bucket``; the bytes written. gzip by ISA-L (level
    1: Firehose's GZIP level is not documented; zlib's level 6 makes objects 3 % smaller)."""
    from isal import igzip

    count = objects(rows, per)

    def put(k: int) -> int:
        hour = k * 24 // count
        text = texts[k % len(texts)]
        if k == count - 1 and rows % per:  # the last object: the rows left
            text = "".join(text.splitlines(keepends=True)[:rows % per])
        text = text.replace("%%", f"{hour:02d}").replace("@@@@@@@", f"{k:07d}")
        body = igzip.compress(text.encode(), compresslevel=1)
        minute, second = divmod(k * 3600 * 24 // count % 3600, 60)
        key = (f"capture/{ENDPOINT}/dt={DAY:%Y-%m-%d}/{stream}-1-{DAY:%Y-%m-%d}-{hour:02d}-"
               f"{minute:02d}-{second:02d}-bench-{k:07d}.gz")
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return len(body)

    done = 0
    total = 0
    with ThreadPoolExecutor(WRITERS) as pool:
        for size in pool.map(put, range(count)):
            total += size
            done += 1
            if done % 1000 == 0:
                print(f"  {done:,}/{count:,} objects", file=sys.stderr, flush=True)
    return total


def objects(rows: int, per: int) -> int:
    return -(-rows // per)


# -- measuring --------------------------------------------------------------------------------
def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def fs_used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def vm_hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def report_lines(log: Path, start: int) -> list[dict[str, Any]]:
    """REPORT lines of the function's local log after byte ``start``."""
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        if "REPORT RequestId:" not in line:
            continue
        fields = dict(part.split(": ", 1) for part in line.split("\t") if ": " in part)
        out.append({"duration_ms": float(fields["Duration"].split()[0]),
                    "max_memory_mb": float(fields["Max Memory Used"].split()[0]),
                    "status": fields.get("Status", "")})
    return out


def drain(log: Path, objects: int, quiet_s: float = 20.0) -> dict[str, Any]:
    """Wait until the monitor's landing invocations (one per object written) are done: every
    object's REPORT line is in the log, or none came for ``quiet_s``; what they did."""
    t0 = time.perf_counter()
    last, changed = -1, time.perf_counter()
    while True:
        reports = report_lines(log, 0)
        if len(reports) != last:
            last, changed = len(reports), time.perf_counter()
        if len(reports) >= objects or time.perf_counter() - changed > quiet_s:
            break
        time.sleep(2)
    took = sorted(r["duration_ms"] for r in reports) or [0.0]
    return {"invocations": len(reports), "waited_s": round(time.perf_counter() - t0, 1),
            "median_s": round(took[len(took) // 2] / 1000, 3),
            "p90_s": round(took[len(took) * 9 // 10] / 1000, 3),
            "longest_s": round(took[-1] / 1000, 2),
            "max_memory_mb": max((r["max_memory_mb"] for r in reports), default=0),
            "failed": sum(1 for r in reports if r["status"])}


def one_run(root: Path, env: dict[str, str], home: Path, s3: Any, bucket: str, fn: str,
            daemon_pid: int) -> dict[str, Any]:
    log = home / "logs" / f"{fn}.log"
    start = log.stat().st_size if log.exists() else 0
    code, output, took = mlops(root, env, "monitor", "run", MONITOR, "--window", WINDOW)
    reports = report_lines(log, start)
    out: dict[str, Any] = {"wall_s": round(took, 1), "exit": code,
                           "subject": next((ln for ln in output.splitlines()
                                            if ln.startswith("[")), output.strip()[-300:])}
    if reports:  # the run's own invocation ends last; the others are its fan-out workers
        run, workers = reports[-1], reports[:-1]
        out["duration_s"] = round(run["duration_ms"] / 1000, 1)
        out["max_memory_mb"] = run["max_memory_mb"]
        out["status"] = run["status"]
        out["workers"] = {"invocations": len(workers),
                          "longest_s": round(max((w["duration_ms"] for w in workers),
                                                 default=0) / 1000, 1),
                          "max_memory_mb": max((w["max_memory_mb"] for w in workers),
                                               default=0),
                          "failed": sum(1 for w in workers if w["status"])}
    key = next((ln.split("report: s3://", 1)[1].split(" ")[0].split("/", 1)[1]
                for ln in output.splitlines() if ln.startswith("report: s3://")), None)
    if key:
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        data = report.get("data") or {}
        out.update(status_report=report.get("status"), rows=data.get("rows"),
                   profiles=data.get("profiles"), error=report.get("error"),
                   drifted=(report.get("drift") or {}).get("drifted"),
                   report_bytes=len(json.dumps(report)))
    out["home_gb"] = round(du(home) / 1e9, 2)
    out["daemon_hwm_mib"] = vm_hwm_mib(daemon_pid)
    return out


def write_and_land(res: dict[str, Any], s3: Any, bucket: str, stream: str, rows: int,
                   live: str, home: Path, fn: str, work: Path, disk0: int) -> None:
    """Write the window's objects and wait for their landing invocations; into ``res``."""
    need = rows * 260 * 1.2  # gzip bytes a row, once on disk, and the partials
    free = shutil.disk_usage(work).free
    if free - need < 15e9:
        raise RuntimeError(f"{rows:,} rows need about {need / 1e9:.0f} GB of disk and "
                           f"{free / 1e9:.0f} GB are free: less than 15 GB would be left")
    names, _ = reference_rows()
    t0 = time.perf_counter()
    texts = templates(names, "1.0.0", live, res["per_object"])
    res["bytes"] = write_window(s3, bucket, stream, rows, texts, res["per_object"])
    res["generate_s"] = round(time.perf_counter() - t0, 1)
    if res["landing"]:  # each object profiled as it landed (S3 event → the monitor's alias)
        res["landing"] = drain(home / "logs" / f"{fn}.log", res["objects"])
        res["landing"]["drained_s"] = round(time.perf_counter() - t0, 1)
    res["home_gb_after_write"] = round(du(home) / 1e9, 2)
    res["disk_gb_after_write"] = round((fs_used(work) - disk0) / 1e9, 2)
    print(f"{rows:,} rows: {res['objects']:,} objects ({res['bytes'] / 1e9:.2f} GB) "
          f"written in {res['generate_s']} s", file=sys.stderr, flush=True)


def bench(rows: int, work: Path, moto_buffer: int, memory: int, fan_objects: int,
          fan_workers: int, landing: bool, keep: bool = False, again: bool = False,
          buffer_mb: int = 5) -> dict[str, Any]:
    from framework import local
    from framework.runtime.clients import Connection

    root = work / f"rows-{rows}"
    written = root / "written.json"  # what a kept folder's writes measured
    again = again and written.exists()
    if not again:
        if root.exists():
            shutil.rmtree(root)
        make_project(root, memory, fan_objects, fan_workers, buffer_mb)
    env = {**os.environ, "MLOPS_LOCAL_PORT": str(free_port_pair()),
           "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(moto_buffer),
           "PYTHONPATH": str(ROOT)}
    home = root / ".mlops" / "local"
    disk0 = fs_used(work)
    per = PER_OBJECT * buffer_mb // 5  # rows of 1,185 bytes the capture stream's buffer holds
    res: dict[str, Any] = {"rows": rows, "objects": objects(rows, per), "landing": landing,
                           "buffer_mb": buffer_mb, "per_object": per}
    try:
        code, output, took = mlops(root, env, "deploy")
        if code != 0:
            raise RuntimeError(f"deploy failed:\n{output[-3000:]}")
        res["deploy_s"] = round(took, 1)
        daemon = json.loads((home / "daemon.json").read_text())
        conn = Connection("us-east-1", daemon["control_url"], dummy_credentials=True)
        s3, lam, fh = conn.client("s3"), conn.client("lambda"), conn.client("firehose")
        bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"]
                      if s3.list_objects_v2(Bucket=b["Name"], Prefix="models/diagnosis/")
                      .get("KeyCount"))
        stream = next(s for s in fh.list_delivery_streams()["DeliveryStreamNames"]
                      if s.endswith(f"{ENDPOINT}-capture"))
        fn = next(f["FunctionName"] for f in lam.list_functions()["Functions"]
                  if f["FunctionName"].endswith(f"mon-{MONITOR}"))
        live = lam.get_alias(FunctionName=fn.replace(f"mon-{MONITOR}", ENDPOINT),
                             Name="live")["FunctionVersion"]
        if not landing:  # objects that landed before the monitor existed: the run profiles
            events = conn.client("events")
            for rule in events.list_rules()["Rules"]:
                if rule["Name"].endswith(f"{MONITOR}.landed"):
                    events.disable_rule(Name=rule["Name"])
            urllib.request.urlopen(urllib.request.Request(
                f"{daemon['gateway_url']}/_mlops/refresh", method="POST", data=b""),
                timeout=60).read()
        if again:  # the kept window: its day rollups deleted, so the first run merges again
            res.update(json.loads(written.read_text()))
            res["again"] = True
            rollups = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix="capture-profiles/") for o in page.get("Contents", [])
                if o["Key"].endswith("_day.rollup.gz")]
            for key in rollups:
                s3.delete_object(Bucket=bucket, Key=key)
        else:
            write_and_land(res, s3, bucket, stream, rows, live, home, fn, work, disk0)
            written.write_text(json.dumps(res))
        code, output, _ = mlops(root, env, "deploy")  # the code as it is now (no-op if same)
        if code != 0:
            raise RuntimeError(f"deploy failed:\n{output[-3000:]}")
        res["runs"] = []
        while True:  # backfill runs (each hands out shares while half its time is left)...
            run = one_run(root, env, home, s3, bucket, fn, int(daemon["pid"]))
            run["disk_gb"] = round((fs_used(work) - disk0) / 1e9, 2)
            run["name"] = "first" if not res["runs"] else f"backfill {len(res['runs']) + 1}"
            res["runs"].append(run)
            print(f"  {run['name']}: {json.dumps(run)}", file=sys.stderr, flush=True)
            if not (run.get("profiles") or {}).get("deferred") or len(res["runs"]) >= 8:
                break
        run = one_run(root, env, home, s3, bucket, fn, int(daemon["pid"]))  # ...then a merge
        run["disk_gb"] = round((fs_used(work) - disk0) / 1e9, 2)
        run["name"] = "later"
        res["runs"].append(run)
        print(f"  later: {json.dumps(run)}", file=sys.stderr, flush=True)
    finally:
        local.stop(home)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return res


def merged(p: dict[str, Any]) -> str:
    """Partials merged one by one, and the objects merged through day rollups."""
    out = str(p.get("cached"))
    if p.get("rollups"):
        out += f" + {p['rolled']:,} in {p['rollups']} day rollup(s)"
    if p.get("merge_workers"):
        out += f" ({p['merged_there']:,} by {p['merge_workers']} merge workers)"
    if p.get("rollups_stored"):
        out += f" ({p['rollups_stored']} day rollup(s) stored)"
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    print("| rows | objects | run | wall s | monitor Duration s | Max Memory MB | workers "
          "(longest s, max MB) | partials merged | built here | rows counted | verdict | "
          "home GB | disk GB | daemon peak MiB |")
    print("|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|")
    for r in results:
        land = r.get("landing")
        if isinstance(land, dict):
            print(f"| {r['rows']:,} | {r['objects']:,} | on landing ({r['generate_s']} s of "
                  f"writes, drained at {land['drained_s']} s) | | | {land['max_memory_mb']} | "
                  f"{land['invocations']} (longest {land['longest_s']}) | | | | | | | |")
        for m in r.get("runs", []):
            name = m["name"]
            p = m.get("profiles") or {}
            w = m.get("workers") or {}
            print(f"| {r['rows']:,} | {r['objects']:,} | {name} | {m['wall_s']} | "
                  f"{m.get('duration_s')} | {m.get('max_memory_mb')} | "
                  f"{w.get('invocations', 0)} ({w.get('longest_s')}, {w.get('max_memory_mb')}) "
                  f"| {merged(p)} | {p.get('built')} | {m.get('rows')} | "
                  f"{m.get('status_report')} | {m['home_gb']} | {m['disk_gb']} | "
                  f"{m['daemon_hwm_mib']} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/mlops-bench-window"))
    ap.add_argument("--moto-buffer", type=int, default=65536)
    ap.add_argument("--memory", type=int, default=2048, help="monitor memory, MB")
    ap.add_argument("--fan-objects", type=int, default=200)
    ap.add_argument("--fan-workers", type=int, default=3)
    ap.add_argument("--buffer-mb", type=int, default=5,
                    help="the capture stream's buffer (capture.buffer.size_mb): objects of "
                         "4,400 rows per 5 MiB")
    ap.add_argument("--no-landing", dest="landing", action="store_false",
                    help="disable the monitor's landing rule: the runs profile every object")
    ap.add_argument("--keep", action="store_true",
                    help="keep the window's folder (its local AWS stopped) for --again")
    ap.add_argument("--again", action="store_true",
                    help="a kept window: deploy the code as it is, delete the day rollups, "
                         "and run again (no writes)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    results = []
    for rows in args.rows:
        try:
            results.append(bench(rows, args.work, args.moto_buffer, args.memory,
                                 args.fan_objects, args.fan_workers, args.landing,
                                 args.keep or args.again, args.again, args.buffer_mb))
        except RuntimeError as e:  # a size this machine cannot hold, or a failed deploy
            print(f"{rows:,} rows not measured: {e}", file=sys.stderr)
            continue
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
