"""The example's monitor on the embedded local AWS: clean traffic is [OK], shifted traffic is
found by the *scheduled* run (the scheduler's clock moved a day forward, nothing fired by
hand), the report lands under reports/ and the [DRIFT] e-mail lands in the outbox and on a
real SMTP server the daemon relays to."""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import pytest

from framework import workflow
from tests.e2e.conftest import EXAMPLE, REPO, Project, http
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
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert str(msg["Subject"]).startswith(f"[DRIFT] {MONITOR}: ")
        assert str(msg["To"]) == "oncology-ops@example.com"
        types = [p.get_content_type() for p in msg.walk()]
        assert {"text/plain", "text/html", "application/json"} <= set(types)
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

