from __future__ import annotations

import pytest
from tinymodels import columns_classifier, regressor, tensor_classifier

from framework.runtime.inference import ModelBundle


def _bundle(built: tuple[bytes, dict[str, object]]) -> ModelBundle:
    raw, meta = built
    return ModelBundle.from_bytes(meta, raw, str(meta["sha256"]))


@pytest.fixture(scope="session")
def clf_bundle() -> ModelBundle:
    return _bundle(tensor_classifier())


@pytest.fixture(scope="session")
def zipmap_bundle() -> ModelBundle:
    return _bundle(tensor_classifier(zipmap=True, string_labels=True))


@pytest.fixture(scope="session")
def reg_bundle() -> ModelBundle:
    return _bundle(regressor())


@pytest.fixture(scope="session")
def cols_bundle() -> ModelBundle:
    return _bundle(columns_classifier())
