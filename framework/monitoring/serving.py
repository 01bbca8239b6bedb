"""What an endpoint served, and when: the history of its live alias, in the model registry.

Each time the Lambda version an endpoint's live alias serves changes — a deploy moved it, a
monitor rolled it back — one immutable record is written beside the registry's alias
history of the model it serves, under the alias name ``endpoint-{endpoint}``::

    models/{model}/history/endpoint-{endpoint}/{seq:08d}.json

with the registry's history fields (``model``, ``alias``, ``version`` — the model version
now served —, ``previous``, ``seq``, ``changed_at``, ``changed_by``, ``action``, ``reason``),
so ``mlops models history MODEL`` lists them with promotions and rollbacks of the registry's
own aliases, plus what only an endpoint has: ``endpoint``, ``function``,
``lambda_version`` and ``previous_lambda_version``. There is no alias object: an endpoint's
alias is the Lambda alias itself; these records only say how it moved. Names of the form
``endpoint-NAME`` are kept for them.

``rollback_target`` (pure) decides where a model-aware rollback goes: to the newest Lambda
version that served the endpoint before, and serves *another model version* than the one
serving now (a version that only changed memory or code serves the same model: going back
to it rolls nothing back). Rollbacks undo the moves they reverse, as the registry's alias
rollbacks do, so a second rollback goes further back rather than forth again.

Stdlib only: the monitor's Lambda zip imports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from framework.monitoring.store import Store

PREFIX = "endpoint-"  # the history alias of an endpoint: endpoint-NAME
DEPLOY, ROLLBACK = "deploy", "rollback"
ATTEMPTS = 5  # writers racing for a sequence number


def alias_name(endpoint: str) -> str:
    return f"{PREFIX}{endpoint}"


def history_prefix(model: str, endpoint: str) -> str:
    return f"models/{model}/history/{alias_name(endpoint)}/"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def records(store: Store, model: str, endpoint: str) -> list[dict[str, Any]]:
    """The endpoint's serving history under ``model``, oldest first (unreadable records are
    skipped)."""
    out = []
    for key in store.list(history_prefix(model, endpoint)):
        data = store.get(key)
        try:
            rec = json.loads(data) if data is not None else None
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("seq"), int):
            out.append(rec)
    return sorted(out, key=lambda r: int(r["seq"]))


def _put_new(store: Store, key: str, body: bytes) -> bool:
    """Write ``key`` only if absent (S3: ``If-None-Match: *``); whether it was written."""
    s3 = getattr(store, "s3", None)
    if s3 is None:  # a MemoryStore
        if store.get(key) is not None:
            return False
        store.put(key, body, "application/json")
        return True
    try:
        s3.put_object(Bucket=store.bucket, Key=key, Body=body,  # type: ignore[attr-defined]
                      ContentType="application/json", IfNoneMatch="*")
    except Exception as exc:
        response = getattr(exc, "response", None)
        code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) \
            else ""
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise
    return True


def append(store: Store, *, model: str, endpoint: str, function: str, action: str,
           model_version: str, lambda_version: str, previous_model_version: str | None,
           previous_lambda_version: str | None, changed_by: str, reason: str = "",
           **extra: Any) -> dict[str, Any]:
    """Add one record (the next sequence number; a racing writer makes it retry)."""
    for _ in range(ATTEMPTS):
        existing = records(store, model, endpoint)
        seq = (int(existing[-1]["seq"]) if existing else 0) + 1
        doc = {"model": model, "alias": alias_name(endpoint), "version": model_version,
               "previous": previous_model_version, "seq": seq, "changed_at": now_iso(),
               "changed_by": changed_by, "action": action, "reason": reason,
               "endpoint": endpoint, "function": function, "lambda_version": lambda_version,
               "previous_lambda_version": previous_lambda_version, **extra}
        key = f"{history_prefix(model, endpoint)}{seq:08d}.json"
        if _put_new(store, key, (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()):
            return doc
    raise RuntimeError(f"could not record {endpoint}'s serving history: {ATTEMPTS} writers "
                       "raced for the same record")


def version_models(lam: Any, function: str) -> dict[str, tuple[str, str]]:
    """Each published version of ``function`` → (model name, model version) it serves, from
    its environment (``MLOPS_MODEL_NAME``, ``MLOPS_MODEL_VERSION``)."""
    out: dict[str, tuple[str, str]] = {}
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=function):
        for cfg in page["Versions"]:
            version = str(cfg.get("Version") or "")
            if not version.isdigit():
                continue
            env = (cfg.get("Environment") or {}).get("Variables") or {}
            out[version] = (str(env.get("MLOPS_MODEL_NAME") or ""),
                            str(env.get("MLOPS_MODEL_VERSION") or ""))
    return out


@dataclass(frozen=True)
class Target:
    """Where a model-aware rollback goes, or (``version`` None) why nowhere."""

    version: str | None
    model_version: str | None
    reason: str
    basis: str  # "serving history" or "published versions (no serving history)"


def served_stack(history: Sequence[Mapping[str, Any]], serving: str) -> list[str]:
    """The Lambda versions that served, oldest first, with the moves rollbacks reversed
    taken off; the version serving now on top."""
    stack: list[str] = []
    for rec in history:
        version = str(rec.get("lambda_version") or "")
        if not version:
            continue
        if rec.get("action") == ROLLBACK:
            while stack and stack[-1] != version:
                stack.pop()
        if not stack or stack[-1] != version:
            stack.append(version)
    if not stack or stack[-1] != serving:
        stack.append(serving)
    return stack


def rollback_target(history: Sequence[Mapping[str, Any]],
                    versions: Mapping[str, tuple[str, str]], serving: str) -> Target:
    """The newest Lambda version that served before ``serving`` and serves another version
    of the same model (``versions``: what each published version serves)."""
    model, current = versions.get(serving, ("", ""))
    if history:
        basis = "serving history"
        stack = served_stack(history, serving)[:-1]
    else:  # deployed before histories were kept: every earlier published version served
        basis = "published versions (no serving history)"
        stack = sorted((v for v in versions if serving.isdigit() and int(v) < int(serving)),
                       key=int)
    for version in reversed(stack):
        name, model_version = versions.get(version, ("", ""))
        if version == serving or name != model or not model_version:
            continue
        if model_version != current:
            return Target(version, model_version, f"Lambda version {version} served "
                          f"{model} {model_version} before", basis)
    what = f"{model} {current}" if model else "its model"
    return Target(None, None, f"no Lambda version that served before serves another version "
                  f"than {what} (checked the {basis})", basis)
