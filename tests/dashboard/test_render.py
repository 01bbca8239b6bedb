"""The dashboard page from synthetic data: escaping, anchors, charts, files, snapshots; and the
same page in a real headless browser, where no table may be wider than a 1024 px window."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from framework.dashboard.data import (
    EndpointView,
    ModelView,
    MonitorView,
    RolloutView,
    RunView,
    SiteData,
)
from framework.dashboard.render import anchor, change, render_page, render_site, safe
from framework.dashboard.site import broken_links, content_type, links, write
from tests.dashboard import browser

EVIL = '<script>alert("x")</script>'
LONG = "arn:aws:lambda:eu-west-1:123456789012:function:" + "fraud-prod-score" * 6


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
                   report=report)


def _audit(i: int) -> dict[str, Any]:
    before = {"arn": LONG, "version": str(i), "code_sha256": "f" * 64, "url": None}
    after = {"arn": LONG, "version": str(i + 1), "code_sha256": "e" * 64,
             "url": "https://abc.execute-api.eu-west-1.amazonaws.com/" + "x" * 80}
    return {"id": f"id{i}", "time": f"2026-01-0{i}T00:00:00.000000Z", "actor": EVIL + LONG,
            "command": "mlops deploy", "action": "update", "resource": "function.score",
            "outcome": "succeeded", "before": before, "after": {**after, "x": EVIL}}


def site_data() -> SiteData:
    rec = RolloutView(endpoint="score", strategy="canary", status="rolled_back", stable="1",
                      candidate="2", stable_model="1.0.0", candidate_model="1.1.0",
                      steps=[{"weight": 10}, {"weight": 100}], step=0, weight=0,
                      started_at=1.7e9, updated_at=1.7e9 + 60, reason=f"error rate {EVIL}",
                      history=[{"time": 1.7e9, "event": "start", "step": 0}])
    model = ModelView(
        name="fraud-clf", versions=[_meta("1.0.0", None), _meta("1.1.0", "1.0.0")],
        aliases={"production": "1.0.0"},
        history=[{"changed_at": "2026-01-02", "alias": "production", "action": "promote",
                  "previous": None, "version": "1.0.0", "changed_by": EVIL, "seq": 1}],
        approvals={"1.0.0": [{"by": "dr", "alias": "production", "time": "t", "note": EVIL}]},
        cards={"1.0.0": "<h1>Model card: fraud-clf@1.0.0</h1><h2>Overview</h2>",
               "1.1.0": "<h1>Model card: fraud-clf@1.1.0</h1>"},
        declared="1.1.0")
    odd = _run(4, "failure", 0.0)
    odd.run_id = "../../etc/passwd"  # stored data is not trusted
    return SiteData(
        project="fraud", stage="dev", target="local", region="us-east-1", account="1",
        bucket="b", generated_at="2026-01-05T00:00:00Z", read_at="2026-01-04T00:00:00Z",
        models=[model],
        endpoints=[EndpointView(name="score", route="POST /fraud/score",
                                url="http://x/" + "y" * 150, model="fraud-clf",
                                model_version="1.0.0", lambda_version="1", rollout=rec)],
        monitors=[MonitorView(name="fraud-drift", endpoint="score", schedule="rate(1 day)",
                              runs=[_run(1, "ok", 0.0), _run(2, "ok", 0.05),
                                    _run(3, "drift", 0.4), odd]),
                  MonitorView(name="idle", endpoint="gone", schedule="rate(1 hour)", runs=[])],
        audit=[_audit(i) for i in range(1, 4)],
        warnings=[f"warn {EVIL}"])


def test_one_page_escapes_everything_and_every_anchor_resolves(tmp_path: Path) -> None:
    pages = render_site(site_data())
    assert list(pages) == ["index.html"]
    page = pages["index.html"]
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # one object: nothing it needs comes from elsewhere, no link to another file
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page)
    external = [x for x in links(page) if not x.startswith("#")]
    assert external == [], external
    assert f'id="{anchor("model", "fraud-clf")}"' in page and 'href="#model-fraud-clf"' in page
    assert 'id="monitor-fraud-drift"' in page and 'id="endpoint-score"' in page
    assert "Model card of fraud-clf@1.0.0" in page and "<h4>Model card: fraud-clf@1.0.0" in page
    assert "Built by mlops dashboard at 2026-01-05T00:00:00Z; models, endpoints and rollouts " \
           "as read at 2026-01-04T00:00:00Z" in page
    write(pages, tmp_path / "site")
    assert broken_links(tmp_path / "site") == []


def test_monitor_section_has_charts_and_history() -> None:
    page = render_page(site_data())
    section = page.split('id="monitor-fraud-drift"')[1].split('id="monitor-idle"')[0]
    assert section.count("<svg") >= 4  # verdict strip, drift_share and rows EWMA, stored chart
    assert "drift_share · ewma" in section and "1 out-of-control point(s)" in section
    assert re.search(r"<polyline points=\"[0-9., ]+\"", section)
    assert "../../etc/passwd" in section  # shown, escaped text; names no file
    assert "FAILURE" in page and "rolled back" in page and "1.0.0 → 1.1.0" in page


def test_before_after_shows_only_what_changed_one_field_a_line() -> None:
    cell = change({"arn": "a", "version": "1", "same": 1}, {"arn": "a", "version": "2",
                                                           "same": 1})
    assert cell.count('class="chg"') == 1 and "<b>version</b>" in cell and "same" not in cell
    assert '<span class="old">1</span> → <span class="new">2</span>' in cell
    created = change(None, {"arn": "a", "url": None})
    assert "created" in created and "<b>arn</b>" in created and "url" not in created
    assert "removed" in change({"arn": "a"}, None)
    assert change("1.0.0", "1.1.0").count("→") == 1
    assert change(None, None) == ""
    assert "unchanged" in change({"a": 1}, {"a": 1})
    assert "&lt;script&gt;" in change(None, {"x": EVIL})


def test_snapshot_round_trips_without_the_runs() -> None:
    data = site_data()
    again = SiteData.from_snapshot(data.snapshot())
    assert again.models == data.models and again.endpoints == data.endpoints
    assert again.audit == data.audit and again.read_at == data.read_at
    assert [m.name for m in again.monitors] == ["fraud-drift", "idle"]
    assert all(m.runs == [] for m in again.monitors)
    assert isinstance(again.endpoints[0].rollout, RolloutView)
    for bad in (b"[]", b"{}", b'{"format": "mlops.dashboard/1"}', b"not json"):
        with pytest.raises(ValueError):
            SiteData.from_snapshot(bad)


def test_write_removes_pages_of_an_earlier_build(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "audit.html").write_text("old")
    (site / "manifest.json").write_text(json.dumps({"pages": ["audit.html", "index.html"]}))
    write(render_site(site_data()), site)
    assert not (site / "audit.html").exists() and (site / "index.html").is_file()
    assert safe("1.2.0-rc.1") == "1.2.0-rc.1"
    assert "/" not in safe("../x") and safe("../x") != safe("..x")
    assert content_type("a/b.html") == "text/html; charset=utf-8"
    assert links('<a href="x.html">x</a><img src="y.png">') == ["x.html", "y.png"]


def test_broken_links_and_anchors_are_found(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<a href="missing.html">x</a><a href="#top">t</a>'
                                         '<h2 id="here">h</h2><a href="#here">ok</a>'
                                         '<a href="https://example.com/">e</a>')
    assert broken_links(tmp_path) == [("index.html", "missing.html"), ("index.html", "#top")]


MEASURE = """<script>
window.addEventListener('load', function () {
  var width = document.documentElement.clientWidth, out = {width: width, wide: [], cut: []};
  document.querySelectorAll('table, svg, pre, p, h1, h2, h3, h4, details').forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.right > width + 0.5) out.wide.push(el.tagName + ' ' + (el.id || '') + ' ' + r.right);
  });
  document.querySelectorAll('td, th').forEach(function (c) {
    if (c.scrollWidth > c.clientWidth + 1) out.cut.push(c.textContent.slice(0, 60));
  });
  out.scroll = document.documentElement.scrollWidth;
  var pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_tables_fit_a_1024px_window_in_a_real_browser(tmp_path: Path) -> None:
    browser.require()
    data = site_data()
    data.audit = [_audit(1 + i % 8) for i in range(40)]
    page = render_page(data).replace("</body>", MEASURE + "</body>")
    (tmp_path / "index.html").write_text(page)
    dom = browser.dump_dom(tmp_path / "index.html", size="1024,768")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["width"] <= 1024 and measured["width"] > 900, measured
    assert measured["wide"] == [], measured["wide"]  # no table (or anything) past the window
    assert measured["scroll"] <= measured["width"], measured  # no horizontal scrolling
    assert measured["cut"] == [], measured["cut"]  # every cell shows all it holds
    assert dom.count('class="row"') >= 40 and "Monitor fraud-drift" in dom


def test_page_renders_in_a_real_browser(tmp_path: Path) -> None:
    browser.require()
    write(render_site(site_data()), tmp_path / "site")
    dom = browser.dump_dom(tmp_path / "site" / "index.html")
    assert "Monitor fraud-drift" in dom and dom.count("<svg") >= 4 and "<polyline" in dom
    assert dom.count('class="row"') >= 3 and "<script>alert" not in dom.split("<script>")[0]
    png = browser.screenshot(tmp_path / "site" / "index.html", tmp_path / "page.png",
                             size="1024,3000")
    colours = {c[:3] for c in browser.png_colours(png)}
    assert len(colours) > 20, "the page rendered blank"
    assert bytes.fromhex("1565c0") in colours, "no chart line drawn (EWMA statistic colour)"
