"""A monitor run end to end on a MemoryStore: verdicts, bad inputs, reports, e-mail, actions."""

from __future__ import annotations

import email
import gzip
import json
from email import policy
from typing import Any

import numpy as np
import pytest

from framework.monitoring import charts, performance
from framework.monitoring.mailer import build_message
from framework.monitoring.run import Clients, run_monitor
from tests.monitoring.support import (
    WINDOW,
    put_capture,
    put_feedback,
    put_jsonl,
    records,
    spec,
    store_with_reference,
)


class FakeSes:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.sent: list[dict[str, Any]] = []

    def send_raw_email(self, **kwargs: Any) -> dict[str, str]:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("smtp relay unreachable")
        self.sent.append(kwargs)
        return {"MessageId": f"m{len(self.sent)}"}


class FakeCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def _clients(ses: FakeSes | None = None) -> Clients:
    return Clients(ses=ses or FakeSes(), cloudwatch=FakeCloudWatch(), sleep=lambda _s: None)


def test_drift_detected_reported_and_mailed() -> None:
    store = store_with_reference()
    rows = records(np.random.default_rng(5), 600, {"x1": 0.7, "x3": 0.9})
    put_capture(store, rows)
    put_feedback(store, rows, flip=0.1)
    ses = FakeSes()
    clients = _clients(ses)
    report = run_monitor(spec(), store, WINDOW, clients)
    assert report["status"] == "drift"
    assert report["subject"] == "[DRIFT] m-drift: 2 of 6 features drifted"
    assert sorted(report["drift"]["drifted"]) == ["x1", "x3"]
    assert report["performance"]["labelled"] == 600
    assert report["performance"]["overall"]["accuracy"] == pytest.approx(0.9, abs=0.05)
    assert report["notification"]["sent"] is True and len(ses.sent) == 1
    keys = [k for k in store.objects if k.startswith("reports/m-drift/")]
    assert any(k.endswith("report.json") for k in keys)
    assert any(k.endswith("report.html") for k in keys)
    saved = json.loads(store.objects[report["report_key"]])
    assert saved["notification"]["sent"] is True
    html = store.objects[report["report_key"].replace(".json", ".html")].decode()
    assert "<svg" in html and "x1" in html and "http" not in html.split("</head>")[0].lower()
    metrics = clients.cloudwatch.calls  # type: ignore[union-attr]
    assert metrics and metrics[0]["Namespace"] == "mlops/proj"


def test_no_drift_is_ok_and_not_mailed_when_drift_only() -> None:
    store = store_with_reference()
    put_capture(store, records(np.random.default_rng(6), 600))
    ses = FakeSes()
    report = run_monitor(spec(), store, WINDOW, _clients(ses))
    assert report["status"] == "ok" and report["subject"].startswith("[OK] m-drift: no drift")
    assert not ses.sent and report["notification"]["sent"] is False


def test_empty_window_reports_no_data() -> None:
    store = store_with_reference()
    report = run_monitor(spec(), store, WINDOW, _clients())
    assert report["status"] == "no_data"
    assert "no captured traffic" in report["subject"]
    assert report["notification"]["sent"] is False  # the default when does not mail NO DATA
    assert report["notification"]["reason"] == \
        "notify.when is drift, degraded, failure and the status is no_data"
    for when, sent in (("always", True), ("no_data", True), (["drift", "no_data"], True),
                       ("failure", False), ("drift", False), (["drift", "degraded"], False)):
        notify = {"email": ["ops@example.com"], "when": when}
        report = run_monitor(spec(notify=notify), store, WINDOW, _clients())
        assert report["status"] == "no_data" and report["notification"]["sent"] is sent, when


def test_missing_feature_nan_unseen_category_and_corrupt_file() -> None:
    store = store_with_reference()
    rows = records(np.random.default_rng(7), 400)
    for i, r in enumerate(rows):
        del r["inputs"]["x4"]
        if i % 10 == 0:
            r["inputs"]["x2"] = float("nan")
        if i % 5 == 0:
            r["inputs"]["colour"] = "purple"
    put_capture(store, rows)
    store.put("capture/score/dt=2024-05-01/broken.jsonl.gz", b"not gzip at all", "x")
    put_jsonl(store, "capture/score/dt=2024-05-01/partial.jsonl.gz", [])
    store.put("capture/score/dt=2024-05-01/halfjson.jsonl.gz",
              gzip.compress(b'{"time": "2024-05-01T01:00:00Z", "inputs": {}}\n{oops'), "x")
    report = run_monitor(spec(), store, WINDOW, _clients())
    kinds = {i["kind"] for i in report["issues"]}
    assert {"missing_feature", "nan", "unseen_category", "corrupt_file",
            "corrupt_records"} <= kinds
    assert "x4" not in [t["feature"] for t in report["drift"]["tests"]]
    assert "colour" in report["drift"]["drifted"]
    html = store.objects[report["report_key"].replace(".json", ".html")].decode()
    assert "missing from every captured record" in html and "cannot be read" in html


def test_missing_reference_is_a_failure_report() -> None:
    from framework.monitoring.store import MemoryStore

    store = MemoryStore()
    ses = FakeSes()
    report = run_monitor(spec(), store, WINDOW, _clients(ses))
    assert report["status"] == "failure" and report["subject"].startswith("[FAILURE]")
    assert ses.sent  # failures are mailed
    assert report["report_key"] in store.objects


def test_unreachable_mail_is_retried_recorded_and_kept() -> None:
    store = store_with_reference()
    put_capture(store, records(np.random.default_rng(5), 300, {"x0": 1.0}))
    ses = FakeSes(fail=5)
    report = run_monitor(spec(), store, WINDOW, _clients(ses))
    note = report["notification"]
    assert note["sent"] is False and note["attempts"] == 3 and len(note["errors"]) == 3
    assert note["eml"] in store.objects  # the message is never lost
    assert json.loads(store.objects[report["report_key"]])["notification"]["sent"] is False


def test_performance_degraded_and_alarm() -> None:
    store = store_with_reference()
    rows = records(np.random.default_rng(8), 400)
    put_capture(store, rows)
    put_feedback(store, rows, flip=0.4)
    s = spec(alarms={"latency_p99_ms": "<=1", "accuracy": ">=0.8"}, drift={"prediction": False})
    report = run_monitor(s, store, WINDOW, _clients())
    assert report["status"] == "degraded"
    assert report["performance"]["degraded"] is True
    assert {a["figure"] for a in report["alarms"] if a["breached"]} == {"latency_p99_ms",
                                                                       "accuracy"}
    assert report["performance"]["by_version"]["1"]["labelled"] == 400


def test_history_builds_control_charts() -> None:
    store = store_with_reference()
    for day in range(6):
        from datetime import timedelta

        from framework.monitoring.spec import Window
        start = WINDOW.start + timedelta(days=day)
        shift = {"x0": 1.5} if day == 5 else {}
        put_capture(store, records(np.random.default_rng(day), 300, shift, start=start),
                    name=f"d{day}")
        report = run_monitor(spec(), store, Window(start, start + timedelta(days=1)),
                             _clients())
    assert "drift_share" in report["charts"]
    assert len(report["charts"]["rows"]["ewma"]["values"]) == 6
    assert "drift_share" in report["charts"]


class FakeLambda:
    def __init__(self) -> None:
        self.alias = "3"

    def get_alias(self, **_k: Any) -> dict[str, str]:
        return {"FunctionVersion": self.alias}

    def get_paginator(self, _name: str) -> Any:
        class P:
            def paginate(self, **_k: Any) -> list[dict[str, Any]]:
                models = {"$LATEST": "1.0.1", "1": "1.0.0", "2": "1.0.0", "3": "1.0.1"}
                return [{"Versions": [{"Version": v, "Environment": {"Variables": {
                    "MLOPS_MODEL_NAME": "m", "MLOPS_MODEL_VERSION": model}}}
                    for v, model in models.items()]}]
        return P()

    def update_alias(self, **k: Any) -> None:
        self.alias = k["FunctionVersion"]


def test_rollback_and_retrain_actions() -> None:
    store = store_with_reference()
    put_capture(store, records(np.random.default_rng(5), 300, {"x0": 1.0}))
    lam = FakeLambda()
    audits: list[dict[str, Any]] = []
    clients = Clients(ses=FakeSes(), lam=lam, audit=lambda **kw: audits.append(kw),
                      sleep=lambda _s: None)
    report = run_monitor(spec(on_drift=["notify", "rollback", "retrain"]), store, WINDOW,
                         clients)
    assert lam.alias == "2"
    assert audits[0]["action"] == "rollback"
    assert audits[0]["before"] == {"version": "3", "model_version": "1.0.1"}
    assert audits[0]["after"] == {"version": "2", "model_version": "1.0.0"}
    done = {a["action"]: a for a in report["actions"]}
    assert done["rollback"]["ok"] and done["retrain"]["request"] in store.objects


def test_email_mime_structure() -> None:
    report = {"subject": "[DRIFT] m: 1 of 2 features drifted", "status": "drift",
              "monitor": "m", "summary": "x", "drift": {"tests": [], "drifted": []},
              "distributions": {"x": {"kind": "categorical", "labels": ["a"],
                                      "reference": [1.0], "current": [0.5]}}}
    raw = build_message(report, "ops@example.com", ["ops@example.com", "b@example.com"])
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == report["subject"]
    assert msg.get_content_type() == "multipart/mixed"
    alt = next(p for p in msg.iter_parts() if p.get_content_type() == "multipart/alternative")
    types = [p.get_content_type() for p in alt.iter_parts()]
    assert types == ["text/plain", "multipart/related"]
    related = list(alt.iter_parts())[1]
    parts = list(related.iter_parts())
    assert parts[0].get_content_type() == "text/html"
    assert parts[1].get_content_type() == "image/png"
    cid = parts[1]["Content-ID"].strip("<>")
    assert f"cid:{cid}" in parts[0].get_content()
    assert [p.get_filename() for p in msg.iter_attachments()] == ["report.html", "report.json"]
    attach = [p for p in msg.iter_attachments() if p.get_filename() == "report.json"]
    assert json.loads(attach[0].get_content())["status"] == "drift"


def test_ewma_and_cusum_flag_a_shift() -> None:
    values = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 2.0, 2.1, 2.0]
    e = charts.ewma(values, baseline=7)
    c = charts.cusum(values, baseline=7)
    assert e.flagged and e.flagged[0] == 7 and all(i >= 7 for i in e.flagged)
    assert c.flagged and min(c.flagged) >= 7
    assert not charts.ewma(values[:7], baseline=7).flagged
    ph = charts.page_hinkley([0.0] * 20 + [5.0] * 20, threshold=20)
    assert ph.flagged and min(ph.flagged) >= 20


def test_ewma_limits_closed_form() -> None:
    e = charts.ewma([0.0, 0.0], lam=0.5, width=3.0, mean=0.0, std=1.0)
    assert e.upper[0] == pytest.approx(3 * (0.5 / 1.5 * (1 - 0.25)) ** 0.5)


def test_classification_and_regression_metrics() -> None:
    m = performance.classification_metrics(["y", "y", "n", "n"], ["y", "n", "n", "y"],
                                           [0.9, 0.4, 0.2, 0.6], "y")
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["roc_auc"] == pytest.approx(0.75)
    r = performance.regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert r["mae"] == pytest.approx(1 / 3) and r["rmse"] == pytest.approx((1 / 3) ** 0.5)
    assert r["r2"] == pytest.approx(0.5)


def test_roc_auc_scores_the_declared_positive_class_not_the_last() -> None:
    # Classes ["no", "yes"]: "yes" is last. With performance.positive "no" the scores must be
    # P(no); scoring P(yes) against "no" labels would turn a perfect ranking into AUC 0.
    store = store_with_reference()
    rows = records(np.random.default_rng(6), 400)
    put_capture(store, rows)
    put_feedback(store, rows)
    perf = {"metric": "roc_auc", "min": 0.9, "positive": "no", "min_labels": 20}
    report = run_monitor(spec(performance=perf), store, WINDOW, _clients())
    assert report["performance"]["positive"] == "no"
    assert report["performance"]["value"] == pytest.approx(1.0)
    assert report["performance"]["degraded"] is False
