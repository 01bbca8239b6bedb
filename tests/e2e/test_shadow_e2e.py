"""A shadow rollout on the embedded local AWS, through the handler as on AWS: the gateway
copies nothing; the serving version sends a sample of the requests it answered to the
candidate by asynchronous Invoke of its shadow alias; the candidate's answers never reach a
client, its capture lines are marked shadow with the primary's request ids, and the
disagreement between the two comes back through CloudWatch to `mlops rollout status`."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from framework.compile import names
from framework.workflow import Workspace, endpoints, open_session

from .conftest import Project, http

pytestmark = pytest.mark.timeout(600)


def until(check: Callable[[], Any], what: str, timeout_s: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(1.0)


def rows(project: Project, n: int) -> list[dict[str, float]]:
    """``n`` rows around the sample, spread so that two models disagree on some."""
    base = json.loads(project.sample())["instances"]
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        row = dict(base[i % len(base)])
        scale = float(rng.uniform(0.55, 1.05))
        out.append({k: round(v * scale, 4) for k, v in row.items()})
    return out


def test_shadow_copies_go_through_the_handler_and_their_disagreement_is_reported(
        project: Project) -> None:
    project.edit("strategy: all_at_once", "strategy: shadow")
    project.edit("every: 15s", "every: 10m")  # the shadow step stays up while this test looks
    project.mlops("deploy")  # version 1, diagnosis 1.0.0: the first deploy is direct
    session = open_session(Workspace.open(project.yaml))
    lam = session.target.conn.client("lambda")
    function = names.function_name("cancer-dx", "dev", "predict")
    env = lam.get_function_configuration(FunctionName=function, Qualifier="1")[
        "Environment"]["Variables"]
    assert env["MLOPS_SHADOW_TARGET"].endswith(f"function:{function}:shadow")
    assert env["MLOPS_SHADOW_SAMPLE_RATE"] == "1"

    project.use_model(7)
    project.edit("version: 1.0.0", "version: 1.0.1")
    started = project.mlops("deploy", "--no-wait")
    assert "shadow" in started.stdout, started.stdout
    shadow = lam.get_alias(FunctionName=function, Name="shadow")
    assert shadow["FunctionVersion"] == "2" and shadow["Description"].startswith("shadow since")
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == "1"

    info = next(i for i in endpoints(session, session.store.load()) if i.name == "predict")
    sent: dict[str, int] = {}
    batch = rows(project, 40)
    for start in range(0, len(batch), 4):  # 10 requests of 4 rows
        status, headers, body = http("POST", info.url,
                                     json.dumps({"instances": batch[start:start + 4]}).encode())
        assert status == 200, body
        assert headers["x-mlops-executed-version"] == "1"  # the shadow never answers
        sent[body["request_id"]] = len(body["predictions"])

    log = project.root / ".mlops" / "local" / "logs" / f"{function}.log"

    def shadow_lines() -> list[dict[str, Any]]:
        found = []
        for line in log.read_text().splitlines():
            start = line.find("{")
            if start < 0 or '"msg":"shadow"' not in line:
                continue
            try:
                found.append(json.loads(line[start:]))
            except ValueError:
                continue
        got = {rec["request_id"] for rec in found}
        return found if set(sent) <= got else []

    compared = until(shadow_lines, "the candidate answered every copy")
    for rec in compared:
        assert (rec["primary_version"], rec["lambda_version"], rec["version"]) == (
            "1", "2", "1.0.1")
        assert rec["primary_model_version"] == "1.0.0"
        assert rec["status"] == 200 and rec["compared"] == sent[rec["request_id"]]
    seen = {rec["request_id"]: rec for rec in compared}  # a retried copy would repeat one
    disagreed = sum(rec["disagreed"] for rec in seen.values())

    # The candidate's capture lines: marked, with the primary's request ids.
    gateway = info.url.split("/", 3)
    gateway_url = "/".join(gateway[:3])
    assert http("POST", f"{gateway_url}/_mlops/flush", b"")[0] == 200
    s3 = session.target.conn.client("s3")

    def captured() -> list[dict[str, Any]]:
        out = []
        listed = s3.list_objects_v2(Bucket=session.bucket, Prefix="capture/predict/")
        for obj in listed.get("Contents", []):
            raw = s3.get_object(Bucket=session.bucket, Key=obj["Key"])["Body"].read()
            out += [json.loads(line) for line in gzip.decompress(raw).decode().splitlines()]
        shadows = {r["request_id"] for r in out if r.get("shadow")}
        return out if set(sent) <= shadows else []

    lines = until(captured, "the shadow's capture lines were delivered", 60)
    marked = [r for r in lines if r.get("shadow")]
    assert {r["request_id"] for r in marked} == set(sent)
    assert all(r["primary_version"] == "1" and r["version"] == "1.0.1"
               and r["lambda_version"] == "2" for r in marked)
    primary = [r for r in lines if not r.get("shadow")]
    assert {r["request_id"] for r in primary} == set(sent)  # the served rows, unmarked

    # The disagreement, from CloudWatch (the local AWS extracts the EMF a minute at a time).
    def reported() -> dict[str, Any] | None:
        doc = json.loads(project.mlops("rollout", "status", "-o", "json").stdout)
        found = [s for s in doc["shadows"] if s["endpoint"] == "predict"]
        return found[0] if found and found[0]["requests"] >= len(seen) else None

    shown = until(reported, "rollout status reports the shadow's answers", 300)
    assert shown["version"] == "2" and shown["model"] == "diagnosis 1.0.1"
    assert shown["compared"] >= sum(sent.values()) and shown["errors"] == 0
    if shown["requests"] == len(seen):  # no copy was delivered twice
        assert shown["disagreed"] == disagreed
    assert shown["disagreement"] == shown["disagreed"] / shown["compared"]
    table = project.mlops("rollout", "status").stdout
    assert "shadow of predict: version 2 (diagnosis 1.0.1) gets copies" in table
    assert "disagreement" in table

    # Ending the step takes the alias away: no more copies.
    project.mlops("rollout", "abort", "predict")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=function, Name="shadow")
    assert json.loads(project.mlops("rollout", "status", "-o", "json").stdout)["shadows"] == []
