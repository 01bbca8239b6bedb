"""The embedded local AWS: moto control plane + the framework's own data plane.

``start``/``stop``/``status``/``ensure_running`` manage one background daemon per project
home (``.mlops/local``); ``connection`` gives a boto3 ``Connection`` to its control plane.
Deployed HTTP APIs are served at ``<gateway_url>/<api id>/<path>``.
"""

from .control import LocalAWS, connection, ensure_running, start, status, stop
from .runner import Invocation, Runner

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
