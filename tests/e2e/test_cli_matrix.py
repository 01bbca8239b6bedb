"""Every ``mlops`` command, in every state a project can be in, ends without a traceback.

The states: nothing deployed (a fresh folder), deployed, a malformed object in the registry
(an audit record that is not JSON, one that lacks its keys, a capture file that is not
gzip, a monitor history that is not JSON), the local AWS stopped after a deploy, and after
``mlops destroy``. In each, every command of the typer app runs as a user runs it (a
subprocess, stdin closed, a timeout) and must end with an exit code from the documented set
and, when it fails, a one-line reason and a hint. The commands are enumerated from the app,
so a command added without an entry here fails the test.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import typer.main

from tests.e2e.conftest import Project

# README: 2 bad input, 3 locked, 4 stale plan, 5 gate, 6 rolled back, 7 integrity,
# 8 local AWS stopped (reads), 9 --fail-on matched, 1 anything else.
EXIT_CODES = set(range(10))
MODEL = "diagnosis"
ENDPOINT = "predict"
MONITOR = "diagnosis-drift"
REF = f"{MODEL}@1.0.0"

# Each command with a minimal valid argument list. Reads first: they run concurrently.
READS: dict[str, list[str]] = {
    "validate": [],
    "schema": [],
    "synth": [],
    "plan": [],
    "status": [],
    "status -o json": ["-o", "json"],
    "audit": [],
    "audit -o json": ["-o", "json"],
    "url": [ENDPOINT],
    "doctor": [],
    "local status": [],
    "models list": [],
    "models show": [REF, "--verify"],
    "models history": [MODEL],
    "models lineage": [REF],
    "models diff": [REF, "1.0.0"],
    "models card": [REF, "-o", "card"],
    "monitor history": [MONITOR],
    "monitor history -o json": [MONITOR, "-o", "json"],
    "monitor report": [MONITOR, "--open"],  # BROWSER=true: no browser opens
    "mail list": [],
    "mail show": ["1"],
    "rollout status": [],
    "keys list": [ENDPOINT],
    "invoke": [ENDPOINT, "--input", "examples/breast_cancer/data/sample_request.json"],
    "test": ["--offline"],
    "lock": ["--check"],
    "data export": [ENDPOINT, "--window", "1d", "--out", "export.csv"],
}
# Writes run one after the other, in this order.
WRITES: dict[str, list[str]] = {
    "dashboard": ["--open"],
    "dashboard --publish": ["--publish", "--url"],
    "monitor run": [MONITOR],
    "models register": [],
    "models approve": [REF, "--by", "alice"],
    "models promote": [REF, "--alias", "staging"],
    "models rollback": [MODEL, "--alias", "staging"],
    "models restore": [REF],
    "models reproduce": [REF],
    "keys create": [ENDPOINT, "--name", "matrix"],
    "keys revoke": [ENDPOINT, "nosuchkey"],
    "rollout promote": [ENDPOINT],
    "rollout abort": [ENDPOINT],
    "rollout resume": ["--no-wait"],
    "retrain": ["--pending"],
    "build": [],
    "layer build": [],
    "lock": [],
    "unlock": [],
    "ci init": ["--force"],
    "init": ["--model", "examples/breast_cancer/artifacts/model.onnx"],  # mlops.yaml exists: 2
}
# Writes that do not read the deployed stage (a layer resolved afresh from PyPI takes a minute,
# a reproduction retrains): run in the first state only.
STATELESS = {"layer build", "models reproduce", "ci init", "init"}
# The writes that read what ``_malform`` breaks (the others run in the other states).
MALFORMED_WRITES = {"dashboard", "dashboard --publish", "monitor run", "keys create"}
# Run as the transitions between states, and checked the same way.
TRANSITIONS = {"deploy", "destroy", "local start", "local stop"}
# What cannot run here, and why.
SKIPS: dict[str, str] = {}


def _commands(group: Any, path: tuple[str, ...] = ()) -> set[str]:
    if not hasattr(group, "list_commands"):  # a command, not a group
        return {" ".join(path)}
    ctx = group.context_class(group)
    found: set[str] = set()
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        assert sub is not None
        found |= _commands(sub, (*path, name))
    return found


def test_every_command_has_an_entry() -> None:
    from framework.cli import app

    covered = {name.split(" -")[0] for name in (*READS, *WRITES)} | TRANSITIONS | set(SKIPS)
    assert _commands(typer.main.get_command(app)) == covered


def _run(project: Project, argv: list[str],
         timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BROWSER": "true", "COLUMNS": "200"}
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "framework.cli", *argv],
                              cwd=project.root, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(argv, -1, _text(exc.stdout), _text(exc.stderr)
                                           + f"\n(did not end within {timeout:.0f} s)")
    print(f"{time.monotonic() - start:6.1f}s exit {proc.returncode} mlops {' '.join(argv)}",
          file=sys.stderr)
    return proc


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def _problem(state: str, argv: list[str], proc: subprocess.CompletedProcess[str]) -> str | None:
    """What is wrong with how a command ended, or None."""
    both = proc.stdout + proc.stderr
    why = ""
    if "Traceback" in both:
        why = "a traceback"
    elif "internal error:" in proc.stderr:  # the last-resort handler: a cause not found
        why = "an unexpected exception (internal error)"
    elif proc.returncode not in EXIT_CODES:
        why = f"exit code {proc.returncode} is not documented"
    elif proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("error:")), None)
        # A hint: the error's own "hint:" line, or each problem of bad input with its fix
        # after "; " (ConfigError).
        problems = [line for line in lines if line.startswith("  - ")]
        hinted = any(line.strip().startswith("hint:") for line in lines) or (
            bool(problems) and all("; " in line for line in problems))
        if reason is None or reason.strip() == "error:":
            why = f"exit {proc.returncode} without an `error:` reason line"
        elif not hinted:
            why = f"exit {proc.returncode} without a hint"
    if not why:
        return None
    problem = (f"[{state}] mlops {' '.join(argv)}: {why} (exit {proc.returncode})\n"
               f"--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    print(f"PROBLEM {problem}", file=sys.stderr)  # as found: the walk is long
    return problem


def _walk(project: Project, state: str, *, first: bool = False,
          writes: set[str] | None = None) -> list[str]:
    found: list[str] = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda item: (item, _run(project, item)),
                                [name.split(" -")[0].split() + args
                                 for name, args in READS.items()]))
    for argv, proc in results:
        if (problem := _problem(state, argv, proc)) is not None:
            found.append(problem)
    for name, args in WRITES.items():
        if (name in STATELESS and not first) or (writes is not None and name not in writes):
            continue
        argv = name.split(" -")[0].split() + args
        proc = _run(project, argv, timeout=300 if name in STATELESS else 90)
        if (problem := _problem(state, argv, proc)) is not None:
            found.append(problem)
    return found


def _transition(project: Project, state: str, *argv: str) -> list[str]:
    proc = _run(project, list(argv), timeout=600)
    problem = _problem(state, list(argv), proc)
    return [problem] if problem else []


def _malform(project: Project) -> None:
    """Objects a reader cannot parse, where the readers look for them."""
    from framework import workflow

    session = workflow.open_session(workflow.Workspace.open(project.yaml), start_local=False)
    s3 = session.target.conn.client("s3")
    bucket = session.bucket
    s3.put_object(Bucket=bucket, Key="audit/2026/01/01/20260101T000000Z-notjson.json",
                  Body=b"{not json")
    s3.put_object(Bucket=bucket, Key="audit/2026/01/01/20260101T000001Z-nokeys.json",
                  Body=json.dumps({"unexpected": 1}).encode())
    s3.put_object(Bucket=bucket, Key="audit/2026/01/01/20260101T000002Z-list.json",
                  Body=b"[1, 2]")
    day = datetime.now(UTC).date().isoformat()
    s3.put_object(Bucket=bucket, Key=f"capture/{ENDPOINT}/dt={day}/bad-not-gzip",
                  Body=b"this is not gzip")
    s3.put_object(Bucket=bucket, Key=f"capture/{ENDPOINT}/dt={day}/bad-gzip-not-json",
                  Body=gzip.compress(b"{broken\n"))
    s3.put_object(Bucket=bucket, Key=f"reports/{MONITOR}/history.json", Body=b"<html>")
    s3.put_object(Bucket=bucket, Key=f"keys/{ENDPOINT}/notjson.json", Body=b"{not json")
    audit = project.root / ".mlops" / "audit.jsonl"
    with audit.open("a") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"unexpected": 1}) + "\n")


@pytest.mark.timeout(1800)  # about 4 minutes on an idle machine; many more when loaded
def test_no_traceback_in_any_state(project: Project) -> None:
    found: list[str] = []
    found += _walk(project, "nothing deployed", first=True)
    found += _transition(project, "nothing deployed", "deploy")
    found += _walk(project, "deployed")
    _malform(project)
    found += _walk(project, "malformed registry", writes=MALFORMED_WRITES)
    found += _transition(project, "malformed registry", "local", "stop")
    found += _walk(project, "local AWS stopped")
    found += _transition(project, "local AWS stopped", "local", "start")
    found += _transition(project, "deployed", "destroy", "--yes")
    found += _walk(project, "destroyed")
    assert not found, f"{len(found)} command(s) ended badly:\n\n" + "\n\n".join(found)


def test_an_unreadable_audit_record_is_shown_not_dropped() -> None:
    from framework.registry.audit_query import parse_record, select

    good = parse_record(b'{"time": "2026-01-02T00:00:00Z", "action": "deploy"}', "k0")
    records = [parse_record(b"{not json", "k1"), parse_record(b"[1]", "k2"),
               parse_record(b'{"action": "x"}', "k3"), good]
    assert [r["outcome"] for r in records[:3]] == [
        "unreadable: not JSON (Expecting property name enclosed in double quotes)",
        "unreadable: a JSON list, not an object", "unreadable: no time"]
    assert [r["resource"] for r in records[:3]] == ["k1", "k2", "k3"]
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert select(records, model=None, since=since)[-1] is good
    assert len(select(records, model=None, since=since)) == 4


def test_a_missing_registry_bucket_means_nothing_is_deployed(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from framework import workflow

    # Stages other tests opened in this process are not this command's.
    monkeypatch.setattr(workflow, "_OPENED", [])
    exc = ClientError({"Error": {"Code": "NoSuchBucket", "BucketName": "b-1"}}, "ListObjects")
    assert workflow.explain(exc) is None  # no stage opened: nothing known
    workflow._OPENED.append(workflow.Workspace.open(project.yaml))
    try:
        explained = workflow.explain(exc)
    finally:
        workflow._OPENED.pop()
    assert explained is not None
    assert explained.render() == ("nothing is deployed for cancer-dx/dev (its registry bucket "
                                  "b-1 does not exist)\n  hint: deploy it with `mlops deploy`")
    assert workflow.explain(ClientError({"Error": {"Code": "AccessDenied"}}, "Get")) is None
