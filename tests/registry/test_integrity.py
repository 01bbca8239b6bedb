"""Integrity acted on: damaged artifacts are named, refused with exit code 7, and restored
from the versioned bucket or the original file."""

from __future__ import annotations

from typing import Any

import pytest

from framework.registry.errors import RegistryIntegrityError
from framework.registry.integrity import damaged, refusal, served_versions
from framework.registry.store import Registry

from .conftest import put

KEY = "models/m/1.0.0/model.onnx"


def test_damage_names_what_differs(reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"genuine")
    assert reg.damage("m", "1.0.0") is None
    s3.put_object(Bucket=reg.bucket, Key=KEY, Body=b"evil")
    what = reg.damage("m", "1.0.0")
    assert what is not None and KEY in what and "metadata.json records" in what
    s3.delete_object(Bucket=reg.bucket, Key=KEY)
    assert "is missing" in str(reg.damage("m", "1.0.0"))
    with pytest.raises(RegistryIntegrityError) as info:
        reg.verify("m", "1.0.0")
    assert info.value.exit_code == 7
    assert "m@1.0.0 is damaged" in info.value.what
    assert "mlops models restore m@1.0.0" in info.value.hint


def test_damaged_skips_unregistered_and_checks_the_lock(reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"one")
    put(reg, "m", "1.1.0", b"two")
    s3.put_object(Bucket=reg.bucket, Key="models/m/1.1.0/model.onnx", Body=b"evil")
    found = damaged(reg, [("m", "1.0.0"), ("m", "1.1.0"), ("m", "9.0.0")])
    assert [(d.name, d.version) for d in found] == [("m", "1.1.0")]
    # The lock records another hash for 1.0.0 than the registry: that is damage too.
    other = damaged(reg, [("m", "1.0.0")], {("m", "1.0.0"): "f" * 64})
    assert other and "the lock ffffffffffffffff" in other[0].what
    both = refusal(found + other)
    assert both.exit_code == 7 and "2 versions are damaged" in both.what
    assert "mlops models restore m@1.1.0" in both.hint and "restore m@1.0.0" in both.hint


def test_served_versions_from_state_or_graph() -> None:
    resources = [
        ("model_version", {"name": "m", "version": "1.1.0"}),
        ("lambda_function", {"environment": {"MLOPS_MODEL_NAME": "m",
                                             "MLOPS_MODEL_VERSION": "1.0.0"}}),
        ("lambda_function", {"environment": {"MLOPS_MODEL_NAME": "m",
                                             "MLOPS_MODEL_VERSION": "1.1.0"}}),
        ("lambda_function", {"environment": {"MLOPS_MONITOR": "x"}}),
        ("s3_object", {"key": "code/x.zip"}),
    ]
    assert served_versions(resources) == [("m", "1.1.0"), ("m", "1.0.0")]


def test_restore_from_an_earlier_object_version(reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"genuine")
    assert reg.restore("m", "1.0.0") == "intact"
    s3.put_object(Bucket=reg.bucket, Key=KEY, Body=b"evil")
    s3.put_object(Bucket=reg.bucket, Key=KEY, Body=b"worse")
    source = reg.restore("m", "1.0.0")
    assert source.startswith("object version ")
    assert reg.artifact("m", "1.0.0") == b"genuine" and reg.damage("m", "1.0.0") is None
    records = reg.audit.read_local() if reg.audit else []
    assert records[-1]["action"] == "models.restore"
    assert records[-1]["after"]["from"] == source


def test_restore_from_a_file_or_refuse(reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"genuine")
    # Every version of the object replaced: no earlier version holds the bytes.
    for v in s3.list_object_versions(Bucket=reg.bucket, Prefix=KEY)["Versions"]:
        s3.delete_object(Bucket=reg.bucket, Key=KEY, VersionId=v["VersionId"])
    s3.put_object(Bucket=reg.bucket, Key=KEY, Body=b"evil")
    with pytest.raises(RegistryIntegrityError, match="no copy of m@1.0.0") as info:
        reg.restore("m", "1.0.0", b"not it either")
    assert "--from PATH" in info.value.hint
    assert reg.restore("m", "1.0.0", b"genuine") == "the given file"
    assert reg.artifact("m", "1.0.0") == b"genuine"
