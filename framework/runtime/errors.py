"""Errors of the runtime: request errors that become HTTP answers, and model load failures.

A ``RequestError`` carries its HTTP status and a JSON body that is safe to show to callers:
a short error code, one message, and at most ``MAX_DETAILS`` per-row/per-field details. It
never carries internals (paths, bucket names, tracebacks).
"""

from __future__ import annotations

from typing import Any

MAX_DETAILS = 20


class RequestError(Exception):
    """A problem with the caller's request, answered with ``status`` and ``body()``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        *,
        total: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = (details or [])[:MAX_DETAILS]
        self.total = total if total is not None else len(details or [])

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.details:
            out["details"] = self.details
            if self.total > len(self.details):
                out["truncated"] = True
        return out

    @classmethod
    def bad_request(cls, message: str, details: list[dict[str, Any]] | None = None) -> RequestError:
        return cls(400, "invalid_request", message, details)

    @classmethod
    def invalid(cls, details: list[dict[str, Any]], total: int) -> RequestError:
        first = details[0]
        where = f"row {first['row']}, {first['field']}"
        message = (
            f"{total} invalid value{'s' if total != 1 else ''}; first: {where} {first['problem']}"
        )
        return cls(422, "invalid_input", message, details, total=total)


class ModelUnavailableError(Exception):
    """The model could not be loaded (missing object, unloadable graph, bad signature)."""


class IntegrityError(ModelUnavailableError):
    """The model bytes or metadata do not match what the deployment recorded."""
