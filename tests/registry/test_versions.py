"""Versions: semver that must increase, immutable bytes, no half-written version, integrity."""

from __future__ import annotations

from typing import Any

import pytest

from framework.registry import refs
from framework.registry.errors import (
    ImmutableVersionError,
    RegistryInputError,
    RegistryIntegrityError,
)
from framework.registry.store import Registry

from .conftest import put


@pytest.mark.parametrize("name", ["../x", "a/b", "", "A", "x..y", "-x", "a--b", "x/../../etc"])
def test_path_like_model_names_are_refused_before_any_key(name: str) -> None:
    offline = Registry(s3=None, bucket="never-used")  # any S3 call would raise AttributeError
    with pytest.raises(RegistryInputError, match="not a model name"):
        offline.versions(name)
    with pytest.raises(RegistryInputError):
        refs.version_key(name, "1.0.0", refs.ARTIFACT)


@pytest.mark.parametrize("bad", ["../1.0.0", "1.0", "1.0.0/..", "", "1.0.0+build"])
def test_bad_versions_and_aliases_are_refused(bad: str) -> None:
    with pytest.raises(RegistryInputError):
        refs.version_key("m", bad, refs.ARTIFACT)
    with pytest.raises(RegistryInputError):
        refs.alias_key("m", bad or "..")
    with pytest.raises(RegistryInputError):
        refs.ModelRef.parse(f"m@{bad}" if bad else "m@")


def test_register_is_idempotent_for_identical_bytes(reg: Registry) -> None:
    first = put(reg, "m", "1.0.0", b"model-one")
    again = put(reg, "m", "1.0.0", b"model-one")
    assert first.created and not again.created
    assert reg.versions("m") == ["1.0.0"]
    assert again.metadata["created_at"] == first.metadata["created_at"]
    assert [r["action"] for r in reg.audit.read_local()] == ["models.register"]  # type: ignore


def test_other_bytes_under_a_registered_version_are_refused(reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"model-one")
    with pytest.raises(ImmutableVersionError, match="already registered with other bytes"):
        put(reg, "m", "1.0.0", b"model-two")
    body = s3.get_object(Bucket=reg.bucket, Key="models/m/1.0.0/model.onnx")["Body"].read()
    assert body == b"model-one"


def test_other_metadata_under_a_registered_version_is_refused(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"model-one")
    with pytest.raises(ImmutableVersionError, match="metrics: auc"):
        put(reg, "m", "1.0.0", b"model-one", metrics={"auc": 0.99})


def test_versions_must_increase_prerelease_included(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a")
    with pytest.raises(RegistryInputError, match="does not increase: 1.0.0 is registered"):
        put(reg, "m", "0.9.0", b"b")
    with pytest.raises(RegistryInputError, match="does not increase"):
        put(reg, "m", "1.0.0-rc.1", b"b")  # a pre-release sorts before its release
    put(reg, "m", "1.1.0-rc.1", b"c")
    put(reg, "m", "1.1.0-rc.2", b"d")
    put(reg, "m", "1.1.0", b"e")
    assert reg.versions("m") == ["1.0.0", "1.1.0-rc.1", "1.1.0-rc.2", "1.1.0"]
    assert reg.latest("m") == "1.1.0"
    lineage = reg.metadata("m", "1.1.0")["lineage"]
    assert lineage["parent"] == "1.1.0-rc.2" and lineage["code"] == "abc"


def test_a_registration_that_died_before_its_commit_is_invisible(reg: Registry, s3: Any) -> None:
    # A crash after the artifact but before metadata.json: nothing is visible.
    s3.put_object(Bucket=reg.bucket, Key="models/m/2.0.0/model.onnx", Body=b"half")
    assert reg.versions("m") == [] and reg.models() == ["m"]
    with pytest.raises(RegistryInputError, match="not in the registry"):
        reg.metadata("m", "2.0.0")
    with pytest.raises(RegistryInputError, match="has no registered version"):
        reg.resolve(refs.ModelRef("m", version="2.0.0"))
    # Retrying (even with the corrected bytes) completes the version.
    put(reg, "m", "2.0.0", b"whole")
    assert reg.versions("m") == ["2.0.0"]
    assert reg.artifact("m", "2.0.0") == b"whole"


def test_unknown_model_version_and_alias(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a")
    with pytest.raises(RegistryInputError, match="registered versions: 1.0.0"):
        reg.metadata("m", "3.0.0")
    with pytest.raises(RegistryInputError, match="model 'nope' is not in the registry"):
        reg.resolve(refs.ModelRef("nope"))
    with pytest.raises(RegistryInputError, match="alias 'production' of model 'm' is not set"):
        reg.resolve(refs.ModelRef("m", alias="production"))


def test_tampered_artifact_fails_verification(reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"genuine")
    s3.put_object(Bucket=reg.bucket, Key="models/m/1.0.0/model.onnx", Body=b"evil")
    with pytest.raises(RegistryIntegrityError, match="INTEGRITY FAILURE"):
        reg.verify("m", "1.0.0")
    with pytest.raises(RegistryIntegrityError):  # registering "the same" again notices too
        put(reg, "m", "1.0.0", b"genuine")
