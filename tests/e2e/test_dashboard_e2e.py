"""The dashboard of a deployed example: rebuilt by ``mlops deploy`` and by the monitor function
after its run, opened through the presigned link the report e-mail carries (plain urllib
against the local control plane, as a browser would) and by ``mlops dashboard --url``, and
laid out in a real headless browser at 1024 px; and ``mlops doctor`` before and after the
first deploy.
"""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from email import policy
from typing import Any

import pytest

from framework import local
from framework.dashboard.site import broken_links
from tests.dashboard import browser
from tests.dashboard.test_render import MEASURE
from tests.e2e.conftest import EXAMPLE, REPO, Project

MONITOR = "diagnosis-drift"
PAGE = "dashboard/cancer-dx/dev/index.html"


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read()


def _page(s3: Any, bucket: str) -> str:
    return str(s3.get_object(Bucket=bucket, Key=PAGE)["Body"].read().decode())


def test_dashboard_of_the_deployed_example(project: Project) -> None:
    browser.require()
    project.mlops("local", "start")  # the doctor reads: it does not start the local AWS
    before = project.mlops("doctor")
    assert "does not exist yet" in before.stdout and "0 fail" in before.stdout, before.stdout
    unpublished = project.mlops("dashboard", "--url", check=False)
    assert unpublished.returncode == 1 and "mlops deploy" in unpublished.stderr + \
        unpublished.stdout, unpublished

    deployed = project.mlops("deploy")
    url = re.search(r"endpoint predict .*: (http://\S+)", deployed.stdout)
    assert url, deployed.stdout
    home = project.root / ".mlops" / "local"
    aws = local.status(home)
    assert aws is not None
    s3 = local.connection(aws, "us-east-1").client("s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "registry" in b["Name"])
    # the deploy published the page and the snapshot the monitor function starts from
    page = _page(s3, bucket)
    assert "Built by mlops deploy" in page and url.group(1) in page
    head = s3.head_object(Bucket=bucket, Key=PAGE)
    assert head["ContentType"] == "text/html; charset=utf-8"
    snapshot = json.loads(s3.get_object(Bucket=bucket, Key="dashboard/cancer-dx/dev/site.json")
                          ["Body"].read())
    assert snapshot["endpoints"][0]["url"] == url.group(1)

    sent = subprocess.run([sys.executable, str(REPO / EXAMPLE / "simulate_drift.py"),
                           url.group(1), "--rows", "120"], capture_output=True, text=True,
                          timeout=120)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    project.mlops("models", "promote", "diagnosis@1.0.0", "--alias", "production")
    ran = project.mlops("monitor", "run", MONITOR)
    assert ran.stdout.startswith(f"[DRIFT] {MONITOR}"), ran.stdout
    assert "deployed function" in ran.stdout  # the deployed zip ran, not this process

    # the monitor function rebuilt the page: this run, the promotion from the audit, and the
    # models and endpoints of the snapshot
    page = _page(s3, bucket)
    assert f"Built by monitor {MONITOR}" in page and "models, endpoints and rollouts as read" \
        in page
    history = json.loads(s3.get_object(Bucket=bucket, Key=f"reports/{MONITOR}/history.json")
                         ["Body"].read())
    assert history[-1]["run_id"] in page and "DRIFT" in page and url.group(1) in page
    assert "mlops models promote" in page  # the audit is read again; the aliases are not
    assert "production → 1.0.0" not in page and "as read at" in page

    # the e-mail carries a presigned link that downloads the page as it is now
    (eml,) = sorted((home / "outbox").glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None
    link = re.search(r"Team dashboard \(until (\S+) at the latest\): (\S+)", text.get_content())
    assert link, text.get_content()
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in link.group(2) and "X-Amz-Expires=604800" in \
        link.group(2)
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None and link.group(2).replace("&", "&amp;") in \
        html_part.get_content()
    status, ctype, body = _get(link.group(2))
    assert (status, ctype) == (200, "text/html; charset=utf-8") and body.decode() == page
    # the bucket is private: the same URL without its signature is refused
    assert _get(link.group(2).split("?")[0])[0] == 403
    stored = json.loads(s3.get_object(Bucket=bucket, Key=history[-1]["report"])["Body"].read())
    assert stored["dashboard"]["key"] == PAGE and "url" not in stored["dashboard"]

    # a fresh link from the CLI, with the expiry asked for
    fresh = project.mlops("dashboard", "--url", "--expires", "2h")
    assert "X-Amz-Expires=7200" in fresh.stdout
    status, _, body = _get(fresh.stdout.strip())
    assert status == 200 and body.decode() == page
    too_long = project.mlops("dashboard", "--url", "--expires", "8d", check=False)
    assert too_long.returncode == 2 and "7 days" in too_long.stderr + too_long.stdout

    # built by hand: the same page, to a folder and published, laid out at 1024 px
    built = project.mlops("dashboard", "--publish")
    site = project.root / ".mlops" / "dashboard"
    assert f"published s3://{bucket}/{PAGE}" in built.stdout and "X-Amz-Signature" in built.stdout
    assert broken_links(site) == []  # every in-page anchor names a section
    index = (site / "index.html").read_text()
    assert "Built by mlops dashboard" in index and f"Monitor {MONITOR}" in index
    assert "Model card of diagnosis@1.0.0" in index and index.count('class="row"') >= 20
    assert "production → 1.0.0" in index and url.group(1) in index
    measured_page = project.root / "measured.html"
    measured_page.write_text(index.replace("</body>", MEASURE + "</body>"))
    dom = browser.dump_dom(measured_page, size="1024,768")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["wide"] == [] and measured["cut"] == [], measured
    assert measured["scroll"] <= measured["width"], measured
    png = browser.screenshot(site / "index.html", project.root / "page.png", size="1024,3000")
    colours = {c[:3] for c in browser.png_colours(png)}
    assert len(colours) > 20 and bytes.fromhex("1565c0") in colours

    # a canary deploy: the page shows its rollout as it ended, not as it started
    project.use_model(7)
    project.edit("version: 1.0.0", "version: 1.1.0")
    project.edit("strategy: all_at_once", "strategy: canary")
    project.edit("steps: [10, 100]", "steps: [50, 100]")
    project.edit("every: 15s", "every: 1s")
    project.mlops("deploy", timeout=300)
    page = _page(s3, bucket)
    assert "Built by mlops deploy" in page
    rollouts = page.split('id="rollouts"')[1].split("</table>")[0]
    assert "1.0.0 → 1.1.0" in rollouts and ">completed<" in rollouts and "100%" in rollouts

    after = project.mlops("doctor")
    assert "exists and is accessible" in after.stdout and "verified" in after.stdout


def test_doctor_layer_check(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.config.models import TargetKind
    from framework.doctor import FAIL, OK, WARN, layer_check
    from framework.workflow import Workspace, compile_workspace

    ws = Workspace.open(project.yaml, "prod")
    graph = compile_workspace(ws, "123456789012", "eu-west-1")  # builds the layers it needs
    assert graph.resources["function.predict"].props["layers"]
    check = layer_check(ws, TargetKind.aws)
    assert check.status == OK and "serve-py313-x86_64" in check.detail, check
    for manifest in (ws.home / "build").glob("layer-*.json"):
        manifest.unlink()
    missing = layer_check(ws, TargetKind.aws)
    assert missing.status == WARN and "not built yet" in missing.detail
    assert "mlops deploy" in missing.hint
    # locally the runtime's own interpreter runs the functions: its absence is said plainly
    monkeypatch.setenv("MLOPS_PYTHON3_13", str(project.root / "no-such-python"))
    local_ = layer_check(ws, TargetKind.local)
    assert local_.status == FAIL and "MLOPS_PYTHON3_13" in local_.detail
