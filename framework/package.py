"""Build the inputs compile needs from files: the handler zip and artifact descriptions.

The zip holds only ``handlers/``, ``framework/__init__.py``, ``framework/runtime/``,
``framework/monitoring/`` (stdlib, numpy and scipy only), the audit log and the report
template; it is
byte-reproducible (sorted entries, fixed timestamps and modes), so it is addressed by its
SHA-256 and a deploy with no change uploads nothing.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import framework
from framework.compile.compiler import ArtifactInfo, CodeBundle
from framework.compile.graph import canonical_json
from framework.config.models import Config
from framework.errors import ConfigError, Problem

SOURCE_ROOT = Path(framework.__file__).resolve().parent.parent
PACKAGED = ("handlers", "framework/runtime", "framework/monitoring")
# framework/apply/audit.py is stdlib-only: the monitor records rollbacks with it.
PACKAGED_FILES = ("framework/__init__.py", "framework/apply/__init__.py",
                  "framework/apply/audit.py", "infra/templates/report.html")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda's limit for function + layers, unzipped


def _bundle_files(root: Path) -> list[tuple[str, Path]]:
    files = [(rel, root / rel) for rel in PACKAGED_FILES]
    for top in PACKAGED:
        for path in (root / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append((path.relative_to(root).as_posix(), path))
    return sorted(files)


def build_code_bundle(project_root: Path, out_dir: Path, root: Path = SOURCE_ROOT) -> CodeBundle:
    """Write the handler zip into ``out_dir`` (named by its hash) and describe it.

    ``source`` is relative to ``project_root`` when it lies inside it, so the graph does not
    depend on where the project is checked out.
    """
    buf = io.BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for rel, path in _bundle_files(root):
            info = zipfile.ZipInfo(rel, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            zf.writestr(info, data)
    if unzipped > UNZIPPED_LIMIT:
        raise ConfigError([Problem(where="code bundle", what=f"{unzipped} bytes unzipped",
                                   hint="Lambda allows 250 MB unzipped")])
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"code-{sha[:16]}.zip"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return CodeBundle(sha256=sha, size=len(data), source=relative_to(target, project_root))


def relative_to(path: Path, root: Path) -> str:
    path, root = path.resolve(), root.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def describe_artifacts(config: Config, root: Path) -> dict[str, ArtifactInfo]:
    """Check every model's artifact against its contract and describe it for compile.

    All problems across models are reported together (ConfigError, exit code 2).
    """
    from framework.artifacts import check_artifact, sha256_file
    from framework.registry.metadata import version_metadata

    problems: list[Problem] = []
    for name, model in config.models.items():
        problems += check_artifact(name, model, root)
    if problems:
        raise ConfigError(problems, source="artifacts")
    infos: dict[str, ArtifactInfo] = {}
    for name, model in config.models.items():
        path = (root / model.artifact).resolve()
        infos[name] = ArtifactInfo(
            sha256=sha256_file(path), size=path.stat().st_size, source=relative_to(path, root),
            metadata=canonical_json(version_metadata(name, model, path, root)),
        )
    return infos


# -- the dependency layer (explicit step for --target aws) ------------------------------------

LAYER_PACKAGES = ("onnxruntime", "numpy", "scipy")  # inference needs the first two, monitors scipy
LAYER_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
LAYER_PRUNE = ("__pycache__", "tests", "testing")


def tree_size(root: Path) -> int:
    """Bytes of every file under ``root`` (what Lambda counts as unzipped size)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def check_unzipped(code_bytes: int, layer_bytes: int, where: str) -> None:
    """Function code + layers must stay within Lambda's 250 MB unzipped; say which is big."""
    total = code_bytes + layer_bytes
    if total > UNZIPPED_LIMIT:
        mb = 1024 * 1024
        raise ConfigError([Problem(
            where=where,
            what=f"function code ({code_bytes / mb:.1f} MB) + layer ({layer_bytes / mb:.1f} MB)"
                 f" = {total / mb:.1f} MB unzipped, over Lambda's 250 MB limit",
            hint="drop packages from the layer (only onnxruntime and numpy are needed to serve),"
                 " or deploy the function as a container image")], source="layer")


def download_wheels(dest: Path, arch: str, python: str, packages: tuple[str, ...]) -> None:
    """``pip download`` binary wheels for the Lambda platform (needs the network to PyPI)."""
    import subprocess
    import sys

    platform = LAYER_PLATFORMS[arch]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
           "--platform", platform, "--python-version", python, "--implementation", "cp",
           "-d", str(dest), *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError([Problem(where="layer", what=f"pip download failed: "
                                   f"{proc.stderr.strip()[-400:]}",
                                   hint="check the network to PyPI and the package names")],
                          source="layer")


def build_layer(out_dir: Path, *, arch: str = "x86_64", python: str = "3.11",
                packages: tuple[str, ...] = LAYER_PACKAGES, code_bytes: int = 0,
                wheels: Path | None = None) -> tuple[Path, int]:
    """Build ``layer-<arch>-<sha>.zip`` (``python/`` tree of the unpacked wheels).

    Returns (zip path, unzipped bytes). ``wheels`` reuses already downloaded wheels.
    """
    import shutil
    import tempfile

    if arch not in LAYER_PLATFORMS:
        raise ConfigError([Problem(where="layer", what=f"unknown architecture {arch!r}",
                                   hint="x86_64 or arm64")], source="layer")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-layer-") as tmp:
        work = Path(tmp)
        if wheels is None:
            wheels = work / "wheels"
            download_wheels(wheels, arch, python, packages)
        tree = work / "python"
        for wheel in sorted(wheels.glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(tree)
        for path in sorted(tree.rglob("*"), reverse=True):
            if path.is_dir() and path.name in LAYER_PRUNE:
                shutil.rmtree(path, ignore_errors=True)
        size = tree_size(tree)
        check_unzipped(code_bytes, size, f"layer ({arch})")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in tree.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(path.relative_to(work).as_posix(), date_time=ZIP_EPOCH)
                info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    data = buf.getvalue()
    target = out_dir / f"layer-{arch}-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    target.write_bytes(data)
    return target, size


def find_layer(project_root: Path, build_dir: Path, arch: str = "x86_64") -> CodeBundle | None:
    """The newest layer zip ``mlops layer build`` wrote for ``arch``, described for compile."""
    built = sorted(build_dir.glob(f"layer-{arch}-*.zip"), key=lambda p: p.stat().st_mtime)
    if not built:
        return None
    data = built[-1].read_bytes()
    return CodeBundle(sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                      source=relative_to(built[-1], project_root))


def ensure_layer(project_root: Path, build_dir: Path, arch: str = "x86_64") -> CodeBundle:
    """A built layer, building it (pip downloads manylinux wheels) when there is none."""
    found = find_layer(project_root, build_dir, arch)
    if found is not None:
        return found
    code_bytes = sum(path.stat().st_size for _, path in _bundle_files(SOURCE_ROOT))
    build_layer(build_dir, arch=arch, code_bytes=code_bytes)
    built = find_layer(project_root, build_dir, arch)
    assert built is not None
    return built
