"""checkov's CloudFormation checks on the synthesized template, every check but a documented
few that do not apply. checkov lives in a virtualenv of its own (``bash scripts/checkov.sh``;
it pins an older boto3 than the project's); without it these tests are skipped. Point
``MLOPS_CHECKOV`` at another checkov executable to use that one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from framework.compile import compile_config
from framework.config.models import Config
from framework.synth import ACCOUNT, REGION, synthesize, to_json
from tests.compile.test_compile import SPEC, context

ROOT = Path(__file__).resolve().parents[2]

# Each skipped check, and why it does not apply to what mlops deploys.
SKIPS = {
    "CKV_AWS_116": "Lambda dead-letter queue: endpoint functions are invoked synchronously by "
                   "API Gateway (the caller gets the error); a monitor run that fails is "
                   "retried by EventBridge and shows in its log group and the next report",
    "CKV_AWS_117": "Lambda inside a VPC: the functions reach only S3, SES and Firehose public "
                   "endpoints; a VPC would add NAT gateways or endpoints and nothing to guard",
    "CKV_AWS_173": "customer-managed KMS key for Lambda environment variables: they hold names "
                   "and settings, never secrets (Lambda encrypts them at rest with an AWS key)",
    "CKV_AWS_115": "function-level concurrency limit: reserved concurrency is opt-in per "
                   "endpoint (`concurrency:`); a new account has 10 concurrent executions and "
                   "Lambda refuses any reservation that leaves fewer than 10 unreserved, so a "
                   "default reservation would fail the first deploy there",
    "CKV_AWS_158": "customer-managed KMS key for log groups: CloudWatch Logs encrypts every "
                   "group at rest already; a CMK would need a key policy per account for no "
                   "secret (access logs carry no bodies or headers)",
}


def checkov() -> str:
    found = (os.environ.get("MLOPS_CHECKOV") or shutil.which("checkov")
             or str(ROOT / ".venv-checkov" / "bin" / "checkov"))
    if not Path(found).exists() and not shutil.which(found):
        pytest.skip("checkov is not installed: bash scripts/checkov.sh")
    return found


def run_checkov(tmp_path: Path, spec: dict[str, Any], *args: str) -> dict[str, Any]:
    graph = compile_config(Config.model_validate(spec),
                           context(account_id=ACCOUNT, region=REGION))
    path = tmp_path / "template.json"
    path.write_text(to_json(synthesize(graph, description="checkov")))
    done = subprocess.run(
        [checkov(), "-f", str(path), "--framework", "cloudformation", "--quiet", "--compact",
         "-o", "json", *args],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    assert done.stdout.strip(), done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def failures(report: dict[str, Any]) -> list[str]:
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}"
            for c in report.get("results", {}).get("failed_checks", [])]


def test_the_template_passes_checkov_but_the_documented_skips(tmp_path: Path) -> None:
    report = run_checkov(tmp_path, SPEC, "--skip-check", ",".join(sorted(SKIPS)))
    assert failures(report) == []
    assert report["summary"]["passed"] > 0


def test_api_access_logging_passes_and_fails_as_configured(tmp_path: Path) -> None:
    """CKV_AWS_95 (HTTP API stage access logging): on by default; `api: {access_log: false}`
    is the user's choice, and checkov says so."""
    on = run_checkov(tmp_path, SPEC, "--check", "CKV_AWS_95")
    assert failures(on) == [] and on["summary"]["passed"] == 1
    off = run_checkov(tmp_path, {**SPEC, "api": {"access_log": False}}, "--check", "CKV_AWS_95")
    assert [f.split(" ")[0] for f in failures(off)] == ["CKV_AWS_95"]
