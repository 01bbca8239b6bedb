"""Who is acting: the caller's verified identity, as approvals and registrations record it.

On AWS it is what STS ``GetCallerIdentity`` answers for the credentials in use — an IAM user
(``arn:aws:iam::123456789012:user/alice``), or a role session
(``arn:aws:sts::123456789012:assumed-role/ml-approver/alice``: the role, and the session name
the assumer chose — with IAM Identity Center, the person's user name). ``--by`` on
``mlops models approve`` is only the name shown beside it.

On the local target and LocalStack there is nobody to verify against (their STS answers one
fixed identity for any key), so the *configured* identity stands in: ``MLOPS_IDENTITY``, a
name (``alice``, recorded as the IAM user of that name in the local account) or an ARN of either
form above (to try ``roles:`` rules locally); without it, their STS answer. ``MLOPS_IDENTITY``
is ignored on AWS, with a warning: the verified caller is recorded there, whatever it says.

A principal is one person for ``distinct`` counting: the caller's ARN (a role session's
includes its session name, so two people in one role count twice — and one person assuming a
role under two session names does too, unless the role's trust policy pins the session name
with ``sts:RoleSessionName``, as Identity Center does).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

ENV = "MLOPS_IDENTITY"
CONFIGURED = "MLOPS_IDENTITY"
VERIFIED = "sts"
NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::(\d{12}):(.+)$")


@dataclass(frozen=True)
class Identity:
    """A caller: its ARN (the principal), short name, IAM role (of an assumed-role session),
    account, and how it was known (``sts`` or ``MLOPS_IDENTITY``)."""

    principal: str
    name: str
    role: str | None
    account: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "name": self.name, "role": self.role,
                "account": self.account, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(str(data["principal"]), str(data.get("name") or ""),
                   data.get("role") or None, str(data.get("account") or ""),
                   str(data.get("source") or VERIFIED))

    def in_role(self, patterns: tuple[str, ...] | list[str]) -> bool:
        """Whether a ``roles:`` entry names this caller's role: a role name, or an ARN pattern
        (``*`` wildcards) matched against the role's ARN and the caller's own."""
        role_arn = (f"arn:aws:iam::{self.account}:role/{self.role}" if self.role else None)
        for pattern in patterns:
            if pattern.startswith("arn:"):
                if any(fnmatch.fnmatchcase(arn, pattern)
                       for arn in (role_arn, self.principal) if arn):
                    return True
            elif self.role is not None and fnmatch.fnmatchcase(self.role, pattern):
                return True
        return False

    def shown(self, by: str | None = None) -> str:
        """``by`` (the display name), with the principal it was verified as when the name is
        not the identity's own."""
        if not by:
            return self.principal
        return by if by == self.name else f"{by} ({self.principal})"


def from_arn(arn: str, source: str = VERIFIED) -> Identity:
    """The identity an STS ARN names (any other string: a principal of that name)."""
    match = ARN_RE.match(arn)
    if match is None:
        return Identity(arn, arn, None, "", source)
    account, resource = match.group(2), match.group(3)
    parts = resource.split("/")
    if parts[0] == "assumed-role" and len(parts) >= 3:
        return Identity(arn, parts[-1], parts[1], account, source)
    if parts[0] in ("user", "federated-user") and len(parts) >= 2:
        return Identity(arn, parts[-1], None, account, source)
    return Identity(arn, parts[-1] or resource, None, account, source)


def configured(value: str, account: str) -> Identity:
    """``MLOPS_IDENTITY``: a name (the IAM user of that name in ``account``) or an ARN."""
    value = value.strip()
    if value.startswith("arn:"):
        if ARN_RE.match(value) is None:
            from framework.registry.errors import RegistryInputError

            raise RegistryInputError(
                f"MLOPS_IDENTITY '{value}' is not a user or role-session ARN", where=ENV,
                hint="give a name (alice) or an ARN such as "
                     "arn:aws:sts::123456789012:assumed-role/ml-approver/alice")
        return from_arn(value, CONFIGURED)
    if not NAME_RE.match(value):
        from framework.registry.errors import RegistryInputError

        raise RegistryInputError(
            f"MLOPS_IDENTITY '{value}' is not a name", where=ENV,
            hint="use letters, digits and + = , . @ _ - (at most 64), e.g. dr-house")
    return Identity(f"arn:aws:iam::{account or '000000000000'}:user/{value}", value, None,
                    account, CONFIGURED)


def off_aws(s3: Any) -> bool:
    """Whether ``s3`` (a boto3 client) talks to a control plane other than AWS (the local AWS
    or LocalStack), whose STS verifies nothing."""
    url = str(getattr(getattr(s3, "meta", None), "endpoint_url", "") or "")
    host = urlparse(url).hostname or ""
    return not (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")
                or host.endswith(".api.aws"))


def resolve(sts_arn: str, *, configurable: bool, warnings: list[str] | None = None,
            environ: dict[str, str] | None = None) -> Identity:
    """The caller: ``MLOPS_IDENTITY`` where it may stand in (``configurable``: not AWS), else
    the STS answer ``sts_arn``."""
    env = os.environ if environ is None else environ
    verified = from_arn(sts_arn)
    value = env.get(ENV, "").strip()
    if value and configurable:
        return configured(value, verified.account)
    if value and warnings is not None:
        warnings.append(f"{ENV} ({value}) is ignored against AWS: the caller STS verifies "
                        f"({verified.principal}) is recorded")
    return verified
