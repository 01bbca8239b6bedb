"""Build the inputs compile needs from files: the handler zip and artifact descriptions
(the layers are ``framework.layers``').

The zip holds only ``handlers/``, ``framework/__init__.py``, ``framework/runtime/``,
``framework/monitoring/`` (stdlib, numpy and scipy only), the audit log, the report
template and the dashboard's page builder; it is
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
# framework/apply/audit.py is stdlib-only: the monitor records rollbacks with it. The monitor
# rebuilds the dashboard page with the stdlib-only part of framework/dashboard.
# framework/rollout/pretraffic.py is an endpoint's pre-traffic hook (stdlib, numpy and the
# runtime's model bundle). framework/rollout/notice.py (and the record it builds) is the stage's
# rollback notifier (stdlib).
PACKAGED_FILES = ("framework/__init__.py", "framework/apply/__init__.py",
                  "framework/rollout/__init__.py", "framework/rollout/pretraffic.py",
                  "framework/rollout/notice.py", "framework/rollout/record.py",
                  "framework/apply/audit.py", "infra/templates/report.html",
                  "framework/dashboard/__init__.py", "framework/dashboard/data.py",
                  "framework/dashboard/refresh.py", "framework/dashboard/render.py",
                  "framework/dashboard/site.py")
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


def describe_holdouts(config: Config, root: Path) -> dict[str, ArtifactInfo]:
    """The hold-out data of every model that declares it, for compile (an endpoint's
    pre-traffic hook reads it from the registry)."""
    from framework.artifacts import sha256_file

    infos: dict[str, ArtifactInfo] = {}
    for name, model in config.models.items():
        if model.holdout is None:
            continue
        path = (root / model.holdout.path).resolve()
        if not path.is_file():
            raise ConfigError([Problem(where=f"models.{name}.holdout.path",
                                       what=f"{model.holdout.path} does not exist",
                                       hint="write the hold-out CSV, or remove holdout:")],
                              source="artifacts")
        infos[name] = ArtifactInfo(sha256=sha256_file(path), size=path.stat().st_size,
                                   source=relative_to(path, root), metadata="")
    return infos


# -- layers: see framework.layers -------------------------------------------------------------


def code_unzipped_bytes(root: Path = SOURCE_ROOT) -> int:
    """Unzipped bytes of the handler zip: Lambda counts them with the layers' (250 MB)."""
    return sum(path.stat().st_size for _, path in _bundle_files(root))


def find_layer(project_root: Path, build_dir: Path, arch: str = "x86_64") -> CodeBundle | None:
    """The newest serve layer zip in ``build_dir`` for ``arch``, if any. Compile no longer
    takes it: every function gets the layers ``framework.layers`` builds for it."""
    built = sorted(build_dir.glob(f"layer-serve-*-{arch}-*.zip"), key=lambda p: p.stat().st_mtime)
    if not built:
        return None
    data = built[-1].read_bytes()
    return CodeBundle(sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                      source=relative_to(built[-1], project_root))
