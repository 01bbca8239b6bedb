"""Inference endpoint: a thin adapter from the Lambda contract to ``framework.runtime.service``.

One ``Service`` per worker (init once, invoke many): the model is loaded on first use and kept,
with its onnxruntime session, for every later invocation. See ``Service`` for the routes.
"""

from __future__ import annotations

import time

_t0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from framework.runtime import http  # noqa: E402
from framework.runtime.errors import ModelUnavailableError  # noqa: E402
from framework.runtime.service import Service, Settings  # noqa: E402

_cache: dict[Settings, Service] = {}
_seen: list[Any] = [None, None]  # (environment fingerprint, service): skips re-parsing

# The fingerprint reads the values behind os.environ directly when it can: os.environ.get
# encodes every name and raises a KeyError inside for each absent one (about 10 µs for all
# the names, on every request). Its own dict changes with it (setenv, monkeypatch, ...).
_environ = os.environ
_environ_data: dict[Any, Any] | None = getattr(_environ, "_data", None)
try:
    _environ_keys: tuple[Any, ...] | None = tuple(
        _environ.encodekey(n) for n in Settings.ENV)
except Exception:  # not CPython's os._Environ
    _environ_keys = None


def _fingerprint() -> tuple[Any, ...]:
    if os.environ is _environ and _environ_data is not None and _environ_keys is not None:
        return tuple(map(_environ_data.get, _environ_keys))
    return tuple(os.environ.get(n) for n in Settings.ENV)


def _service() -> Service:
    fingerprint = _fingerprint()
    if _cache and _seen[0] == fingerprint and _seen[1] in _cache.values():
        return _seen[1]  # type: ignore[no-any-return]
    settings = Settings.from_env(os.environ)
    service = _cache.get(settings)
    if service is None:
        _cache.clear()
        service = _cache[settings] = Service(settings)
    _seen[:] = [fingerprint, service]
    return service


_answered: list[bool] = []  # non-empty once this environment answered a request


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    answered = bool(_answered)
    if not answered:
        _answered.append(True)
    try:
        service = _service()
    except ModelUnavailableError as e:
        print(f"[mlops] MODEL UNAVAILABLE: {e}", file=sys.stderr, flush=True)
        request_id = getattr(context, "aws_request_id", None)
        body = {"error": "model_unavailable", "message": "the model cannot be served right now",
                "request_id": request_id}
        return http.json_response(503, body, {  # what Service.handle sets on every answer
            "x-mlops-executed-version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", ""),
            "x-mlops-cold-start": "false" if answered else "true",
            "x-mlops-request-id": str(request_id or "")})
    return service.handle(event, context)


def _preload() -> None:
    """Inside a Lambda (or local worker) load the model during init, not on the first call."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("MLOPS_MODEL_NAME"):
        imported = time.perf_counter()
        try:
            _ = _service().bundle
        except Exception as e:  # reported again, as a 503, on each request until it loads
            print(f"[mlops] model not loaded at init: {e}", file=sys.stderr, flush=True)
            return
        loaded = time.perf_counter()
        print(json.dumps({"level": "INFO", "msg": "init", "import_ms": round(
            (imported - _t0) * 1000, 1), "load_ms": round((loaded - imported) * 1000, 1)}),
            flush=True)


_preload()
