"""The example's monitor on the embedded local AWS: clean traffic is [OK], shifted traffic is
found by the *scheduled* run (the scheduler's clock moved a day forward, nothing fired by
hand), the report lands under reports/ and the [DRIFT] e-mail lands in the outbox and on a
real SMTP server the daemon relays to."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from framework import workflow
from tests.e2e.conftest import EXAMPLE, REPO, Project, http
from tests.monitoring.email_checks import check_message
from tests.smtp import smtp_server

MONITOR = "diagnosis-drift"


def _now(shift_s: float = 0) -> str:
    """An ISO time; windows are kept to whole seconds, so bounds get a second of margin."""
    return (datetime.now(UTC) + timedelta(seconds=shift_s)).isoformat(timespec="seconds")


def _simulate(url: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / EXAMPLE / "simulate_drift.py"), url,
                           *args], capture_output=True, text=True, timeout=120, check=True)
    return proc.stdout


def _clock(gateway: str, **body: Any) -> dict[str, Any]:
    status, _, answer = http("POST", f"{gateway}/_mlops/clock", json.dumps(body).encode())
    assert status == 200, answer
    return dict(answer)


def test_monitor_fires_on_schedule_and_mails_the_drift(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_server() as smtp:
        # The daemon is started by the first mlops command and inherits this environment.
        monkeypatch.setenv("MLOPS_SMTP_RELAY", f"127.0.0.1:{smtp.port}")
        deployed = project.mlops("deploy")
        url = re.search(r"endpoint predict .*: (http://\S+)", deployed.stdout)
        assert url, deployed.stdout
        home = project.root / ".mlops" / "local"
        gateway = json.loads((home / "daemon.json").read_text())["gateway_url"]

        # The deployed rule is on the local scheduler: rate(1 day), first fire a day out.
        status, _, listed = http("GET", f"{gateway}/_mlops/schedules")
        assert status == 200
        (rule,) = [s for s in listed["schedules"] if s["rule"].endswith(MONITOR)]
        assert rule["expression"] == "rate(1 day)" and rule["enabled"]
        anchor = datetime.fromisoformat(rule["anchor"].replace("Z", "+00:00"))
        next_fire = datetime.fromisoformat(rule["next_fire"].replace("Z", "+00:00"))
        assert (next_fire - anchor).total_seconds() == 86400
        assert rule["targets"][0].endswith(":live")

        start = _now(-1)
        _simulate(url.group(1), "--clean", "--rows", "150")
        end = _now(+1)

        # An hour later nothing is due yet.
        assert _clock(gateway, advance=3600)["fires"] == []

        # By hand, over the clean traffic only: the deployed function runs on the local runner.
        clean = project.mlops("monitor", "run", MONITOR, "--window", f"{start}..{end}")
        assert clean.stdout.startswith(f"[OK] {MONITOR}: no drift in 30 features"), clean.stdout
        assert "deployed function, version 1" in clean.stdout
        assert "not sent (notify.when is drift and the status is ok)" in clean.stdout

        _simulate(url.group(1), "--rows", "300")

        # A day later the scheduler fires the monitor by itself.
        moved = _clock(gateway, advance=86400 - 3600 + 60)
        (fire,) = moved["fires"]
        assert fire["ok"], fire
        assert fire["scheduled"] == rule["next_fire"]
        assert fire["function"].endswith(":live") and fire["executed_version"] == "1"
        summary = fire["payload"]
        assert summary["status"] == "drift", summary
        assert summary["subject"].startswith(f"[DRIFT] {MONITOR}: ")
        assert summary["notification"]["sent"], summary

        # The report is in the registry, beside the clean run's.
        session = workflow.open_session(workflow.Workspace.open(project.yaml))
        s3 = session.target.conn.client("s3")
        report = json.loads(s3.get_object(Bucket=session.bucket,
                                          Key=summary["report"])["Body"].read())
        assert report["status"] == "drift" and report["drift"]["drifted"]
        assert "mean_radius" in report["drift"]["drifted"]
        # the window ends at the scheduled time, carried by the rule's input transformer
        assert report["window"]["end"] == fire["scheduled"], (report["window"], fire)
        # prediction drift against the version's own answers on its reference data
        assert report["prediction_drift"]["baseline"] == "reference predictions of " \
            "diagnosis@1.0.0", report["prediction_drift"]
        reference = json.loads(s3.get_object(
            Bucket=session.bucket, Key="models/diagnosis/1.0.0/reference.json")["Body"].read())
        answers = reference["predictions"]["frequencies"]
        assert set(answers) == {"benign", "malignant"} and sum(answers.values()) > 100
        assert report["data"]["rows"] == 450
        keys = [o["Key"] for o in s3.list_objects_v2(
            Bucket=session.bucket, Prefix=f"reports/{MONITOR}/")["Contents"]]
        assert summary["report"].replace(".json", ".html") in keys
        history = json.loads(s3.get_object(
            Bucket=session.bucket, Key=f"reports/{MONITOR}/history.json")["Body"].read())
        assert [h["status"] for h in history] == ["ok", "drift"]

        # The e-mail: one .eml in the outbox (the [OK] run sent none), as SES received it.
        (eml,) = sorted((home / "outbox").glob("*.eml"))
        raw = eml.read_bytes()
        # every cid: resolves, every image is a whole PNG with alt text, the text part names
        # exactly the attachments (see tests/monitoring/email_checks.py)
        msg = check_message(raw)
        assert str(msg["Subject"]).startswith(f"[DRIFT] {MONITOR}: ")
        assert str(msg["To"]) == "oncology-ops@example.com"
        types = [p.get_content_type() for p in msg.walk()]
        assert {"text/plain", "text/html", "application/json"} <= set(types)
        plotted = len(report["distributions"]) + sum(map(len, report["charts"].values())) + (
            1 if report["prediction_drift"].get("plot") else 0)
        assert types.count("image/png") == plotted >= 1, (types, plotted)
        assert [p.get_filename() for p in msg.iter_attachments()] == ["report.html",
                                                                      "report.json"]
        attached = [p for p in msg.iter_attachments() if p.get_filename() == "report.json"]
        assert json.loads(attached[0].get_content())["run_id"] == report["run_id"]
        kept = s3.get_object(Bucket=session.bucket,
                             Key=summary["notification"]["eml"])["Body"].read()
        assert kept == raw
        meta = json.loads(eml.with_suffix(".json").read_text())
        assert meta["status"] == 200 and meta["message_id"]

        # ... relayed to the SMTP server, same bytes (in SMTP's CRLF form).
        (got,) = smtp.wait(1)
        assert got.rcpt_tos == ["oncology-ops@example.com"]
        assert got.data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
        assert "relayed to" in (home / "outbox" / "relay.log").read_text()

        # The CLI reads the outbox.
        listed_mail = project.mlops("mail", "list").stdout
        assert "[DRIFT]" in listed_mail and "outbox" in listed_mail
        shown = project.mlops("mail", "show", "1").stdout
        assert "Subject: [DRIFT]" in shown and "features drifted" in shown
        assert "application/json" in shown.split("parts:")[1]
        assert "image/png" in shown.split("parts:")[1] and "svg" not in shown

        # The fire is recorded; moving on an hour fires nothing more.
        state = json.loads((home / "scheduler.json").read_text())["rules"]
        (entry,) = [v for k, v in state.items() if k.endswith(MONITOR)]
        assert entry["last_fire"]["scheduled"] == rule["next_fire"]
        assert entry["last_fire"]["outcomes"]["monitor"]["ok"]
        assert _clock(gateway, advance=3600)["fires"] == []
        assert "scheduler: rule" in (home / "daemon.log").read_text()

        # --in-process runs the same code in the CLI's process.
        local = project.mlops("monitor", "run", MONITOR, "--in-process", "--window",
                              f"{start}..{end}")
        assert local.stdout.startswith(f"[OK] {MONITOR}") and "(in this process)" in local.stdout



def test_a_drift_rollback_serves_the_previous_model_version_and_status_and_plan_say_so(
        project: Project) -> None:
    """Lambda versions 2 and 3 both serve diagnosis 1.0.1 (3 only has more memory): the
    monitor's rollback goes to version 1, which served 1.0.0; status reads it live, plan
    keeps it and says how to undo it, and only a deploy with --undo-rollback moves back."""
    project.edit("notify: {email: [oncology-ops@example.com], when: drift}",
                 "notify: {email: [oncology-ops@example.com], when: drift}\n"
                 "    on_drift: [notify, rollback]")
    project.mlops("deploy")  # Lambda version 1: diagnosis 1.0.0
    project.use_model(7)
    project.edit("version: 1.0.0", "version: 1.0.1")
    project.mlops("deploy")  # 2: diagnosis 1.0.1
    project.edit("memory: 1024", "memory: 1536")
    project.mlops("deploy")  # 3: diagnosis 1.0.1 again

    def status() -> dict[str, Any]:
        doc = json.loads(project.mlops("status", "-o", "json").stdout)
        return dict(next(e for e in doc["endpoints"] if e["name"] == "predict"))

    before = status()
    assert (before["version"], before["model"], before["note"]) == ("3", "diagnosis 1.0.1", "")
    _simulate(before["url"], "--rows", "300")
    ran = project.mlops("monitor", "run", MONITOR).stdout
    assert ran.startswith(f"[DRIFT] {MONITOR}"), ran
    assert "rollback: done: predict (cancer-dx-dev-predict:live) moved from Lambda version 3 " \
           "(diagnosis 1.0.1) to 1 (diagnosis 1.0.0)" in ran, ran

    after = status()  # read live: the state still records version 3
    assert (after["version"], after["model"]) == ("1", "diagnosis 1.0.0")
    assert (after["state_version"], after["state_model"]) == ("3", "diagnosis 1.0.1")
    assert "rolled back by monitor:diagnosis-drift" in after["note"]
    sample = project.sample()
    executed = ""
    for _ in range(40):  # the data plane reads aliases again within seconds, as Lambda does
        executed = http("POST", after["url"], sample)[1]["x-mlops-executed-version"]
        if executed == "1":
            break
        time.sleep(0.5)
    assert executed == "1"
    table = project.mlops("status").stdout
    assert "version 1 (diagnosis 1.0.0)" in table and "rolled back by monitor" in table

    # The registry's history of the endpoint, and the audit, have the move.
    history = json.loads(project.mlops("models", "history", "diagnosis", "-o", "json").stdout)
    served = [(r["action"], r["lambda_version"], r["version"]) for r in history["records"]
              if r["alias"] == "endpoint-predict"]
    assert served == [("deploy", "1", "1.0.0"), ("deploy", "2", "1.0.1"),
                      ("deploy", "3", "1.0.1"), ("rollback", "1", "1.0.0")]
    audit = json.loads(project.mlops("audit", "-o", "json").stdout)["records"]
    [moved] = [r for r in audit if r.get("kind") == "endpoint_rollback"]
    assert moved["before"] == {"version": "3", "model_version": "1.0.1"}
    assert moved["after"] == {"version": "1", "model_version": "1.0.0"}

    # Nowhere further back to go: the next run says so and moves nothing.
    again = project.mlops("monitor", "run", MONITOR).stdout
    assert "rollback: not done: nothing rolled back: predict (cancer-dx-dev-predict:live) " \
           "serves diagnosis 1.0.0 (Lambda version 1)" in again, again
    assert status()["version"] == "1"

    # plan keeps the rollback and says how to undo it; --undo-rollback moves it back.
    planned = project.mlops("plan").stdout
    assert "0 to update" in planned, planned
    assert "live alias of predict serves version 1 (diagnosis 1.0.0), state says 3 " \
           "(diagnosis 1.0.1)" in planned
    assert "--undo-rollback" in planned
    undo = json.loads(project.mlops("plan", "--undo-rollback", "-o", "json").stdout)
    [act] = [a for a in undo["actions"] if a["id"] == "alias.predict"]
    assert act["op"] == "update" and act["reason"].startswith("undo the rollback")
    # A deploy that would serve the rolled-back model version again is refused.
    project.edit("memory: 1536", "memory: 2048")
    refused = project.mlops("plan", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "deploying would serve diagnosis 1.0.1 again" in refused.stdout + refused.stderr
    project.edit("memory: 2048", "memory: 1536")

    project.mlops("deploy", "--undo-rollback")
    back = status()
    assert (back["version"], back["model"], back["note"]) == ("3", "diagnosis 1.0.1", "")
    assert "Plan: 0 to create, 0 to update" in project.mlops("plan").stdout

    # A move nobody recorded (the console, a script) is moved back by the next deploy.
    session = workflow.open_session(workflow.Workspace.open(project.yaml))
    session.target.conn.client("lambda").update_alias(
        FunctionName="cancer-dx-dev-predict", Name="live", FunctionVersion="2")
    drifted = project.mlops("plan").stdout
    assert "live alias of predict serves version 2 (diagnosis 1.0.1), state says 3 " \
           "(diagnosis 1.0.1): deploy moves it back to 3" in drifted, drifted
    assert "1 to update" in drifted
