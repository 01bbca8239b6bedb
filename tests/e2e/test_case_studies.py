"""The three case studies of examples/, each run end to end by its one command (`run.sh`) on
the embedded local AWS, with small data and short bake times; then the outcomes are checked
where they live: the deploy state, the registry bucket, the outbox and the endpoint."""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest

from framework import workflow
from tests.e2e.conftest import REPO, http
from tests.ports import free_port_pair


class CaseStudy:
    """A copy of examples/<name> (and examples/common.sh) in a temporary folder."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.dir = tmp / "examples" / name
        shutil.copytree(REPO / "examples" / name, self.dir,
                        ignore=shutil.ignore_patterns("work", "artifacts", "data", ".mlops",
                                                      "mlops.lock", "__pycache__"))
        shutil.copy(REPO / "examples" / "common.sh", self.dir.parent / "common.sh")
        self.work = self.dir / "work"
        self.port = free_port_pair()
        self.edit("every: 15s", "every: 2s")  # short canary bakes

    def edit(self, old: str, new: str) -> None:
        path = self.dir / "mlops.yaml"
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1))

    def run(self, **env: str) -> str:
        full = {**os.environ, "MLOPS": f"{sys.executable} -m framework.cli",
                "PY": sys.executable, "MLOPS_LOCAL_PORT": str(self.port), **env}
        proc = subprocess.run(["bash", "run.sh"], cwd=self.dir, env=full, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=840)
        assert proc.returncode == 0, f"run.sh exited {proc.returncode}\n{proc.stdout}"
        return proc.stdout  # what the user sees, errors included, in order

    def session(self) -> workflow.Session:
        return workflow.open_session(workflow.Workspace.open(self.work / "mlops.yaml"),
                                     start_local=False)

    def url(self, endpoint: str) -> str:
        session = self.session()
        return workflow.find_endpoint(session, session.store.load(), endpoint).url

    def s3_json(self, key: str) -> Any:
        session = self.session()
        body = session.target.conn.client("s3").get_object(Bucket=session.bucket, Key=key)
        return json.loads(body["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        session = self.session()
        listed = session.target.conn.client("s3").list_objects_v2(Bucket=session.bucket,
                                                                  Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def reports(self, monitor: str) -> list[dict[str, Any]]:
        """Every run of the monitor, oldest first, as report.json."""
        history = self.s3_json(f"reports/{monitor}/history.json")
        return [self.s3_json(h["report"]) for h in history]

    def mails(self) -> list[email.message.EmailMessage]:
        outbox = self.work / ".mlops" / "local" / "outbox"
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted(outbox.glob("*.eml"))]

    def sample(self) -> bytes:
        return (self.work / "data" / "sample_request.json").read_bytes()


@pytest.fixture
def case(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[CaseStudy]:
    study = CaseStudy(tmp_path, request.param)
    yield study
    from framework import local

    local.stop(study.work / ".mlops" / "local")


def counts(pattern: str, text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(pattern, text)]


@pytest.mark.timeout(900)  # a hang guard: about 80 s idle, several times that loaded
@pytest.mark.parametrize("case", ["fraud"], indirect=True)
def test_fraud_detection(case: CaseStudy) -> None:
    case.edit("rows: 20000", "rows: 8000")
    out = case.run(ROWS="8000", TRAFFIC="400")

    # Gates measured on the hold-out set, for the first version and the retrained one.
    assert out.count("gates of fraud-clf") == 2
    for gate in ("pr_auc", "precision", "recall"):
        assert re.search(rf"│ {gate} +│ >=0\.6 +│ 0\.\d+ +│ pass", out), gate
    assert "FAIL" not in out
    # The endpoint answered the sample: one legitimate payment, one fraud.
    assert '"predictions": [\n    "legit",\n    "fraud"\n  ]' in out

    # Ordinary day: [OK]; card-testing wave: [DRIFT] on amount, merchants and channels.
    ok, drift = case.reports("fraud-drift")
    assert ok["status"] == "ok" and not ok["drift"]["drifted"]
    assert drift["status"] == "drift"
    assert {"amount", "merchant_category", "channel"} <= set(drift["drift"]["drifted"])
    assert drift["performance"]["value"] < ok["performance"]["value"]
    (mail,) = case.mails()
    assert str(mail["Subject"]).startswith("[DRIFT] fraud-drift: ")
    assert str(mail["To"]) == "fraud-ops@example.com"

    # The retrained version took the traffic step by step, while payments kept coming.
    assert "fraud-clf: 1.0.0 → 1.0.1" in out
    assert "20% on 1.0.1" in out
    assert "completed, serving 1.0.1" in out
    during = re.search(r"while the rollout ran: .*\(answered by 1\.0\.0: \d+, 1\.0\.1: \d+\)", out)
    assert during, out
    status, headers, body = http("POST", case.url("score"), case.sample())
    assert status == 200 and body["version"] == "1.0.1"
    # ... and it catches the scheme the first version missed.
    (before, after) = counts(r"card-testing wave: .*caught (\d+) of (\d+) frauds", out)
    assert before[0] / before[1] < 0.5 < 0.8 < after[0] / after[1], (before, after)


@pytest.mark.timeout(900)  # a hang guard: about 80 s idle, several times that loaded
@pytest.mark.parametrize("case", ["healthcare"], indirect=True)
def test_healthcare_diagnosis_support(case: CaseStudy) -> None:
    out = case.run(TRAFFIC="200")

    # The model card states intended use and limitations.
    card = (case.work / ".mlops/cards/diagnosis/1.0.0/card.md").read_text()
    assert "## Intended use" in card and "Decision support" in card
    assert "## Limitations" in card and "569 cases" in card

    # Promotion refused with 0 and with 1 approval; allowed with two named approvers.
    assert "needs 2 approval(s) from dr-house, dr-cuddy, dr-wilson; it has 0" in out
    assert "it has 1 (so far: dr-house)" in out
    assert "promoted diagnosis@1.0.0 to 'production'" in out
    history = case.session()
    aliases = history.target.conn.client("s3").get_object(
        Bucket=history.bucket, Key="models/diagnosis/aliases/production.json")
    assert json.loads(aliases["Body"].read())["version"] == "1.0.0"
    assert len(case.keys("models/diagnosis/1.0.0/approvals/")) == 2

    # The endpoint serves diagnosis@production.
    status, _, body = http("POST", case.url("assess"), case.sample())
    assert status == 200 and body["version"] == "1.0.0"
    assert body["predictions"] == ["benign", "malignant"]
    assert abs(sum(body["probabilities"][0]) - 1) < 1e-5

    # Usual device: [OK]; new device (+8 % sizes): [DRIFT] on the size features only.
    ok, drift = case.reports("diagnosis-drift")
    assert ok["status"] == "ok" and ok["performance"]["metric"] == "recall"
    assert ok["performance"]["value"] >= 0.85
    assert drift["status"] == "drift"
    drifted = set(drift["drift"]["drifted"])
    assert {"mean_radius", "worst_radius"} <= drifted
    assert all(re.search("radius|perimeter|area", f) for f in drifted), drifted
    (mail,) = case.mails()
    assert str(mail["Subject"]).startswith("[DRIFT] diagnosis-drift: ")

    # The retrained version misses more cancers: the recall gate refuses it, nothing ships.
    assert re.search(r"diagnosis@1\.0\.1 failed 1 of \d gate\(s\): recall: 0\.8\d+ misses >=0\.9",
                     out)
    assert case.keys("models/diagnosis/1.0.1/metadata.json") == []
    status, _, body = http("POST", case.url("assess"), case.sample())
    assert body["version"] == "1.0.0"


@pytest.mark.timeout(900)  # a hang guard: about 80 s idle, several times that loaded
@pytest.mark.parametrize("case", ["retail"], indirect=True)
def test_retail_demand_forecasting(case: CaseStudy) -> None:
    out = case.run(TRAFFIC="200")

    for gate in ("rmse", "mae", "r2"):
        assert re.search(rf"│ {gate} +│ [<>]=[\d.]+ +│ [\d.]+ +│ pass", out), gate
    assert "FAIL" not in out

    # Back-test: [OK]; holiday season: [DRIFT] on the calendar and the weather, RMSE degraded,
    # and a retrain request.
    ok, drift = case.reports("demand-drift")
    assert ok["status"] == "ok"
    assert drift["status"] == "drift"
    assert {"week_of_year", "temperature"} <= set(drift["drift"]["drifted"])
    assert drift["performance"]["value"] > 30 > ok["performance"]["value"]
    (requested,) = [a for a in drift["actions"] if a["action"] == "retrain"]
    (mail,) = case.mails()
    assert str(mail["Subject"]).startswith("[DRIFT] demand-drift: ")
    assert "retrain requested" in mail.get_body(preferencelist=("plain",)).get_content()

    # `mlops retrain --pending --deploy` picked it up, learnt from the holiday sales, shipped
    # it by canary; the request is marked done and a second --pending finds nothing.
    done = case.s3_json(requested["request"].replace(".json", ".done.json"))
    assert done["version"] == "1.0.1"
    assert "demand: 1.0.0 → 1.0.1" in out and "completed, serving 1.0.1" in out
    assert "no pending retrain requests" in out
    assert "version: 1.0.1" in (case.work / "mlops.yaml").read_text()
    status, _, body = http("POST", case.url("forecast"), case.sample())
    assert status == 200 and body["version"] == "1.0.1"
    (before, after) = [float(m) for m in re.findall(
        r"holiday season: .*\(answered by [^)]*\); forecast MAE ([\d.]+)", out)][-2:]
    assert after < before / 2, (before, after)
