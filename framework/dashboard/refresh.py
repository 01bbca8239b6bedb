"""The parts of the dashboard read straight from the registry bucket, and its rebuild at the end
of a monitor run (inside the monitor function on every target).

The monitor function cannot read mlops.yaml, the deploy state or the registry's indexes (its
zip holds stdlib code, numpy, scipy and boto3 only), so it starts from the snapshot the last
``mlops deploy`` (or ``mlops dashboard --publish``) left beside the page, reads every
monitor's runs and the audit records since then, and writes the page again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from framework.dashboard import site
from framework.dashboard.data import MonitorView, RunView, SiteData, now_iso
from framework.dashboard.render import render_page

if TYPE_CHECKING:
    from framework.monitoring.spec import MonitorSpec
    from framework.monitoring.store import Store

log = logging.getLogger("mlops.dashboard")
REPORTS = 10  # newest runs of each monitor whose report.json is read (summary, latest charts)
MAX_AUDIT = 500  # newest audit records kept
FETCHERS = 8  # concurrent GETs


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def monitor_view(store: Store, name: str, endpoint: str, schedule: str,
                 reports: int = REPORTS) -> MonitorView:
    """A monitor's runs from its history, with the report of the newest ``reports`` runs."""
    from framework.monitoring.run import history_key

    history = _json(store.get(history_key(name)))
    runs = [RunView(run_id=str(h.get("run_id", "")), time=str(h.get("time", "")),
                    status=str(h.get("status", "")),
                    figures=h["figures"] if isinstance(h.get("figures"), dict) else {},
                    window=h["window"] if isinstance(h.get("window"), dict) else {},
                    report_key=str(h.get("report", "")))
            for h in (history if isinstance(history, list) else []) if isinstance(h, dict)]
    newest = [r for r in runs[-reports:] if r.report_key.endswith(".json")] if reports else []
    with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
        bodies = list(pool.map(lambda r: _json(store.get(r.report_key)), newest))
    for run, body in zip(newest, bodies, strict=True):
        run.report = body if isinstance(body, dict) else None
    return MonitorView(name=name, endpoint=endpoint, schedule=schedule, runs=runs)


def audit_records(s3: Any, bucket: str, known: Sequence[dict[str, Any]],
                  limit: int = MAX_AUDIT) -> list[dict[str, Any]]:
    """``known`` records and those written since (``audit/YYYY/MM/DD/{time}-{id}.json``): the
    listing starts at the day of the newest known one and only unknown records are fetched.
    The newest ``limit``, oldest first; an object that is not a JSON record is skipped."""
    ids = {str(r.get("id")) for r in known}
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": "audit/"}
    times = sorted(str(r.get("time", "")) for r in known)
    if times and len(times[-1]) >= 10:
        day = times[-1][:10].replace("-", "/")
        kwargs["StartAfter"] = f"audit/{day}/"
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(**kwargs)
            for obj in page.get("Contents", [])]
    fresh = [k for k in keys if k.rsplit("-", 1)[-1].removesuffix(".json") not in ids]

    def fetch(key: str) -> Any:
        return _json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    found: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
        while fresh and len(found) < limit:  # newest first, until enough are records
            batch, fresh = fresh[-limit:], fresh[:-limit]
            found = [r for r in pool.map(fetch, batch) if isinstance(r, dict)] + found
    records = [*known, *found]
    return sorted(records, key=lambda r: str(r.get("time", "")))[-limit:]


def _start(spec: MonitorSpec, store: Store, base: str) -> SiteData:
    """The last snapshot, or an empty page of the stage when there is none (yet)."""
    raw = store.get(base + site.SNAPSHOT)
    problem = "none was written yet"
    if raw is not None:
        try:
            return SiteData.from_snapshot(raw)
        except ValueError as e:
            problem = str(e)
    data = SiteData(project=spec.project, stage=spec.stage, target="", region="", account="",
                    bucket=spec.bucket, generated_at=now_iso())
    data.warnings.append(f"models, endpoints and rollouts are missing: the snapshot "
                         f"s3://{spec.bucket}/{base}{site.SNAPSHOT} cannot be read ({problem}); "
                         "`mlops deploy` or `mlops dashboard --publish` writes it")
    return data


def after_run(spec: MonitorSpec, store: Store) -> dict[str, Any]:
    """Rebuild the stage's page after a run of ``spec``'s monitor: every monitor's runs and the
    audit fresh, the rest from the snapshot. ``{"key", "url", "expires_at", "seconds"}`` (a
    link presigned for ``notify.link_expires`` when ``store`` is an S3 bucket), or
    ``{"error"}``: never raises, a monitor run does not fail for its dashboard."""
    from framework.monitoring.run import reason
    from framework.monitoring.spec import window_seconds

    base = site.prefix(spec.project, spec.stage)
    try:
        expires = spec.notify.get("link_expires")
        seconds = window_seconds(str(expires), "") if expires else site.LINK_SECONDS
        data = _start(spec, store, base)
        data.generated_at, data.built_by = now_iso(), f"monitor {spec.name}"
        declared = [(m.name, m.endpoint, m.schedule) for m in data.monitors]
        if spec.name not in {name for name, _, _ in declared}:
            declared.append((spec.name, spec.endpoint, ""))
        data.monitors = [monitor_view(store, *d) for d in declared]
        s3 = getattr(store, "s3", None)
        if s3 is not None:
            data.audit = audit_records(s3, spec.bucket, data.audit)
        out: dict[str, Any] = {"key": site.publish(store, base, render_page(data))}
        if s3 is not None:
            out.update(site.presign(s3, spec.bucket, out["key"], seconds))
        return out
    except Exception as e:  # the run's report and e-mail matter more than the page
        log.warning("monitor %s: the dashboard was not rebuilt", spec.name, exc_info=True)
        return {"error": reason(e)}
