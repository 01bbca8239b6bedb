"""The dashboard's pages from synthetic data: escaping, links, charts, files, publishing; and
the same pages in a real headless browser."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from framework.dashboard import broken_links, render_site, write
from framework.dashboard.collect import EndpointView, ModelView, MonitorView, RunView, SiteData
from framework.dashboard.render import card_page, model_page, monitor_page, report_page, safe
from framework.dashboard.site import content_type, links
from framework.rollout.record import RolloutRecord
from tests.dashboard import browser

EVIL = '<script>alert("x")</script>'


def _meta(version: str, parent: str | None) -> dict[str, Any]:
    return {"name": "fraud-clf", "version": version, "created_at": f"2026-01-0{version[2]}",
            "author": EVIL, "sha256": "ab" * 32, "metrics": {"auc": 0.97},
            "description": f"desc {EVIL}", "lineage": {"parent": parent, "data": "d" * 64,
                                                      "code": "c" * 40}}


def _run(i: int, status: str, share: float) -> RunView:
    run_id = f"2026010{i}T000000Z-abc{i}"
    report = {"subject": f"[{status.upper()}] m", "summary": f"summary {i} {EVIL}",
              "charts": {"drift_share": {"ewma": {"statistic": [0.1, 0.2, share],
                                                  "upper": [0.3] * 3, "lower": [0.0] * 3,
                                                  "flagged": [2], "center": 0.1}}}}
    return RunView(run_id=run_id, time=f"2026-01-0{i}T00:00:00Z", status=status,
                   figures={"drift_share": share, "rows": 100 + i},
                   window={"start": "a", "end": "b"}, report_key=f"reports/m/{run_id}/r.json",
                   report=report, html=b"<html><body><h1>stored report</h1></body></html>")


def site_data() -> SiteData:
    rec = RolloutRecord(stage="dev", endpoint="score", function="f", alias="live", stable="1",
                        candidate="2", stable_model="1.0.0", candidate_model="1.1.0",
                        strategy="canary", steps=[{"weight": 10}, {"weight": 100}],
                        status="rolled_back", reason=f"error rate {EVIL}", started_at=1.7e9,
                        updated_at=1.7e9 + 60,
                        history=[{"time": 1.7e9, "event": "start", "step": 0}])
    model = ModelView(
        name="fraud-clf", versions=[_meta("1.0.0", None), _meta("1.1.0", "1.0.0")],
        aliases={"production": "1.0.0"},
        history=[{"changed_at": "2026-01-02", "alias": "production", "action": "promote",
                  "previous": None, "version": "1.0.0", "changed_by": EVIL, "seq": 1}],
        approvals={"1.0.0": [{"by": "dr", "alias": "production", "time": "t", "note": EVIL}]},
        cards={"1.0.0": "<html><body><h1>card 1.0.0</h1></body></html>",
               "1.1.0": "<html><body><h1>card 1.1.0</h1></body></html>"},
        declared="1.1.0")
    odd = _run(4, "failure", 0.0)
    odd.run_id = "../../etc/passwd"  # stored data is not trusted to name files
    return SiteData(
        project="fraud", stage="dev", target="local", region="us-east-1", account="1",
        bucket="b", generated_at="2026-01-05T00:00:00Z", models=[model],
        endpoints=[EndpointView(name="score", route="POST /fraud/score", url="http://x/y",
                                model="fraud-clf", model_version="1.0.0", lambda_version="1",
                                rollout=rec)],
        monitors=[MonitorView(name="fraud-drift", endpoint="score", schedule="rate(1 day)",
                              runs=[_run(1, "ok", 0.0), _run(2, "ok", 0.05),
                                    _run(3, "drift", 0.4), odd]),
                  MonitorView(name="idle", endpoint="gone", schedule="rate(1 hour)", runs=[])],
        audit=[{"time": f"2026-01-0{i}T00:00:00Z", "actor": EVIL, "action": "create",
                "resource": "api", "outcome": "succeeded", "before": None,
                "after": {"x": EVIL}} for i in range(1, 4)],
        warnings=[f"warn {EVIL}"])


def test_pages_escape_everything_and_link_only_to_written_pages(tmp_path: Path) -> None:
    pages = render_site(site_data())
    assert {"index.html", "audit.html", model_page("fraud-clf"),
            card_page("fraud-clf", "1.0.0"), card_page("fraud-clf", "1.1.0"),
            monitor_page("fraud-drift"), monitor_page("idle"),
            report_page("fraud-drift", "20260103T000000Z-abc3")} <= set(pages)
    for path, text in pages.items():
        if "card" in path or "/fraud-drift/" in path:
            continue  # stored HTML is copied as is (the registry rendered and escaped it)
        assert "<script>alert" not in text, path
        assert "external" not in text and "http://" not in text.replace("http://x/y", "") \
            .replace('xmlns="http://www.w3.org/2000/svg"', ""), path
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in pages["index.html"]
    for rel in pages:
        assert ".." not in rel and rel == rel.strip("/")
    assert report_page("fraud-drift", "../../etc/passwd").startswith("monitors/fraud-drift/")
    write(pages, tmp_path / "site")
    assert broken_links(tmp_path / "site") == []


def test_monitor_page_has_charts_and_history(tmp_path: Path) -> None:
    page = render_site(site_data())[monitor_page("fraud-drift")]
    assert page.count("<svg") >= 4  # verdict strip, drift_share and rows EWMA, stored chart
    assert "drift_share · ewma" in page and "1 out-of-control point(s)" in page
    assert re.search(r"<polyline points=\"[0-9., ]+\"", page)
    index = render_site(site_data())["index.html"]
    assert "FAILURE" in index and "rolled back" in index and "1.0.0 → 1.1.0" in index


def test_write_removes_stale_pages_and_safe_names(tmp_path: Path) -> None:
    site = tmp_path / "site"
    data = site_data()
    write(render_site(data), site)
    stale = site / monitor_page("idle")
    assert stale.exists()
    data.monitors = data.monitors[:1]
    write(render_site(data), site)
    assert not stale.exists() and broken_links(site) == []
    assert safe("1.2.0-rc.1") == "1.2.0-rc.1"
    assert "/" not in safe("../x") and safe("../x") != safe("..x")
    assert content_type("a/b.html") == "text/html; charset=utf-8"
    assert links('<a href="x.html">x</a><img src="y.png">') == ["x.html", "y.png"]


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<a href="missing.html">x</a><a href="#top">t</a>'
                                         '<a href="https://example.com/">e</a>')
    assert broken_links(tmp_path) == [("index.html", "missing.html")]


def test_pages_in_a_real_browser(tmp_path: Path) -> None:
    browser.require()
    site = tmp_path / "site"
    write(render_site(site_data()), site)
    dom = browser.dump_dom(site / monitor_page("fraud-drift"))
    assert "Monitor fraud-drift" in dom and dom.count("<svg") >= 4 and "<polyline" in dom
    audit = browser.dump_dom(site / "audit.html")
    assert audit.count('class="row"') == 3 and "<script>alert" not in audit.split("<script>")[0]
    png = browser.screenshot(site / monitor_page("fraud-drift"), tmp_path / "monitor.png")
    colours = {c[:3] for c in browser.png_colours(png)}
    assert len(colours) > 20, "the page rendered blank"
    assert bytes.fromhex("1565c0") in colours, "no chart line drawn (EWMA statistic colour)"


@pytest.mark.parametrize("page", ["index.html", "audit.html"])
def test_every_link_of_the_rendered_dom_loads(tmp_path: Path, page: str) -> None:
    browser.require()
    site = tmp_path / "site"
    write(render_site(site_data()), site)
    dom = browser.dump_dom(site / page)
    for link in links(dom):
        if link.startswith(("http", "#")):
            continue
        target = (site / page).parent / urllib.parse.unquote(link)
        assert target.is_file(), link
    assert "fraud-clf" in dom
