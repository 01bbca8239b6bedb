"""The user's flow on the embedded local AWS: deploy, call over HTTP, edit, redeploy, destroy."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from framework import workflow
from framework.plan import Op
from tests.e2e.conftest import Project, http


def session_for(project: Project) -> workflow.Session:
    return workflow.open_session(workflow.Workspace.open(project.yaml))


def url_of(project: Project, name: str = "predict") -> str:
    session = session_for(project)
    return workflow.find_endpoint(session, session.store.load(), name).url


NOT_THE_DEPLOYS = ("state/", "capture/", "capture-profiles/")


def test_deploy_call_noop_destroy(project: Project) -> None:
    first = project.mlops("deploy", "--parallelism", "4")
    assert "deployed" in first.stdout
    applied = [line.split()[1] for line in first.stdout.splitlines()
               if re.fullmatch(r"\s+create \S+", line)]  # one whole line per action
    assert sorted(applied) == sorted(session_for(project).store.load().resources)
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

    # No edit: nothing planned, nothing applied, nothing uploaded, nothing audited. (Keys the
    # deploy does not write: its state, and what the served request's capture object and its
    # partial profile, made by the monitor function when the object lands, add meanwhile.)
    session = session_for(project)
    s3 = session.target.conn.client("s3")
    objects = {o["Key"]: o["ETag"] for o in
               s3.list_objects_v2(Bucket=session.bucket).get("Contents", [])
               if not o["Key"].startswith(NOT_THE_DEPLOYS)}
    audited = len(session.audit.read_local())
    second = project.mlops("deploy")
    assert "no changes" in second.stdout
    after = {o["Key"]: o["ETag"] for o in
             s3.list_objects_v2(Bucket=session.bucket).get("Contents", [])
             if not o["Key"].startswith(NOT_THE_DEPLOYS)}
    assert after == objects
    assert len(session.audit.read_local()) == audited
    assert workflow.plan(session_for(project)).changes == ()

    # More object versions than one listing page (1,000) holds: one destroy removes them all.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=session.bucket, Key=f"capture/x/{i % 600}",
                                              Body=b"{}"), range(1100)))
    gone = project.mlops("destroy", "--yes", "--parallelism", "3")
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
    # One record per action, and one for the gates the new model version passed first.
    gates = [r for r in records if r["action"] == "gates"]
    assert [r["resource"] for r in gates] == ["model.diagnosis@1.0.0"]
    assert len(records) - len(gates) == len(state.resources)
    assert all(r["outcome"] == "succeeded" for r in records)
    assert all(r["actor"].startswith("arn:aws:") for r in records)
    listed = session.target.conn.client("s3").list_objects_v2(
        Bucket=session.bucket, Prefix="audit/")["Contents"]
    assert len(listed) == len(records)
    one = json.loads(session.target.conn.client("s3").get_object(
        Bucket=session.bucket, Key=listed[0]["Key"])["Body"].read())
    assert {"actor", "action", "resource", "time", "outcome"} <= set(one)


def test_projects_in_one_folder_never_cross(project: Project) -> None:
    """State, locks and lock-file entries are keyed by project: renaming the project in
    mlops.yaml is refused with a hint (never a plan against the old project's resources); a
    second project from its own file in the same folder deploys beside the first."""
    project.mlops("deploy")
    first_url = url_of(project)
    original = project.yaml.read_text()

    project.edit("project: cancer-dx", "project: cancer-dx2")
    for command in ("plan", "deploy"):
        refused = project.mlops(command, check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "deployed project 'cancer-dx' to stage 'dev'" in refused.stderr
        assert "(line 5, col 10)" in refused.stderr
        assert "mlops destroy" in refused.stderr and "Traceback" not in refused.stderr
        assert "Plan for" not in refused.stdout
    project.yaml.write_text(original)

    second = project.root / "second.yaml"
    second.write_text(original.replace("project: cancer-dx", "project: second-dx"))
    plan = project.mlops("plan", "-f", "second.yaml")
    assert "Plan for second-dx/dev" in plan.stdout
    assert "0 to update, 0 to replace, 0 to delete" in plan.stdout, plan.stdout
    deployed = project.mlops("deploy", "-f", "second.yaml")
    url = re.search(r"endpoint predict .*: (http://\S+)", deployed.stdout)
    assert url and url.group(1) != first_url
    for address in (first_url, url.group(1)):
        status, _, body = http("POST", address, project.sample())
        assert status == 200 and body["version"] == "1.0.0", body
    assert "no changes" in project.mlops("deploy").stdout  # the first project is untouched
    project.mlops("lock", "--check")
    project.mlops("lock", "--check", "-f", "second.yaml")
    lock = json.loads((project.root / "mlops.lock").read_text())
    assert set(lock["projects"]) == {"cancer-dx", "second-dx"}
    assert sorted(p.name for p in (project.root / ".mlops/state").iterdir()) == [
        "cancer-dx", "second-dx"]
    project.mlops("destroy", "-f", "second.yaml", "--yes")
    assert http("POST", first_url, project.sample())[0] == 200
