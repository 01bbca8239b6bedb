"""Inference endpoint: ``POST`` predicts, ``GET`` on the same route describes the model.

Environment: MLOPS_REGISTRY_BUCKET, MLOPS_MODEL_NAME, MLOPS_MODEL_VERSION, MLOPS_MODEL_SHA256,
MLOPS_ENDPOINT, optionally MLOPS_MAX_BATCH_ROWS. The model is loaded once per worker.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from framework.runtime import http
from framework.runtime.clients import Connection
from framework.runtime.errors import ModelUnavailableError, RequestError
from framework.runtime.features import DEFAULT_MAX_ROWS
from framework.runtime.inference import ModelBundle

_cache: dict[tuple[str, str, str, str, int], ModelBundle] = {}


def _bundle() -> ModelBundle:
    env = os.environ
    try:
        names = ("MLOPS_REGISTRY_BUCKET", "MLOPS_MODEL_NAME", "MLOPS_MODEL_VERSION")
        bucket, name, version = (env[n] for n in names)
        max_rows = int(env.get("MLOPS_MAX_BATCH_ROWS") or DEFAULT_MAX_ROWS)
    except (KeyError, ValueError) as e:
        raise ModelUnavailableError(f"function environment is incomplete or invalid: {e}") from e
    key = (bucket, name, version, env.get("MLOPS_MODEL_SHA256", ""), max_rows)
    bundle = _cache.get(key)
    if bundle is None:
        conn = Connection.from_env()
        bundle = ModelBundle.load(conn, bucket, name, version, key[3], max_rows=max_rows)
        _cache.clear()
        _cache[key] = bundle
    return bundle


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", None)
    try:
        request = http.parse_event(event)
        request_id = request.request_id or request_id
        bundle = _bundle()
        if request.method == "GET":
            return http.json_response(200, bundle.info())
        if request.method != "POST":
            raise RequestError(405, "method_not_allowed", "use POST to predict, GET to describe")
        return http.json_response(200, bundle.predict(http.json_body(request), request_id))
    except RequestError as e:
        return http.error_response(e, request_id)
    except ModelUnavailableError as e:
        print(f"[mlops] MODEL UNAVAILABLE ({type(e).__name__}): {e}", file=sys.stderr, flush=True)
        body = {"error": "model_unavailable", "message": "the model cannot be served right now"}
        return http.json_response(503, {**body, "request_id": request_id})
    except Exception:
        traceback.print_exc(file=sys.stderr)
        body = {"error": "internal_error", "message": "unexpected error; see the function logs"}
        return http.json_response(500, {**body, "request_id": request_id})
