"""The local Lambda runner: executes the *deployed* code, fetched back from the control plane.

Resolution: ``function`` (name or ARN) + ``qualifier`` (version, alias or ``$LATEST``) →
the executed version (a weighted alias picks one with a seedable RNG) → that version's
configuration → its zip, ``s3://<mlops:registry tag>/code/<sha256 hex>.zip``, verified and
extracted once into ``home/code/<hex>/`` → a pool of worker processes for
(function, version, code).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.compile import names
from framework.errors import MlopsError
from framework.runtime.clients import LOCAL_ACCOUNT_ID, Connection

from .capture import SPOOL_DIR, CaptureStore
from .direct import PAGES_DIR, DirectHub, recover_pages
from .files import CODE_DIR, LOGS_DIR
from .logship import LogShipper
from .pool import Pool, WorkerSpec

log = logging.getLogger(__name__)

REGISTRY_TAG = "mlops:registry"
CODE_PREFIX = "code/"
DEFAULT_REGION = "us-east-1"
CACHE_TTL_S = 2.0
CAPTURE_KEY = "mlopsCapture"  # framework.runtime.capture.CAPTURE_KEY (handlers' side)
_BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT", "TZ")


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
    init_ms: float | None = None  # cold starts: the worker's init duration
    captured: int = 0  # capture records committed for this invocation
    shadow_version: str | None = None  # the function's shadow version, if one is set
    pool: Pool | None = None  # the workers of the executed version
    weighted: bool = False  # the version was drawn by alias weights
    invoked_arn: str = ""


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
    shadow: str | None = None  # version mirrored with a copy of this function's traffic


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

    def get(self, key: tuple[str, ...]) -> Any:
        with self._lock:
            hit = self._data.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

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
    """Invoke deployed Lambda functions locally."""

    def __init__(
        self,
        home: Path,
        control_url: str,
        *,
        region: str = DEFAULT_REGION,
        concurrency: int | None = None,
        rng: random.Random | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self.home = home
        self.control_url = control_url
        self.region = region
        env_concurrency = os.environ.get("MLOPS_LOCAL_CONCURRENCY", "4")
        self.concurrency = concurrency or int(env_concurrency)
        seed = os.environ.get("MLOPS_ROUTING_SEED")
        self.rng = rng or random.Random(int(seed) if seed else None)
        self._rng_lock = threading.Lock()
        self._aliases = _TTLCache(cache_ttl_s)
        self._versions = _TTLCache(cache_ttl_s)
        self._pools: dict[tuple[str, str, str, str], Pool] = {}
        self._lock = threading.Lock()
        self._refreshing: set[tuple[Any, ...]] = set()
        self._extract_lock = threading.Lock()
        self.memory_limits = os.environ.get("MLOPS_LOCAL_MEMORY_LIMITS", "1") != "0"
        self.capture = CaptureStore(
            home / SPOOL_DIR, self._upload,
            max_age_s=float(os.environ.get("MLOPS_CAPTURE_FLUSH_S") or 2.0))
        self.capture.start()
        self.logs = LogShipper(lambda region: self._client("logs", region))
        self.logs.start()
        # Warm workers answering handed connections themselves (MLOPS_LOCAL_DIRECT=0: off).
        direct = os.environ.get("MLOPS_LOCAL_DIRECT", "1") != "0"
        self.pages = home / SPOOL_DIR / PAGES_DIR
        recover_pages(self.pages, self.capture)  # left by a daemon that crashed
        self.hub = DirectHub(self.capture) if direct else None

    def _client(self, service: str, region: str) -> Any:
        return Connection(region, self.control_url, dummy_credentials=True).client(service)

    def _upload(self, region: str, bucket: str, key: str, data: bytes) -> None:
        self._client("s3", region).put_object(
            Bucket=bucket, Key=key, Body=data, ContentType="application/x-ndjson",
            ContentEncoding="gzip")

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
        with self._rng_lock:
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
        spec = FunctionVersion(
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
            reserved_concurrency=int(reserved) if reserved else None,
            shadow=tags.get(names.SHADOW_TAG) or None,
        )
        return spec

    def code_dir(self, fn: FunctionVersion) -> Path:
        """The extracted, verified zip for ``fn`` (fetched and extracted once)."""
        target = self.home / CODE_DIR / fn.code_sha256
        if target.is_dir():
            return target
        with self._extract_lock:
            if target.is_dir():
                return target
            conn = Connection(fn.region, self.control_url, dummy_credentials=True)
            key = f"{CODE_PREFIX}{fn.code_sha256}.zip"
            body = conn.client("s3").get_object(Bucket=fn.registry, Key=key)["Body"].read()
            actual = hashlib.sha256(body).hexdigest()
            if actual != fn.code_sha256:
                raise MlopsError(
                    f"s3://{fn.registry}/{key} has sha256 {actual}, expected {fn.code_sha256}",
                    where=f"lambda:{fn.name}:{fn.version}",
                    hint="the registry object was overwritten; redeploy",
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
            try:
                with zipfile.ZipFile(io.BytesIO(body)) as archive:
                    archive.extractall(tmp)
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return target

    # -- execution -----------------------------------------------------------------------
    def _env(self, fn: FunctionVersion, code_dir: Path) -> dict[str, str]:
        env = {k: os.environ[k] for k in _BASE_ENV_KEYS if k in os.environ}
        env.update(fn.env)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                "AWS_LAMBDA_FUNCTION_VERSION": fn.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[{fn.version}]{uuid.uuid4().hex}",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3",
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_ENDPOINT_URL": self.control_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "LAMBDA_TASK_ROOT": str(code_dir),
                "_HANDLER": fn.handler,
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                # Capture lines come back with the response; the runner batches them to S3.
                "MLOPS_CAPTURE_SINK": "local",
            }
        )
        return env

    def _pool(self, fn: FunctionVersion) -> Pool:
        key = (fn.region, fn.name, fn.version, fn.code_sha256)
        with self._lock:
            pool = self._pools.get(key)
        if pool is not None:
            return pool
        code_dir = self.code_dir(fn)
        log_path = self.home / LOGS_DIR / f"{fn.name}.log"
        spec = WorkerSpec(
            code_dir=code_dir,
            env=self._env(fn, code_dir),
            timeout_s=fn.timeout_s,
            log_path=log_path,
            memory_mb=fn.memory_mb if self.memory_limits else None,
            direct=self.hub is not None,
            page_dir=self.pages,
        )
        self.logs.register(log_path, fn.region, fn.name)
        stale: list[Pool] = []
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = Pool(spec, fn.reserved_concurrency or self.concurrency, self.hub)
                # Code replaced under the same version ($LATEST): retire the old workers.
                for old in [k for k in self._pools if k[:3] == key[:3]]:
                    stale.append(self._pools.pop(old))
                self._pools[key] = pool
        for old_pool in stale:
            old_pool.close()
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

    def pool_of(self, fn: FunctionVersion) -> Pool | None:
        """The existing workers of ``fn``, if any."""
        with self._lock:
            return self._pools.get((fn.region, fn.name, fn.version, fn.code_sha256))

    def invoke(self, function: str, qualifier: str | None, event: Any) -> Invocation:
        started = time.perf_counter()
        fn, weighted, invoked_arn = self.target(function, qualifier)
        region = fn.region
        pool = self._pool(fn)
        request_id = str(uuid.uuid4())
        outcome = pool.invoke(event, request_id, invoked_arn)
        payload = outcome.payload
        captured = 0
        if isinstance(payload, dict) and CAPTURE_KEY in payload:
            payload = dict(payload)
            record = payload.pop(CAPTURE_KEY)
            if isinstance(record, dict):
                self.capture.add(region, record)  # durable before the caller sees the answer
                captured = int(record.get("count") or 0)
        return Invocation(
            payload=payload,
            error=outcome.error,
            executed_version=fn.version,
            cold_start=outcome.cold_start,
            duration_ms=(time.perf_counter() - started) * 1000,
            timed_out=outcome.timed_out,
            request_id=request_id,
            endpoint=fn.env.get("MLOPS_ENDPOINT") or fn.name,
            init_ms=outcome.init_ms,
            captured=captured,
            shadow_version=fn.shadow,
            pool=pool,
            weighted=weighted,
            invoked_arn=invoked_arn,
        )

    def flush_capture(self) -> int:
        """Upload every capture record so far, those of direct requests included."""
        if self.hub is not None:
            self.hub.sync()
        return self.capture.flush()

    def refresh(self) -> None:
        """Forget cached aliases and configurations (after a deploy)."""
        self._aliases.clear()
        self._versions.clear()

    def worker_pids(self) -> list[int]:
        with self._lock:
            pools = list(self._pools.values())
        return [pid for pool in pools for pid in pool.worker_pids()]

    def close(self) -> None:
        if self.hub is not None:
            self.hub.sync()  # the workers' last reports, before they are killed
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
        if self.hub is not None:
            self.hub.close()
        self.capture.close()
        self.logs.close()
