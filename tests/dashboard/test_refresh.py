"""The rebuild at the end of a monitor run: from the snapshot, every monitor's runs and the
audit read again, a SigV4 presigned link; every S3 call it makes is allowed by the monitor
function's compiled IAM policy (and nothing more); and what the monitor function imports is in
its zip, with nothing from outside stdlib, numpy, scipy and boto3."""

from __future__ import annotations

import ast
import fnmatch
import json
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from framework.compile import compile_config
from framework.config.models import Config
from framework.dashboard.data import MonitorView, SiteData
from framework.dashboard.refresh import after_run, audit_records
from framework.dashboard.site import prefix
from framework.layers import NEEDS
from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import MemoryStore, S3Store
from tests.compile.test_compile import SPEC, context
from tests.dashboard.test_render import site_data

BUCKET = "fraud-registry-123456789012-us-east-1"  # the compiled policy's bucket
PAGE = "dashboard/fraud/dev/index.html"


def monitor_spec(**over: Any) -> MonitorSpec:
    base = {"name": "fraud-drift", "project": "fraud", "stage": "dev", "endpoint": "score",
            "model": "fraud-clf", "version": "1.2.0", "bucket": BUCKET}
    return MonitorSpec.from_dict({**base, **over})


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _put(s3: Any, key: str, body: Any) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)


def _history(s3: Any, monitor: str, statuses: list[str]) -> list[str]:
    runs = [f"2026010{i + 1}T000000Z-{monitor[:3]}{i}" for i in range(len(statuses))]
    _put(s3, f"reports/{monitor}/history.json", [
        {"run_id": r, "time": f"2026-01-0{i + 1}T00:00:00Z", "status": s,
         "figures": {"drift_share": 0.1 * i, "rows": 100}, "window": {},
         "report": f"reports/{monitor}/{r}/report.json"}
        for i, (r, s) in enumerate(zip(runs, statuses, strict=True))])
    for r in runs:
        _put(s3, f"reports/{monitor}/{r}/report.json", {"summary": f"summary of {r}"})
    return runs


def _seed(s3: Any) -> SiteData:
    """A snapshot (two monitors, one audit record), both monitors' runs, audit records since."""
    data = site_data()
    data.project, data.bucket = "fraud", BUCKET
    data.monitors = [MonitorView("fraud-drift", "score", "rate(1 day)"),
                     MonitorView("latency", "score", "rate(1 hour)")]
    data.audit = [{"id": "aaaaaaaaaaaa", "time": "2026-01-02T10:00:00.000000Z",
                   "command": "mlops deploy", "action": "create", "resource": "api"}]
    _put(s3, prefix("fraud", "dev") + "site.json", data.snapshot())
    _put(s3, "audit/2026/01/01/20260101T000000000000Z-bbbbbbbbbbbb.json",
         {"id": "bbbbbbbbbbbb", "time": "2026-01-01T00:00:00.000000Z", "command": "old"})
    _put(s3, "audit/2026/01/02/20260102T100000000000Z-aaaaaaaaaaaa.json", b"known: not read")
    _put(s3, "audit/2026/01/02/20260102T110000000000Z-cccccccccccc.json",
         {"id": "cccccccccccc", "time": "2026-01-02T11:00:00.000000Z",
          "command": "mlops models promote", "before": None, "after": {"version": "1.2.0"}})
    _put(s3, "audit/2026/01/03/20260103T000000000000Z-dddddddddddd.json", b"{not json")
    return data


def test_after_run_rebuilds_the_page_from_the_snapshot_and_presigns_it(s3: Any) -> None:
    _seed(s3)
    drift = _history(s3, "fraud-drift", ["ok", "drift"])
    latency = _history(s3, "latency", ["ok"])
    out = after_run(monitor_spec(), S3Store(s3, BUCKET))
    assert out["key"] == PAGE and out["seconds"] == 7 * 24 * 3600, out
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in out["url"] and "X-Amz-Expires=604800" in \
        out["url"] and f"/{PAGE}?" in out["url"]
    page = s3.get_object(Bucket=BUCKET, Key=PAGE)["Body"].read().decode()
    assert s3.head_object(Bucket=BUCKET, Key=PAGE)["ContentType"] == "text/html; charset=utf-8"
    assert "Built by monitor fraud-drift" in page
    assert all(r in page for r in drift + latency) and f"summary of {drift[-1]}" in page
    assert "Model fraud-clf" in page and "Endpoint score" in page  # from the snapshot
    assert "mlops models promote" in page  # written after the snapshot: read
    assert ">old<" not in page  # older than the snapshot's day: not listed again
    shorter = after_run(monitor_spec(notify={"link_expires": "2h"}), S3Store(s3, BUCKET))
    assert shorter["seconds"] == 7200 and "X-Amz-Expires=7200" in shorter["url"]
    # the snapshot is the deploy's: the monitor function never writes it
    snapshot = s3.get_object(Bucket=BUCKET, Key=prefix("fraud", "dev") + "site.json")
    assert SiteData.from_snapshot(snapshot["Body"].read()).built_by == "mlops dashboard"


def test_after_run_without_a_snapshot_says_what_is_missing_and_never_raises() -> None:
    store = MemoryStore()
    out = after_run(monitor_spec(), store)
    assert out == {"key": PAGE}  # no S3 client, no link
    page = store.objects[PAGE].decode()
    assert "Monitor fraud-drift" in page and "`mlops deploy` or `mlops dashboard --publish`" \
        in page.replace("&#x27;", "'")
    store.put(prefix("fraud", "dev") + "site.json", b'{"format": "other"}', "application/json")
    assert after_run(monitor_spec(), store) == {"key": PAGE}
    assert "not a dashboard snapshot" in store.objects[PAGE].decode()

    class Broken(MemoryStore):
        def put(self, key: str, data: bytes, content_type: str) -> None:
            raise ConnectionError("S3 is away")

    failed = after_run(monitor_spec(), Broken())
    assert failed == {"error": "ConnectionError: S3 is away"}


def test_link_expires_is_checked_when_mlops_yaml_loads() -> None:
    from pydantic import ValidationError

    from framework.config.models import Notify

    assert Notify().link_expires == "7d" and Notify(link_expires="90m").link_expires == "90m"
    for bad in ("8d", "0h", "1w", "7 days"):
        with pytest.raises(ValidationError, match="at most 7d"):
            Notify(link_expires=bad)


def test_audit_records_keeps_the_newest_and_skips_what_is_not_a_record(s3: Any) -> None:
    for i in range(5):
        _put(s3, f"audit/2026/01/0{i + 1}/2026010{i + 1}T000000000000Z-{i:012d}.json",
             {"id": f"{i:012d}", "time": f"2026-01-0{i + 1}T00:00:00.000000Z"})
    _put(s3, "audit/2026/01/06/20260106T000000000000Z-000000000009.json", b"[1, 2]")
    every = audit_records(s3, BUCKET, [])
    assert [r["id"] for r in every] == [f"{i:012d}" for i in range(5)]
    assert [r["id"] for r in audit_records(s3, BUCKET, [], limit=2)] == ["000000000003",
                                                                        "000000000004"]
    again = audit_records(s3, BUCKET, every[:4])
    assert again == every


def _allowed(policy: dict[str, Any], action: str, resource: str,
             prefix_: str | None = None) -> bool:
    for st in policy["Statement"]:
        if st["Effect"] != "Allow" or action not in st["Action"]:
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in st["Resource"]):
            continue
        cond = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if cond is not None and not any(fnmatch.fnmatchcase(prefix_ or "", c) for c in cond):
            continue
        return True
    return False


def test_every_call_of_the_rebuild_is_allowed_by_the_monitor_policy(s3: Any) -> None:
    graph = compile_config(Config.model_validate(SPEC), context())
    policy = graph.resources["role.mon-fraud-drift"].props["policy"]
    _seed(s3)
    _history(s3, "fraud-drift", ["ok"])
    _history(s3, "latency", ["drift"])
    calls: list[tuple[str, dict[str, Any]]] = []
    s3.meta.events.register("before-parameter-build.s3.*", lambda model, params, **_: calls.append(
        (model.name, dict(params))))
    out = after_run(monitor_spec(), S3Store(s3, BUCKET))
    assert "error" not in out, out
    action = {"GetObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "ListObjectsV2": "s3:ListBucket"}
    seen = set()
    for name, params in calls:
        arn = f"arn:aws:s3:::{BUCKET}"
        if "Key" in params:
            arn += "/" + params["Key"]
        assert _allowed(policy, action[name], arn, params.get("Prefix")), (name, params)
        seen.add(name)
    assert seen == {"GetObject", "PutObject", "ListObjectsV2"}
    # the presigned link is signed by the role: it may read the page it links to
    assert _allowed(policy, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PAGE}")
    # and it writes nothing else of the dashboard, and nothing of other prefixes
    for key in ("dashboard/fraud/dev/site.json", "dashboard/other/dev/index.html",
                "models/fraud-clf/1.2.0/model.onnx", "reports/latency/history.json"):
        assert not _allowed(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/{key}"), key
    for key in ("reports/latency/20260101T000000Z-lat0/message.eml", "keys/score/k.json",
                "state/fraud/dev.json", "capture/other/x.json"):
        assert not _allowed(policy, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/{key}"), key


PROBE = """
import json, sys
sys.path[:0] = [sys.argv[1]]
sys.path.append(sys.argv[2])  # the monitor layer's packages, after the zip (as Lambda's /opt)
import handlers.monitor
from framework.dashboard.refresh import after_run
from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import MemoryStore
spec = MonitorSpec.from_dict({"name": "m", "project": "p", "stage": "s", "endpoint": "e",
                              "model": "x", "version": "1.0.0", "bucket": "b"})
out = after_run(spec, MemoryStore())
modules = {name: getattr(mod, "__file__", None) for name, mod in list(sys.modules.items())}
print(json.dumps({"out": out, "modules": modules}))
"""
LAYER = set(NEEDS["monitor"].packages)  # what the monitor layer installs


def _imports(source: str) -> set[str]:
    """Modules a file imports (``from a import b``: ``a`` and ``a.b``), outside
    ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(source)
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and ast.unparse(node.test) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _file(module: str, names: set[str]) -> str | None:
    path = module.replace(".", "/")
    return next((f for f in (f"{path}.py", f"{path}/__init__.py") if f in names), None)


def test_what_the_monitor_function_imports_is_in_its_zip(tmp_path: Path) -> None:
    from framework.package import build_code_bundle

    code = build_code_bundle(tmp_path, tmp_path / "build")
    task = tmp_path / "task"
    with zipfile.ZipFile(tmp_path / code.source) as zf:
        names = set(zf.namelist())
        zf.extractall(task)
    assert "framework/dashboard/collect.py" not in names  # the CLI's half stays out
    # everything the monitor handler reaches: the zip itself, the stdlib or the layer
    todo, seen = ["handlers/monitor.py"], set()
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for module in _imports((task / file).read_text()):
            top = module.split(".")[0]
            if top not in ("framework", "handlers"):
                assert top in sys.stdlib_module_names or top in LAYER, (file, module)
                continue
            parts = module.split(".")
            found = _file(module, names)
            if found is None:  # ``from package import name``: a name, not a module
                assert _file(".".join(parts[:-1]), names), (file, module)
                continue
            todo += [found] + [f for i in range(1, len(parts))
                               if (f := _file(".".join(parts[:i]), names))]
    assert {"framework/dashboard/refresh.py", "framework/dashboard/render.py",
            "framework/dashboard/site.py", "framework/dashboard/data.py"} <= seen
    # and they import from the zip, and a rebuild runs there (its lazy imports too)
    packages = sysconfig.get_paths()["purelib"]  # -S: no site hook (no editable install)
    proc = subprocess.run([sys.executable, "-S", "-c", PROBE, str(task), packages],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["out"] == {"key": "dashboard/p/s/index.html"}, got["out"]
    for name, file in got["modules"].items():
        if name.split(".")[0] in ("framework", "handlers"):
            assert file and Path(file).resolve().is_relative_to(task.resolve()), (name, file)
