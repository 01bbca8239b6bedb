"""The AWS provider: one handler per resource kind, the same calls for every target.

Handlers receive properties with refs already resolved and return the resource's outputs.
Creates adopt a resource that already exists under the same name (an apply that crashed after
the call but before recording it), so re-running a deploy finishes the job.

What AWS does and moto does not, handled here (each pinned by a test in
tests/providers/test_aws_realities.py):

- a new IAM role takes seconds to propagate: Lambda and Firehose refuse it ("cannot be assumed")
  meanwhile, so those calls are retried with backoff for ``propagation_seconds``;
- Firehose deletes a stream asynchronously (``DELETING``) and creates one asynchronously
  (``CREATING``): a replace waits for the old stream to be gone, never adopts a dying one, and
  waits for ``ACTIVE`` before anything may put records;
- a Lambda function is ``Pending`` after create and ``InProgress`` after an update (also when a
  crashed deploy left it so): every update and publish waits for it first, and an "update is in
  progress" conflict is retried;
- reserved concurrency must leave the account 10 unreserved executions: the refusal becomes an
  error that says what to do;
- every list call pages to the end.

Waits use ``sleep`` and ``clock``, which tests replace.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from framework.compile.graph import KINDS
from framework.errors import DeployError
from framework.plan.state import Entry
from framework.runtime.clients import Connection

CONFLICT = {"ResourceConflictException", "ConflictException"}  # AWS says the first, moto both
Props = dict[str, Any]
SERVICES: dict[str, tuple[str, ...]] = {
    "s3_bucket": ("s3",), "s3_object": ("s3",), "model_version": ("s3",),
    "lambda_layer": ("lambda",), "iam_role": ("iam",), "log_group": ("logs",),
    "firehose_stream": ("firehose",),
    "lambda_function": ("lambda",), "lambda_version": ("lambda",), "lambda_alias": ("lambda",),
    "http_api": ("apigatewayv2",), "api_integration": ("apigatewayv2",),
    "api_route": ("apigatewayv2",), "api_stage": ("apigatewayv2",),
    "lambda_permission": ("lambda",),
    "schedule_rule": ("events",), "schedule_target": ("events",), "ses_identity": ("ses",),
}
Outputs = dict[str, Any]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _missing(exc: ClientError) -> bool:
    return _code(exc) in {
        "NoSuchEntity", "ResourceNotFoundException", "NotFoundException", "NoSuchBucket",
        "NoSuchKey", "404", "NotFound",
    }


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def role_not_ready(exc: ClientError) -> bool:
    """A role created moments ago that Lambda or Firehose cannot assume yet: Lambda's
    ``InvalidParameterValueException`` "The role defined for the function cannot be assumed by
    Lambda.", Firehose's ``InvalidArgumentException`` "... is not authorized to perform:
    sts:AssumeRole ..." or "Firehose is unable to assume role ...". """
    return (_code(exc) in {"InvalidParameterValueException", "InvalidArgumentException"}
            and "assume" in _message(exc).lower())


def update_in_progress(exc: ClientError) -> bool:
    """Lambda refuses a change while another is being applied (``ResourceConflictException``
    "The operation cannot be performed at this time. An update is in progress for resource:
    ..." or "The function is currently in the following state: Pending")."""
    message = _message(exc).lower()
    return _code(exc) in CONFLICT and ("in progress" in message or "pending" in message
                                       or "cannot be performed at this time" in message)


def reserved_too_much(exc: ClientError) -> bool:
    """PutFunctionConcurrency refused: the account must keep 10 unreserved executions."""
    return (_code(exc) == "InvalidParameterValueException"
            and "unreservedconcurrentexecution" in _message(exc).lower())


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item of a list call, page after page (boto3's paginator for it)."""
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def _ignore_missing(call: Callable[[], Any]) -> None:
    try:
        call()
    except ClientError as exc:
        if not _missing(exc):
            raise


# Called when an alias with a rollout policy must move to a new version: starts the rollout
# (first traffic step) and returns the alias' outputs, or None to move it at once.
RolloutHook = Callable[[dict[str, Any], str], dict[str, Any] | None]


PROPAGATION_S = 60.0  # how long AWS may take before a new role can be assumed
SETTLE_S = 600.0  # how long a function update or a Firehose create/delete may take
MAX_BACKOFF_S = 8.0


@dataclass
class AwsProvider:
    conn: Connection
    root: Path  # project root: relative artifact paths are read from here
    rollout_hook: RolloutHook | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # None: 60 s on AWS; 5 s where an endpoint_url names a control plane that checks roles
    # at once (the local AWS, LocalStack): there a refusal will not go away by waiting.
    propagation_seconds: float | None = None
    settle_seconds: float = SETTLE_S
    # What a person must still do after this apply (e.g. click an SES verification link).
    warnings: list[str] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return self.conn.client(service)

    # -- waiting ------------------------------------------------------------------------
    def _propagation(self) -> float:
        if self.propagation_seconds is not None:
            return self.propagation_seconds
        return PROPAGATION_S if self.conn.endpoint_url is None else 5.0

    def _retry(self, call: Callable[[], Any], retryable: Callable[[ClientError], bool],
               seconds: float, fail: Callable[[ClientError, float], DeployError],
               between: Callable[[], object] | None = None) -> Any:
        """``call()``, retried with exponential backoff (1 s, 2 s, ... 8 s) while it raises a
        ``retryable`` error, for ``seconds``; then ``fail(last error, seconds)`` is raised."""
        deadline = self.clock() + seconds
        delay = 1.0
        while True:
            try:
                return call()
            except ClientError as exc:
                if not retryable(exc):
                    raise
                if self.clock() + delay > deadline:
                    raise fail(exc, seconds) from exc
            self.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            if between is not None:
                between()

    def _poll(self, what: str, done: Callable[[], bool], hint: str) -> None:
        """Ask ``done()`` every few seconds until it is true, for ``settle_seconds``."""
        deadline = self.clock() + self.settle_seconds
        delay = 1.0
        while not done():
            if self.clock() + delay > deadline:
                raise DeployError(f"gave up after {self.settle_seconds:g} s waiting for {what}",
                                  hint=hint)
            self.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _role_retry(self, call: Callable[[], Any], who: str, role_arn: str,
                    between: Callable[[], object] | None = None) -> Any:
        """A call that names a role created moments ago: retried until AWS has propagated it."""
        def fail(exc: ClientError, seconds: float) -> DeployError:
            return DeployError(
                f"{who} still cannot assume {role_arn} after {seconds:g} s: {_message(exc)}",
                hint="check the role's trust policy names the service (infra/iam/*-trust.json) "
                     "and that it exists; IAM changes usually propagate within a minute, so "
                     "deploying again often finishes the job")
        return self._retry(call, role_not_ready, self._propagation(), fail, between)

    def warm(self, kinds: set[str]) -> None:
        """Create the clients these kinds use, up front (boto3 sessions are not thread-safe;
        clients are)."""
        for kind in sorted(kinds):
            for service in SERVICES[kind]:
                self.client(service)

    # -- dispatch -----------------------------------------------------------------------
    def _handler(self, kind: str, verb: str) -> Callable[..., Any]:
        if kind not in KINDS:
            raise DeployError(f"unknown resource kind '{kind}'")
        fn: Callable[..., Any] = getattr(self, f"{verb}_{kind}")
        return fn

    def create(self, kind: str, props: Props) -> Outputs:
        out: Outputs = self._handler(kind, "create")(props)
        return out

    def update(self, kind: str, props: Props, before: Entry) -> Outputs:
        out: Outputs = self._handler(kind, "update")(props, before)
        return out

    def replace(self, kind: str, props: Props, before: Entry) -> Outputs:
        custom = getattr(self, f"replace_{kind}", None)
        if custom is not None:
            out: Outputs = custom(props, before)
            return out
        self.delete(before)
        return self.create(kind, props)

    def delete(self, entry: Entry, *, destroying: bool = False) -> None:
        self._handler(entry.kind, "delete")(entry, destroying)

    def exists(self, entry: Entry) -> bool:
        try:
            result: bool = self._handler(entry.kind, "exists")(entry)
            return result
        except ClientError as exc:
            if _missing(exc):
                return False
            raise

    # -- s3_bucket --------------------------------------------------------------------
    def create_s3_bucket(self, p: Props) -> Outputs:
        s3 = self.client("s3")
        kwargs: dict[str, Any] = {"Bucket": p["bucket"]}
        if p["region"] != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": p["region"]}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise
        return self.update_s3_bucket(p, None)

    def update_s3_bucket(self, p: Props, _before: Entry | None) -> Outputs:
        s3 = self.client("s3")
        status = "Enabled" if p["versioning"] else "Suspended"
        s3.put_bucket_versioning(Bucket=p["bucket"], VersioningConfiguration={"Status": status})
        s3.put_bucket_tagging(Bucket=p["bucket"], Tagging={"TagSet": [
            {"Key": k, "Value": v} for k, v in sorted(p["tags"].items())]})
        return {"bucket": p["bucket"], "arn": f"arn:aws:s3:::{p['bucket']}"}

    def delete_s3_bucket(self, entry: Entry, _destroying: bool) -> None:
        s3 = self.client("s3")
        bucket = entry.props["bucket"]
        try:
            paginator = s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket):
                doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                          for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                for i in range(0, len(doomed), 1000):
                    s3.delete_objects(Bucket=bucket,
                                      Delete={"Objects": doomed[i:i + 1000], "Quiet": True})
            s3.delete_bucket(Bucket=bucket)
        except ClientError as exc:
            if not _missing(exc):
                raise

    def exists_s3_bucket(self, entry: Entry) -> bool:
        self.client("s3").head_bucket(Bucket=entry.props["bucket"])
        return True

    # -- s3_object (content-addressed, optionally immutable) -----------------------------
    def _body(self, p: Props) -> bytes:
        if "content" in p:
            data = str(p["content"]).encode()
        else:
            data = (self.root / p["source"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != p["sha256"]:
            raise DeployError(
                f"{p['source'] if 'source' in p else p['key']} changed since it was planned",
                hint="run `mlops plan` again and deploy the new plan")
        return data

    def create_s3_object(self, p: Props) -> Outputs:
        s3 = self.client("s3")
        data = self._body(p)
        kwargs: dict[str, Any] = {
            "Bucket": p["bucket"], "Key": p["key"], "Body": data,
            "ContentType": p["content_type"], "Metadata": {"sha256": p["sha256"]},
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(p["sha256"])).decode(),
        }
        if p.get("immutable"):
            kwargs["IfNoneMatch"] = "*"
        try:
            resp = s3.put_object(**kwargs)
        except ClientError as exc:
            if _code(exc) not in {"PreconditionFailed", "412"}:
                raise
            head = s3.head_object(Bucket=p["bucket"], Key=p["key"])
            if head.get("Metadata", {}).get("sha256") != p["sha256"]:
                raise DeployError(
                    f"s3://{p['bucket']}/{p['key']} already exists with other content",
                    hint="a released version never changes: bump the version") from exc
            return {"etag": head["ETag"], "version_id": head.get("VersionId")}
        return {"etag": resp["ETag"], "version_id": resp.get("VersionId")}

    def update_s3_object(self, p: Props, _before: Entry) -> Outputs:
        return self.create_s3_object(p)

    def replace_s3_object(self, p: Props, before: Entry) -> Outputs:
        if not before.props.get("retain"):
            self.delete(before)
        return self.create_s3_object(p)

    def delete_s3_object(self, entry: Entry, destroying: bool) -> None:
        if entry.props.get("retain") and not destroying:
            return  # registry content outlives the deploy that uploaded it
        p = entry.props
        _ignore_missing(lambda: self.client("s3").delete_object(Bucket=p["bucket"],
                                                                Key=p["key"]))

    def exists_s3_object(self, entry: Entry) -> bool:
        self.client("s3").head_object(Bucket=entry.props["bucket"], Key=entry.props["key"])
        return True

    # -- model_version (a registered version: see framework.registry) --------------------
    def create_model_version(self, p: Props) -> Outputs:
        from framework.registry.service import register_files
        from framework.registry.store import Registry

        artifact = self.root / p["source"]
        if hashlib.sha256(artifact.read_bytes()).hexdigest() != p["sha256"]:
            raise DeployError(f"{p['source']} changed since it was planned",
                              hint="run `mlops plan` again and deploy the new plan")
        reference = self.root / p["reference"] if p.get("reference") else None
        done = register_files(Registry(s3=self.client("s3"), bucket=p["bucket"]), self.root,
                              artifact, dict(p["metadata"]), reference)
        return {"prefix": p["prefix"], "sha256": p["sha256"], "registered": done.created}

    def update_model_version(self, p: Props, _before: Entry) -> Outputs:
        return self.create_model_version(p)

    def delete_model_version(self, entry: Entry, destroying: bool) -> None:
        if not destroying:
            return  # registered versions outlive the deploys that registered them
        s3, p = self.client("s3"), entry.props
        for name in ("metadata.json", "reference.json", "model.onnx"):  # the commit first
            try:
                s3.delete_object(Bucket=p["bucket"], Key=f"{p['prefix']}/{name}")
            except ClientError as exc:
                if not _missing(exc):
                    raise

    def exists_model_version(self, entry: Entry) -> bool:
        self.client("s3").head_object(Bucket=entry.props["bucket"],
                                      Key=f"{entry.props['prefix']}/metadata.json")
        return True

    # -- lambda_layer: a published layer version is immutable; a change publishes another
    def create_lambda_layer(self, p: Props) -> Outputs:
        resp = self.client("lambda").publish_layer_version(
            LayerName=p["layer_name"], Description=p["description"],
            Content={"S3Bucket": p["bucket"], "S3Key": p["key"]},
            CompatibleRuntimes=p["runtimes"], CompatibleArchitectures=p["architectures"])
        return {"layer_version_arn": resp["LayerVersionArn"], "version": resp["Version"]}

    def update_lambda_layer(self, p: Props, _before: Entry) -> Outputs:
        return self.create_lambda_layer(p)

    def replace_lambda_layer(self, p: Props, _before: Entry) -> Outputs:
        return self.create_lambda_layer(p)  # older versions stay: published versions use them

    def delete_lambda_layer(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("lambda").delete_layer_version(
            LayerName=entry.props["layer_name"], VersionNumber=int(entry.outputs["version"])))

    def exists_lambda_layer(self, entry: Entry) -> bool:
        self.client("lambda").get_layer_version(
            LayerName=entry.props["layer_name"], VersionNumber=int(entry.outputs["version"]))
        return True

    # -- iam_role ---------------------------------------------------------------------
    def create_iam_role(self, p: Props) -> Outputs:
        iam = self.client("iam")
        try:
            resp = iam.create_role(
                RoleName=p["role_name"], AssumeRolePolicyDocument=json.dumps(p["trust_policy"]),
                Tags=[{"Key": k, "Value": v} for k, v in sorted(p["tags"].items())])
            arn = resp["Role"]["Arn"]
        except ClientError as exc:
            if _code(exc) != "EntityAlreadyExists":
                raise
            return self.update_iam_role(p, None)
        iam.put_role_policy(RoleName=p["role_name"], PolicyName=p["policy_name"],
                            PolicyDocument=json.dumps(p["policy"]))
        return {"arn": arn, "role_name": p["role_name"]}

    def update_iam_role(self, p: Props, before: Entry | None) -> Outputs:
        iam = self.client("iam")
        iam.update_assume_role_policy(RoleName=p["role_name"],
                                      PolicyDocument=json.dumps(p["trust_policy"]))
        if before is not None and before.props["policy_name"] != p["policy_name"]:
            _ignore_missing(lambda: iam.delete_role_policy(
                RoleName=p["role_name"], PolicyName=before.props["policy_name"]))
        iam.put_role_policy(RoleName=p["role_name"], PolicyName=p["policy_name"],
                            PolicyDocument=json.dumps(p["policy"]))
        arn = iam.get_role(RoleName=p["role_name"])["Role"]["Arn"]
        return {"arn": arn, "role_name": p["role_name"]}

    def delete_iam_role(self, entry: Entry, _destroying: bool) -> None:
        iam = self.client("iam")
        name = entry.props["role_name"]
        _ignore_missing(lambda: iam.delete_role_policy(RoleName=name,
                                                       PolicyName=entry.props["policy_name"]))
        _ignore_missing(lambda: iam.delete_role(RoleName=name))

    def exists_iam_role(self, entry: Entry) -> bool:
        self.client("iam").get_role(RoleName=entry.props["role_name"])
        return True

    # -- firehose_stream: capture batching on cloud targets ---------------------------------
    # AWS creates and deletes streams asynchronously: CREATING → ACTIVE (or CREATING_FAILED),
    # DELETING → gone; a name stays taken (ResourceInUseException) until the old stream is gone.
    def _stream(self, name: str) -> dict[str, Any] | None:
        """The stream's description, None once it is gone."""
        try:
            desc: dict[str, Any] = self.client("firehose").describe_delivery_stream(
                DeliveryStreamName=name)["DeliveryStreamDescription"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return desc

    def _stream_gone(self, name: str) -> None:
        self._poll(f"Firehose stream {name} to finish deleting", lambda: self._stream(name) is None,
                   hint="a stream can take a few minutes to delete; deploy again later")

    def _stream_active(self, name: str) -> dict[str, Any]:
        got: dict[str, Any] = {}

        def active() -> bool:
            desc = self._stream(name)
            status = "" if desc is None else str(desc.get("DeliveryStreamStatus"))
            if desc is None or status == "CREATING_FAILED":
                reason = (desc or {}).get("FailureDescription") or {}
                why = (f"{reason.get('Type', '?')}: {reason.get('Details', '')}" if reason
                       else "it disappeared" if desc is None else "no reason given")
                raise DeployError(f"Firehose stream {name} could not be created ({why})",
                                  hint="fix what the reason names (often the delivery role's "
                                       "permissions on the bucket) and deploy again: the "
                                       "failed stream is deleted and created anew")
            got.update(desc)
            return status == "ACTIVE"

        self._poll(f"Firehose stream {name} to become ACTIVE", active,
                   hint="it is still CREATING; deploy again later to adopt it")
        return got

    def create_firehose_stream(self, p: Props) -> Outputs:
        fh = self.client("firehose")
        name = p["stream_name"]

        def create() -> Any:
            return fh.create_delivery_stream(
                DeliveryStreamName=name, DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": p["role_arn"], "BucketARN": f"arn:aws:s3:::{p['bucket']}",
                    "Prefix": p["prefix"], "ErrorOutputPrefix": p["error_prefix"],
                    "BufferingHints": {"IntervalInSeconds": p["buffer_seconds"],
                                       "SizeInMBs": p["buffer_mb"]},
                    "CompressionFormat": p["compression"], "FileExtension": p["extension"]},
                Tags=[{"Key": k, "Value": v} for k, v in sorted(p["tags"].items())])

        for _ in range(3):  # at most: gone meanwhile, failed one recreated, then it is ours
            try:
                self._role_retry(create, "Firehose", p["role_arn"])
                break
            except ClientError as exc:
                if _code(exc) != "ResourceInUseException":
                    raise
            desc = self._stream(name)
            if desc is None:
                continue  # deleted between the two calls: create it now
            status = desc.get("DeliveryStreamStatus")
            if status == "CREATING_FAILED":  # a crashed deploy's stream that never worked
                _ignore_missing(lambda: fh.delete_delivery_stream(DeliveryStreamName=name))
            if status in {"DELETING", "CREATING_FAILED"}:
                self._stream_gone(name)  # never adopt a stream that is going away
                continue
            break  # ACTIVE or CREATING: adopt it
        desc = self._stream_active(name)
        return {"arn": desc["DeliveryStreamARN"], "stream_name": name}

    def update_firehose_stream(self, p: Props, before: Entry) -> Outputs:
        return self.replace_firehose_stream(p, before)

    def replace_firehose_stream(self, p: Props, before: Entry) -> Outputs:
        self.delete_firehose_stream(before, False)
        self._stream_gone(before.props["stream_name"])
        return self.create_firehose_stream(p)

    def delete_firehose_stream(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("firehose").delete_delivery_stream(
            DeliveryStreamName=entry.props["stream_name"]))

    def exists_firehose_stream(self, entry: Entry) -> bool:
        desc = self._stream(entry.props["stream_name"])
        return desc is not None and desc.get("DeliveryStreamStatus") != "DELETING"

    # -- log_group --------------------------------------------------------------------
    def create_log_group(self, p: Props) -> Outputs:
        try:
            self.client("logs").create_log_group(logGroupName=p["name"], tags=p["tags"])
        except ClientError as exc:
            if _code(exc) != "ResourceAlreadyExistsException":
                raise
        return self.update_log_group(p, None)

    def update_log_group(self, p: Props, _before: Entry | None) -> Outputs:
        self.client("logs").put_retention_policy(logGroupName=p["name"],
                                                 retentionInDays=p["retention_days"])
        return {"name": p["name"]}

    def delete_log_group(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("logs").delete_log_group(
            logGroupName=entry.props["name"]))

    def exists_log_group(self, entry: Entry) -> bool:
        groups = pages(self.client("logs"), "describe_log_groups", "logGroups",
                       logGroupNamePrefix=entry.props["name"])
        return any(g["logGroupName"] == entry.props["name"] for g in groups)

    # -- lambda_function --------------------------------------------------------------
    def _function_config(self, p: Props) -> dict[str, Any]:
        return {
            "FunctionName": p["function_name"], "Role": p["role_arn"], "Handler": p["handler"],
            "Runtime": p["runtime"], "MemorySize": p["memory"], "Timeout": p["timeout"],
            "Description": p["description"], "Layers": list(p.get("layers", [])),
            "Environment": {"Variables": dict(sorted(p["environment"].items()))},
        }

    def _settled(self, name: str, *, after_create: bool = False,
                 after_update: bool = False) -> dict[str, Any]:
        """Wait until the function is neither ``Pending`` nor ``InProgress`` (a create or an
        update being applied, ours or a crashed deploy's); returns its configuration. A
        function that failed to become active, or whose update (``after_update``) failed, is
        an error with AWS's reason."""
        lam, got = self.client("lambda"), {}

        def ready() -> bool:
            cfg = lam.get_function_configuration(FunctionName=name)
            got.update(cfg)
            state, update = cfg.get("State", "Active"), cfg.get("LastUpdateStatus", "Successful")
            if state == "Failed" and (after_create or after_update):
                raise DeployError(f"function {name} failed to become active: "
                                  f"{cfg.get('StateReasonCode', '')} {cfg.get('StateReason', '')}",
                                  hint="fix what the reason names and deploy again")
            if update == "Failed" and after_update:
                raise DeployError(
                    f"the update of function {name} failed: "
                    f"{cfg.get('LastUpdateStatusReasonCode', '')} "
                    f"{cfg.get('LastUpdateStatusReason', '')}",
                    hint="fix what the reason names and deploy again")
            return bool(state != "Pending" and update != "InProgress")

        self._poll(f"function {name} to finish its pending create or update", ready,
                   hint="deploy again later: the function is still being changed")
        return got

    def _lambda_change(self, name: str, call: Callable[[], Any],
                       role_arn: str | None = None) -> Any:
        """A change to a function: waits for any change in progress, retries "an update is in
        progress" conflicts (and, with ``role_arn``, a role not assumable yet)."""
        self._settled(name)

        def fail(exc: ClientError, seconds: float) -> DeployError:
            return DeployError(f"function {name} stayed busy for {seconds:g} s: {_message(exc)}",
                               hint="deploy again when its current update has finished")

        def attempt() -> Any:
            if role_arn is None:
                return call()
            return self._role_retry(call, "Lambda", role_arn)

        return self._retry(attempt, update_in_progress, self.settle_seconds, fail,
                           between=lambda: self._settled(name))

    def create_lambda_function(self, p: Props) -> Outputs:
        lam = self.client("lambda")
        try:
            resp = self._role_retry(lambda: lam.create_function(
                **self._function_config(p), Publish=False, Tags=p["tags"],
                Architectures=list(p.get("architectures") or ["x86_64"]),
                Code={"S3Bucket": p["code"]["bucket"], "S3Key": p["code"]["key"]}),
                "Lambda", p["role_arn"])
        except ClientError as exc:
            if _code(exc) not in CONFLICT:
                raise
            return self.update_lambda_function(p, None)
        self._settled(p["function_name"], after_create=True)
        self._concurrency(p)
        return {"arn": resp["FunctionArn"], "function_name": p["function_name"]}

    def _concurrency(self, p: Props) -> None:
        lam, name = self.client("lambda"), p["function_name"]
        if p.get("concurrency") is None:  # none reserved (any earlier reservation released)
            self._lambda_change(name, lambda: lam.delete_function_concurrency(FunctionName=name))
            return
        try:
            self._lambda_change(name, lambda: lam.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=p["concurrency"]))
        except ClientError as exc:
            if not reserved_too_much(exc):
                raise
            raise DeployError(
                f"function {name}: AWS refused to reserve {p['concurrency']} concurrent "
                f"execution(s): {_message(exc)}",
                hint="the account must keep 10 executions unreserved, and new accounts may have "
                     "only 10 in all: request a higher 'Concurrent executions' quota (Service "
                     "Quotas → AWS Lambda), or lower the endpoints' `concurrency` in mlops.yaml "
                     "(each function reserves it; a monitor reserves 1); `mlops doctor` compares "
                     "the two") from exc

    def update_lambda_function(self, p: Props, before: Entry | None) -> Outputs:
        lam = self.client("lambda")
        name = p["function_name"]
        if before is None or any(before.props.get(k) != p.get(k)
                                 for k in ("code", "architectures")):
            self._lambda_change(name, lambda: lam.update_function_code(
                FunctionName=name, S3Bucket=p["code"]["bucket"], S3Key=p["code"]["key"],
                Architectures=list(p.get("architectures") or ["x86_64"])))
            self._settled(name, after_update=True)
        resp = self._lambda_change(
            name, lambda: lam.update_function_configuration(**self._function_config(p)),
            role_arn=p["role_arn"])
        self._settled(name, after_update=True)
        lam.tag_resource(Resource=resp["FunctionArn"], Tags=p["tags"])
        self._concurrency(p)
        return {"arn": resp["FunctionArn"], "function_name": name}

    def delete_lambda_function(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("lambda").delete_function(
            FunctionName=entry.props["function_name"]))

    def exists_lambda_function(self, entry: Entry) -> bool:
        self.client("lambda").get_function(FunctionName=entry.props["function_name"])
        return True

    # -- lambda_version: publishing is the only operation; versions go with the function
    def create_lambda_version(self, p: Props) -> Outputs:
        lam, name = self.client("lambda"), p["function_name"]
        resp = self._lambda_change(name, lambda: lam.publish_version(
            FunctionName=name, Description=f"digest {p['function_digest'][:16]}"))
        return {"version": resp["Version"], "arn": resp["FunctionArn"],
                "code_sha256": resp["CodeSha256"]}

    def update_lambda_version(self, p: Props, _before: Entry) -> Outputs:
        return self.create_lambda_version(p)

    def replace_lambda_version(self, p: Props, _before: Entry) -> Outputs:
        return self.create_lambda_version(p)  # the old version stays, for rollback

    def delete_lambda_version(self, entry: Entry, destroying: bool) -> None:
        if destroying:
            return  # deleted with its function
        _ignore_missing(lambda: self.client("lambda").delete_function(
            FunctionName=entry.props["function_name"], Qualifier=entry.outputs["version"]))

    def exists_lambda_version(self, entry: Entry) -> bool:
        self.client("lambda").get_function(FunctionName=entry.props["function_name"],
                                           Qualifier=str(entry.outputs["version"]))
        return True

    # -- lambda_alias -----------------------------------------------------------------
    def create_lambda_alias(self, p: Props) -> Outputs:
        lam = self.client("lambda")
        try:
            resp = lam.create_alias(FunctionName=p["function_name"], Name=p["alias"],
                                    FunctionVersion=str(p["function_version"]))
        except ClientError as exc:
            if _code(exc) not in CONFLICT:
                raise
            return self.update_lambda_alias(p, None)
        return {"arn": resp["AliasArn"], "version": resp["FunctionVersion"]}

    def update_lambda_alias(self, p: Props, _before: Entry | None) -> Outputs:
        lam = self.client("lambda")
        target = str(p["function_version"])
        current = lam.get_alias(FunctionName=p["function_name"], Name=p["alias"])
        if current["FunctionVersion"] == target:
            # Nothing to move; leave any weights of a running rollout alone.
            return {"arn": current["AliasArn"], "version": target}
        if self.rollout_hook is not None and p.get("rollout"):
            started = self.rollout_hook(p, str(current["FunctionVersion"]))
            if started is not None:
                return started
        resp = lam.update_alias(FunctionName=p["function_name"], Name=p["alias"],
                                FunctionVersion=target, RoutingConfig={})
        return {"arn": resp["AliasArn"], "version": resp["FunctionVersion"]}

    def delete_lambda_alias(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("lambda").delete_alias(
            FunctionName=entry.props["function_name"], Name=entry.props["alias"]))

    def exists_lambda_alias(self, entry: Entry) -> bool:
        self.client("lambda").get_alias(FunctionName=entry.props["function_name"],
                                        Name=entry.props["alias"])
        return True

    # -- http_api ---------------------------------------------------------------------
    def create_http_api(self, p: Props) -> Outputs:
        api = self.client("apigatewayv2")
        for item in pages(api, "get_apis", "Items"):
            if item["Name"] == p["name"] and item.get("Tags", {}) == p["tags"]:
                return self._api_outputs(item)  # adopt
        resp = api.create_api(Name=p["name"], ProtocolType=p["protocol"], Tags=p["tags"])
        return self._api_outputs(resp)  # its stage is an api_stage of its own

    def _api_outputs(self, item: dict[str, Any]) -> Outputs:
        return {"api_id": item["ApiId"], "endpoint": item.get("ApiEndpoint", "")}

    def update_http_api(self, p: Props, before: Entry) -> Outputs:
        api_id = before.outputs["api_id"]
        resp = self.client("apigatewayv2").update_api(ApiId=api_id, Name=p["name"])
        return self._api_outputs(resp)

    def delete_http_api(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("apigatewayv2").delete_api(
            ApiId=entry.outputs["api_id"]))

    def exists_http_api(self, entry: Entry) -> bool:
        self.client("apigatewayv2").get_api(ApiId=entry.outputs["api_id"])
        return True

    # -- api_integration --------------------------------------------------------------
    def _integration_args(self, p: Props) -> dict[str, Any]:
        return {"ApiId": p["api_id"], "IntegrationUri": p["integration_uri"],
                "PayloadFormatVersion": p["payload_format_version"],
                "TimeoutInMillis": p["timeout_ms"]}

    def create_api_integration(self, p: Props) -> Outputs:
        resp = self.client("apigatewayv2").create_integration(
            IntegrationType="AWS_PROXY", IntegrationMethod="POST",
            **self._integration_args(p))
        return {"integration_id": resp["IntegrationId"], "api_id": p["api_id"]}

    def update_api_integration(self, p: Props, before: Entry) -> Outputs:
        iid = before.outputs["integration_id"]
        self.client("apigatewayv2").update_integration(IntegrationId=iid,
                                                       **self._integration_args(p))
        return {"integration_id": iid, "api_id": p["api_id"]}

    def delete_api_integration(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("apigatewayv2").delete_integration(
            ApiId=entry.outputs["api_id"], IntegrationId=entry.outputs["integration_id"]))

    def exists_api_integration(self, entry: Entry) -> bool:
        self.client("apigatewayv2").get_integration(
            ApiId=entry.outputs["api_id"], IntegrationId=entry.outputs["integration_id"])
        return True

    # -- api_route --------------------------------------------------------------------
    @staticmethod
    def _authorization(p: Props) -> str:
        return "AWS_IAM" if p["authorization"] == "iam" else "NONE"

    def create_api_route(self, p: Props) -> Outputs:
        resp = self.client("apigatewayv2").create_route(
            ApiId=p["api_id"], RouteKey=p["route_key"], Target=p["target"],
            AuthorizationType=self._authorization(p))
        return {"route_id": resp["RouteId"], "api_id": p["api_id"]}

    def update_api_route(self, p: Props, before: Entry) -> Outputs:
        rid = before.outputs["route_id"]
        self.client("apigatewayv2").update_route(
            ApiId=p["api_id"], RouteId=rid, RouteKey=p["route_key"], Target=p["target"],
            AuthorizationType=self._authorization(p))
        return {"route_id": rid, "api_id": p["api_id"]}

    def delete_api_route(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("apigatewayv2").delete_route(
            ApiId=entry.outputs["api_id"], RouteId=entry.outputs["route_id"]))

    def exists_api_route(self, entry: Entry) -> bool:
        self.client("apigatewayv2").get_route(ApiId=entry.outputs["api_id"],
                                              RouteId=entry.outputs["route_id"])
        return True

    # -- api_stage: access logging and throttling ---------------------------------------
    @staticmethod
    def _stage_args(p: Props) -> dict[str, Any]:
        def throttle(t: dict[str, Any]) -> dict[str, Any]:
            return {"ThrottlingRateLimit": float(t["rate"]),
                    "ThrottlingBurstLimit": int(t["burst"])}

        args: dict[str, Any] = {
            "ApiId": p["api_id"], "StageName": p["stage"], "AutoDeploy": p["auto_deploy"],
            "DefaultRouteSettings": throttle(p["throttle"]) if p.get("throttle") else {},
            "RouteSettings": {k: throttle(v) for k, v in sorted(p["route_throttles"].items())},
        }
        if p.get("access_log"):
            args["AccessLogSettings"] = {"DestinationArn": p["access_log"]["destination_arn"],
                                         "Format": p["access_log"]["format"]}
        return args

    def create_api_stage(self, p: Props) -> Outputs:
        try:
            self.client("apigatewayv2").create_stage(**self._stage_args(p))
        except ClientError as exc:
            if _code(exc) not in CONFLICT:
                raise
            return self.update_api_stage(p, None)  # made by an older deploy with the API
        return {"stage": p["stage"], "api_id": p["api_id"]}

    def update_api_stage(self, p: Props, before: Entry | None) -> Outputs:
        api = self.client("apigatewayv2")
        args = self._stage_args(p)
        try:
            api.update_stage(**args)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if self.conn.endpoint_url is None or status not in (500, 501):
                raise
            # moto 5.2 has no UpdateStage (it answers 500): off AWS only, the stage is made
            # again with the new settings.
            api.delete_stage(ApiId=p["api_id"], StageName=p["stage"])
            api.create_stage(**args)
            return {"stage": p["stage"], "api_id": p["api_id"]}
        old = before.props if before is not None else {}
        if old.get("access_log") and not p.get("access_log"):
            _ignore_missing(lambda: api.delete_access_log_settings(ApiId=p["api_id"],
                                                                   StageName=p["stage"]))
        for key in sorted(set(old.get("route_throttles", {})) - set(p["route_throttles"])):
            _ignore_missing(functools.partial(api.delete_route_settings, ApiId=p["api_id"],
                                              StageName=p["stage"], RouteKey=key))
        return {"stage": p["stage"], "api_id": p["api_id"]}

    def delete_api_stage(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("apigatewayv2").delete_stage(
            ApiId=entry.outputs["api_id"], StageName=entry.outputs["stage"]))

    def exists_api_stage(self, entry: Entry) -> bool:
        # props hold the API as a reference; the outputs, what it resolved to
        self.client("apigatewayv2").get_stage(ApiId=entry.outputs["api_id"],
                                              StageName=entry.outputs["stage"])
        return True

    # -- lambda_permission ------------------------------------------------------------
    def create_lambda_permission(self, p: Props) -> Outputs:
        lam = self.client("lambda")
        args = {"FunctionName": p["function_name"], "Qualifier": p["qualifier"],
                "StatementId": p["statement_id"]}
        _ignore_missing(lambda: lam.remove_permission(**args))
        lam.add_permission(**args, Action="lambda:InvokeFunction", Principal=p["principal"],
                           SourceArn=p["source_arn"])
        return {"statement_id": p["statement_id"]}

    def update_lambda_permission(self, p: Props, _before: Entry) -> Outputs:
        return self.create_lambda_permission(p)

    def delete_lambda_permission(self, entry: Entry, _destroying: bool) -> None:
        p = entry.props
        _ignore_missing(lambda: self.client("lambda").remove_permission(
            FunctionName=p["function_name"], Qualifier=p["qualifier"],
            StatementId=p["statement_id"]))

    def exists_lambda_permission(self, entry: Entry) -> bool:
        p = entry.props
        policy = self.client("lambda").get_policy(FunctionName=p["function_name"],
                                                  Qualifier=p["qualifier"])
        statements = json.loads(policy["Policy"]).get("Statement", [])
        return any(s.get("Sid") == p["statement_id"] for s in statements)

    # -- schedule_rule ----------------------------------------------------------------
    def create_schedule_rule(self, p: Props) -> Outputs:
        resp = self.client("events").put_rule(
            Name=p["rule_name"], ScheduleExpression=p["schedule_expression"],
            State=p["state"], Description=p["description"],
            Tags=[{"Key": k, "Value": v} for k, v in sorted(p["tags"].items())])
        return {"arn": resp["RuleArn"]}

    def update_schedule_rule(self, p: Props, _before: Entry) -> Outputs:
        return self.create_schedule_rule(p)

    def delete_schedule_rule(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("events").delete_rule(
            Name=entry.props["rule_name"]))

    def exists_schedule_rule(self, entry: Entry) -> bool:
        self.client("events").describe_rule(Name=entry.props["rule_name"])
        return True

    # -- schedule_target --------------------------------------------------------------
    def create_schedule_target(self, p: Props) -> Outputs:
        self.client("events").put_targets(Rule=p["rule_name"], Targets=[
            {"Id": p["target_id"], "Arn": p["arn"], "InputTransformer": p["input_transformer"]}])
        return {"target_id": p["target_id"]}

    def update_schedule_target(self, p: Props, _before: Entry) -> Outputs:
        return self.create_schedule_target(p)

    def delete_schedule_target(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("events").remove_targets(
            Rule=entry.props["rule_name"], Ids=[entry.props["target_id"]]))

    def exists_schedule_target(self, entry: Entry) -> bool:
        listed = pages(self.client("events"), "list_targets_by_rule", "Targets",
                       Rule=entry.props["rule_name"])
        return any(t["Id"] == entry.props["target_id"] for t in listed)

    # -- ses_identity -----------------------------------------------------------------
    def create_ses_identity(self, p: Props) -> Outputs:
        ses = self.client("ses")
        ses.verify_email_identity(EmailAddress=p["email"])
        status = self._verification(p["email"])
        if status != "Success":
            self.warnings.append(pending_identity(p["email"], status))
        return {"identity": p["email"]}

    def _verification(self, identity: str) -> str:
        got = self.client("ses").get_identity_verification_attributes(Identities=[identity])
        attrs = got.get("VerificationAttributes", {}).get(identity, {})
        return str(attrs.get("VerificationStatus", "NotStarted"))

    def update_ses_identity(self, p: Props, _before: Entry) -> Outputs:
        return self.create_ses_identity(p)

    def delete_ses_identity(self, entry: Entry, _destroying: bool) -> None:
        self.client("ses").delete_identity(Identity=entry.props["email"])

    def exists_ses_identity(self, entry: Entry) -> bool:
        # Asked of the identity itself: no listing to page through, and a Pending identity
        # (link not clicked yet) exists; one whose link expired (Failed) must be sent again.
        email = entry.props["email"]
        got = self.client("ses").get_identity_verification_attributes(Identities=[email])
        attrs = got.get("VerificationAttributes", {}).get(email)
        return attrs is not None and attrs.get("VerificationStatus") != "Failed"


def pending_identity(identity: str, status: str) -> str:
    """What a person must do before SES sends from or to ``identity`` (verification is
    ``status``): on AWS a new identity needs someone to click the link SES mailed to it."""
    if "@" not in identity:
        return (f"SES identity {identity} is {status}: publish the DNS records SES gives for "
                "the domain (SES console → Verified identities) before reports can be sent")
    return (f"SES identity {identity} is {status}: a person must click the verification link "
            f"SES just e-mailed to {identity} (within 24 h, or deploy again to resend it); until "
            "then no report is sent from it, nor to it while the account is in the SES sandbox")


def _check_table() -> None:
    if set(SERVICES) != set(KINDS):
        raise AssertionError("SERVICES must name the services of every kind")
    for kind in KINDS:
        for verb in ("create", "update", "delete", "exists"):
            if not hasattr(AwsProvider, f"{verb}_{kind}"):
                raise AssertionError(f"AwsProvider lacks {verb}_{kind}")


_check_table()
