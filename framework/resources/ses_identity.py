"""ses_identity: an e-mail address monitors send reports from or to. On AWS a new identity
stays Pending until a person clicks the link SES mailed to it: the apply says so as a
warning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class SesIdentity(Props):
    kind = "ses_identity"

    email: str


def pending_identity(identity: str, status: str) -> str:
    """What a person must do before SES sends from or to ``identity`` (verification is
    ``status``): on AWS a new identity needs someone to click the link SES mailed to it."""
    if "@" not in identity:
        return (f"SES identity {identity} is {status}: publish the DNS records SES gives for "
                "the domain (SES console → Verified identities) before reports can be sent")
    return (f"SES identity {identity} is {status}: a person must click the verification link "
            f"SES just e-mailed to {identity} (within 24 h, or deploy again to resend it); "
            "until then no report is sent from it, nor to it while the account is in the SES "
            "sandbox")


def verification(ctx: Context, identity: str) -> dict[str, Any] | None:
    """The identity's verification attributes, None when SES does not know it."""
    got = ctx.client("ses").get_identity_verification_attributes(Identities=[identity])
    attrs: dict[str, Any] | None = got.get("VerificationAttributes", {}).get(identity)
    return attrs


def create(ctx: Context, p: SesIdentity) -> Outputs:
    ctx.client("ses").verify_email_identity(EmailAddress=p.email)
    status = str((verification(ctx, p.email) or {}).get("VerificationStatus", "NotStarted"))
    if status != "Success":
        ctx.warnings.append(pending_identity(p.email, status))
    return {"identity": p.email}


def update(ctx: Context, p: SesIdentity, _before: Deployed[SesIdentity] | None) -> Outputs:
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[SesIdentity], _destroying: bool) -> None:
    ctx.client("ses").delete_identity(Identity=d.props.email)


def exists(ctx: Context, d: Deployed[SesIdentity]) -> bool:
    # Asked of the identity itself: no listing to page through, and a Pending identity (link
    # not clicked yet) exists; one whose link expired (Failed) must be sent again.
    attrs = verification(ctx, d.props.email)
    return attrs is not None and attrs.get("VerificationStatus") != "Failed"


def cloudformation(p: SesIdentity) -> CfnResource:
    return {"Type": "AWS::SES::EmailIdentity", "Properties": {"EmailIdentity": p.email}}


KIND = Kind(
    props=SesIdentity, services=("ses",), replace_on=frozenset({"email"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
