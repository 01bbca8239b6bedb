"""One monitor run end to end: check, history, control charts, alarms, verdict, report files,
CloudWatch metrics, actions and the e-mail.

Never raises for bad input: whatever happens, a report is written and (per ``notify.when``)
mailed. Clients are passed in (``None`` skips that side effect), so tests and the local CLI
drive it without Lambda.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from framework.dashboard.refresh import after_run
from framework.monitoring import actions, charts, mailer
from framework.monitoring.check import CheckFailed, run_check
from framework.monitoring.partial import Fan
from framework.monitoring.report import render_html
from framework.monitoring.spec import MonitorSpec, Window, iso, mails
from framework.monitoring.store import Store

FORMAT = "mlops.report/1"
# An absolute file path (not a URL's path, an S3 key or s3:// location): never shown in a report
PATH_RE = re.compile(r"(?<![\w.:/~-])/(?:[\w.@+~-]+/)*[\w.@+~-]+")
log = logging.getLogger("mlops.monitor")
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}
ALARM_RE = re.compile(r"^(<=|>=|<|>)\s*(.+)$")


@dataclass
class Clients:
    """Side-effect clients; any left ``None`` is skipped (and the report says so)."""

    ses: Any | None = None
    cloudwatch: Any | None = None
    lam: Any | None = None
    audit: Callable[..., Any] | None = None
    sleep: Callable[[float], None] = time.sleep
    # profiles capture objects, or merges a day's partials, elsewhere (an invocation of the
    # monitor function)
    fan: Fan | None = None


def reason(e: BaseException) -> str:
    """``Type: message`` of an exception, for a report or an e-mail: first line only, file
    paths replaced by ``<path>``, at most 300 characters."""
    text = str(e).splitlines()[0] if str(e) else ""
    text = PATH_RE.sub("<path>", text)
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def history_key(monitor: str) -> str:
    return f"reports/{monitor}/history.json"


def report_prefix(monitor: str, run_id: str) -> str:
    return f"reports/{monitor}/{run_id}"


def figures(body: Mapping[str, Any]) -> dict[str, float | None]:
    d = body.get("drift") or {}
    data = body.get("data") or {}
    rows = data.get("rows")
    out: dict[str, float | None] = {
        "rows": rows, "drift_share": d.get("share"),
        "drifted_features": len(d.get("drifted", [])) if d.get("tests") else None,
        "latency_p50_ms": data.get("latency_p50_ms"),
        "latency_p99_ms": data.get("latency_p99_ms"),
        "error_rate": (data.get("errors", 0) / rows) if rows else None,
    }
    pd = body.get("prediction_drift") or {}
    out["prediction_drift"] = pd.get("statistic")
    perf = body.get("performance") or {}
    for name, value in (perf.get("overall") or {}).items():
        out[name] = value
    return out


def evaluate_alarms(rules: Mapping[str, str], figs: Mapping[str, float | None],
                    ) -> list[dict[str, Any]]:
    out = []
    for figure, rule in sorted(rules.items()):
        m = ALARM_RE.match(rule.strip())
        value = figs.get(figure)
        breached = False
        if m and value is not None:
            op, limit = m.group(1), float(m.group(2))
            ok = {"<=": value <= limit, ">=": value >= limit, "<": value < limit,
                  ">": value > limit}[op]
            breached = not ok
        out.append({"figure": figure, "rule": rule, "value": value, "breached": breached})
    return out


def control_charts(history: list[dict[str, Any]], figs: Mapping[str, float | None],
                   settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    keep = int(settings.get("history", 30))
    baseline = int(settings.get("baseline", 5))
    out: dict[str, dict[str, Any]] = {}
    for name, value in figs.items():
        if value is None:
            continue
        series = [h["figures"].get(name) for h in history[-(keep - 1):]] + [value]
        series = [float(v) for v in series if v is not None]
        if len(series) < 3:
            continue
        out[name] = {
            "ewma": charts.ewma(series, float(settings.get("ewma_lambda", 0.2)),
                                float(settings.get("ewma_width", 3.0)), baseline).to_dict(),
            "cusum": charts.cusum(series, float(settings.get("cusum_k", 0.5)),
                                  float(settings.get("cusum_h", 5.0)), baseline).to_dict(),
        }
    return out


def verdict(spec: MonitorSpec, report: dict[str, Any]) -> tuple[str, str, str]:
    """(status, subject, summary); a window the run could not profile whole says so in the
    subject, whatever the verdict on what it did profile."""
    status, subject, summary = _verdict(spec, report)
    deferred = int(((report.get("data") or {}).get("profiles") or {}).get("deferred") or 0)
    if deferred and status != "failure":
        subject += f" (window incomplete: {deferred} objects left for the next run)"
    return status, subject, summary


def _verdict(spec: MonitorSpec, report: dict[str, Any]) -> tuple[str, str, str]:
    name = spec.name
    if report.get("error"):
        first = str(report["error"]).splitlines()[0]
        return ("failure", f"[FAILURE] {name}: {first}",
                f"The check could not run (run {report.get('run_id')}): {first}")
    d = report.get("drift") or {}
    pd = report.get("prediction_drift") or {}
    perf = report.get("performance") or {}
    breached = [a for a in report.get("alarms", []) if a["breached"]]
    problems = len(report.get("issues") or [])
    note = f" {problems} data problem(s) noted." if problems else ""
    if d.get("drifted") or pd.get("drifted"):
        parts = []
        if d.get("drifted"):
            parts.append(f"{len(d['drifted'])} of {d['tested']} features drifted")
        if pd.get("drifted"):
            parts.append("prediction drift")
        what = ", ".join(parts)
        return ("drift", f"[DRIFT] {name}: {what}",
                f"Drift found: {what} ({', '.join(d.get('drifted', [])[:8])}).{note}")
    if perf.get("degraded") or breached:
        bits = []
        if perf.get("degraded"):
            bits.append(f"{perf['metric']} {perf['value']:.4g} outside "
                        f"{perf.get('min')}..{perf.get('max')}")
        bits += [f"{a['figure']} {a['value']:.4g} breaks {a['rule']}" for a in breached]
        return "degraded", f"[DEGRADED] {name}: {'; '.join(bits)}", "; ".join(bits) + "." + note
    if report.get("insufficient"):
        return ("no_data", f"[NO DATA] {name}: {report['insufficient']}",
                f"Nothing to test: {report['insufficient']}.{note}")
    return ("ok", f"[OK] {name}: no drift in {d.get('tested', 0)} features",
            f"No drift in {d.get('tested', 0)} tested features.{note}")


def should_notify(spec: MonitorSpec, status: str) -> bool:
    """Whether the run is mailed: it has recipients and ``notify.when`` lists its status
    (``drift``, ``no_data``, ``degraded``, ``failure``; drift only when ``on_drift`` has
    notify) or is ``always``. The default is drift, degraded and failure."""
    return bool(spec.notify.get("email")) and mails(spec.notify["when"], spec.on_drift, status)


def not_mailed(spec: MonitorSpec, status: str) -> str:
    """Why a run is not mailed, in the report's words."""
    if not spec.notify.get("email"):
        return "notify.email lists no recipient"
    if status == "drift" and "drift" in spec.notify["when"]:
        return "on_drift has no notify"
    return f"notify.when is {', '.join(spec.notify['when'])} and the status is {status}"


def _put_json(store: Store, key: str, value: Any) -> None:
    store.put(key, json.dumps(_finite(value), indent=2, sort_keys=True, allow_nan=False,
                              default=str).encode(), "application/json")


def publish_metrics(cw: Any, spec: MonitorSpec, figs: Mapping[str, float | None],
                    when: datetime) -> int:
    dims = [{"Name": "Monitor", "Value": spec.name}, {"Name": "Endpoint", "Value": spec.endpoint}]
    data = [{"MetricName": k, "Dimensions": dims, "Timestamp": when, "Value": float(v)}
            for k, v in sorted(figs.items()) if v is not None]
    for i in range(0, len(data), 20):
        cw.put_metric_data(Namespace=f"mlops/{spec.project}", MetricData=data[i:i + 20])
    return len(data)


def run_monitor(spec: MonitorSpec, store: Store, window: Window, clients: Clients,
                now: datetime | None = None, positive: str | None = None,
                failed: str | None = None) -> dict[str, Any]:
    """Run the monitor once over ``window`` and return the report (also written to the store).
    ``failed``: a run of the window that did not finish (why, in a sentence): no check, a
    [FAILURE] report (``framework.monitoring.failure``)."""
    now = now or datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    prefix = report_prefix(spec.name, run_id)
    report: dict[str, Any] = {
        "format": FORMAT, "monitor": spec.name, "project": spec.project, "stage": spec.stage,
        "endpoint": spec.endpoint, "model": spec.model, "version": spec.version,
        "run_id": run_id, "generated_at": iso(now), "window": window.to_dict(),
        "report_key": f"{prefix}/report.json", "issues": [], "actions": [],
    }
    try:
        if failed is not None:
            raise CheckFailed(failed)
        report.update(run_check(spec, store, window, positive, fan=clients.fan))
    except CheckFailed as e:
        report["error"] = str(e)
    except Exception as e:  # unexpected: still a report; the traceback goes to the log only
        log.exception("monitor %s: run %s failed", spec.name, run_id)
        report["error"] = (f"unexpected {reason(e)}; the traceback is in the monitor "
                           f"function's log (run {run_id})")
    history = _load_history(store, spec.name)
    figs = figures(report)
    report["figures"] = figs
    report["alarms"] = evaluate_alarms(spec.alarms, figs)
    report["charts"] = control_charts(history, figs, spec.charts) if not report.get("error") \
        else {}
    for fig, kinds in report["charts"].items():
        last = len(kinds["ewma"]["values"]) - 1
        if any(last in c["flagged"] for c in kinds.values()):
            report["issues"].append({"kind": "control_chart", "figure": fig,
                                     "message": f"{fig} is out of control in this run"})
    status, subject, summary = verdict(spec, report)
    report.update(status=status, subject=subject, summary=summary)
    if status == "drift":
        report["actions"] += _drift_actions(spec, store, clients, run_id, report["report_key"])
    _write(store, prefix, report)
    history.append({"run_id": run_id, "time": iso(now), "window": window.to_dict(),
                    "status": status, "figures": figs, "report": report["report_key"]})
    _put_json(store, history_key(spec.name), history[-500:])
    link = after_run(spec, store)  # the stage's dashboard page, with this run
    report["dashboard"] = {k: v for k, v in link.items() if k != "url"}  # links expire
    if clients.cloudwatch is not None:
        try:
            report["metrics"] = {"published": publish_metrics(clients.cloudwatch, spec, figs, now),
                                 "namespace": f"mlops/{spec.project}"}
        except Exception as e:
            report["metrics"] = {"published": 0, "error": reason(e)}
    if should_notify(spec, status):
        report["notification"] = notify(spec, store, prefix, {**report, "dashboard": link},
                                        clients)
    else:
        report["notification"] = {"sent": False, "reason": not_mailed(spec, status)}
    _write(store, prefix, report)
    return report


def notify(spec: MonitorSpec, store: Store, prefix: str, report: dict[str, Any],
           clients: Clients) -> dict[str, Any]:
    recipients = list(spec.notify.get("email") or [])
    sender = spec.notify.get("sender") or recipients[0]
    raw = mailer.build_message(report, sender, recipients)
    store.put(f"{prefix}/message.eml", raw, "message/rfc822")  # kept whatever happens next
    if clients.ses is None:
        return {"sent": False, "reason": "no SES client", "eml": f"{prefix}/message.eml"}
    outcome = mailer.send(clients.ses, raw, sender, recipients, sleep=clients.sleep)
    outcome["eml"] = f"{prefix}/message.eml"
    return outcome


def _drift_actions(spec: MonitorSpec, store: Store, clients: Clients, run_id: str,
                   report_key: str) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    for action in spec.on_drift:
        try:
            if action == "rollback":
                if clients.lam is None:
                    done.append({"action": "rollback", "ok": False, "outcome": "no Lambda client"})
                else:
                    done.append(actions.rollback(clients.lam, spec, clients.audit, run_id,
                                                 store))
            elif action == "retrain":
                done.append(actions.request_retrain(store, spec, run_id, report_key))
        except Exception as e:
            log.warning("monitor %s: action %s failed (run %s)", spec.name, action, run_id,
                        exc_info=True)
            done.append({"action": action, "ok": False, "outcome": f"failed: {reason(e)}"})
    return done


def _load_history(store: Store, monitor: str) -> list[dict[str, Any]]:
    data = store.get(history_key(monitor))
    if data is None:
        return []
    try:
        value = json.loads(data)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _write(store: Store, prefix: str, report: dict[str, Any]) -> None:
    _put_json(store, f"{prefix}/report.json", _finite(report))
    store.put(f"{prefix}/report.html", render_html(report).encode(), "text/html; charset=utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
