"""The registry's user-facing errors: all in the ``MlopsError`` family (where, what, hint)."""

from __future__ import annotations

from framework.errors import MlopsError


class RegistryInputError(MlopsError):
    """A bad name, an unknown model, version or alias, a version that does not increase."""

    exit_code = 2


class ImmutableVersionError(MlopsError):
    """A registered version would get other bytes (or other metadata)."""

    exit_code = 2


class ApprovalRequiredError(MlopsError):
    """An alias may not move to a version that lacks its required approvals."""

    exit_code = 2


class AliasConflictError(MlopsError):
    """Another change moved the alias between our read and our write (compare-and-swap)."""

    exit_code = 3


class RegistryIntegrityError(MlopsError):
    """Stored bytes do not match their recorded SHA-256: the registry was tampered with."""

    exit_code = 7
