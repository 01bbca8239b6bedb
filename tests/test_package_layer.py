"""Lambda layers: platform tags, prune rules, reproducible zips, size checks, lock records;
and (marked ``network``) the real serve and monitor layers, imported by a real Python 3.13."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from framework import layers as L
from framework import lockfile
from framework.compile.compiler import MONITOR_LAYER, SERVE_LAYER
from framework.errors import ConfigError
from framework.interpreters import InterpreterNotFound, find_python
from framework.plan.state import Entry, State

ROOT = Path(__file__).resolve().parents[1]
SERVE, MONITOR = L.NEEDS["serve"], L.NEEDS["monitor"]


# -- platform tags -------------------------------------------------------------------------

def test_platform_tags_follow_the_runtimes_os_and_the_architecture() -> None:
    tags = L.platform_tags("python3.13", "x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and tags[-1] == "manylinux2014_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux_2_27_x86_64" in tags
    assert not any("2_34" in t or "aarch64" in t for t in tags)
    assert L.platform_tags("python3.12", "arm64")[0] == "manylinux_2_28_aarch64"
    # Amazon Linux 2 (glibc 2.26): manylinux2014 only
    assert L.platform_tags("python3.11", "x86_64") == ("manylinux_2_17_x86_64",
                                                       "manylinux2014_x86_64")
    with pytest.raises(ConfigError, match="x86_64 or arm64"):
        L.platform_tags("python3.13", "sparc")


def test_layer_keys_are_the_compile_needs() -> None:
    assert set(L.NEEDS) == {SERVE_LAYER, MONITOR_LAYER}
    assert L.key_name(("serve", "python3.13", "x86_64")) == "serve-py313-x86_64"
    assert "onnxruntime" in SERVE.packages and "scipy" not in SERVE.packages
    assert "scipy" in MONITOR.packages and "onnxruntime" not in MONITOR.packages
    assert {"boto3", "botocore"} <= set(SERVE.packages) & set(MONITOR.packages)


def test_requirements_match_pyproject() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=!]", d, maxsplit=1)[0]: d for d in deps}
    for name, spec in L.REQUIREMENTS.items():
        if name in declared:
            assert declared[name] == f"{name}{spec}"


def _clients(paths: list[str]) -> set[str]:
    found: set[str] = set()
    for top in paths:
        base = ROOT / top
        for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
            found |= set(re.findall(r"""\.client\(\s*["']([a-z0-9-]+)["']""", path.read_text()))
    return found


def test_kept_service_data_covers_every_client_the_packaged_code_creates() -> None:
    serve = _clients(["framework/runtime", "handlers/inference.py"])
    monitor = _clients(["framework/runtime", "framework/monitoring", "handlers/monitor.py",
                        "framework/apply/audit.py"])
    assert serve and serve <= set(SERVE.services), serve - set(SERVE.services)
    assert monitor and monitor <= set(MONITOR.services), monitor - set(MONITOR.services)


# -- prune rules ---------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "need", "dropped"), [
    ("numpy/testing/__init__.py", SERVE, False),  # numpy 2 imports it
    ("numpy/testing/_private/utils.py", SERVE, False),
    ("numpy/_core/tests/test_api.py", SERVE, True),
    ("numpy/tests/test_public_api.py", SERVE, True),
    ("scipy/stats/tests/test_stats.py", MONITOR, True),
    ("scipy/stats/_stats_py.py", MONITOR, False),
    ("onnxruntime/tests/x.py", SERVE, False),  # only numpy's and scipy's suites are known unused
    ("numpy/__pycache__/x.cpython-313.pyc", SERVE, True),
    ("botocore/data/endpoints.json", SERVE, False),
    ("botocore/data/partitions.json", SERVE, False),
    ("botocore/data/sdk-default-configuration.json", SERVE, False),
    ("botocore/data/_retry.json", SERVE, False),
    ("botocore/data/s3/2006-03-01/service-2.json.gz", SERVE, False),
    ("botocore/data/firehose/2015-08-04/service-2.json.gz", SERVE, False),
    ("botocore/data/ses/2010-12-01/service-2.json.gz", SERVE, True),
    ("botocore/data/ses/2010-12-01/service-2.json.gz", MONITOR, False),
    ("botocore/data/ec2/2016-11-15/service-2.json.gz", MONITOR, True),
    ("boto3/data/ec2/2016-11-15/resources-1.json", SERVE, True),
    ("boto3/data/s3/2006-03-01/resources-1.json", SERVE, False),
    ("numpy-2.2.0.data/scripts/f2py", SERVE, True),
])
def test_prune_rules(path: str, need: L.Need, dropped: bool) -> None:
    assert (L.pruned(path, need) is not None) is dropped


def test_purelib_and_platlib_are_unwrapped() -> None:
    assert L.layer_path("x-1.0.data/purelib/x/a.py") == "python/x/a.py"
    assert L.layer_path("x-1.0.data/platlib/x/b.so") == "python/x/b.so"
    assert L.layer_path("x/c.py") == "python/x/c.py"


# -- building from wheels (fake ones: no network) ------------------------------------------

def _wheel(folder: Path, file: str, files: dict[str, bytes], exe: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 6, 7, 8, 9))
            info.external_attr = (0o755 if name in exe else 0o600) << 16
            zf.writestr(info, data)
    return path


def _fake_wheels(folder: Path, *, ort_links_c_api: bool = False) -> list[L.Wheel]:
    pybind = b"\x7fELF..." + (b"libonnxruntime.so.1.20.1" if ort_links_c_api else b"")
    paths = [
        _wheel(folder, "numpy-2.2.0-cp313-cp313-manylinux_2_28_x86_64.whl", {
            "numpy/__init__.py": b"from numpy import testing\n",
            "numpy/testing/__init__.py": b"T = 1\n",
            "numpy/_core/tests/test_x.py": b"assert 0\n",
            "numpy-2.2.0.dist-info/METADATA": b"Name: numpy\n"}),
        _wheel(folder, "onnxruntime-1.20.1-cp313-cp313-manylinux_2_28_x86_64.whl", {
            "onnxruntime/__init__.py": b"",
            "onnxruntime/capi/onnxruntime_pybind11_state.so": pybind,
            "onnxruntime/capi/libonnxruntime.so.1.20.1": b"C API " * 100},
            exe=("onnxruntime/capi/onnxruntime_pybind11_state.so",)),
        _wheel(folder, "botocore-1.35.0-py3-none-any.whl", {
            "botocore/__init__.py": b"",
            "botocore/data/endpoints.json": b"{}",
            "botocore/data/s3/2006-03-01/service-2.json.gz": b"s3",
            "botocore/data/ec2/2016-11-15/service-2.json.gz": b"ec2"}),
        _wheel(folder, "sympy-1.13.0-py3-none-any.whl", {"sympy/__init__.py": b"big"}),
    ]
    return [L.describe_wheel(p) for p in paths]


def test_layer_from_wheels_is_pruned_and_byte_reproducible(tmp_path: Path) -> None:
    wheels = _fake_wheels(tmp_path / "w")
    key = ("serve", "python3.13", "x86_64")
    built = L.build_layer(key, wheels, tmp_path / "w", tmp_path / "out")
    zf = zipfile.ZipFile(tmp_path / "out" / built.file)
    names = zf.namelist()
    assert names == sorted(names)
    assert "python/numpy/testing/__init__.py" in names
    assert "python/botocore/data/s3/2006-03-01/service-2.json.gz" in names
    assert "python/botocore/data/endpoints.json" in names
    assert not any("/tests/" in n or "/ec2/" in n or "sympy" in n for n in names)
    # onnxruntime's C API library: nothing in the wheel names it, so it is left out
    assert "python/onnxruntime/capi/libonnxruntime.so.1.20.1" not in names
    assert built.dropped == ("sympy",)
    assert {i.date_time for i in zf.infolist()} == {L.ZIP_EPOCH}
    modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
    assert modes["python/onnxruntime/capi/onnxruntime_pybind11_state.so"] == 0o755
    assert modes["python/numpy/__init__.py"] == 0o644
    assert built.unzipped == sum(i.file_size for i in zf.infolist())
    assert built.file == f"layer-serve-py313-x86_64-{built.sha256[:16]}.zip"
    again = L.build_layer(key, list(reversed(wheels)), tmp_path / "w", tmp_path / "out2")
    assert again.sha256 == built.sha256 and again.file == built.file  # same bytes


def test_the_c_api_library_stays_when_another_file_names_it(tmp_path: Path) -> None:
    wheels = _fake_wheels(tmp_path / "w", ort_links_c_api=True)
    built = L.build_layer(("serve", "python3.13", "x86_64"), wheels, tmp_path / "w",
                          tmp_path / "out")
    names = zipfile.ZipFile(tmp_path / "out" / built.file).namelist()
    assert "python/onnxruntime/capi/libonnxruntime.so.1.20.1" in names


def test_oversized_tree_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    tree = tmp_path / "python"
    tree.mkdir()
    with (tree / "huge.so").open("wb") as fh:  # sparse: 240 MB on paper, nothing on disk
        fh.truncate(240 * 1024 * 1024)
    os.symlink(tree / "huge.so", tree / "link.so")  # links are not counted twice
    size = L.tree_size(tree)
    assert size == 240 * 1024 * 1024
    L.check_unzipped(5 * 1024 * 1024, size, "layer")  # 245 MB: fits
    with pytest.raises(ConfigError) as info:
        L.check_unzipped(11 * 1024 * 1024, size, "layer serve-py313-x86_64")
    text = info.value.render()
    assert "251.0 MB unzipped" in text and "250 MB" in text and "serve-py313-x86_64" in text
    assert L.UNZIPPED_LIMIT == 250 * 1024 * 1024


def test_oversized_layer_build_fails_and_writes_nothing(tmp_path: Path) -> None:
    big = _wheel(tmp_path / "w", "numpy-9.0-py3-none-any.whl",
                 {"numpy/blob.bin": b"\0" * (2 * 1024 * 1024)})
    with pytest.raises(ConfigError):
        L.build_layer(("serve", "python3.13", "x86_64"), [L.describe_wheel(big)],
                      tmp_path / "w", tmp_path / "out",
                      code_bytes=L.UNZIPPED_LIMIT - 1024 * 1024)
    assert not list(tmp_path.glob("out/*.zip"))


def test_ensure_layer_reuses_builds_and_pins_without_pip(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    wheels = _fake_wheels(tmp_path / "src")

    def fake_pip(args: list[str], runtime: str, arch: str, dest: Path) -> None:
        calls.append(list(args))
        for w in wheels:
            (dest / w.file).write_bytes((tmp_path / "src" / w.file).read_bytes())

    monkeypatch.setattr(L, "_pip", fake_pip)
    key = ("serve", "python3.13", "x86_64")
    cache = tmp_path / "machine"
    first = L.ensure_layer(key, tmp_path / "a", cache=cache)
    assert len(calls) == 1 and calls[0][0].startswith("onnxruntime")  # resolved afresh
    assert (tmp_path / "a" / "wheels" / wheels[0].file).exists()
    manifest = json.loads(L.manifest_path(tmp_path / "a", key).read_text())
    assert manifest["sha256"] == first.sha256 and len(manifest["wheels"]) == 4
    # the same workspace: nothing resolved, nothing downloaded
    assert L.ensure_layer(key, tmp_path / "a", cache=cache) == first and len(calls) == 1
    # another workspace on the machine: the machine cache's resolution and zip
    other = L.ensure_layer(key, tmp_path / "b", cache=cache)
    assert other.sha256 == first.sha256 and len(calls) == 1
    # a fresh checkout with pins (from mlops.lock) and no machine cache: download by hash
    pinned = L.ensure_layer(key, tmp_path / "c", pins=first.wheels, cache=tmp_path / "empty")
    assert pinned.sha256 == first.sha256
    assert calls[-1][:2] == ["--no-deps", "--require-hashes"]
    # `mlops layer build`: afresh whatever is recorded; the upgrade wins over the lock's
    # wheels until the lock records it, then the lock decides again
    upgraded = L.ensure_layer(key, tmp_path / "a", cache=cache, fresh=True)
    assert len(calls) == 3 and upgraded.upgraded
    old_pins = first.wheels[:-1]  # what an older lock recorded
    assert L.ensure_layer(key, tmp_path / "a", pins=old_pins, cache=cache) == upgraded
    now = L.ensure_layer(key, tmp_path / "a", pins=upgraded.wheels, cache=cache)
    assert not now.upgraded and not L.read_manifest(tmp_path / "a", key).upgraded  # type: ignore[union-attr]


# -- mlops.lock ----------------------------------------------------------------------------

def test_lock_records_each_layers_wheels_and_reads_them_back_as_pins() -> None:
    packages = {"numpy": {"version": "2.2.0", "file": "numpy-2.2.0-x.whl", "sha256": "a" * 64}}
    state = State(project="p", stage="dev", lineage="L").record(
        "layer.serve-py313-x86_64", Entry("lambda_layer", {
            "need": "serve", "runtimes": ["python3.13"], "architectures": ["x86_64"],
            "sha256": "b" * 64, "packages": packages}, {}))
    entry = lockfile.stage_entry(state, target="local", region="us-east-1", account="1")
    assert entry["layers"] == {"serve-py313-x86_64": {
        "need": "serve", "runtime": "python3.13", "architecture": "x86_64",
        "sha256": "b" * 64, "packages": packages}}
    assert L.pins_from_lock(entry) == {("serve", "python3.13", "x86_64"): (
        L.Wheel(name="numpy", version="2.2.0", file="numpy-2.2.0-x.whl", sha256="a" * 64),)}
    changed = json.loads(json.dumps(entry))
    changed["layers"]["serve-py313-x86_64"]["sha256"] = "c" * 64
    assert lockfile.differences(entry, changed) == ["layer serve-py313-x86_64: sha256 changed"]
    older = {k: v for k, v in entry.items() if k != "layers"}  # a lock from before layers
    assert lockfile.differences(older, entry) == []


# -- interpreters --------------------------------------------------------------------------

def test_find_python_names_the_fix_when_missing(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    monkeypatch.delenv("MLOPS_PYTHON3_9", raising=False)
    with pytest.raises(InterpreterNotFound) as info:
        find_python("3.9", home=tmp_path)
    assert "MLOPS_PYTHON3_9" in info.value.render() and "pyenv install 3.9" in info.value.render()
    monkeypatch.setenv("MLOPS_PYTHON3_9", str(tmp_path / "nope"))
    with pytest.raises(InterpreterNotFound, match="not a working CPython 3.9"):
        find_python("python3.9", home=tmp_path)
    with pytest.raises(ValueError):
        find_python("3")


# -- the real layers (network: pip downloads from PyPI; pip's cache makes reruns fast) -----

SERVE_CHECK = r"""
import json, sys
assert not any("site-packages" in p for p in sys.path), sys.path
import handlers.inference
import onnxruntime, numpy
from framework.runtime.clients import Connection
from framework.runtime.inference import ModelBundle
model, meta = sys.argv[1], json.loads(open(sys.argv[2]).read())
bundle = ModelBundle.from_bytes(meta, open(model, "rb").read(), meta["sha256"])
out = bundle.predict({"instances": [{"a": 1.0, "b": 0.5, "c": -0.2},
                                    {"a": 9.0, "b": 2.0, "c": 0.0}]})
conn = Connection(region="us-east-1", endpoint_url="http://127.0.0.1:9", dummy_credentials=True)
for service in ("s3", "firehose"):
    conn.client(service)
try:
    conn.client("ec2")
    pruned = False
except Exception:
    pruned = True
print(json.dumps({"out": out, "ort": onnxruntime.__version__, "numpy": numpy.__version__,
                  "files": [onnxruntime.__file__, numpy.__file__], "pruned": pruned}))
"""

MONITOR_CHECK = r"""
import json, sys
assert not any("site-packages" in p for p in sys.path), sys.path
import numpy as np, scipy
import handlers.monitor
from framework.monitoring import check, drift
from framework.monitoring.profile import ProfileBuilder, build_reference
from framework.runtime.clients import Connection
rng = np.random.default_rng(1)
ref = build_reference({"a": rng.normal(0, 1, 3000).tolist(), "c": list("xyz" * 1000)},
                      [{"name": "a"}, {"name": "c", "type": "category", "values": list("xyz")}])
builder = ProfileBuilder(ref)
builder.add_columns({"a": rng.normal(0.8, 1, 1000), "c": np.array(list("xxxxxxxyzx" * 100))})
cur = builder.result()
results = drift.run_tests(ref.features, cur.features, {"a": ("ks", 0.05), "c": ("chi2", 0.05)},
                          "none")
conn = Connection(region="us-east-1", endpoint_url="http://127.0.0.1:9", dummy_credentials=True)
for service in ("s3", "ses", "cloudwatch", "lambda"):
    conn.client(service)
print(json.dumps({"drifted": [r.drifted for r in results], "scipy": scipy.__version__,
                  "check": check.__name__, "file": scipy.__file__}))
"""


def _extract(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def _run(python: Path, script: str, task: Path, opt: Path, *args: str) -> dict[str, object]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{task}:{opt / 'python'}",
           "PYTHONDONTWRITEBYTECODE": "1", "AWS_REGION": "us-east-1"}
    proc = subprocess.run([str(python), "-s", "-S", "-c", script, *args], env=env,
                          capture_output=True, text=True, timeout=240, cwd=task)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.network
def test_real_layers_run_handlers_on_python313(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.package import build_code_bundle, code_unzipped_bytes
    from tests.runtime.tinymodels import tensor_classifier

    python = find_python("3.13")
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "machine-cache"))
    build = tmp_path / "build"
    code = build_code_bundle(tmp_path, build)
    task = _extract(tmp_path / code.source, tmp_path / "task")
    code_bytes = code_unzipped_bytes()
    sizes = {}
    for need in ("serve", "monitor"):
        built = L.ensure_layer((need, "python3.13", "x86_64"), build, code_bytes=code_bytes)
        names = zipfile.ZipFile(build / built.file).namelist()
        assert "python/numpy/testing/__init__.py" in names
        assert "python/botocore/data/endpoints.json" in names
        # the runtime's bytecode of every module, and no other interpreter's
        pycs = [n for n in names if n.endswith(".pyc")]
        assert pycs and all(".cpython-313." in n and "/__pycache__/" in n for n in pycs)
        assert "python/numpy/__pycache__/__init__.cpython-313.pyc" in names
        sizes[need] = (built.unzipped + code_bytes) / L.MB
        if need == "serve":  # rebuilt from the same wheels: the same bytes
            again = L.build_layer(built.key, built.wheels, build / "wheels", tmp_path / "again")
            assert again.sha256 == built.sha256
    assert sizes["serve"] <= 120, sizes  # function + layer, unzipped
    assert sizes["monitor"] <= 200, sizes  # well within Lambda's 250 MB

    model, meta = tensor_classifier()
    (tmp_path / "model.onnx").write_bytes(model)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    serve = L.read_manifest(build, ("serve", "python3.13", "x86_64"))
    assert serve is not None
    opt = _extract(build / serve.file, tmp_path / "serve" / "opt")
    got = _run(python, SERVE_CHECK, task, opt, str(tmp_path / "model.onnx"),
               str(tmp_path / "meta.json"))
    out = got["out"]
    assert isinstance(out, dict) and len(out["predictions"]) == 2, out
    assert all(str(f).startswith(str(opt)) for f in got["files"])  # type: ignore[attr-defined]
    assert got["pruned"] is True  # ec2's service data is not in the serve layer

    monitor = L.read_manifest(build, ("monitor", "python3.13", "x86_64"))
    assert monitor is not None
    opt = _extract(build / monitor.file, tmp_path / "monitor" / "opt")
    got = _run(python, MONITOR_CHECK, task, opt)
    assert got["drifted"] == [True, True]
    assert str(got["file"]).startswith(str(opt))
