"""What a monitor does on drift besides e-mail: roll the endpoint back, request a retrain.

Rollback moves the endpoint function's alias to the newest published version below the one
it points at, and records an audit entry. Retrain cannot run inside the monitor Lambda (the
training entry point lives with the project's code): it writes a request object
``retrain/{model}/{run_id}.json`` that ``mlops retrain --pending`` (or the CI job of
``mlops ci init``) picks up; see ``RETRAIN_INTEGRATION``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import Store

AuditFn = Callable[..., Any]
# What turns a retrain request into a new version (the monitor Lambda cannot train).
RETRAIN_INTEGRATION = ("`mlops retrain --pending --deploy` trains, gates and rolls out the next "
                       "version")


def rollback(lam: Any, spec: MonitorSpec, audit: AuditFn | None, run_id: str) -> dict[str, Any]:
    fn = spec.endpoint_function
    if not fn:
        return {"action": "rollback", "ok": False, "outcome": "no endpoint function known"}
    alias = lam.get_alias(FunctionName=fn, Name=spec.alias)
    current = str(alias["FunctionVersion"])
    versions: list[int] = []
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=fn):
        versions += [int(v["Version"]) for v in page["Versions"] if v["Version"].isdigit()]
    older = sorted(v for v in versions if current.isdigit() and v < int(current))
    if not older:
        return {"action": "rollback", "ok": False,
                "outcome": f"{fn}:{spec.alias} is at version {current}; no earlier version"}
    target = str(older[-1])
    lam.update_alias(FunctionName=fn, Name=spec.alias, FunctionVersion=target)
    if audit is not None:
        audit(action="rollback", actor=f"monitor:{spec.name}", resource=f"{fn}:{spec.alias}",
              before=current, after=target, run_id=run_id, outcome="ok")
    return {"action": "rollback", "ok": True, "from": current, "to": target,
            "outcome": f"{fn}:{spec.alias} moved from version {current} to {target}"}


def request_retrain(store: Store, spec: MonitorSpec, run_id: str,
                    report_key: str) -> dict[str, Any]:
    key = f"retrain/{spec.model}/{run_id}.json"
    body = {"model": spec.model, "from_version": spec.version, "monitor": spec.name,
            "run_id": run_id, "report": report_key, "status": "requested"}
    store.put(key, json.dumps(body, sort_keys=True).encode(), "application/json")
    return {"action": "retrain", "ok": True, "request": key,
            "outcome": f"retrain requested ({key}); {RETRAIN_INTEGRATION}"}
