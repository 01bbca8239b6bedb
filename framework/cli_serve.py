"""Serving commands: ``mlops invoke`` (with ``--bench``) and ``mlops keys create|list|revoke``.

Registered on the main app by ``framework.cli``. As on every command, ``--file/-f`` is the
project's mlops.yaml (``--config/-c`` is kept, hidden, for older scripts); the request bodies
come from ``--data`` or ``--input/-i``.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from framework.cli_common import (
    DEFAULT_FILE,
    FileOpt,
    Output,
    OutputOpt,
    StageOpt,
    check_name,
    err,
    open_stage,
    out,
    print_json,
    workspace,
)
from framework.errors import ConfigError, Problem

if TYPE_CHECKING:
    import http.client

keys_app = typer.Typer(no_args_is_help=True,
                       help="API keys of endpoints with auth: api_key (stored only as hashes).")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", hidden=True,
                                                help="Path of mlops.yaml (use --file).")]




# -- invoke -------------------------------------------------------------------------------


def bodies(data: str | None, body_file: Path | None) -> list[bytes]:
    """The request bodies: ``--data`` (one), or ``--file`` (one JSON document, or JSON lines)."""
    if (data is None) == (body_file is None):
        raise ConfigError([Problem(where="invoke", what="give exactly one of --data or --input",
                                   hint="e.g. --data '{\"instances\": [...]}'")],
                          source="invoke")
    if data is not None:
        return [data.encode()]
    assert body_file is not None
    if not body_file.exists():
        raise ConfigError([Problem(where=str(body_file), what="no such file",
                                   hint="--input takes a JSON body or JSON lines")],
                          source="invoke")
    text = body_file.read_text()
    try:
        json.loads(text)
        return [text.encode()]
    except json.JSONDecodeError:
        return [line.encode() for line in text.splitlines() if line.strip()]


class Client:
    """One keep-alive HTTP/1.1 connection (what a real application holds)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port
        self.https = parts.scheme == "https"
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = {"content-type": "application/json", **headers}
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        import http.client

        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=60)

    def call(self, method: str, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        import http.client

        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, self.path, body=body, headers=self.headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def run_bench(url: str, method: str, payloads: list[bytes], n: int, concurrency: int,
              headers: dict[str, str]) -> dict[str, Any]:
    """Send ``n`` requests from ``concurrency`` keep-alive clients; summarize."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    cold = 0
    lock = threading.Lock()
    counter = iter(range(n))
    counter_lock = threading.Lock()

    def worker() -> None:
        nonlocal cold
        client = Client(url, headers)
        try:
            while True:
                with counter_lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = payloads[i % len(payloads)]
                t0 = time.perf_counter()
                status, hdrs, _ = client.call(method, body)
                took = time.perf_counter() - t0
                with lock:
                    latencies.append(took)
                    statuses[status] += 1
                    versions[hdrs.get("x-mlops-executed-version", "?")] += 1
                    cold += hdrs.get("x-mlops-cold-start") == "true"
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

    return {"requests": len(latencies), "seconds": wall,
            "rps": len(latencies) / wall if wall else 0.0,
            "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
            "max_ms": ordered[-1] * 1000 if ordered else 0.0,
            "mean_ms": statistics.fmean(ordered) * 1000 if ordered else 0.0,
            "statuses": dict(statuses), "versions": dict(versions), "cold_starts": cold}


def invoke(endpoint: Annotated[str, typer.Argument(help="Endpoint name from mlops.yaml.")],
           data: Annotated[str | None, typer.Option("--data", "-d", help="JSON body.")] = None,
           body_file: Annotated[Path | None, typer.Option(
               "--input", "-i",
               help="A JSON body, or JSON lines (one request each).")] = None,
           bench: Annotated[int, typer.Option(
               "--bench", help="Send the body N times; print latency percentiles and rate.")]
           = 0,
           concurrency: Annotated[int, typer.Option(
               "--concurrency", "-n", help="Concurrent keep-alive clients for --bench.")] = 1,
           key: Annotated[str | None, typer.Option(
               "--key", envvar="MLOPS_API_KEY", help="API key (x-api-key header).")] = None,
           path: Annotated[str, typer.Option(
               "--path", help="Call a sub-route instead: feedback, openapi.json, v2, "
                              "v2/ready, v2/infer.")] = "",
           file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           config: ConfigOpt = None) -> None:
    """Call a deployed endpoint over HTTP and print the answer (or benchmark it)."""
    from framework.compile import names
    from framework.workflow import find_endpoint

    ws = workspace(config or file, stage)
    check_name(endpoint, ws.loaded.config.endpoints, what="endpoint", where=endpoint,
               source="invoke")
    session = open_stage(config or file, stage, ws=ws)
    info = find_endpoint(session, session.store.load(), endpoint)
    method, route_path = info.route.split(" ", 1)
    url = info.url
    if path:
        base = url[: len(url) - len(route_path)] if url.endswith(route_path) else url
        v2 = names.oip_path(endpoint)
        sub = {"feedback": ("POST", f"{url}/feedback"),
               "openapi.json": ("GET", f"{url}/openapi.json"),
               "v2": ("GET", f"{base}{v2}"), "v2/ready": ("GET", f"{base}{v2}/ready"),
               "v2/infer": ("POST", f"{base}{v2}/infer")}
        if path not in sub:
            raise ConfigError([Problem(where="--path", what=f"unknown sub-route {path!r}",
                                       hint=f"one of {', '.join(sub)}")], source="invoke")
        method, url = sub[path]
    payloads = [b""] if method == "GET" and data is None and body_file is None else \
        bodies(data, body_file)
    headers = {"x-api-key": key} if key else {}
    if bench > 0:
        result = run_bench(url, method, payloads, bench, concurrency, headers)
        table = Table(title=f"{method} {url}: {result['requests']} requests, "
                            f"{concurrency} client(s)", title_justify="left")
        for col in ("p50 ms", "p90 ms", "p99 ms", "max ms", "req/s", "statuses", "versions",
                    "cold"):
            table.add_column(col)
        table.add_row(f"{result['p50_ms']:.2f}", f"{result['p90_ms']:.2f}",
                      f"{result['p99_ms']:.2f}", f"{result['max_ms']:.2f}",
                      f"{result['rps']:.0f}", json.dumps(result["statuses"]),
                      json.dumps(result["versions"]), str(result["cold_starts"]))
        out.print(table)
        if any(s >= 400 for s in result["statuses"]):
            raise typer.Exit(1)
        return
    client = Client(url, headers)
    failed = False
    try:
        for body in payloads:
            status, hdrs, raw = client.call(method, body if method != "GET" else None)
            version = hdrs.get("x-mlops-executed-version", "?")
            colour = "green" if status < 400 else "red"
            err.print(f"[{colour}]HTTP {status}[/{colour}] {method} {url} "
                      f"(executed version {version})")
            text = raw.decode(errors="replace")
            try:
                out.print_json(text)
            except json.JSONDecodeError:
                out.print(text)
            failed = failed or status >= 400
    finally:
        client.close()
    if failed:
        raise typer.Exit(1)


def url(endpoint: Annotated[str, typer.Argument(help="Endpoint name from mlops.yaml.")],
        file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Print the URL a deployed endpoint answers at (e.g. curl "$(mlops url predict)")."""
    from framework.workflow import find_endpoint

    ws = workspace(file, stage)
    check_name(endpoint, ws.loaded.config.endpoints, what="endpoint", where=endpoint,
               source="url")
    session = open_stage(file, stage, ws=ws, read=True, announce=False)
    try:
        info = find_endpoint(session, session.store.load(), endpoint)
    except ConfigError as exc:  # declared, not deployed
        raise ConfigError(exc.problems, source="url") from None
    print(info.url)


# -- keys ---------------------------------------------------------------------------------


def _keys_context(file: Path, stage: str | None, endpoint: str, *,
                  read: bool = False) -> tuple[Any, Any]:
    ws = workspace(file, stage)
    endpoints = ws.loaded.config.endpoints
    check_name(endpoint, endpoints, what="endpoint", where=endpoint, source="keys")
    session = open_stage(file, stage, ws=ws, read=read, announce=not read)
    if endpoints[endpoint].auth.value != "api_key":
        err.print(f"[yellow]warning:[/yellow] endpoint {endpoint} has auth "
                  f"{endpoints[endpoint].auth.value}; keys are checked only with auth: api_key")
    return session, session.target.conn.client("s3")


@keys_app.command("create")
def keys_create(endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
                name: Annotated[str, typer.Option(help="A label: who or what uses the key.")]
                = "",
                file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Create an API key; it is printed once and only its SHA-256 is stored."""
    from framework.runtime import auth

    session, s3 = _keys_context(file, stage, endpoint)
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    new = auth.generate(endpoint, name=name, now=now)
    new.record["created_by"] = session.target.actor
    s3.put_object(Bucket=session.bucket, Key=auth.key_object(endpoint, new.key_id),
                  Body=json.dumps(new.record, indent=2).encode(),
                  ContentType="application/json", IfNoneMatch="*")
    err.print(f"created key {new.key_id} for endpoint {endpoint}; it is shown only now "
              "(send it as the x-api-key header):")
    print(new.key)


def _records(s3: Any, bucket: str, endpoint: str) -> list[dict[str, Any]]:
    records = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"keys/{endpoint}/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            try:
                record = json.loads(body)
            except ValueError:
                record = None
            if not isinstance(record, dict):  # listed as what it is, not skipped
                record = {"key_id": obj["Key"].rsplit("/", 1)[-1].removesuffix(".json"),
                          "name": "unreadable record (not a JSON object)"}
            records.append(record)
    return sorted(records, key=lambda r: (str(r.get("created_at")), str(r.get("key_id"))))


@keys_app.command("list")
def keys_list(endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
              file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
              output: OutputOpt = Output.table) -> None:
    """List an endpoint's keys (ids, labels, dates; never the keys)."""
    session, s3 = _keys_context(file, stage, endpoint, read=True)
    if output is Output.json:  # the stored records but their hash
        print_json({"endpoint": endpoint, "keys": [
            {k: v for k, v in r.items() if k != "hash"}
            for r in _records(s3, session.bucket, endpoint)]})
        return
    table = Table(title=f"API keys of {endpoint}", title_justify="left")
    for col in ("key id", "name", "created", "by", "revoked"):
        table.add_column(col)
    for r in _records(s3, session.bucket, endpoint):
        table.add_row(str(r.get("key_id")), str(r.get("name") or ""),
                      str(r.get("created_at") or ""), str(r.get("created_by") or ""),
                      f"[red]{r['revoked_at']}[/red]" if r.get("revoked_at") else "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
                key_id: Annotated[str, typer.Argument(help="Key id (from `mlops keys list`).")],
                file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Revoke a key: requests with it answer 403 (within the handlers' 5 s cache)."""
    from framework.runtime import auth

    session, s3 = _keys_context(file, stage, endpoint)
    obj_key = auth.key_object(endpoint, key_id)
    try:
        record = json.loads(s3.get_object(Bucket=session.bucket, Key=obj_key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        raise ConfigError([Problem(where=f"keys.{endpoint}", what=f"no key {key_id!r}",
                                   hint=f"see `mlops keys list {endpoint}`")],
                          source="keys") from None
    if record.get("revoked_at"):
        out.print(f"key {key_id} was already revoked at {record['revoked_at']}")
        return
    record["revoked_at"] = datetime.now(UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
    record["revoked_by"] = session.target.actor
    s3.put_object(Bucket=session.bucket, Key=obj_key,
                  Body=json.dumps(record, indent=2).encode(), ContentType="application/json")
    out.print(f"revoked key {key_id} of endpoint {endpoint}")


# -- layer --------------------------------------------------------------------------------

layer_app = typer.Typer(no_args_is_help=True,
                        help="The Lambda layers the functions import their packages from.")


@layer_app.command("build")
def layer_build(
    file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
    need: Annotated[list[str] | None, typer.Option(
        "--need", help="serve (endpoints: onnxruntime, numpy, boto3) or monitor (numpy, scipy, "
        "boto3); default: the layers the stage's functions need.")] = None,
    runtime: Annotated[str | None, typer.Option(
        help="Lambda runtime, e.g. python3.13; default: the project's.")] = None,
    arch: Annotated[str | None, typer.Option(
        help="x86_64 or arm64; default: the project's.")] = None,
) -> None:
    """Resolve the layers' packages afresh, download manylinux wheels with pip and build the
    zips in .mlops/build; check Lambda's 250 MB limit. `mlops deploy` builds missing layers
    itself and reuses built ones: run this to upgrade them."""
    from framework.compile import required_layers
    from framework.config.runtimes import parse_architecture, parse_runtime
    from framework.layers import MB, NEEDS
    from framework.package import code_unzipped_bytes
    from framework.workflow import Workspace, workspace_layers

    ws = Workspace.open(file, stage)
    cfg = ws.loaded.config
    try:
        rt = parse_runtime(runtime).identifier if runtime else None
        ar = parse_architecture(arch).value if arch else None
    except ValueError as exc:
        what, _, hint = str(exc).partition("; ")
        raise ConfigError([Problem(where="layer", what=what, hint=hint)],
                          source="layer") from None
    unknown = [n for n in need or () if n not in NEEDS]
    if unknown:
        raise ConfigError([Problem(where="--need", what=f"unknown layer {', '.join(unknown)}",
                                   hint=f"one of {', '.join(NEEDS)}")], source="layer")
    wanted = required_layers(cfg) or [(n, cfg.runtime, cfg.architecture.value) for n in NEEDS]
    keys = sorted({(n, rt or r, ar or a) for n, r, a in wanted if not need or n in need}
                  | {(n, rt or cfg.runtime, ar or cfg.architecture.value) for n in need or ()})
    err.print("resolving and building " + ", ".join(f"{n} ({r}, {a})" for n, r, a in keys)
              + " ...")
    code_bytes = code_unzipped_bytes()
    for key, layer in workspace_layers(ws, fresh=True, keys=keys).items():
        out.print(f"layer {layer.source}: {layer.summary}")
        out.print(f"  {layer.size / MB:.1f} MB zipped; with the function code "
                  f"{code_bytes / MB:.1f} MB, {_unzipped(ws, key) / MB:.1f} MB unzipped of "
                  "Lambda's 250 MB")


def _unzipped(ws: Any, key: tuple[str, str, str]) -> int:
    from framework.layers import read_manifest
    from framework.package import code_unzipped_bytes

    built = read_manifest(ws.home / "build", key)
    return (built.unzipped if built else 0) + code_unzipped_bytes()


def register(app: typer.Typer) -> None:
    app.command("invoke")(invoke)
    app.command("url")(url)
    app.add_typer(keys_app, name="keys")
    app.add_typer(layer_app, name="layer")


__all__ = ["bodies", "register", "run_bench"]
