"""Layer bundles for compile tests: what ``framework.layers`` would build, without pip."""

from __future__ import annotations

import hashlib

from framework.compile import LayerBundle, required_layers
from framework.compile.compiler import LayerKey
from framework.config.models import Config

VERSIONS = {"serve": {"onnxruntime": "1.20.1", "numpy": "2.2.0", "boto3": "1.35.90",
                      "botocore": "1.35.90"},
            "monitor": {"numpy": "2.2.0", "scipy": "1.14.1", "boto3": "1.35.90",
                        "botocore": "1.35.90"}}


def fake_layer(key: LayerKey) -> LayerBundle:
    need, runtime, arch = key
    sha = hashlib.sha256("/".join(key).encode()).hexdigest()
    packages = {name: {"version": v, "file": f"{name}-{v}-py3-none-any.whl",
                       "sha256": hashlib.sha256(f"{name}{v}".encode()).hexdigest()}
                for name, v in VERSIONS[need].items()}
    return LayerBundle(need=need, runtime=runtime, architecture=arch, sha256=sha, size=1000,
                       source=f".mlops/build/layer-{need}-{sha[:16]}.zip", packages=packages,
                       summary=", ".join(f"{n} {v}" for n, v in VERSIONS[need].items()))


def fake_layers(config: Config) -> dict[LayerKey, LayerBundle]:
    return {key: fake_layer(key) for key in required_layers(config)}
