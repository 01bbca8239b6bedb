"""The local Lambda service's data plane: runs the *deployed* code, fetched back from the
control plane, the way Lambda runs it.

Resolution: ``function`` (name or ARN) + ``qualifier`` (version, alias or ``$LATEST``) →
the executed version (a weighted alias picks one with a seedable RNG) → that version's
configuration → its zip, ``s3://<mlops:registry tag>/code/<sha256 hex>.zip``, and each of its
layers, ``s3://<registry>/layers/<sha256 hex>.zip``, verified against the SHA-256 the control
plane recorded and extracted once, read-only → execution environments (``sandbox.py``) of the
function's runtime, bootstrapped by AWS's ``awslambdaric``, pooled per (function, version,
code) (``pool.py``).

Reserved concurrency (``PutFunctionConcurrency``) is the most executions of the function at
once, all its versions together, as Lambda counts them: a synchronous invocation beyond it is
throttled (``TooManyRequestsException``, a ``Throttles`` metric, nothing runs); an
asynchronous one waits in the queue and is tried again, as Lambda's internal queue does. A
function with none reserved runs on at most ``MLOPS_LOCAL_CONCURRENCY`` (4) environments a
version, and invocations beyond them wait: the local machine's bound, not one of AWS's.

Everything runs on one asyncio loop (the data plane's thread); ``invoke`` is the thread-safe
entry for the scheduler and the control plane's ``Invoke``.

Asynchronous invocation (``Invoke`` with ``InvocationType: Event``; ``submit_event``): the
event is queued and the caller answered at once; it runs on the loop when an environment of
the version is free, as Lambda's internal queue feeds it. A function error (the handler
raised, timed out or died) is retried as Lambda retries it: twice by default, or the
function's ``MaximumRetryAttempts`` (``PutFunctionEventInvokeConfig``), after one minute and
then two (``MLOPS_LOCAL_ASYNC_RETRY_S``, default ``60,120``, shortens them). An event that
still fails, or that is older than the function's ``MaximumEventAgeInSeconds`` (6 hours by
default), is dropped with a line in the daemon's log (no dead-letter queue or on-failure
destination locally). The queue lives in the daemon's memory: unlike Lambda's, it does not
survive a restart of the local AWS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from framework.compile import names
from framework.errors import MlopsError
from framework.runtime.clients import LOCAL_ACCOUNT_ID, Connection

from .files import CODE_DIR, LAYERS_DIR, LOGS_DIR, RUNTIMES_DIR
from .logship import LogShipper
from .metrics_engine import Point, lambda_points
from .pool import Pool, PoolClosed
from .sandbox import Result, SandboxSpec, runtime_error

log = logging.getLogger(__name__)

T = TypeVar("T")
REGISTRY_TAG = "mlops:registry"
CODE_PREFIX = "code/"
DEFAULT_REGION = "us-east-1"
CACHE_TTL_S = 2.0
# What a Lambda Python runtime brings beside the interpreter: AWS's runtime interface client,
# which its bootstrap runs, and the SDK it includes (its version varies by region and date on
# AWS; a function that needs a given one ships it, as this project's layers do).
RUNTIME_PACKAGES = ("awslambdaric==4.2.2", "boto3")
ASYNC_RETRY_S = (60.0, 120.0)  # Lambda's waits before the 2nd and 3rd attempt of an event
ASYNC_MAX_RETRIES = 2
ASYNC_MAX_AGE_S = 6 * 3600.0
THROTTLED = "Rate Exceeded."  # Lambda's message for a throttled invocation
THROTTLE_RETRY_S = (0.05, 2.0)  # first and longest wait before a throttled event is tried again
EVENTS_KEPT = 1000  # outcomes of asynchronous invocations kept for GET /_mlops/events
_PIP_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Invocation:
    """What one invoke produced."""

    payload: Any
    error: dict[str, Any] | None
    executed_version: str
    cold_start: bool
    duration_ms: float
    timed_out: bool
    request_id: str = ""
    endpoint: str = ""  # MLOPS_ENDPOINT of the function, else its name
    init_ms: float | None = None  # cold starts: the environment's INIT duration
    weighted: bool = False  # the version was drawn by alias weights
    invoked_arn: str = ""
    throttled: bool = False  # refused: the function's reserved concurrency was all in use


@dataclass(frozen=True)
class FunctionVersion:
    """The parts of a function version's configuration the runner needs."""

    name: str
    region: str
    version: str
    arn: str
    handler: str
    code_sha256: str  # hex
    timeout_s: float
    memory_mb: int
    env: dict[str, str]
    registry: str
    reserved_concurrency: int | None
    runtime: str = "python3.13"
    architecture: str = "x86_64"
    layers: tuple[str, ...] = ()  # layer version ARNs, in order
def parse_function(function: str, qualifier: str | None, region: str) -> tuple[str, str, str]:
    """(name, region, qualifier) from a name or a (possibly qualified) Lambda ARN."""
    if function.startswith("arn:"):
        parts = function.split(":")
        if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
            raise MlopsError(f"not a Lambda function ARN: {function}")
        region = parts[3]
        name = parts[6]
        if len(parts) > 7 and not qualifier:
            qualifier = parts[7]
        return name, region, qualifier or "$LATEST"
    name, _, inline = function.partition(":")
    return name, region, qualifier or inline or "$LATEST"


def pick_version(primary: str, weights: dict[str, float], rng: random.Random) -> str:
    """Weighted alias routing: each additional version gets its weight, the rest ``primary``."""
    draw = rng.random()
    cumulative = 0.0
    for version, weight in sorted(weights.items()):
        cumulative += float(weight)
        if draw < cumulative:
            return version
    return primary


def _sha_hex(code_sha256_b64: str) -> str:
    return base64.b64decode(code_sha256_b64).hex()


class _TTLCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._data: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def lookup(self, key: tuple[str, ...]) -> tuple[Any, bool]:
        """(value or None, still fresh)."""
        with self._lock:
            hit = self._data.get(key)
        if hit is None:
            return None, False
        return hit[1], time.monotonic() - hit[0] <= self.ttl_s

    def put(self, key: tuple[str, ...], value: Any) -> None:
        with self._lock:
            self._data[key] = (time.monotonic(), value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()




class Runner:
    """Invoke deployed Lambda functions locally, on the data plane's event loop."""

    def __init__(
        self,
        home: Path,
        control_url: str,
        *,
        region: str = DEFAULT_REGION,
        concurrency: int | None = None,
        rng: random.Random | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
        retry_delays_s: tuple[float, ...] | None = None,
    ) -> None:
        self.home = home
        self.retry_delays_s = retry_delays_s or async_retry_delays(os.environ)
        self.events: dict[str, dict[str, Any]] = {}  # asynchronous invocations, by request id
        self.control_url = control_url
        self.region = region
        env_concurrency = os.environ.get("MLOPS_LOCAL_CONCURRENCY", "4")
        self.concurrency = concurrency or int(env_concurrency)
        seed = os.environ.get("MLOPS_ROUTING_SEED")
        self.rng = rng or random.Random(int(seed) if seed else None)
        self._aliases = _TTLCache(cache_ttl_s)
        self._versions = _TTLCache(cache_ttl_s)
        self._pools: dict[tuple[str, str, str, str], Pool] = {}
        # (region, function) -> (its reserved concurrency, the executions it allows): shared
        # by every version of the function, as Lambda counts them
        self._reserved: dict[tuple[str, str], tuple[int, asyncio.Semaphore]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[tuple[Any, ...]] = set()
        self._fetch_lock = threading.Lock()
        self.memory_limits = os.environ.get("MLOPS_LOCAL_MEMORY_LIMITS", "1") != "0"
        # where each invocation's AWS/Lambda metrics go (the local CloudWatch's record)
        self.publish: Callable[[str, list[Point]], None] | None = None
        self.logs = LogShipper(self._client, home,
                               float(os.environ.get("MLOPS_LOG_SHIP_S") or 1.0))
        self.logs.start()
        import uvloop  # libuv's event loop: each HTTP hop of the data plane costs less

        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="data-plane",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the data plane's loop from another thread; its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _client(self, service: str, region: str) -> Any:
        return Connection(region, self.control_url, dummy_credentials=True).client(service)

    # -- control plane -------------------------------------------------------------------
    def _lambda(self, region: str) -> Any:
        conn = Connection(region, self.control_url, dummy_credentials=True, max_attempts=1)
        return conn.client("lambda")

    def resolve(self, name: str, region: str, qualifier: str) -> tuple[str, bool]:
        """(executed version, drawn by alias weights)."""
        if qualifier == "$LATEST" or qualifier.isdigit():
            return qualifier, False
        key = (region, name, qualifier)

        def load() -> tuple[str, dict[str, float]]:
            resp = self._lambda(region).get_alias(FunctionName=name, Name=qualifier)
            weights = (resp.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            return str(resp["FunctionVersion"]), {str(k): float(v) for k, v in weights.items()}

        primary, weights = self._cached(self._aliases, key, load)
        if not weights:
            return str(primary), False
        return pick_version(primary, weights, self.rng), True

    def _cached(self, cache: _TTLCache, key: tuple[str, ...], load: Callable[[], Any]) -> Any:
        """Stale-while-revalidate: a stale entry is served while one thread refreshes it, so
        no request waits on the control plane once a function has been seen."""
        value, fresh = cache.lookup(key)
        if value is None or cache.ttl_s <= 0:  # ttl 0: no caching at all
            value = load()
            cache.put(key, value)
            return value
        if not fresh:
            ident = (id(cache), *key)
            with self._lock:
                if ident in self._refreshing:
                    return value
                self._refreshing.add(ident)

            def refresh() -> None:
                try:
                    cache.put(key, load())
                except Exception as exc:  # keep serving the last known value
                    log.info("refresh of %s failed: %s", key, exc)
                finally:
                    with self._lock:
                        self._refreshing.discard(ident)

            threading.Thread(target=refresh, name="runner-refresh", daemon=True).start()
        return value

    def describe(self, name: str, region: str, version: str) -> FunctionVersion:
        spec: FunctionVersion = self._cached(
            self._versions, (region, name, version), lambda: self._describe(name, region, version))
        return spec

    def _describe(self, name: str, region: str, version: str) -> FunctionVersion:
        client = self._lambda(region)
        resp = client.get_function(FunctionName=name, Qualifier=version)
        cfg = resp["Configuration"]
        tags = resp.get("Tags")
        if tags is None:
            unqualified = cfg["FunctionArn"].rsplit(":", 1)[0] if version != "$LATEST" else None
            tags = client.list_tags(Resource=unqualified or cfg["FunctionArn"]).get("Tags", {})
        registry = tags.get(REGISTRY_TAG)
        if not registry:
            raise MlopsError(
                f"function {name} has no '{REGISTRY_TAG}' tag",
                where=f"lambda:{name}:{version}",
                hint="deploy it with mlops (code in s3://<registry>/code/<sha256>.zip)",
            )
        reserved = (resp.get("Concurrency") or {}).get("ReservedConcurrentExecutions")
        return FunctionVersion(
            name=name,
            region=region,
            version=str(cfg.get("Version", version)),
            arn=str(cfg["FunctionArn"]),
            handler=str(cfg["Handler"]),
            code_sha256=_sha_hex(cfg["CodeSha256"]),
            timeout_s=float(cfg.get("Timeout") or 3),
            memory_mb=int(cfg.get("MemorySize") or 128),
            env=dict((cfg.get("Environment") or {}).get("Variables") or {}),
            registry=str(registry),
            reserved_concurrency=None if reserved is None else int(reserved),
            runtime=str(cfg.get("Runtime") or "python3.13"),
            architecture=str((cfg.get("Architectures") or ["x86_64"])[0]),
            layers=tuple(str(layer["Arn"]) for layer in cfg.get("Layers") or ()),
        )

    # -- the bytes that ship --------------------------------------------------------------
    def _fetch(self, region: str, bucket: str, key: str, sha_hex: str, target: Path,
               where: str) -> Path:
        """``s3://bucket/key`` verified against ``sha_hex``, extracted read-only at
        ``target`` (once)."""
        if target.is_dir():
            return target
        with self._fetch_lock:
            if target.is_dir():
                return target
            body = self._client("s3", region).get_object(Bucket=bucket, Key=key)["Body"].read()
            actual = hashlib.sha256(body).hexdigest()
            if actual != sha_hex:
                raise MlopsError(f"s3://{bucket}/{key} has sha256 {actual}, expected {sha_hex}",
                                 where=where, hint="the registry object was overwritten; redeploy")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
            try:
                with zipfile.ZipFile(io.BytesIO(body)) as archive:
                    archive.extractall(tmp)
                _read_only(tmp)
                _publish(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return target

    def code_dir(self, fn: FunctionVersion) -> Path:
        """The deployed zip of ``fn``, extracted (Lambda's task root)."""
        return self._fetch(fn.region, fn.registry, f"{CODE_PREFIX}{fn.code_sha256}.zip",
                           fn.code_sha256, self.home / CODE_DIR / fn.code_sha256,
                           f"lambda:{fn.name}:{fn.version}")

    def layer_dir(self, fn: FunctionVersion, arn: str) -> Path:
        """A layer version of ``fn``, extracted (what Lambda mounts under /opt)."""
        layer, _, number = arn.rpartition(":")
        content = self._lambda(fn.region).get_layer_version(
            LayerName=layer, VersionNumber=int(number))["Content"]
        sha_hex = _sha_hex(content["CodeSha256"])
        # By content, shared by every local AWS of this machine (100 MB each, read-only).
        return self._fetch(fn.region, fn.registry, names.layer_key(sha_hex), sha_hex,
                           shared_cache() / LAYERS_DIR / sha_hex, arn)

    def _env(self, fn: FunctionVersion, code_dir: Path, runtime_dir: Path,
             layers: tuple[Path, ...]) -> dict[str, str]:
        """Exactly the function's variables plus the ones Lambda sets."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LD_LIBRARY_PATH": os.pathsep.join(
                [str(runtime_dir), str(code_dir), str(code_dir / "lib"),
                 *(str(layer / "lib") for layer in layers)]),
        }
        env.update(fn.env)
        stamp = datetime.now(UTC).strftime("%Y/%m/%d")
        env.update({
            "_HANDLER": fn.handler,
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": fn.version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{stamp}/[{fn.version}]{uuid.uuid4().hex}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            # The one addition: where the SDK finds this AWS (the control plane).
            "AWS_ENDPOINT_URL": self.control_url,
            # The extracted trees stay as shipped (Lambda's are read-only; here root could
            # write into them): every cold start compiles what the zip and layers lack.
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        return env

    def sandbox_spec(self, fn: FunctionVersion) -> SandboxSpec:
        """How to start ``fn``'s environments (blocking: fetches what it has not yet)."""
        from framework.interpreters import find_python

        host = _HOST_ARCH.get(platform.machine().lower(), platform.machine())
        if fn.architecture != host:
            raise MlopsError(f"{fn.name} is built for {fn.architecture}; this machine is {host}",
                             where=f"lambda:{fn.name}:{fn.version}",
                             hint=f"set architecture: {host} for the local stage")
        python = find_python(fn.runtime)
        code_dir = self.code_dir(fn)
        layers = tuple(self.layer_dir(fn, arn) for arn in fn.layers)
        runtime_dir = install_runtime(shared_cache() / RUNTIMES_DIR, fn.runtime,
                                      fn.architecture)
        log_path = self.home / LOGS_DIR / f"{fn.name}.log"
        self.logs.register(log_path, fn.region, fn.name)
        return SandboxSpec(
            runtime=fn.runtime, python=python, handler=fn.handler, task_root=code_dir,
            layers=layers, runtime_dir=runtime_dir,
            env=self._env(fn, code_dir, runtime_dir, layers), timeout_s=fn.timeout_s,
            memory_mb=fn.memory_mb if self.memory_limits else None, log_path=log_path,
            function_arn=fn.arn, version=fn.version)

    async def _pool(self, fn: FunctionVersion) -> Pool:
        key = (fn.region, fn.name, fn.version, fn.code_sha256)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        spec = await asyncio.to_thread(self.sandbox_spec, fn)
        pool = self._pools.get(key)
        if pool is None:
            pool = Pool(spec, fn.reserved_concurrency or self.concurrency)
            # Code replaced under the same version ($LATEST): retire the old environments.
            for old in [k for k in self._pools if k[:3] == key[:3]]:
                asyncio.ensure_future(self._pools.pop(old).close())
            self._pools[key] = pool
        return pool

    def target(self, function: str, qualifier: str | None = None,
               ) -> tuple[FunctionVersion, bool, str]:
        """(the version an invoke would run, drawn by weights, the invoked ARN)."""
        name, region, qualifier = parse_function(function, qualifier, self.region)
        version, weighted = self.resolve(name, region, qualifier)
        invoked_arn = f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{name}"
        if qualifier != "$LATEST":
            invoked_arn += f":{qualifier}"
        return self.describe(name, region, version), weighted, invoked_arn

    def _target_cached(self, function: str, qualifier: str | None,
                       ) -> tuple[FunctionVersion, bool, str] | None:
        """``target`` when the caches can answer it without a control-plane call."""
        name, region, qual = parse_function(function, qualifier, self.region)
        versions = [qual]
        if not (qual == "$LATEST" or qual.isdigit()):
            alias = self._aliases.lookup((region, name, qual))[0]
            if alias is None:
                return None
            primary, weights = alias
            versions = [str(primary), *weights]  # whichever the weights draw (drawn once, below)
        if any(self._versions.lookup((region, name, v))[0] is None for v in versions):
            return None
        return self.target(function, qualifier)

    async def invoke_async(self, function: str, qualifier: str | None, event: Any,
                           ) -> Invocation:
        started = time.perf_counter()
        started_ms = int(time.time() * 1000)
        found = self._target_cached(function, qualifier)
        if found is None:
            found = await asyncio.to_thread(self.target, function, qualifier)
        fn, weighted, invoked_arn = found
        reserved = self._reservation(fn)
        if reserved is not None and reserved.locked():
            # Lambda refuses what its reserved concurrency cannot take: 429, nothing runs
            if self.publish is not None:
                self.publish(fn.region, lambda_points(invoked_arn, fn.version, started_ms,
                                                      duration_ms=None, function_error=False))
            return Invocation(
                payload=None, error=runtime_error("TooManyRequestsException", THROTTLED),
                executed_version=fn.version, cold_start=False,
                duration_ms=(time.perf_counter() - started) * 1000, timed_out=False,
                endpoint=fn.env.get("MLOPS_ENDPOINT") or fn.name, weighted=weighted,
                request_id=str(uuid.uuid4()), invoked_arn=invoked_arn, throttled=True)
        async with reserved or contextlib.nullcontext():
            result = await self._run(fn, event, invoked_arn)
        payload = None
        error = result.error
        if result.payload is not None:
            try:
                payload = json.loads(result.payload)
            except ValueError:
                error = runtime_error("Runtime.InvalidResponse", "the response is not JSON")
        if self.publish is not None:
            self.publish(fn.region, lambda_points(invoked_arn, fn.version, started_ms,
                                                  duration_ms=result.duration_ms,
                                                  function_error=error is not None))
        return Invocation(
            payload=payload,
            error=error,
            executed_version=fn.version,
            cold_start=result.cold,
            duration_ms=(time.perf_counter() - started) * 1000,
            timed_out=result.timed_out,
            request_id=result.request_id,
            endpoint=fn.env.get("MLOPS_ENDPOINT") or fn.name,
            init_ms=result.init_ms,
            weighted=weighted,
            invoked_arn=invoked_arn,
        )

    async def _run(self, fn: FunctionVersion, event: Any, invoked_arn: str) -> Result:
        pool = await self._pool(fn)
        try:
            return await pool.invoke(json.dumps(event).encode(), invoked_arn)
        except PoolClosed:  # replaced while this request waited for an environment
            pool = await self._pool(fn)
            return await pool.invoke(json.dumps(event).encode(), invoked_arn)

    def _reservation(self, fn: FunctionVersion) -> asyncio.Semaphore | None:
        """The executions the function's reserved concurrency allows; None when none is
        reserved (then only the local environments bound them, and an invocation waits)."""
        if fn.reserved_concurrency is None:
            return None
        key = (fn.region, fn.name)
        found = self._reserved.get(key)
        if found is None or found[0] != fn.reserved_concurrency:
            found = self._reserved[key] = (fn.reserved_concurrency,
                                           asyncio.Semaphore(fn.reserved_concurrency))
        return found[1]

    async def invoke_queued(self, function: str, qualifier: str | None, event: Any,
                            max_age_s: float = ASYNC_MAX_AGE_S) -> Invocation:
        """An asynchronous invocation's run: Lambda keeps an event its function's reserved
        concurrency throttles in its queue and tries again (backing off, up to the event's
        maximum age), without counting it as a failed attempt."""
        queued = time.monotonic()
        delay = THROTTLE_RETRY_S[0]
        while True:
            result = await self.invoke_async(function, qualifier, event)
            if not result.throttled or time.monotonic() - queued + delay > max_age_s:
                return result
            await asyncio.sleep(delay)
            delay = min(delay * 2, THROTTLE_RETRY_S[1])

    def invoke(self, function: str, qualifier: str | None, event: Any, *,
               queued: bool = False) -> Invocation:
        """``invoke_async`` (``invoke_queued`` with ``queued``) from any other thread."""
        if queued:
            return self.run(self.invoke_queued(function, qualifier, event))
        return self.run(self.invoke_async(function, qualifier, event))

    # -- asynchronous invocation -------------------------------------------------------------
    def submit_event(self, function: str, qualifier: str | None, event: Any) -> str:
        """Queue an asynchronous invocation (``InvocationType: Event``) and return its request
        id at once; it runs, and is retried, on the data plane's loop. The function and
        qualifier must exist (``MlopsError`` or the control plane's error otherwise), as
        Lambda checks them before it answers 202."""
        fn, _, _ = self.target(function, qualifier)
        retries, max_age = self._event_config(fn)
        request_id = str(uuid.uuid4())
        while len(self.events) >= EVENTS_KEPT:  # the oldest outcomes go first
            self.events.pop(next(iter(self.events)))
        self.events[request_id] = {"function": fn.name, "qualifier": qualifier,
                                   "attempts": 0, "status": "queued", "error": None}
        asyncio.run_coroutine_threadsafe(
            self._run_event(request_id, function, qualifier, event, retries, max_age),
            self.loop)
        return request_id

    def _event_config(self, fn: FunctionVersion) -> tuple[int, float]:
        """(retries, maximum event age) of the function's asynchronous invocation config."""
        try:
            cfg = self._lambda(fn.region).get_function_event_invoke_config(
                FunctionName=fn.name)
        except Exception:  # none configured: Lambda's defaults
            return ASYNC_MAX_RETRIES, ASYNC_MAX_AGE_S
        retries = cfg.get("MaximumRetryAttempts")
        age = cfg.get("MaximumEventAgeInSeconds")
        return (ASYNC_MAX_RETRIES if retries is None else int(retries),
                ASYNC_MAX_AGE_S if age is None else float(age))

    async def _run_event(self, request_id: str, function: str, qualifier: str | None,
                         event: Any, retries: int, max_age: float) -> None:
        record = self.events[request_id]
        queued = time.monotonic()
        for attempt in range(retries + 1):
            record["attempts"] = attempt + 1
            try:
                result = await self.invoke_queued(function, qualifier, event,
                                                  max(0.0, max_age - (time.monotonic() - queued)))
                error = result.error
            except Exception as exc:  # the function cannot run at all (its code, its runtime)
                error = runtime_error(type(exc).__name__, str(exc))
            if error is None:
                record.update(status="succeeded", error=None)
                return
            record["error"] = error
            if attempt == retries:
                break
            delay = self.retry_delays_s[min(attempt, len(self.retry_delays_s) - 1)]
            if time.monotonic() - queued + delay > max_age:
                log.warning("asynchronous invocation %s of %s dropped: older than %.0f s "
                            "(MaximumEventAgeInSeconds)", request_id, function, max_age)
                record["status"] = "expired"
                return
            log.info("asynchronous invocation %s of %s failed (%s); retry %d in %.1f s",
                     request_id, function, error.get("errorType"), attempt + 1, delay)
            await asyncio.sleep(delay)
        record["status"] = "failed"
        log.warning("asynchronous invocation %s of %s failed %d time(s) (%s: %s); dropped",
                    request_id, function, record["attempts"], (error or {}).get("errorType"),
                    (error or {}).get("errorMessage"))

    def refresh(self) -> None:
        """Forget cached aliases and configurations (after a deploy)."""
        self._aliases.clear()
        self._versions.clear()

    def worker_pids(self) -> list[int]:
        return [pid for pool in list(self._pools.values()) for pid in pool.pids()]

    async def _close_pools(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools))

    def close(self) -> None:
        if self.loop.is_running():
            self.run(self._close_pools(), timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        self.logs.close()


def async_retry_delays(environ: Any) -> tuple[float, ...]:
    """The waits before an asynchronous event's retries: ``MLOPS_LOCAL_ASYNC_RETRY_S``
    (seconds, comma-separated), else Lambda's one minute then two."""
    raw = str(environ.get("MLOPS_LOCAL_ASYNC_RETRY_S") or "").strip()
    if not raw:
        return ASYNC_RETRY_S
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        delays = ()
    if not delays or any(not d >= 0 for d in delays):
        raise ValueError(f"MLOPS_LOCAL_ASYNC_RETRY_S={raw!r} is not a list of seconds, "
                         "e.g. 60,120")
    return delays


_INSTALL_LOCK = threading.Lock()


def shared_cache() -> Path:
    """Where what is the same for every local AWS of this machine is kept: runtimes and
    extracted layers (the machine cache of ``framework.layers``)."""
    from framework.layers import machine_cache

    return machine_cache() / "local"


def install_runtime(root: Path, runtime: str, arch: str) -> Path:
    """The runtime's own directory (Lambda's /var/runtime) under ``root``:
    ``RUNTIME_PACKAGES`` for ``runtime``'s Python version, installed once from their wheels."""
    tag = hashlib.sha256(" ".join(RUNTIME_PACKAGES).encode()).hexdigest()[:8]
    target = root / f"{runtime}-{arch}-{tag}"
    if target.is_dir():
        return target
    with _INSTALL_LOCK:
        if target.is_dir():
            return target
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=root))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
               "--disable-pip-version-check", "--target", str(tmp), "--only-binary=:all:",
               "--implementation", "cp", "--python-version", runtime.removeprefix("python"),
               "--platform", _PIP_PLATFORMS[arch], *RUNTIME_PACKAGES]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise MlopsError(f"could not install the {runtime} runtime's packages: "
                             f"{proc.stderr.strip()[-300:]}", where=f"runtime {runtime}",
                             hint="pip needs PyPI (or its cache) once per runtime")
        _read_only(tmp)
        _publish(tmp, target)
    return target


def _publish(tmp: Path, target: Path) -> None:
    """Move a finished tree into place; another process may have put the same one first."""
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _read_only(root: Path) -> None:
    """Files as Lambda has them: read-only (folders stay removable by their owner)."""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, path.stat().st_mode & 0o555)
