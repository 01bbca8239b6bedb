"""The embedded local AWS: moto control plane + the framework's own data plane.

``start``/``stop``/``status``/``ensure_running`` manage one background daemon per project
home (``.mlops/local``); ``connection`` gives a boto3 ``Connection`` to its control plane.
Deployed HTTP APIs are served at ``<gateway_url>/<api id>/<path>``.
"""

from typing import Any

from .control import LocalAWS, connection, ensure_running, start, status, stop


def __getattr__(name: str) -> Any:
    # The runner (aiohttp and the Lambda sandbox) loads only where it is used: the CLI's
    # reads need ``status`` and ``connection`` alone.
    if name in ("Invocation", "Runner"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Invocation",
    "LocalAWS",
    "Runner",
    "connection",
    "ensure_running",
    "start",
    "status",
    "stop",
]
