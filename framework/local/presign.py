"""Presigned S3 URLs checked as S3 checks them: signature and expiry.

moto serves a presigned ``GET`` whatever its signature and however old it is, so a link that
AWS would refuse (edited, or past its ``X-Amz-Expires``) would open locally. This WSGI
middleware answers such a request as S3 does: ``403 AccessDenied`` "Request has expired", or
``403 SignatureDoesNotMatch``. A SigV4 signature (what mlops signs links with) is recomputed
with botocore's own query signer from the request as received, with the local AWS's one
secret (it accepts any access key id, all of them with the secret ``LOCAL_SECRET``); a legacy
SigV2 link is checked for expiry only. Requests signed in headers (what SDKs send) pass as
before.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from .journal import Environ, StartResponse, WSGIApp

LOCAL_SECRET = "testing"  # framework.runtime.clients' dummy credentials; the runner's too
MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4 query auth allows a week at most


def _refusal(start_response: StartResponse, code: str, message: str) -> list[bytes]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def _expected_signature(environ: Environ, query: dict[str, str], raw_query: str) -> str:
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    access_key, _, region, service, _ = query["X-Amz-Credential"].split("/")
    signed = "&".join(p for p in raw_query.split("&") if not p.startswith("X-Amz-Signature="))
    path = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
    host = str(environ.get("HTTP_HOST", ""))
    auth = S3SigV4QueryAuth(Credentials(access_key, LOCAL_SECRET,
                                        query.get("X-Amz-Security-Token")),
                            service, region, expires=int(query["X-Amz-Expires"]))
    request = AWSRequest(method=str(environ.get("REQUEST_METHOD", "GET")),
                         url=f"http://{host}{path}?{signed}", headers={"host": host})
    request.context["timestamp"] = query["X-Amz-Date"]
    return str(auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                              request))


def check(environ: Environ, now: datetime) -> tuple[str, str] | None:
    """Why S3 would refuse this presigned request (code, message), or None."""
    raw_query = str(environ.get("QUERY_STRING", ""))
    if "X-Amz-Signature=" not in raw_query:
        return _check_v2(raw_query, now)
    query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
    if "/s3/" not in query.get("X-Amz-Credential", "/s3/"):
        return None  # another service's presigned request: not S3's rules
    try:
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(query["X-Amz-Expires"])
        scope = query["X-Amz-Credential"].split("/")
        algorithm = query["X-Amz-Algorithm"]
    except (KeyError, ValueError):
        return ("AuthorizationQueryParametersError", "Query-string authentication version 4 "
                "requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                "X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    if algorithm != "AWS4-HMAC-SHA256" or len(scope) != 5:
        return ("AuthorizationQueryParametersError", "X-Amz-Algorithm only supports "
                "\"AWS4-HMAC-SHA256\" with a credential scope of 5 parts")
    if not 0 < expires <= MAX_EXPIRES_S:
        return ("AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week "
                "(in seconds) that is 604800")
    if now > signed_at + timedelta(seconds=expires):
        return ("AccessDenied", "Request has expired")
    if not hmac.compare_digest(_expected_signature(environ, query, raw_query),
                               query["X-Amz-Signature"]):
        return ("SignatureDoesNotMatch", "The request signature we calculated does not match "
                "the signature you provided. Check your key and signing method.")
    return None


def _check_v2(raw_query: str, now: datetime) -> tuple[str, str] | None:
    """A legacy (SigV2) presigned request: its expiry only (its signature is not checked)."""
    if "Signature=" not in raw_query or "AWSAccessKeyId=" not in raw_query:
        return None
    expires = parse_qs(raw_query).get("Expires", [""])[0]
    if not expires.isdigit():
        return ("AccessDenied", "Query-string authentication requires the Signature, "
                "Expires and AWSAccessKeyId parameters")
    if now.timestamp() > int(expires):
        return ("AccessDenied", "Request has expired")
    return None


class PresignedMiddleware:
    """Refuses the presigned requests S3 would refuse (see the module doc)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        refused = check(environ, datetime.now(UTC))
        if refused is not None:
            return _refusal(start_response, *refused)
        return self.app(environ, start_response)
