"""A monitor survives any captured record: what it cannot use is skipped and counted in the
report's issues (and the e-mail), the verdict still comes out; a run that fails anyway mails a
reason and its run id, never a traceback or a server path (the traceback goes to the log)."""

from __future__ import annotations

import email
import json
import logging
import subprocess
import sys
from email import policy
from typing import Any

import numpy as np
import pytest

from framework.monitoring import run as run_module
from framework.monitoring.check import unusable
from framework.monitoring.run import Clients, reason, run_monitor
from tests.monitoring.support import (
    WINDOW,
    put_capture,
    put_jsonl,
    records,
    spec,
    store_with_reference,
)
from tests.monitoring.test_run import FakeCloudWatch, FakeSes

ALWAYS = {"email": ["ops@example.com"], "when": "always"}


def _clients(ses: FakeSes) -> Clients:
    return Clients(ses=ses, cloudwatch=FakeCloudWatch(), sleep=lambda _s: None)


def _bad_records(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Records as a careless client and an older runtime left them."""
    def bad(i: int, **change: Any) -> dict[str, Any]:
        return {**template, "request_id": f"bad{i}", **change}

    no_inputs = bad(5)
    del no_inputs["inputs"]
    return [
        bad(0, probabilities=[None, None]),  # the float32 overflow answered with nulls
        bad(1, probabilities=[None, None]),
        bad(2, probabilities=["0.2", "0.8"]),
        bad(3, prediction=None),
        bad(4, prediction={"label": "yes"}),
        no_inputs,
        bad(6, inputs="x0=1"),
        bad(7, row="first"),
        bad(8, row=-1),
        bad(9, time="yesterday"),
        bad(10, probabilities="high"),
    ]


def test_unusable_records_are_skipped_counted_and_mailed() -> None:
    store = store_with_reference()
    rows = records(np.random.default_rng(6), 400)
    # usable, with odd values: a string, a null and a huge integer among the inputs
    rows[0]["inputs"]["x1"] = "abc"
    rows[1]["inputs"]["x2"] = None
    rows[2]["inputs"]["x3"] = 10**400
    rows[3]["probabilities"] = None  # a classifier without probabilities: usable
    rows[4]["latency_ms"] = None
    put_capture(store, rows + _bad_records(rows[10]))
    ses = FakeSes()
    report = run_monitor(spec(notify=ALWAYS), store, WINDOW, _clients(ses))

    assert report["status"] == "ok", report.get("error")  # the verdict comes out
    assert report["data"]["rows"] == 400 and report["data"]["skipped"] == 11
    [skipped] = [i for i in report["issues"] if i["kind"] == "skipped_records"]
    assert skipped["count"] == 11
    assert skipped["reasons"] == {
        "capture records whose probabilities are null or not numbers": 4,
        "capture records whose prediction is null or not a value": 2,
        "capture records without an inputs object": 2,
        "capture records whose row is not a non-negative integer": 2,
        "capture records without a valid time": 1,
    }
    assert skipped["message"].startswith("11 records could not be used and were skipped: 4 "
                                         "capture records whose probabilities are null")
    nan = [i for i in report["issues"] if i["kind"] == "nan"]
    assert {i["feature"] for i in nan} == {"x1", "x3"}  # counted, not skipped

    saved = json.loads(store.objects[report["report_key"]])
    assert saved["issues"][0] == skipped and saved["data"]["skipped"] == 11
    [sent] = ses.sent
    msg = email.message_from_bytes(sent["RawMessage"]["Data"], policy=policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "11 records could not be used and were skipped" in text
    assert "whose probabilities are null or not numbers" in text


def test_a_window_of_only_unusable_records_is_no_data_not_a_failure() -> None:
    store = store_with_reference()
    template = records(np.random.default_rng(1), 1)[0]
    put_capture(store, _bad_records(template))
    report = run_monitor(spec(notify=ALWAYS), store, WINDOW, _clients(FakeSes()))
    assert report["status"] == "no_data" and "error" not in report
    assert report["insufficient"] == ("only 0 usable captured rows in the window (< 30; 11 "
                                      "skipped); drift not tested")


def test_bad_feedback_is_skipped_and_regression_labels_must_be_numbers() -> None:
    store = store_with_reference()
    rows = records(np.random.default_rng(2), 300)
    for r in rows:
        r["prediction"] = float(r["inputs"]["x0"])
        r["probabilities"] = None
    put_capture(store, rows)
    feedback: list[dict[str, Any]] = [
        {"request_id": r["request_id"], "row": 0, "label": r["prediction"] + 0.1}
        for r in rows[:100]]
    feedback += [{"request_id": "r100", "row": 0, "label": "abc"},
                 {"request_id": "r101", "row": 0, "label": str(rows[101]["prediction"])},
                 {"request_id": "r102", "row": 0, "label": 10**400},
                 {"request_id": "r103", "row": "zero", "label": 1.0},
                 {"request_id": "r104", "row": 0, "label": None},
                 {"row": 0, "label": 1.0}]
    put_jsonl(store, "feedback/score/dt=2024-05-01/fb.jsonl.gz", feedback)
    performance = {"metric": "mae", "max": 1.0, "min_labels": 20}
    report = run_monitor(spec(task="regression", performance=performance), store, WINDOW,
                         _clients(FakeSes()))
    assert report["status"] != "failure" and "error" not in report
    perf = report["performance"]
    assert perf["labelled"] == 101  # the numeric string counts
    assert perf["overall"]["mae"] == pytest.approx(0.1 * 100 / 101)
    [skipped] = [i for i in report["issues"] if i["kind"] == "skipped_records"]
    assert skipped["reasons"] == {
        "feedback records whose label is not a finite number": 2,
        "feedback records whose row is not a non-negative integer": 1,
        "feedback records without a request id or a label": 2,
    }


@pytest.mark.parametrize(("record", "why"), [
    ({"inputs": {}, "prediction": 1.5}, None),
    ({"inputs": {}, "prediction": float("nan")}, "whose prediction is null or not a value"),
    ({"inputs": {}, "prediction": "yes", "probabilities": [0.5, float("inf")]},
     "whose probabilities are null or not numbers"),
    ({"inputs": {}, "prediction": "yes", "probabilities": [True, False]},
     "whose probabilities are null or not numbers"),
    ({"inputs": {}, "prediction": "yes", "probabilities": [0, 10**400]},
     "whose probabilities are null or not numbers"),
    ({"inputs": {}, "row": True}, "whose row is not a non-negative integer"),
])
def test_unusable_reasons(record: dict[str, Any], why: str | None) -> None:
    assert unusable(record, "classification") == why


def test_regression_predictions_must_be_numbers() -> None:
    assert unusable({"inputs": {}, "prediction": "yes"}, "regression") == (
        "whose prediction is not a finite number")
    assert unusable({"inputs": {}, "prediction": 2}, "regression") is None


def _parts_text(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=policy.default)
    texts = [str(msg["Subject"])]
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        content = part.get_content()
        texts.append(content.decode() if isinstance(content, bytes) else str(content))
    return "\n".join(texts)


def test_a_failed_run_mails_a_reason_and_run_id_never_a_traceback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        open("/work/main/.venv/lib/python3.11/site-packages/nowhere/data.json")  # noqa: SIM115
        raise AssertionError("unreachable")

    monkeypatch.setattr(run_module, "run_check", broken)
    store = store_with_reference()
    ses = FakeSes()
    with caplog.at_level(logging.ERROR, logger="mlops.monitor"):
        report = run_monitor(spec(), store, WINDOW, _clients(ses))
    run_id = report["run_id"]
    assert report["status"] == "failure"
    assert report["error"] == ("unexpected FileNotFoundError: [Errno 2] No such file or "
                               "directory: '<path>'; the traceback is in the monitor "
                               f"function's log (run {run_id})")
    assert report["subject"].startswith("[FAILURE] m-drift: unexpected FileNotFoundError")
    [sent] = ses.sent  # failures are mailed under the default notify.when
    text = _parts_text(sent["RawMessage"]["Data"])
    assert run_id in text and "FileNotFoundError" in text
    saved = store.objects[report["report_key"]].decode()
    for leak in ("Traceback", "/work/", "site-packages", 'File "'):
        assert leak not in text and leak not in saved, leak
    # the traceback is in the function's log
    [logged] = [r for r in caplog.records if r.name == "mlops.monitor"]
    assert logged.exc_info is not None and run_id in logged.getMessage()


def test_reason_drops_paths_and_keeps_locations_that_are_not_files() -> None:
    e = OSError("cannot write /tmp/mlops-audit.jsonl (see s3://b/reports/m/1 and "
                "http://127.0.0.1:4566/b/key, models/m/1.0.0/reference.json)")
    assert reason(e) == ("OSError: cannot write <path> (see s3://b/reports/m/1 and "
                         "http://127.0.0.1:4566/b/key, models/m/1.0.0/reference.json)")
    assert reason(TypeError("line one\nline two")) == "TypeError: line one"
    assert reason(KeyError()) == "KeyError"
    assert len(reason(ValueError("x" * 1000))) == 300


def test_a_bad_window_is_bad_input_exit_2(tmp_path: Any) -> None:
    for window in ("yesterday", "2024-05-01..noon", "2024-05-02..2024-05-01"):
        proc = subprocess.run([sys.executable, "-m", "framework.cli", "monitor", "run", "m",
                               "--window", window], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"--window: '{window}' is not a window" in proc.stderr
        assert "hint: write START..END as ISO 8601" in proc.stderr


def test_in_process_runs_log_the_traceback_to_a_file_not_the_terminal(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from framework.cli_monitor import _logging_to

    path = tmp_path / "logs" / "monitor-m.log"
    with _logging_to(path):
        try:
            raise TypeError("float() argument must be a string or a real number")
        except TypeError:
            logging.getLogger("mlops.monitor").exception("monitor m: run r1 failed")
    logging.getLogger("mlops.monitor").error("after the block: not in the file")
    text = path.read_text()
    assert "monitor m: run r1 failed" in text and "Traceback" in text
    assert "after the block" not in text
    assert "Traceback" not in capsys.readouterr().err
