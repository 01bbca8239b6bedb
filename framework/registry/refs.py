"""Names, references and S3 keys of the registry.

Every name is checked *before* a key is built from it, so ``../x``, slashes, empty names and
other path-like input never reach S3. Keys are built only here.

Layout under the registry bucket::

    models/{name}/{version}/model.onnx              the artifact (immutable)
    models/{name}/{version}/reference.json          drift baseline profile (optional)
    models/{name}/{version}/metadata.json           written last: its presence commits the version
    models/{name}/{version}/approvals/{id}.json     one immutable record per approval
    models/{name}/aliases/{alias}.json              current target; compare-and-swap only
    models/{name}/history/{alias}/{seq:08d}.json    one immutable record per alias change
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from framework.config.models import ITEM_MAX, NAME_RE
from framework.config.semver import SemVer
from framework.registry.errors import RegistryInputError

ROOT = "models/"
ARTIFACT = "model.onnx"
METADATA = "metadata.json"
REFERENCE = "reference.json"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _name_ok(value: str) -> bool:
    return bool(NAME_RE.match(value)) and "--" not in value and len(value) <= ITEM_MAX


def check_model(name: str) -> str:
    if not isinstance(name, str) or not _name_ok(name):
        raise RegistryInputError(
            f"'{name}' is not a model name", where="model",
            hint="use lower-case letters, digits and single hyphens (no '/', '..' or spaces)")
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _name_ok(alias):
        raise RegistryInputError(
            f"'{alias}' is not an alias name", where="alias",
            hint="use lower-case letters, digits and single hyphens, e.g. production")
    return alias


def check_version(version: str) -> SemVer:
    try:
        parsed = SemVer.parse(version)
    except ValueError as exc:
        what, _, hint = str(exc).partition("; ")
        raise RegistryInputError(what, where="version", hint=hint) from exc
    if parsed.build:
        raise RegistryInputError(
            f"'{version}' carries build metadata (+...)", where="version",
            hint="build metadata does not order versions; use a pre-release tag (-rc.1)")
    return parsed


def check_id(value: str) -> str:
    if not _ID_RE.match(value) or ".." in value:
        raise RegistryInputError(f"'{value}' is not a record id", where="id")
    return value


@dataclass(frozen=True)
class ModelRef:
    """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``, checked."""

    name: str
    version: str | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, at, ref = text.partition("@")
        check_model(name)
        if not at:
            return cls(name)
        if not ref:
            raise RegistryInputError(f"'{text}' names no version or alias after '@'",
                                     hint="write NAME@1.2.0 or NAME@production")
        if ref[0].isdigit():
            return cls(name, version=str(check_version(ref)))
        return cls(name, alias=check_alias(ref))

    def __str__(self) -> str:
        return f"{self.name}@{self.version or self.alias}" if self.version or self.alias \
            else self.name


def model_prefix(name: str) -> str:
    return f"{ROOT}{check_model(name)}/"


def version_prefix(name: str, version: str) -> str:
    return f"{model_prefix(name)}{check_version(version)}/"


def version_key(name: str, version: str, filename: str) -> str:
    if filename not in (ARTIFACT, METADATA, REFERENCE):
        raise ValueError(f"not a registry file: {filename}")
    return version_prefix(name, version) + filename


def approval_key(name: str, version: str, record_id: str) -> str:
    return f"{version_prefix(name, version)}approvals/{check_id(record_id)}.json"


def alias_key(name: str, alias: str) -> str:
    return f"{model_prefix(name)}aliases/{check_alias(alias)}.json"


def history_prefix(name: str, alias: str) -> str:
    return f"{model_prefix(name)}history/{check_alias(alias)}/"


def history_key(name: str, alias: str, seq: int) -> str:
    return f"{history_prefix(name, alias)}{seq:08d}.json"
