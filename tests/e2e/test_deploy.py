"""The user's flow on the embedded local AWS: deploy, call over HTTP, edit, redeploy, destroy."""

from __future__ import annotations

import json
import re

from framework import workflow
from framework.plan import Op
from tests.e2e.conftest import Project, http


def session_for(project: Project) -> workflow.Session:
    return workflow.open_session(workflow.Workspace.open(project.yaml))


def url_of(project: Project, name: str = "predict") -> str:
    session = session_for(project)
    return workflow.find_endpoint(session, session.store.load(), name).url


def test_deploy_call_noop_destroy(project: Project) -> None:
    first = project.mlops("deploy")
    assert "deployed" in first.stdout
    url = re.search(r"endpoint predict .*: (http://\S+)", first.stdout)
    assert url, first.stdout
    status, headers, body = http("POST", url.group(1), project.sample())
    assert status == 200, body
    assert body["model"] == "diagnosis" and body["version"] == "1.0.0"
    assert body["predictions"] and set(body["predictions"]) <= {"malignant", "benign"}
    assert headers["x-mlops-executed-version"] == "1"

    # The CLI's own invoke goes through the same HTTP route.
    called = project.mlops("invoke", "predict", "--data", project.sample().decode())
    assert '"predictions"' in called.stdout

    # No edit: nothing planned, nothing applied, nothing uploaded, nothing audited.
    session = session_for(project)
    s3 = session.target.conn.client("s3")
    objects = {o["Key"]: o["ETag"] for o in
               s3.list_objects_v2(Bucket=session.bucket).get("Contents", [])
               if not o["Key"].startswith(("state/", "capture/"))}
    audited = len(session.audit.read_local())
    second = project.mlops("deploy")
    assert "no changes" in second.stdout
    after = {o["Key"]: o["ETag"] for o in
             s3.list_objects_v2(Bucket=session.bucket).get("Contents", [])
             if not o["Key"].startswith(("state/", "capture/"))}
    assert after == objects
    assert len(session.audit.read_local()) == audited
    assert workflow.plan(session_for(project)).changes == ()

    gone = project.mlops("destroy", "--yes")
    assert "destroyed" in gone.stdout
    state = session_for(project).store.load()
    assert state.resources == {} and state.destroyed_at
    lam = session.target.conn.client("lambda")
    assert lam.list_functions()["Functions"] == []
    assert not session_for(project).store.bucket_exists()
    assert http("POST", url.group(1), project.sample())[0] == 404


def test_edit_memory_and_add_endpoint_applies_only_that(project: Project) -> None:
    project.mlops("deploy")
    project.edit("memory: 1024", "memory: 2048")
    plan = project.mlops("plan")
    assert "memory: 1024 → 2048" in plan.stdout
    session = session_for(project)
    changed = {a.id: a.op for a in workflow.plan(session).changes}
    assert changed == {"function.predict": Op.update, "version.predict": Op.replace,
                       "alias.predict": Op.update}
    project.mlops("deploy")
    cfg = session.target.conn.client("lambda").get_function_configuration(
        FunctionName="cancer-dx-dev-predict", Qualifier="live")
    assert cfg["MemorySize"] == 2048 and cfg["Version"] == "2"
    status, headers, _ = http("POST", url_of(project), project.sample())
    assert status == 200 and headers["x-mlops-executed-version"] == "2"

    project.edit("endpoints:\n", "endpoints:\n  triage:\n    model: diagnosis\n"
                                 "    route: POST /diagnosis/triage\n")
    changed = {a.id: a.op for a in workflow.plan(session_for(project)).changes}
    assert set(changed.values()) == {Op.create}
    assert "function.triage" in changed and "route.triage" in changed
    project.mlops("deploy")
    status, _, body = http("POST", url_of(project, "triage"), project.sample())
    assert status == 200 and body["version"] == "1.0.0"


def test_version_bump_serves_new_model_and_keeps_old_in_registry(project: Project) -> None:
    project.mlops("deploy")
    project.use_model(7)
    project.edit("version: 1.0.0", "version: 1.1.0")
    project.mlops("deploy")
    status, _, body = http("POST", url_of(project), project.sample())
    assert status == 200 and body["version"] == "1.1.0"
    session = session_for(project)
    keys = {o["Key"] for o in session.target.conn.client("s3").list_objects_v2(
        Bucket=session.bucket, Prefix="models/diagnosis/")["Contents"]}
    assert {"models/diagnosis/1.0.0/model.onnx", "models/diagnosis/1.1.0/model.onnx"} <= keys


def test_new_bytes_under_released_version_are_refused(project: Project) -> None:
    project.mlops("deploy")
    project.use_model(7)
    proc = project.mlops("deploy", check=False)
    assert proc.returncode == 2
    assert "bump the model's version" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_audit_records_each_action_with_caller(project: Project) -> None:
    project.mlops("deploy")
    session = session_for(project)
    records = session.audit.read_local()
    state = session.store.load()
    assert len(records) == len(state.resources)
    assert all(r["outcome"] == "succeeded" for r in records)
    assert all(r["actor"].startswith("arn:aws:") for r in records)
    listed = session.target.conn.client("s3").list_objects_v2(
        Bucket=session.bucket, Prefix="audit/")["Contents"]
    assert len(listed) == len(records)
    one = json.loads(session.target.conn.client("s3").get_object(
        Bucket=session.bucket, Key=listed[0]["Key"])["Body"].read())
    assert {"actor", "action", "resource", "time", "outcome"} <= set(one)
