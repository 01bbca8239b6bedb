"""The dashboard of a deployed example, in a real headless browser; and ``mlops doctor`` on the
embedded local AWS before and after the first deploy.

Deploy, send shifted traffic with labels, promote an alias, run the monitor, build the site
(``--publish`` too), then load every page reachable from index.html in chromium, following
the links of the *rendered* DOM, and screenshot the monitor page.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from framework import local
from framework.dashboard import broken_links
from framework.dashboard.site import links
from tests.dashboard import browser
from tests.e2e.conftest import EXAMPLE, REPO, Project

MONITOR = "diagnosis-drift"


def _crawl(site: Path) -> dict[str, str]:
    """Every page reachable from index.html through the rendered DOM: path → DOM."""
    seen: dict[str, str] = {}
    todo = [site / "index.html"]
    while todo:
        page = todo.pop()
        rel = page.resolve().relative_to(site.resolve()).as_posix()
        if rel in seen:
            continue
        assert page.is_file(), f"a link leads to {rel}, which was not written"
        seen[rel] = browser.dump_dom(page)
        for link in links(seen[rel]):
            if urllib.parse.urlsplit(link).scheme or link.startswith("#"):
                continue
            target = (page.parent / urllib.parse.unquote(link.split("#")[0])).resolve()
            assert target.is_relative_to(site.resolve()), link
            todo.append(target)
    return seen


def test_dashboard_of_the_deployed_example_in_a_browser(project: Project) -> None:
    browser.require()
    before = project.mlops("doctor")
    assert "does not exist yet" in before.stdout and "0 fail" in before.stdout, before.stdout

    deployed = project.mlops("deploy")
    url = re.search(r"endpoint predict .*: (http://\S+)", deployed.stdout)
    assert url, deployed.stdout
    sent = subprocess.run([sys.executable, str(REPO / EXAMPLE / "simulate_drift.py"),
                           url.group(1), "--rows", "120"], capture_output=True, text=True,
                          timeout=120)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    project.mlops("models", "promote", "diagnosis@1.0.0", "--alias", "production")
    ran = project.mlops("monitor", "run", MONITOR)
    assert ran.stdout.startswith(f"[DRIFT] {MONITOR}"), ran.stdout

    built = project.mlops("dashboard", "--publish")
    site = project.root / ".mlops" / "dashboard"
    assert "published" in built.stdout and (site / "index.html").is_file()
    written = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    assert broken_links(site) == []

    pages = _crawl(site)
    assert set(pages) == written  # every page is reachable, every link loads
    index = pages["index.html"]
    assert url.group(1) in index and "DRIFT" in index and "diagnosis-drift" in index
    assert "mlops deploy" in index and "production → 1.0.0" in index
    model = pages["models/diagnosis.html"]
    assert "1.0.0" in model and "promote" in model and "model card" in model
    assert "Model card: diagnosis@1.0.0" in pages["models/diagnosis/1.0.0-card.html"]
    mon = pages[f"monitors/{MONITOR}.html"]
    assert mon.count("<svg") >= 3 and "<polyline" in mon and "<rect" in mon
    reports = [p for p in pages if p.startswith(f"monitors/{MONITOR}/")]
    assert len(reports) == 1 and "features drifted" in pages[reports[0]]
    assert pages["audit.html"].count('class="row"') >= 20
    assert "Endpoint predict" in pages["endpoints/predict.html"]

    png = browser.screenshot(site / f"monitors/{MONITOR}.html", project.root / "monitor.png")
    colours = {c[:3] for c in browser.png_colours(png)}
    assert len(colours) > 20 and bytes.fromhex("1565c0") in colours

    home = project.root / ".mlops" / "local"
    aws = local.status(home)
    assert aws is not None
    s3 = local.connection(aws, "us-east-1").client("s3")
    bucket = re.search(r"s3://([^/\s]+)/dashboard/", built.stdout)
    assert bucket, built.stdout
    head = s3.head_object(Bucket=bucket.group(1), Key="dashboard/index.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket.group(1),
                                                 Prefix="dashboard/")["Contents"]}
    assert {f"dashboard/{p}" for p in written} <= keys

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
