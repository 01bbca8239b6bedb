"""One Lambda execution environment: init once, invoke many.

Started by the runner as ``python <this file>`` (not ``-m framework.local.worker``: that would
import the repository's ``framework`` package into ``sys.modules`` before the zip's own
``framework`` could be). It therefore imports nothing but the standard library.

Contract (set by the runner): cwd and ``LAMBDA_TASK_ROOT`` = the extracted code directory,
``_HANDLER`` = ``module.function``, the function's environment variables. fd 0/1 carry the
private protocol: frames of a 4-byte big-endian length followed by UTF-8 JSON. fd 1 is moved
aside first and then pointed at stderr, so the handler's prints land in the log, not in the
protocol.
"""

from __future__ import annotations

import decimal
import gc
import importlib
import importlib.util
import io
import json
import marshal
import os
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")


class Context:
    """The Lambda context object (the attributes handlers use)."""

    # The environment's part, read once per process (class attributes; see ``configure``).
    function_name = ""
    function_version = "$LATEST"
    memory_limit_in_mb = "128"
    log_group_name = ""
    log_stream_name = ""
    identity = None
    client_context = None

    def __init__(self, request_id: str, invoked_arn: str, remaining_ms: float) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self._deadline = time.monotonic() + remaining_ms / 1000.0

    @classmethod
    def configure(cls) -> None:
        env = os.environ
        cls.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        cls.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        cls.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        cls.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        cls.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error_shape(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """Lambda's function-error payload."""
    tb = exc.__traceback__
    frames = traceback.extract_tb(tb.tb_next if tb is not None else None)
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(frames),
        "requestId": "",
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=_json_default).encode()


def send(stream: BinaryIO, message: dict[str, Any]) -> None:
    data = _encode(message)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: BinaryIO, count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = stream.read(count)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def receive(stream: BinaryIO) -> dict[str, Any] | None:
    head = _read_exact(stream, _HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(head)
    data = _read_exact(stream, length)
    if data[:1] == b"M":  # the runner's requests: marshal, else JSON (b"J")
        message: dict[str, Any] = marshal.loads(data[1:])
    else:
        message = json.loads(data[1:])
    return message


def _check_isolation(code_dir: str) -> None:
    """The zip's own ``framework`` must be the one imported, never the repository's."""
    module = sys.modules.get("framework")
    if module is None and os.path.isdir(os.path.join(code_dir, "framework")):
        module = importlib.import_module("framework")
    if module is None:
        return
    location = os.path.realpath(getattr(module, "__file__", None) or "")
    root = os.path.realpath(code_dir) + os.sep
    if not location.startswith(root):
        raise ImportError(
            f"'framework' was imported from {location or 'a namespace package'}, "
            f"not from the deployed code in {code_dir}; the worker is not isolated"
        )


def load_handler(code_dir: str, handler: str) -> Callable[[Any, Context], Any]:
    module_name, _, func_name = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"bad handler {handler!r}: use module.function")
    _check_isolation(code_dir)
    module = importlib.import_module(module_name)
    _check_isolation(code_dir)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise AttributeError(f"handler {func_name!r} missing on module {module_name!r}")
    return func  # type: ignore[no-any-return]


def _open_channel() -> tuple[BinaryIO, BinaryIO]:
    rx = os.fdopen(os.dup(0), "rb", buffering=0)  # unbuffered: select() sees every frame
    tx = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the handler's prints go to the log
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return rx, tx


def _load_sibling(name: str) -> Any:
    """A module of this directory, by path (the deployed code owns ``sys.path``)."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(f"_mlops_local_{name}",
                                                  os.path.join(here, f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def serve(rx: BinaryIO, tx: BinaryIO, code_dir: str, handler_name: str,
          direct_env: dict[str, str] | None = None) -> int:
    started = time.monotonic()
    # The direct path's modules are loaded before the deployed code can shadow a name.
    apigw = _load_sibling("apigw") if direct_env else None
    direct_worker = _load_sibling("direct_worker") if direct_env else None
    try:
        handler = load_handler(code_dir, handler_name)
    except Exception as exc:
        kind = "Runtime.ImportModuleError" if isinstance(exc, ImportError) else None
        print(f"INIT_ERROR {kind or type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        traceback.print_exc()
        send(tx, {"type": "init_error", "error": error_shape(exc, kind)})
        return 1
    gc.collect()
    gc.freeze()  # what init built (model, sessions, clients) is never garbage: stop scanning it
    send(tx, {"type": "ready", "init_ms": (time.monotonic() - started) * 1000})
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    Context.configure()
    timeout_ms = float((direct_env or {}).get("MLOPS_DIRECT_TIMEOUT_MS") or 3000)
    # The invocation's output (START, the handler's prints, END, REPORT) is buffered and
    # written once per invocation: one write instead of one per line on the hot path.
    sys.stdout.flush()
    sys.stderr.flush()
    logs = io.TextIOWrapper(os.fdopen(os.dup(2), "wb", buffering=1 << 16), encoding="utf-8",
                            errors="replace", write_through=False)
    sys.stdout = sys.stderr = logs

    def invoke(event: Any, request_id: str, invoked_arn: str, remaining_ms: float = timeout_ms,
               flush: bool = True) -> tuple[Any, dict[str, Any] | None]:
        """One invocation with the Lambda log lines: (result, None) or (None, error)."""
        context = Context(request_id, invoked_arn, remaining_ms)
        logs.write(f"START RequestId: {request_id} Version: {version}\n")
        t0 = time.monotonic()
        result: Any = None
        error = None
        try:
            result = handler(event, context)
        except Exception as exc:
            traceback.print_exc()
            error = error_shape(exc)
            error["requestId"] = request_id
        duration = (time.monotonic() - t0) * 1000
        logs.write(f"END RequestId: {request_id}\n"
                   f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\n")
        if flush:
            logs.flush()
        return result, error

    direct = (direct_worker.open_direct(direct_env, apigw, invoke, logs.flush)
              if direct_worker is not None and direct_env else None)
    while True:
        if direct is not None and not direct.wait(rx.fileno()):
            logs.flush()
            return 0
        request = receive(rx)
        if request is None:
            logs.flush()
            return 0
        request_id = str(request["request_id"])
        result, error = invoke(request["event"], request_id, str(request["invoked_arn"]),
                               float(request["remaining_ms"]))
        if error is None:
            try:
                data = _encode({"type": "result", "payload": result})  # fails here, not mid-send
            except Exception as exc:
                error = error_shape(exc)
                error["requestId"] = request_id
        if error is not None:
            data = _encode({"type": "error", "error": error})
        tx.write(_HEADER.pack(len(data)) + data)
        tx.flush()


def main() -> int:
    rx, tx = _open_channel()
    code_dir = os.environ["LAMBDA_TASK_ROOT"]
    sys.path[0] = code_dir  # replaces this script's own directory
    os.chdir(code_dir)
    # The direct path's descriptors are the runtime's business, not the function's.
    direct = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("MLOPS_DIRECT_")}
    return serve(rx, tx, code_dir, os.environ["_HANDLER"], direct or None)


if __name__ == "__main__":
    sys.exit(main())
