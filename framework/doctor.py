"""``mlops doctor``: is the stage's target ready for a first deploy?

One cheap read call per concern, all through ``framework.runtime.clients.Connection``:
credentials (``sts get_caller_identity``), region, the registry bucket, each service the
provider uses, Lambda quotas, SES (sending enabled, the sandbox, verified addresses of every
monitor), the onnxruntime layer a function needs on AWS, and whether each model version the
stage serves still has the bytes its registry record names. Each check says ok, warn or fail
with a detail and a hint; a check whose API the control plane does not answer (moto does not
implement every call) says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
)
from botocore.parsers import ResponseParserError

from framework import resources
from framework.compile import names
from framework.config.models import TargetKind
from framework.errors import MlopsError
from framework.runtime.clients import Connection

if TYPE_CHECKING:
    from framework.config.models import Config
    from framework.targets import Target
    from framework.workflow import Workspace

OK, WARN, FAIL = "ok", "warn", "fail"
STYLE = {OK: "green", WARN: "yellow", FAIL: "red"}
SES_SANDBOX_QUOTA = 200.0  # Max24HourSend of every account still in the SES sandbox
LOW_CONCURRENCY = 100  # new accounts may start with 10 concurrent executions, not 1000
MIN_UNRESERVED = 10  # Lambda refuses a reservation that leaves fewer unreserved executions
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
          "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
          "ExpiredTokenException", "SignatureDoesNotMatch", "403"}
UNANSWERED = {"404", "NotImplemented", "InternalFailure", "500", "501"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    hint: str = ""
    exit_code: int = 1  # of `mlops doctor` when this check fails (7: a damaged artifact)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unanswered(exc: Exception) -> bool:
    """The control plane does not implement the call (moto answers 404 'Not yet implemented',
    or a 500 HTML page that botocore cannot parse, for actions it lacks)."""
    if isinstance(exc, ResponseParserError):
        return True
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return _code(exc) in UNANSWERED or status in (404, 500, 501) or "implemented" in message


def _call_failed(name: str, exc: Exception, action: str, where: str) -> Check:
    if isinstance(exc, EndpointConnectionError):
        return Check(name, FAIL, f"cannot reach {where}: {exc}",
                     "check the network, the region, or the stage's endpoint_url")
    if isinstance(exc, ClientError) and _code(exc) in DENIED:
        return Check(name, FAIL, f"{action} denied: {exc.response['Error'].get('Message', '')}",
                     f"allow {action} for this identity (a deploy needs it)")
    return Check(name, FAIL, f"{action} failed: {exc}", "run again with --debug for details")


# -- credentials and region ----------------------------------------------------------------


def connect_check(ws: Workspace) -> tuple[Check, Target | None]:
    """Connect to the stage's target; the check says who we are there."""
    from framework.targets import LocalStoppedError, connect

    cfg = ws.loaded
    try:  # a diagnosis reads: it never starts the local AWS
        target = connect(cfg.target, cfg.region, local_home=ws.local_home,
                         endpoint_url=cfg.endpoint_url, profile=cfg.profile,
                         start_local=False)
    except MlopsError as exc:
        if isinstance(exc, LocalStoppedError):
            return Check("local AWS", WARN, f"not running ({ws.local_home})",
                         "`mlops deploy` starts it, or `mlops local start` (what was "
                         "deployed is kept)"), None
        return Check("credentials", FAIL, exc.what, exc.hint), None
    how = {TargetKind.local: "the embedded local AWS (any keys)",
           TargetKind.localstack: f"LocalStack at {target.conn.endpoint_url} (test keys)",
           TargetKind.aws: f"profile {cfg.profile}" if cfg.profile else
           "the standard credential chain (AWS_PROFILE, environment, SSO, instance role)"}
    return Check("credentials", OK, f"account {target.account_id} as {target.actor}, via "
                 f"{how[cfg.target]}"), target


def known_regions() -> set[str]:
    """Regions botocore knows Lambda in (its bundled endpoint data; no call made)."""
    import botocore.session

    regions: set[str] = set()
    session = botocore.session.get_session()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("lambda", partition_name=partition))
    return regions


def region_check(kind: TargetKind, region: str) -> Check:
    if kind is not TargetKind.aws:
        return Check("region", OK, f"{region} (the {kind.value} target accepts any region)")
    if region in known_regions():
        return Check("region", OK, f"{region}: Lambda, API Gateway, EventBridge and S3 are "
                     "offered there")
    return Check("region", WARN, f"{region} is not a Lambda region this botocore knows",
                 "check the spelling (e.g. eu-west-1), or upgrade boto3 for a new region")


# -- registry bucket -----------------------------------------------------------------------


def bucket_check(conn: Connection, bucket: str, region: str) -> Check:
    s3 = conn.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = _code(exc)
        if code in {"404", "NoSuchBucket", "NotFound"}:
            return Check("registry bucket", OK, f"s3://{bucket} does not exist yet; "
                         "`mlops deploy` creates it (versioned)")
        if code in {"403", "AccessDenied"}:
            return Check("registry bucket", FAIL, f"s3://{bucket} exists but this identity "
                         "may not use it (owned by another account, or no s3 permission)",
                         "set registry.bucket in mlops.yaml to a bucket you own, or grant "
                         "s3:ListBucket/GetObject/PutObject on it")
        return _call_failed("registry bucket", exc, "s3:HeadBucket", "S3")
    except BotoCoreError as exc:
        return _call_failed("registry bucket", exc, "s3:HeadBucket", "S3")
    try:
        where = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    except (ClientError, BotoCoreError):
        where = None
    if where is not None and where != region:
        return Check("registry bucket", WARN, f"s3://{bucket} exists in {where}, the stage is "
                     f"in {region}", "cross-region reads are slower and cost transfer; "
                     "consider a bucket in the stage's region")
    return Check("registry bucket", OK, f"s3://{bucket} exists and is accessible")


# -- services ------------------------------------------------------------------------------

Probe = tuple[str, str, str, Callable[[Any], Any]]  # (label, service, action, one cheap read)
PROBES: tuple[Probe, ...] = (
    ("Lambda", "lambda", "lambda:ListFunctions", lambda c: c.list_functions(MaxItems=1)),
    ("IAM", "iam", "iam:ListRoles", lambda c: c.list_roles(MaxItems=1)),
    ("API Gateway", "apigatewayv2", "apigateway:GET /apis",
     lambda c: c.get_apis(MaxResults="1")),
    ("EventBridge", "events", "events:ListRules", lambda c: c.list_rules(Limit=1)),
    ("SES", "ses", "ses:GetSendQuota", lambda c: c.get_send_quota()),
    ("CloudWatch", "cloudwatch", "cloudwatch:DescribeAlarms",
     lambda c: c.describe_alarms(MaxRecords=1)),
    ("CloudWatch Logs", "logs", "logs:DescribeLogGroups",
     lambda c: c.describe_log_groups(limit=1)),
    ("Firehose", "firehose", "firehose:ListDeliveryStreams",
     lambda c: c.list_delivery_streams(Limit=1)),
    ("CodeDeploy", "codedeploy", "codedeploy:ListApplications",
     lambda c: c.list_applications()),
)
CHECKED_ELSEWHERE = frozenset({"s3", "sts"})  # the registry bucket's and credentials' checks
ALSO_USED = frozenset({"cloudwatch"})  # rollouts read their alarms
_unprobed = set(resources.SERVICES) - {p[1] for p in PROBES} - CHECKED_ELSEWHERE
if _unprobed:
    raise AssertionError(f"mlops doctor has no probe for {sorted(_unprobed)}")
# Every service the resource kinds' calls use (framework.resources), in PROBES' order.
SERVICES: tuple[Probe, ...] = tuple(p for p in PROBES
                                    if p[1] in resources.SERVICES or p[1] in ALSO_USED)


def service_checks(conn: Connection) -> list[Check]:
    out = []
    for label, service, action, probe in SERVICES:
        try:
            probe(conn.client(service))
        except (ClientError, BotoCoreError) as exc:
            out.append(_call_failed(label, exc, action, f"{label} in {conn.region}"))
            continue
        out.append(Check(label, OK, f"reachable ({action})"))
    return out


# -- quotas --------------------------------------------------------------------------------


def reservations(config: Config) -> int:
    """Executions the functions reserve: each endpoint's declared ``concurrency`` (reserving is
    opt-in; monitors reserve none)."""
    return sum(ep.concurrency or 0 for ep in config.endpoints.values())


def concurrency_check(limit: dict[str, Any], config: Config) -> Check:
    """The declared reservations against the account's concurrency (GetAccountSettings):
    Lambda refuses any reservation that leaves fewer than 10 executions unreserved."""
    wanted = reservations(config)
    concurrent = int(limit.get("ConcurrentExecutions", 0))
    unreserved = int(limit.get("UnreservedConcurrentExecutions", concurrent))
    detail = (f"{concurrent} concurrent executions ({unreserved} unreserved); the functions "
              f"reserve {wanted} (the endpoints' `concurrency`)")
    hint = ("request a higher 'Concurrent executions' quota (Service Quotas → AWS Lambda; it "
            "can take a day), or lower the endpoints' `concurrency` in mlops.yaml")
    if concurrent - wanted < MIN_UNRESERVED:
        return Check("Lambda concurrency", FAIL, f"{detail}: that would leave fewer than "
                     f"{MIN_UNRESERVED} unreserved, which Lambda refuses, so the deploy "
                     "would fail", hint)
    if unreserved - wanted < MIN_UNRESERVED:
        return Check("Lambda concurrency", WARN, f"{detail}: reserving them on top of what "
                     f"is reserved now leaves fewer than {MIN_UNRESERVED} unreserved; fine only "
                     "if this stage is deployed already (its reservations are counted)", hint)
    if concurrent < LOW_CONCURRENCY:
        return Check("Lambda concurrency", WARN, detail,
                     "new accounts may start at 10: request more in Service Quotas "
                     "(AWS Lambda → Concurrent executions) before load or rollouts")
    return Check("Lambda concurrency", OK, detail)


def quota_checks(conn: Connection, kind: TargetKind, config: Config) -> list[Check]:
    if kind is TargetKind.local:
        return [Check("Lambda quotas", OK, "the local Lambda service: per function version "
                      "its reserved `concurrency`, else MLOPS_LOCAL_CONCURRENCY environments; "
                      "no account quota")]
    try:
        settings = conn.client("lambda").get_account_settings()
    except (ClientError, ResponseParserError) as exc:
        if _unanswered(exc):
            return [Check("Lambda quotas", WARN, "this control plane does not answer "
                          "lambda:GetAccountSettings, so quotas are unknown",
                          "on AWS: Service Quotas console → AWS Lambda")]
        return [_call_failed("Lambda quotas", exc, "lambda:GetAccountSettings", "Lambda")]
    except BotoCoreError as exc:
        return [_call_failed("Lambda quotas", exc, "lambda:GetAccountSettings", "Lambda")]
    limit = settings.get("AccountLimit", {})
    usage = settings.get("AccountUsage", {})
    out = [concurrency_check(limit, config)]
    total, used = int(limit.get("TotalCodeSize", 0)), int(usage.get("TotalCodeSize", 0))
    if total:
        share = used / total
        detail = (f"{used / 2**20:.1f} MiB of {total / 2**30:.1f} GiB code storage used "
                  f"({share:.0%}); {usage.get('FunctionCount', '?')} function(s)")
        out.append(Check("Lambda code storage", WARN if share > 0.9 else OK, detail,
                         "delete old function versions" if share > 0.9 else ""))
    else:
        out.append(Check("Lambda code storage", WARN, "the answer has no TotalCodeSize"))
    return out


# -- SES -----------------------------------------------------------------------------------


def addresses(config: Config) -> dict[str, list[str]]:
    """Every address a monitor mails from or to → the monitors that use it."""
    out: dict[str, list[str]] = {}
    for name, mon in sorted(config.monitors.items()):
        for address in (*mon.notify.email, *([mon.notify.sender] if mon.notify.sender else [])):
            out.setdefault(address, []).append(name)
    return dict(sorted(out.items()))


def ses_checks(conn: Connection, kind: TargetKind, config: Config) -> list[Check]:
    ses = conn.client("ses")
    out: list[Check] = []
    sandbox = False
    try:
        quota = ses.get_send_quota()
    except (ClientError, BotoCoreError) as exc:
        return [_call_failed("SES sandbox", exc, "ses:GetSendQuota", "SES")]
    max24 = float(quota.get("Max24HourSend", 0))
    rate = quota.get("MaxSendRate")
    if kind is TargetKind.local:
        out.append(Check("SES sandbox", OK, "the local SES keeps every message as an .eml in "
                         ".mlops/local/outbox (`mlops mail list`); no sandbox applies, whatever "
                         f"quota it reports ({max24:g}/24h)"))
    elif kind is TargetKind.localstack:
        out.append(Check("SES sandbox", OK, f"LocalStack keeps sent messages (GET /_aws/ses); "
                         f"no sandbox (reported quota {max24:g}/24h)"))
    elif (production := _production_access(conn)) is False or (
            production is None and max24 == SES_SANDBOX_QUOTA):
        sandbox = True
        out.append(Check("SES sandbox", WARN, f"in the SES sandbox ({max24:g} messages per "
                         f"24 h, {rate} per second): mail goes only to verified addresses, so "
                         "every recipient of every report must be verified too",
                         "request production access: SES console → Account dashboard → "
                         "Request production access (then only the sender needs verifying)"))
    else:
        out.append(Check("SES sandbox", OK, f"production access ({max24:g} messages per "
                         f"24 h, {rate} per second)"))
    out.append(_sending_enabled(ses, kind))
    out += _verified(ses, kind, config, sandbox)
    return out


def _production_access(conn: Connection) -> bool | None:
    """The account's SES sandbox status as SES states it (sesv2 GetAccount:
    ProductionAccessEnabled); None where the control plane does not say (moto lacks the
    call), and the sending quota is the clue instead."""
    try:
        account = conn.client("sesv2").get_account()
    except (ClientError, BotoCoreError):
        return None
    value = account.get("ProductionAccessEnabled")
    return None if value is None else bool(value)


def _sending_enabled(ses: Any, kind: TargetKind) -> Check:
    try:
        enabled = bool(ses.get_account_sending_enabled().get("Enabled"))
    except (ClientError, ResponseParserError) as exc:
        if not _unanswered(exc):
            return _call_failed("SES sending", exc, "ses:GetAccountSendingEnabled", "SES")
        if kind is TargetKind.local:
            return Check("SES sending", OK, "the local SES always accepts mail (it does not "
                         "implement GetAccountSendingEnabled)")
        return Check("SES sending", WARN, "this control plane does not answer "
                     "ses:GetAccountSendingEnabled", "check the SES console")
    except BotoCoreError as exc:
        return _call_failed("SES sending", exc, "ses:GetAccountSendingEnabled", "SES")
    if enabled:
        return Check("SES sending", OK, "sending is enabled for the account")
    return Check("SES sending", FAIL, "sending is disabled for this account in this region "
                 "(paused by AWS, e.g. for bounces or complaints)",
                 "see the SES console's reputation dashboard; monitors cannot mail reports")


def _verified(ses: Any, kind: TargetKind, config: Config, sandbox: bool) -> list[Check]:
    wanted = addresses(config)
    if not wanted:
        return [Check("SES addresses", OK, "no monitor sends e-mail")]
    attrs: dict[str, Any] = {}
    listed = list(wanted)
    try:
        for i in range(0, len(listed), 100):  # the call takes at most 100 identities
            got = ses.get_identity_verification_attributes(Identities=listed[i:i + 100])
            attrs.update(got.get("VerificationAttributes", {}))
    except (ClientError, BotoCoreError) as exc:
        return [_call_failed("SES addresses", exc, "ses:GetIdentityVerificationAttributes",
                             "SES")]
    senders = {mon.notify.sender or (mon.notify.email[0] if mon.notify.email else "")
               for mon in config.monitors.values()}
    out = []
    for address, monitors in wanted.items():
        status = str(attrs.get(address, {}).get("VerificationStatus", "NotStarted"))
        role = "sender" if address in senders else "recipient"
        name = f"SES {address}"
        used = f"{role} of {', '.join(monitors)}"
        if status == "Success":
            out.append(Check(name, OK, f"verified ({used})"))
        elif kind is TargetKind.local:
            out.append(Check(name, OK, f"not an identity yet ({status}); `mlops deploy` "
                             f"creates it and the local SES verifies it at once ({used})"))
        elif role == "sender" or sandbox:
            why = "the sender must be verified" if role == "sender" else \
                "in the sandbox every recipient must be verified"
            out.append(Check(name, WARN, f"{status.lower()}: {why} ({used})",
                             "`mlops deploy` creates the identity and SES e-mails a link to "
                             "the address: click it before the first report is due"))
        else:
            out.append(Check(name, OK, f"{status.lower()}; outside the sandbox a recipient "
                             f"needs no verification ({used})"))
    return out


# -- runtime and layers ------------------------------------------------------------------


def layer_check(ws: Workspace, kind: TargetKind) -> Check:
    """The layers the functions import their packages from (built once per runtime and
    architecture, then reused), and, locally, the runtime's interpreter."""
    from framework.compile.compiler import required_layers
    from framework.layers import key_name, read_manifest

    config = ws.loaded.config
    if kind is TargetKind.local:
        from framework.interpreters import InterpreterNotFound, find_python

        try:
            find_python(config.runtime)
        except InterpreterNotFound as exc:
            return Check("Lambda runtime", FAIL, exc.what, exc.hint)
    keys = required_layers(config)
    if not keys:
        return Check("Lambda layers", OK, "no functions need one")
    built = {key: read_manifest(ws.home / "build", key) for key in keys}
    have = [f"{key_name(k)} ({b.unzipped / 2**20:.1f} MB unzipped)"
            for k, b in built.items() if b is not None]
    missing = [key_name(k) for k, b in built.items() if b is None]
    if missing:
        return Check("Lambda layers", WARN, f"not built yet: {', '.join(missing)}"
                     + (f"; built: {', '.join(have)}" if have else ""),
                     "`mlops deploy` builds them on first need (pip downloads the wheels once); "
                     "`mlops layer build` does it now")
    return Check("Lambda layers", OK, f"built: {', '.join(have)}")


# -- deployed artifacts --------------------------------------------------------------------


def artifact_checks(ws: Workspace, conn: Connection, bucket: str) -> list[Check]:
    """Does each model version the stage serves still have the bytes its registry record
    names? (The handler refuses other bytes with 503; this says which and how to recover.)"""
    from framework.registry.integrity import served_versions
    from framework.registry.store import Registry
    from framework.workflow import state_store

    s3 = conn.client("s3")
    try:
        state = state_store(ws, s3, bucket).load()
        versions = served_versions((e.kind, e.props) for e in state.resources.values())
        if not versions:
            return [Check("model artifacts", OK, "nothing deployed on this stage yet")]
        reg = Registry(s3=s3, bucket=bucket)
        out = []
        for name, version in versions:
            label = f"artifact {name}@{version}"
            meta = reg.metadata(name, version)
            what = reg.damage(name, version, meta)
            if what is None:
                out.append(Check(label, OK, f"SHA-256 {str(meta['sha256'])[:16]}… as "
                                            "metadata.json records"))
            else:
                out.append(Check(label, FAIL, f"damaged: {what}",
                                 f"`mlops models restore {name}@{version}` puts the recorded "
                                 "bytes back (or --from the original file); until then the "
                                 "endpoint answers 503", exit_code=7))
        return out
    except MlopsError as exc:
        return [Check("model artifacts", FAIL, exc.what, exc.hint)]
    except (ClientError, BotoCoreError) as exc:
        return [_call_failed("model artifacts", exc, "s3:GetObject", "S3")]


# -- all together --------------------------------------------------------------------------


def diagnose(ws: Workspace) -> list[Check]:
    """Every check for the workspace's stage, in reading order."""
    cfg = ws.loaded
    first, target = connect_check(ws)
    checks = [first, region_check(cfg.target, cfg.region)]
    if target is None:
        without = "it" if first.status == WARN else "working credentials"
        return [*checks, Check("the rest", WARN, "skipped: nothing else can be checked "
                               f"without {without}")]
    bucket = cfg.config.registry.bucket or names.registry_bucket(
        ws.project, target.account_id, target.region)
    conn = replace(target.conn, max_attempts=1)  # a diagnosis wants answers, not retries
    registry_bucket = bucket_check(conn, bucket, target.region)
    checks.append(registry_bucket)
    checks += service_checks(conn)
    checks += quota_checks(conn, cfg.target, cfg.config)
    checks += ses_checks(conn, cfg.target, cfg.config)
    checks.append(layer_check(ws, cfg.target))
    if registry_bucket.status != FAIL and "does not exist yet" not in registry_bucket.detail:
        checks += artifact_checks(ws, conn, bucket)
    return checks
