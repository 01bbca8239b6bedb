"""Lambda layers: the third-party packages each kind of function imports, from real wheels.

Lambda's Python runtimes have neither onnxruntime, numpy nor scipy, and the handler zip holds
only ``handlers/`` and ``framework/``; so every function gets the layer of its *need*:

- ``serve`` (the endpoint functions): onnxruntime, numpy, boto3, botocore and what pip
  resolves for them;
- ``monitor`` (the scheduled monitor functions): numpy, scipy, boto3, botocore, msgspec, isal
  and theirs.

boto3/botocore are pinned inside the layers (as AWS recommends) rather than taken from the
runtime, so what runs is what was resolved and recorded in ``mlops.lock``.

A layer is built for one (need, runtime, architecture), a ``LayerKey``: ``pip download``
fetches binary wheels for the runtime's platform (``manylinux_2_28`` down to
``manylinux2014`` on Amazon Linux 2023 runtimes, ``manylinux2014`` only on Amazon Linux 2),
the wheels' files are written under ``python/`` of one zip (sorted entries, fixed
timestamps and modes: byte-reproducible, addressed by its SHA-256), minus what ``PRUNE`` proves
unused. Where the wheels were fetched from, the layer is rebuilt without the network:

- ``.mlops/build/wheels/`` keeps the downloaded wheels of the workspace;
- ``.mlops/build/layer-<key>.json`` records the resolution (name, version, file, SHA-256 of
  every wheel) beside ``layer-<key>-<sha16>.zip``;
- the machine-wide cache (``$MLOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlops``, else
  ``~/.cache/mlops``) keeps built layers by their inputs and the last resolution of each key,
  so another project on the same machine builds nothing.

A deploy uses the wheels ``mlops.lock`` records for the stage (downloaded by hash where
missing), else the workspace's last build, else the machine's last resolution, else resolves
afresh. ``mlops layer build`` always resolves afresh: that is how a layer is upgraded, and the
upgraded layer is used instead of the lock's until a deploy records it in the lock.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from framework.compile.compiler import LayerBundle
from framework.compile.names import layer_unit
from framework.config.runtimes import RUNTIMES
from framework.errors import ConfigError, Problem
from framework.progress import say

FORMAT = 2  # bump when what goes into a layer changes for the same wheels (prune rules)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda's limit for function + layers, unzipped
MB = 1024 * 1024

# What the packaged code needs, and the version ranges it is tested with (pyproject.toml).
REQUIREMENTS: dict[str, str] = {
    "onnxruntime": ">=1.18,<2", "numpy": ">=1.26,<3", "scipy": ">=1.11,<2",
    "boto3": ">=1.35,<2", "botocore": ">=1.35,<2", "msgspec": ">=0.18,<1", "isal": ">=1.6,<2",
}


@dataclass(frozen=True)
class Need:
    """What one kind of function imports, and the AWS services it creates clients for."""

    name: str
    packages: tuple[str, ...]
    services: tuple[str, ...]  # botocore/boto3 data kept; sts: credential providers use it
    description: str


NEEDS: dict[str, Need] = {n.name: n for n in (
    # lambda: shadow copies (Invoke, GetAlias); codedeploy and lambda: the endpoints'
    # deployment hooks (handlers.hooks) run on it too
    Need("serve", ("onnxruntime", "numpy", "boto3", "botocore"),
         ("codedeploy", "firehose", "lambda", "s3", "sts"),
         "endpoint functions (handlers.inference)"),
    # msgspec and isal (about 0.5 MB zipped together): the typed capture decoder and ISA-L's
    # gunzip, about 4x faster per captured row than json and zlib (framework.monitoring.columns).
    # codedeploy and logs: the stage's rollback notifier (handlers.rollback) runs on it too
    Need("monitor", ("numpy", "scipy", "boto3", "botocore", "msgspec", "isal"),
         ("cloudwatch", "codedeploy", "firehose", "lambda", "logs", "s3", "ses", "sts"),
         "monitor functions (handlers.monitor)"),
)}

# Distributions a package pulls in that nothing the functions import uses; not unpacked.
DROPPED: dict[str, str] = {
    "sympy": "older onnxruntime requires it for its offline tools (symbolic shape inference)",
    "mpmath": "needed by sympy only",
    "coloredlogs": "older onnxruntime requires it for its offline tools' logging",
    "humanfriendly": "needed by coloredlogs only",
}

LayerKey = tuple[str, str, str]  # (need, runtime, architecture)


def key_name(key: LayerKey) -> str:
    """('serve', 'python3.13', 'x86_64') → 'serve-py313-x86_64' (file and resource names)."""
    return layer_unit(*key)


# -- platform ------------------------------------------------------------------------------

MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}


def platform_tags(runtime: str, arch: str) -> tuple[str, ...]:
    """The ``pip --platform`` tags whose wheels run on ``runtime`` and ``arch``.

    Amazon Linux 2023 (python3.12 and later) runs manylinux_2_28 wheels and older;
    Amazon Linux 2 (python3.10, python3.11) manylinux2014 (glibc 2.17) only.
    """
    if arch not in MACHINES:
        raise ConfigError([Problem(where="layer", what=f"unknown architecture {arch!r}",
                                   hint="x86_64 or arm64")], source="layer")
    machine = MACHINES[arch]
    major, newest = RUNTIMES[runtime].glibc
    tags = [f"manylinux_{major}_{minor}_{machine}" for minor in range(newest, 16, -1)]
    return (*tags, f"manylinux2014_{machine}")


# -- pruning -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PruneRule:
    pattern: str  # regex on the path inside the wheel (no python/ prefix)
    reason: str


PRUNE: tuple[PruneRule, ...] = (
    PruneRule(r"(^|/)__pycache__/|\.pyc$",
              "a wheel's own bytecode: the layer carries the runtime's, compiled when it is built"),
    PruneRule(r"^(numpy|scipy)/(.+/)?tests/",
              "the packages' own test suites (numpy/testing, which numpy imports, stays)"),
    PruneRule(r"^[^/]+\.data/(scripts|headers|data)/",
              "a wheel's scripts, C headers and data files are not importable"),
)
# botocore/boto3 data of services no packaged code creates a client for (see Need.services).
SERVICE_DATA = re.compile(r"^(botocore|boto3)/data/([^/]+)/")
# onnxruntime's C API library, for C/C++ consumers: the Python extension does not link it.
# Dropped only when no other file of the wheel names it (checked when building).
C_API_LIBRARY = re.compile(r"^onnxruntime/capi/libonnxruntime\.so[.0-9]*$")
KEEP = re.compile(r"^numpy/testing/")  # numpy 2 imports numpy.testing: never pruned


def pruned(path: str, need: Need) -> str | None:
    """Why ``path`` (inside a wheel) is left out of ``need``'s layer, or None to keep it."""
    if KEEP.match(path):
        return None
    for rule in PRUNE:
        if re.search(rule.pattern, path):
            return rule.reason
    match = SERVICE_DATA.match(path)
    if match and match.group(2) not in need.services:
        return f"data of the {match.group(2)} service, which no {need.name} code calls"
    return None


def layer_path(path: str) -> str:
    """Where a wheel's file goes in the layer: ``python/`` plus purelib/platlib unwrapped."""
    match = re.match(r"^[^/]+\.data/(purelib|platlib)/(.*)$", path)
    return "python/" + (match.group(2) if match else path)


# -- sizes ---------------------------------------------------------------------------------

def check_unzipped(code_bytes: int, layer_bytes: int, where: str,
                   limit: int = UNZIPPED_LIMIT) -> None:
    """Function code + layers must stay within Lambda's 250 MB unzipped; say which is big."""
    total = code_bytes + layer_bytes
    if total > limit:
        raise ConfigError([Problem(
            where=where,
            what=f"function code ({code_bytes / MB:.1f} MB) + layer ({layer_bytes / MB:.1f} MB)"
                 f" = {total / MB:.1f} MB unzipped, over Lambda's {limit // MB} MB limit",
            hint="drop packages from the layer, or deploy the function as a container image")],
            source="layer")


def tree_size(root: Path) -> int:
    """Bytes of every file under ``root`` (what Lambda counts as unzipped size)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# -- wheels --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Wheel:
    """One resolved wheel: what mlops.lock records of it."""

    name: str  # normalized distribution name
    version: str
    file: str
    sha256: str


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_wheel_name(file: str) -> tuple[str, str]:
    """'numpy-2.1.0-cp313-cp313-manylinux_2_28_x86_64.whl' → ('numpy', '2.1.0')."""
    parts = file[:-4].split("-") if file.endswith(".whl") else []
    if len(parts) < 5:
        raise ValueError(f"{file!r} is not a wheel file name")
    return canonical(parts[0]), parts[1]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_wheel(path: Path) -> Wheel:
    name, version = parse_wheel_name(path.name)
    return Wheel(name=name, version=version, file=path.name, sha256=sha256_file(path))


def requirements(need: Need) -> list[str]:
    return [f"{p}{REQUIREMENTS.get(p, '')}" for p in need.packages]


def _pip(args: Sequence[str], runtime: str, arch: str, dest: Path) -> None:
    rt = RUNTIMES[runtime]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", rt.python,
           *[arg for tag in platform_tags(runtime, arch) for arg in ("--platform", tag)],
           "-d", str(dest), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError([Problem(
            where="layer", what=f"pip download for {runtime} {arch} failed: "
                                f"{proc.stderr.strip()[-600:]}",
            hint="check the network to PyPI (or your index's PIP_INDEX_URL); a package without "
                 "a wheel for this platform needs another version or architecture")],
            source="layer")


def resolve_wheels(need: Need, runtime: str, arch: str, cache: Path) -> list[Wheel]:
    """Resolve ``need``'s packages afresh with pip; the wheels land in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-wheels-", dir=cache) as tmp:
        _pip(requirements(need), runtime, arch, Path(tmp))
        got = [describe_wheel(p) for p in sorted(Path(tmp).glob("*.whl"))]
        for path in Path(tmp).glob("*.whl"):
            path.replace(cache / path.name)
    return sorted(got, key=lambda w: w.name)


def fetch_wheels(pins: Sequence[Wheel], runtime: str, arch: str, cache: Path) -> None:
    """Make sure every pinned wheel is in ``cache`` with its SHA-256 (pip checks the hashes)."""
    missing = [w for w in pins if not _cached(cache, w)]
    if not missing:
        return
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-wheels-", dir=cache) as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n"
                                for w in missing))
        _pip(["--no-deps", "--require-hashes", "-r", str(reqs)], runtime, arch, Path(tmp))
        for w in missing:
            got = Path(tmp) / w.file
            if not got.exists() or sha256_file(got) != w.sha256:
                raise ConfigError([Problem(
                    where="layer", what=f"pip did not fetch {w.file} with the recorded SHA-256",
                    hint="the index serves other files than when mlops.lock was written; "
                         "`mlops layer build` resolves afresh")], source="layer")
            got.replace(cache / w.file)


def _cached(cache: Path, wheel: Wheel) -> bool:
    path = cache / wheel.file
    return path.exists() and sha256_file(path) == wheel.sha256


# -- building ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuiltLayer:
    """A layer zip and what went into it (the manifest written beside it)."""

    need: str
    runtime: str
    architecture: str
    sha256: str
    size: int  # zipped bytes
    unzipped: int
    file: str  # the zip's file name
    wheels: tuple[Wheel, ...]
    dropped: tuple[str, ...] = ()  # distributions resolved but not unpacked (DROPPED)
    format: int = FORMAT
    # Resolved afresh by ``mlops layer build``: the workspace's layer wins over mlops.lock's
    # wheels until a deploy records it.
    upgraded: bool = False

    @property
    def key(self) -> LayerKey:
        return (self.need, self.runtime, self.architecture)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["wheels"] = [asdict(w) for w in self.wheels]
        data["dropped"] = list(self.dropped)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuiltLayer:
        return cls(need=data["need"], runtime=data["runtime"],
                   architecture=data["architecture"], sha256=data["sha256"],
                   size=data["size"], unzipped=data["unzipped"], file=data["file"],
                   wheels=tuple(Wheel(**w) for w in data["wheels"]),
                   dropped=tuple(data.get("dropped", ())), format=data.get("format", 0),
                   upgraded=bool(data.get("upgraded", False)))


def input_digest(key: LayerKey, wheels: Iterable[Wheel]) -> str:
    """What determines a layer's bytes: the format, the key and the wheels' hashes."""
    need = NEEDS[key[0]]
    text = json.dumps({"format": FORMAT, "key": list(key), "services": list(need.services),
                       "wheels": sorted(w.sha256 for w in wheels)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _mode(info: zipfile.ZipInfo) -> int:
    return 0o755 if (info.external_attr >> 16) & 0o111 else 0o644


def compile_bytecode(sources: dict[str, bytes], python: Path) -> dict[str, bytes]:
    """``python``'s bytecode of each ``.py`` in ``sources`` (layer paths → code), by the path of
    its ``__pycache__`` file. Lambda's /opt is read-only: without these, every cold start
    compiles every module it imports (INIT is billed). Unchecked-hash pycs are valid whatever
    the files' times after extraction; code objects name ``/opt/<path>``, as on Lambda."""
    with tempfile.TemporaryDirectory(prefix="mlops-pyc-") as tmp:
        root = Path(tmp) / "opt"
        for arcname, data in sources.items():
            target = root / arcname
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        proc = subprocess.run(
            [str(python), "-s", "-S", "-m", "compileall", "-q", "-j", "0", "-d", "/opt",
             "--invalidation-mode", "unchecked-hash", str(root)],
            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
        out = {path.relative_to(root).as_posix(): path.read_bytes()
               for path in root.rglob("*.pyc")}
    if proc.returncode != 0:
        # A file the runtime cannot compile (e.g. an old vendored module) is left as source,
        # exactly as Lambda would meet it; anything else is an error.
        failed = [line for line in proc.stdout.splitlines() if line.startswith("***")]
        if not out or not failed:
            raise ConfigError([Problem(where="layer", what="compiling the layer's bytecode "
                                       f"failed: {(proc.stderr or proc.stdout)[-300:]}",
                                       hint=f"check {python}")], source="layer")
    return out


def write_layer_zip(wheel_paths: Sequence[Path], need: Need,
                    python: Path | None = None) -> tuple[bytes, int, list[str]]:
    """The layer zip of ``wheel_paths`` for ``need``: (bytes, unzipped size, dropped dists),
    with ``python``'s bytecode of every module when it is given.

    Entries sorted by name, fixed timestamps and modes: the same wheels give the same bytes.
    """
    entries: dict[str, tuple[Path, zipfile.ZipInfo]] = {}
    dropped: list[str] = []
    for path in sorted(wheel_paths, key=lambda p: p.name):
        name, _ = parse_wheel_name(path.name)
        if name in DROPPED:
            dropped.append(name)
            continue
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            c_api = [i for i in infos if C_API_LIBRARY.match(i.filename)]
            named = c_api and any(b"libonnxruntime.so" in zf.read(i) for i in infos
                                  if i.filename.endswith(".so") and i not in c_api)
            for info in infos:
                if pruned(info.filename, need) or (info in c_api and not named):
                    continue
                entries.setdefault(layer_path(info.filename), (path, info))
    files: dict[str, tuple[bytes, int]] = {}  # layer path -> (bytes, mode)
    open_wheels: dict[Path, zipfile.ZipFile] = {}
    try:
        for arcname, (path, info) in entries.items():
            src = open_wheels.get(path) or open_wheels.setdefault(path, zipfile.ZipFile(path))
            files[arcname] = (src.read(info), _mode(info))
    finally:
        for zf in open_wheels.values():
            zf.close()
    if python is not None:
        sources = {name: data for name, (data, _) in files.items() if name.endswith(".py")}
        for name, data in compile_bytecode(sources, python).items():
            files[name] = (data, 0o644)
    buf = io.BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as out:
        for arcname in sorted(files):
            data, mode = files[arcname]
            unzipped += len(data)
            target = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            target.external_attr = mode << 16
            target.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(target, data)
    return buf.getvalue(), unzipped, dropped


def build_layer(key: LayerKey, wheels: Sequence[Wheel], wheel_dir: Path, out_dir: Path, *,
                code_bytes: int = 0) -> BuiltLayer:
    """Zip ``wheels`` (files in ``wheel_dir``) into ``out_dir/layer-<key>-<sha16>.zip``."""
    from framework.interpreters import find_python

    need = NEEDS[key[0]]
    # The runtime's own interpreter compiles the bytecode (as `sam build` needs the runtime's
    # Python): a python3.13 layer carries cpython-313 pycs.
    data, unzipped, dropped = write_layer_zip([wheel_dir / w.file for w in wheels], need,
                                              find_python(key[1]))
    check_unzipped(code_bytes, unzipped, f"layer {key_name(key)}")
    sha = hashlib.sha256(data).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"layer-{key_name(key)}-{sha[:16]}.zip"
    if not (target.exists() and sha256_file(target) == sha):
        _write_atomic(target, data)
    return BuiltLayer(need=key[0], runtime=key[1], architecture=key[2], sha256=sha,
                      size=len(data), unzipped=unzipped, file=target.name,
                      wheels=tuple(sorted(wheels, key=lambda w: w.name)),
                      dropped=tuple(sorted(dropped)))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- where layers are kept -----------------------------------------------------------------

def machine_cache() -> Path:
    """The machine-wide cache of built layers and resolutions."""
    explicit = os.environ.get("MLOPS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mlops"


def manifest_path(build_dir: Path, key: LayerKey) -> Path:
    return build_dir / f"layer-{key_name(key)}.json"


def read_manifest(build_dir: Path, key: LayerKey) -> BuiltLayer | None:
    """The workspace's layer for ``key`` when its manifest and zip are intact and current."""
    try:
        built = BuiltLayer.from_json(json.loads(manifest_path(build_dir, key).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    zip_path = build_dir / built.file
    if built.format != FORMAT or built.key != key or not zip_path.exists():
        return None
    if zip_path.stat().st_size != built.size:
        return None
    return built


def _write_manifest(path: Path, built: BuiltLayer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, (json.dumps(built.to_json(), indent=2, sort_keys=True) + "\n").encode())


def _resolution_path(cache: Path, key: LayerKey) -> Path:
    reqs = hashlib.sha256(json.dumps(requirements(NEEDS[key[0]])).encode()).hexdigest()[:12]
    return cache / "resolutions" / f"{key_name(key)}-{reqs}.json"


def _from_machine_cache(cache: Path, key: LayerKey, wheels: Sequence[Wheel],
                        build_dir: Path) -> BuiltLayer | None:
    digest = input_digest(key, wheels)
    meta = cache / "layers" / f"{digest}.json"
    try:
        built = BuiltLayer.from_json(json.loads(meta.read_text()))
        src = cache / "layers" / f"{digest}.zip"
        if built.format != FORMAT or sha256_file(src) != built.sha256:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    build_dir.mkdir(parents=True, exist_ok=True)
    target = build_dir / built.file
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(target)
    return built


def _to_machine_cache(cache: Path, built: BuiltLayer, build_dir: Path) -> None:
    try:
        digest = input_digest(built.key, built.wheels)
        layers = cache / "layers"
        layers.mkdir(parents=True, exist_ok=True)
        tmp = layers / f".{digest}.{os.getpid()}.tmp"
        shutil.copyfile(build_dir / built.file, tmp)
        tmp.replace(layers / f"{digest}.zip")
        _write_manifest(layers / f"{digest}.json", built)
        _write_manifest(_resolution_path(cache, built.key), built)
    except OSError:
        pass  # a cache that cannot be written is only slower next time


def _cached_resolution(cache: Path, key: LayerKey) -> tuple[Wheel, ...] | None:
    try:
        built = BuiltLayer.from_json(json.loads(_resolution_path(cache, key).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return built.wheels


def ensure_layer(key: LayerKey, build_dir: Path, *, pins: Sequence[Wheel] | None = None,
                 code_bytes: int = 0, fresh: bool = False,
                 cache: Path | None = None) -> BuiltLayer:
    """The layer for ``key`` in ``build_dir``, built when missing (see the module doc).

    ``pins`` (from mlops.lock) decide the wheels when the workspace has no build of its own;
    ``fresh`` resolves afresh with pip whatever is recorded (``mlops layer build``).
    """
    need, runtime, arch = key
    if need not in NEEDS or runtime not in RUNTIMES:
        raise ValueError(f"no layer for {key}")
    platform_tags(runtime, arch)  # refuses an unknown architecture early
    cache = cache or machine_cache()
    if not fresh:
        current = read_manifest(build_dir, key)
        recorded = current is not None and bool(pins) and set(current.wheels) == set(pins or ())
        if current is not None and (not pins or current.upgraded or recorded):
            check_unzipped(code_bytes, current.unzipped, f"layer {key_name(key)}")
            if recorded and current.upgraded:  # the lock has it now: the lock decides again
                current = replace(current, upgraded=False)
                _write_manifest(manifest_path(build_dir, key), current)
            return current
    wheel_dir = build_dir / "wheels"
    wheels: Sequence[Wheel] | None = None if fresh else (pins or _cached_resolution(cache, key))
    name = f"layer {key_name(key)}"
    if wheels:
        built = _from_machine_cache(cache, key, wheels, build_dir)
        if built is not None:
            built = replace(built, upgraded=False)
            check_unzipped(code_bytes, built.unzipped, name)
            _write_manifest(manifest_path(build_dir, key), built)
            return built
        say(f"{name}: downloading its {len(wheels)} pinned wheels with pip")
        fetch_wheels(wheels, runtime, arch, wheel_dir)
    else:
        say(f"{name}: resolving {', '.join(NEEDS[need].packages)} for {runtime} ({arch}) "
            "with pip")
        wheels = resolve_wheels(NEEDS[need], runtime, arch, wheel_dir)
    say(f"{name}: building the zip from {len(wheels)} wheels (bytecode for {runtime})")
    built = replace(build_layer(key, wheels, wheel_dir, build_dir, code_bytes=code_bytes),
                    upgraded=fresh)
    say(f"{name}: {built.size / MB:.1f} MB zipped")
    _write_manifest(manifest_path(build_dir, key), built)
    _to_machine_cache(cache, built, build_dir)
    return built


def bundle(built: BuiltLayer, build_dir: Path, project_root: Path) -> LayerBundle:
    """What compile needs of a built layer."""
    from framework.package import relative_to

    return LayerBundle(
        need=built.need, runtime=built.runtime, architecture=built.architecture,
        sha256=built.sha256, size=built.size,
        source=relative_to(build_dir / built.file, project_root),
        packages={w.name: {"version": w.version, "file": w.file, "sha256": w.sha256}
                  for w in built.wheels},
        summary=summary(built))


def pins_from_lock(entry: Mapping[str, Any] | None) -> dict[LayerKey, tuple[Wheel, ...]]:
    """The wheels a ``mlops.lock`` stage entry records for each layer key."""
    out: dict[LayerKey, tuple[Wheel, ...]] = {}
    for layer in ((entry or {}).get("layers") or {}).values():
        try:
            key = (layer["need"], layer["runtime"], layer["architecture"])
            out[key] = tuple(Wheel(name=name, version=w["version"], file=w["file"],
                                   sha256=w["sha256"])
                             for name, w in sorted(layer["packages"].items()))
        except (KeyError, TypeError):
            continue
    return out


def summary(built: BuiltLayer) -> str:
    """'onnxruntime 1.20.1, numpy 2.2.0, ...': the requested packages with their versions."""
    versions = {w.name: w.version for w in built.wheels}
    return ", ".join(f"{p} {versions[p]}" for p in NEEDS[built.need].packages if p in versions)
