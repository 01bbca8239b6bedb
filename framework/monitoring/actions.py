"""What a monitor does on drift besides e-mail: roll the endpoint back, request a retrain.

Rollback serves the previous *model version*: it moves the endpoint function's live alias to
the newest Lambda version that served the endpoint before and serves another version of the
model than the one serving now (``framework.monitoring.serving.rollback_target``: from the
endpoint's serving history in the registry, and each published version's environment), with
all its traffic (a running rollout's weights go). It records the move in that serving history
and in the audit log. When no such version exists it moves nothing and says so in the
report. Retrain cannot run inside the monitor Lambda (the training entry point lives with the
project's code): it writes a request object ``retrain/{model}/{run_id}.json`` that
``mlops retrain --pending`` (or the CI job of ``mlops ci init``) picks up; see
``RETRAIN_INTEGRATION``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from framework.monitoring import serving
from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import Store

AuditFn = Callable[..., Any]
# What turns a retrain request into a new version (the monitor Lambda cannot train).
RETRAIN_INTEGRATION = ("`mlops retrain --pending --deploy` trains, gates and rolls out the next "
                       "version")


def rollback(lam: Any, spec: MonitorSpec, audit: AuditFn | None, run_id: str,
             store: Store | None = None) -> dict[str, Any]:
    fn = spec.endpoint_function
    if not fn:
        return {"action": "rollback", "ok": False, "outcome": "no endpoint function known"}
    alias = lam.get_alias(FunctionName=fn, Name=spec.alias)
    current = str(alias["FunctionVersion"])
    versions = serving.version_models(lam, fn)
    model, current_model = versions.get(current, (spec.model, ""))
    model = model or spec.model
    history = serving.records(store, model, spec.endpoint) if store is not None else []
    target = serving.rollback_target(history, versions, current)
    where = f"{spec.endpoint} ({fn}:{spec.alias})"
    if target.version is None:
        return {"action": "rollback", "ok": False, "from": current,
                "from_model": current_model, "basis": target.basis,
                "outcome": f"nothing rolled back: {where} serves {model} {current_model} "
                           f"(Lambda version {current}); {target.reason}"}
    lam.update_alias(FunctionName=fn, Name=spec.alias, FunctionVersion=target.version,
                     RoutingConfig={"AdditionalVersionWeights": {}})
    reason = (f"monitor {spec.name} found drift (run {run_id}): {model} {current_model} → "
              f"{target.model_version}")
    outcome = (f"{where} moved from Lambda version {current} ({model} {current_model}) to "
               f"{target.version} ({model} {target.model_version})")
    done: dict[str, Any] = {"action": "rollback", "ok": True, "from": current,
                            "to": target.version, "from_model": current_model,
                            "to_model": target.model_version, "basis": target.basis,
                            "outcome": outcome}
    if store is not None:
        try:
            serving.append(store, model=model, endpoint=spec.endpoint, function=fn,
                           action=serving.ROLLBACK, model_version=str(target.model_version),
                           lambda_version=target.version, previous_model_version=current_model,
                           previous_lambda_version=current, changed_by=f"monitor:{spec.name}",
                           reason=reason, run_id=run_id)
        except Exception as exc:  # the alias moved: say the record is missing, do not undo
            done["history_error"] = f"{type(exc).__name__}: {exc}"
    if audit is not None:
        audit(action="rollback", actor=f"monitor:{spec.name}", resource=f"{fn}:{spec.alias}",
              kind="endpoint_rollback", endpoint=spec.endpoint, model=model,
              before={"version": current, "model_version": current_model},
              after={"version": target.version, "model_version": target.model_version},
              reason=reason, run_id=run_id, outcome="ok")
    return done


def request_retrain(store: Store, spec: MonitorSpec, run_id: str,
                    report_key: str) -> dict[str, Any]:
    key = f"retrain/{spec.model}/{run_id}.json"
    body = {"model": spec.model, "from_version": spec.version, "monitor": spec.name,
            "run_id": run_id, "report": report_key, "status": "requested"}
    store.put(key, json.dumps(body, sort_keys=True).encode(), "application/json")
    return {"action": "retrain", "ok": True, "request": key,
            "outcome": f"retrain requested ({key}); {RETRAIN_INTEGRATION}"}
