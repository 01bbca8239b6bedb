"""schemathesis over every route of a deployed endpoint, with all its checks: no 5xx, no answer
that breaks the served OpenAPI document, no undocumented status, invalid data rejected, valid
data accepted, auth not ignored (loopback only, bounded in examples).

Two checks are scoped, for reasons of the platform rather than of the endpoint:

- ``unsupported_method`` expects 405 for a method the document does not list on a path; API
  Gateway HTTP APIs answer 404 for a method without a route, and the local gateway does as
  they do;
- ``positive_data_acceptance`` is off for the OIP infer route only: a tensor's ``data`` must
  hold ``prod(shape)`` values, which JSON Schema cannot say, so schema-valid tensors of the
  wrong length are rightly rejected (400). Invalid infer bodies are still checked.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLE, Project, http
from .test_serving_e2e import _deploy

pytestmark = pytest.mark.timeout(900)

# Every check of schemathesis is on by default; this turns off the two named above.
CONFIG = """
[checks.unsupported_method]
enabled = false

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                     "428", "429"]

[[operations]]
include-operation-id = "oipInfer"
checks.positive_data_acceptance.enabled = false
"""


def _declare_maxima(project: Project) -> None:
    """Give every feature a maximum (10x the largest reference value): in-range values the
    model's float32 arithmetic overflows on are then outside the contract, as a model owner
    declares them (without one, such values answer 500 invalid_model_output)."""
    with (project.root / EXAMPLE / "data" / "reference.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for name in rows[0]:
        if name == "diagnosis":
            continue
        top = max(float(r[name]) for r in rows)
        project.edit(f"{{name: {name}, type: float, min: 0}}",
                     f"{{name: {name}, type: float, min: 0, max: {10 * top:.6g}}}")


@pytest.mark.parametrize("auth", ["none", "api_key"])
def test_schemathesis_finds_nothing_on_every_route(project: Project, tmp_path: Path,
                                                   auth: str) -> None:
    _declare_maxima(project)
    headers: dict[str, str] = {}
    if auth != "none":
        project.edit("    capture: {sample_rate: 1.0}",
                     f"    capture: {{sample_rate: 1.0}}\n    auth: {auth}")
    d = _deploy(project)
    if auth == "api_key":
        created = project.mlops("keys", "create", "predict", "--name", "schemathesis")
        headers["x-api-key"] = created.stdout.strip().splitlines()[-1]
    status, _, doc = http("GET", f"{d.url}/openapi.json", headers=headers)
    assert status == 200, doc
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(doc))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    operations = sum(len(item) for item in doc["paths"].values())
    args = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            str(schema), "--url", d.base, "--max-examples", "40", "--seed", "12",
            "--workers", "2", "--request-timeout", "30", "--no-color",
            "--suppress-health-check", "too_slow,data_too_large"]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=800, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out[-12000:] + proc.stderr[-2000:]
    assert re.search(rf"Selected: {operations}/{operations}\s+Tested: {operations}\b", out), out
    assert "No issues found" in out or "0 failures" in out or "passed" in out, out[-3000:]
