"""Everything that touches moto's internals, in one place.

The daemon serves moto's own WSGI app (on cheroot: ``ControlServer``); this module builds it,
seeds moto's random generator, creates a write's target backend *before* seeding (so lazy
backend creation never shifts the random sequence between the original run and a replay),
and lists the regions that hold HTTP APIs (so the gateway does not scan every AWS region).

Patches of moto applied here (each explained where it is made): S3 multipart upload ids from
the seeded generator; PutObjectLockConfiguration on a versioned bucket that holds objects;
bucket policies stored, not evaluated; and an S3 object's bytes above 64 KiB kept in a file
opened only while read (the journal's own blob when it holds them) instead of moto's open
temporary file or memory per object (``s3store.py``).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from framework.runtime.clients import LOCAL_ACCOUNT_ID

from . import s3store
from .journal import Environ, WSGIApp

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_SIGNING_ALIASES = {"eventbridge": "events", "email": "ses"}
_GLOBAL = {"iam", "s3", "sts", "cloudfront", "route53", "organizations"}


class _SeededOs:
    """``os`` for one moto module, with ``urandom`` drawn from moto's seeded generator."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def urandom(size: int) -> bytes:
        from moto.moto_api._internal import mock_random

        return mock_random.randbytes(size)


def build_app(home: Path) -> WSGIApp:
    """moto's WSGI app, patched; S3 objects' bytes kept in ``home``'s files."""
    import moto.s3.models
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # S3 multipart upload ids come from os.urandom; replayed UploadPart calls need the same id.
    moto.s3.models.os = _SeededOs()  # type: ignore[attr-defined,assignment]
    # AWS enables Object Lock on a versioned bucket that already holds objects; moto 5 wants
    # the bucket empty, which would leave a registry deployed before Object Lock unlocked.
    moto.s3.models.S3Backend.put_object_lock_configuration = (  # type: ignore[method-assign]
        _put_object_lock_configuration)
    # moto judges a bucket policy's statements without the request's condition keys (no
    # If-None-Match, principal or TLS): it would deny the conditional writes the registry's
    # policy allows and every plain-HTTP request of the local control plane. The local AWS
    # stores a bucket policy and does not evaluate it (its statements are tested as a
    # document: tests/resources/test_bucket_policy.py).
    moto.s3.models.FakeBucket.get_permission = _policy_not_evaluated  # type: ignore[method-assign]
    # moto keeps each object's bytes in memory or in an open temporary file (one descriptor
    # per object): a capture window of thousands of objects exhausts one or the other.
    s3store.install(home)

    class Dispatcher(DomainDispatcherApplication):
        """moto's dispatcher, its answer for a host kept: moto lists its package directory
        (``list_of_moto_modules``: a directory scan) and tries every service's URL patterns
        for each request, under a lock every request of the control plane waits for (over
        half of the local S3's time a GET in a profile of 16 concurrent GETs)."""

        @functools.lru_cache(maxsize=512)  # noqa: B019 - one dispatcher, for the daemon's life
        def get_backend_for_host(self, host: str | None) -> Any:
            return super().get_backend_for_host(host)

    app: WSGIApp = Dispatcher(create_backend_app)
    return app


class ControlServer:
    """The control plane's HTTP server: cheroot, CherryPy's WSGI server, in place of
    werkzeug's development server that moto's own server runs. werkzeug's closes every
    connection after its answer (``Connection: close``, whatever the protocol version) and
    starts a thread for each new one: a client's every call opened a connection and the
    daemon a thread (a third of its time serving a GET of a partial profile, in a profile of
    16 concurrent GETs). cheroot keeps connections open between calls, as AWS's endpoints do,
    on a fixed pool of threads, and watches idle ones without holding a thread.

    Threads: enough for the calls that wait on others (a Lambda ``Invoke`` on the control plane
    waits for the function, whose own S3 calls need threads of their own: a monitor run and
    its fan-out workers). S3 object metadata names with underscores are kept as moto's own
    server keeps them (``x-amz-meta-a_b``)."""

    THREADS = 128
    IDLE_CONNECTIONS = 1024  # keep-alive connections kept open while idle
    BACKLOG = 512  # connections waiting to be accepted (a burst of fetching threads)

    def __init__(self, port: int, app: WSGIApp) -> None:
        from cheroot import wsgi

        self.server = wsgi.Server(("127.0.0.1", port), app, numthreads=self.THREADS,
                                  request_queue_size=self.BACKLOG, timeout=300,
                                  shutdown_timeout=2)
        self.server.keep_alive_conn_limit = self.IDLE_CONNECTIONS
        self.server.gateway = _gateway()
        self.server.prepare()  # bound and listening from here

    def serve(self) -> None:
        self.server.serve()

    def stop(self) -> None:
        self.server.stop()


def _gateway() -> Any:
    """cheroot's WSGI 1.0 gateway, with moto's record of header names that hold underscores
    (``moto.moto_server.werkzeug_app.MotoRequestHandler.make_environ``)."""
    from cheroot import wsgi
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    class Gateway(wsgi.Gateway_10):
        def get_environ(self) -> Environ:  # type: ignore[override]
            environ: Environ = super().get_environ()  # type: ignore[no-untyped-call]
            names = [k.decode("iso-8859-1") for k in self.req.inheaders]
            dashed = {environ_key_for_header(n) for n in names if "_" not in n}
            preserved: dict[str, str] = {}
            for name in names:
                key = environ_key_for_header(name)
                if should_preserve_original_header_name(name) and key not in dashed:
                    preserved.setdefault(key, name)
            environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
            return environ

    return Gateway


def _put_object_lock_configuration(self: Any, bucket_name: str, lock_enabled: bool,
                                   mode: str | None = None, days: int | None = None,
                                   years: int | None = None) -> None:
    """moto's PutObjectLockConfiguration as AWS answers it: a versioned bucket may hold
    objects."""
    from moto.s3.exceptions import InvalidBucketState

    bucket = self.get_bucket(bucket_name)
    if not bucket.is_versioned:
        raise InvalidBucketState(
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration")
    if lock_enabled:
        bucket.object_lock_enabled = True
        bucket.versioning_status = "Enabled"
    bucket.default_lock_mode = mode
    bucket.default_lock_days = days
    bucket.default_lock_years = years


def _policy_not_evaluated(self: Any, action: str, resource: str) -> Any:
    from moto.iam.access_control import PermissionResult

    return PermissionResult.NEUTRAL


def seed(value: int) -> None:
    from moto.moto_api._internal import mock_random

    mock_random.seed(value)


def _account_for(access_key: str) -> str:
    return access_key if re.fullmatch(r"\d{12}", access_key) else LOCAL_ACCOUNT_ID


def scope_of(environ: Environ) -> tuple[str, str] | None:
    """(account, region) a signed request is for."""
    match = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return (_account_for(match.group(1)), match.group(2)) if match else None


def warm_up() -> None:
    """Create the always-touched backends (IAM is consulted on every signed request)."""
    from moto.iam.models import get_account_id_from

    get_account_id_from("testing")


def prepare(environ: Environ) -> None:
    """Create the backend a signed write will use, so its creation draws no seeded randoms."""
    from moto.backends import get_backend

    match = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if not match:
        return
    access_key, region, service = match.groups()
    service = _SIGNING_ALIASES.get(service, service)
    if service == "apigateway" and str(environ.get("PATH_INFO", "")).startswith("/v2/"):
        service = "apigatewayv2"
    try:
        backends: Any = get_backend(service)  # type: ignore[call-overload]
    except Exception:
        return
    per_account = backends[_account_for(access_key)]
    per_account["global" if service in _GLOBAL else region]  # noqa: B018 (creates it)


def regions_with_http_apis() -> list[str]:
    """Regions (of any account) whose apigatewayv2 backend holds at least one API."""
    from moto.apigatewayv2.models import apigatewayv2_backends

    regions: set[str] = set()
    for per_account in list(dict.values(apigatewayv2_backends)):
        for region, backend in list(dict.items(per_account)):
            if getattr(backend, "apis", None):
                regions.add(region)
    return sorted(regions)


def regions_with_event_rules() -> list[str]:
    """Regions (of any account) whose EventBridge backend holds at least one rule."""
    from moto.events.models import events_backends

    regions: set[str] = set()
    for per_account in list(dict.values(events_backends)):
        for region, backend in list(dict.items(per_account)):
            buses = getattr(backend, "event_buses", {})
            if any(getattr(bus, "rules", None) for bus in list(buses.values())):
                regions.add(region)
    return sorted(regions)
