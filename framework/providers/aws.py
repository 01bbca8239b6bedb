"""The AWS provider: one handler per resource kind, the same calls for every target.

Handlers receive properties with refs already resolved and return the resource's outputs.
Creates adopt a resource that already exists under the same name (an apply that crashed after
the call but before recording it), so re-running a deploy finishes the job.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
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
    "api_route": ("apigatewayv2",), "lambda_permission": ("lambda",),
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


def _ignore_missing(call: Callable[[], Any]) -> None:
    try:
        call()
    except ClientError as exc:
        if not _missing(exc):
            raise


# Called when an alias with a rollout policy must move to a new version: starts the rollout
# (first traffic step) and returns the alias' outputs, or None to move it at once.
RolloutHook = Callable[[dict[str, Any], str], dict[str, Any] | None]


@dataclass
class AwsProvider:
    conn: Connection
    root: Path  # project root: relative artifact paths are read from here
    rollout_hook: RolloutHook | None = None

    def client(self, service: str) -> Any:
        return self.conn.client(service)

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
    def create_firehose_stream(self, p: Props) -> Outputs:
        fh = self.client("firehose")
        try:
            resp = fh.create_delivery_stream(
                DeliveryStreamName=p["stream_name"], DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": p["role_arn"], "BucketARN": f"arn:aws:s3:::{p['bucket']}",
                    "Prefix": p["prefix"], "ErrorOutputPrefix": p["error_prefix"],
                    "BufferingHints": {"IntervalInSeconds": p["buffer_seconds"],
                                       "SizeInMBs": p["buffer_mb"]},
                    "CompressionFormat": p["compression"], "FileExtension": p["extension"]},
                Tags=[{"Key": k, "Value": v} for k, v in sorted(p["tags"].items())])
            arn = resp["DeliveryStreamARN"]
        except ClientError as exc:
            if _code(exc) != "ResourceInUseException":
                raise
            arn = fh.describe_delivery_stream(DeliveryStreamName=p["stream_name"])[
                "DeliveryStreamDescription"]["DeliveryStreamARN"]
        return {"arn": arn, "stream_name": p["stream_name"]}

    def update_firehose_stream(self, p: Props, before: Entry) -> Outputs:
        return self.replace_firehose_stream(p, before)

    def replace_firehose_stream(self, p: Props, before: Entry) -> Outputs:
        self.delete_firehose_stream(before, False)
        return self.create_firehose_stream(p)

    def delete_firehose_stream(self, entry: Entry, _destroying: bool) -> None:
        _ignore_missing(lambda: self.client("firehose").delete_delivery_stream(
            DeliveryStreamName=entry.props["stream_name"]))

    def exists_firehose_stream(self, entry: Entry) -> bool:
        self.client("firehose").describe_delivery_stream(
            DeliveryStreamName=entry.props["stream_name"])
        return True

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
        groups = self.client("logs").describe_log_groups(
            logGroupNamePrefix=entry.props["name"])["logGroups"]
        return any(g["logGroupName"] == entry.props["name"] for g in groups)

    # -- lambda_function --------------------------------------------------------------
    def _function_config(self, p: Props) -> dict[str, Any]:
        return {
            "FunctionName": p["function_name"], "Role": p["role_arn"], "Handler": p["handler"],
            "Runtime": p["runtime"], "MemorySize": p["memory"], "Timeout": p["timeout"],
            "Description": p["description"], "Layers": list(p.get("layers", [])),
            "Environment": {"Variables": dict(sorted(p["environment"].items()))},
        }

    def _wait(self, function: str, waiter: str) -> None:
        self.client("lambda").get_waiter(waiter).wait(
            FunctionName=function, WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    def create_lambda_function(self, p: Props) -> Outputs:
        lam = self.client("lambda")
        try:
            resp = lam.create_function(
                **self._function_config(p), Publish=False, Tags=p["tags"],
                Code={"S3Bucket": p["code"]["bucket"], "S3Key": p["code"]["key"]})
        except ClientError as exc:
            if _code(exc) not in CONFLICT:
                raise
            return self.update_lambda_function(p, None)
        self._wait(p["function_name"], "function_active_v2")
        self._concurrency(p)
        return {"arn": resp["FunctionArn"], "function_name": p["function_name"]}

    def _concurrency(self, p: Props) -> None:
        self.client("lambda").put_function_concurrency(
            FunctionName=p["function_name"], ReservedConcurrentExecutions=p["concurrency"])

    def update_lambda_function(self, p: Props, before: Entry | None) -> Outputs:
        lam = self.client("lambda")
        name = p["function_name"]
        if before is None or before.props["code"] != p["code"]:
            lam.update_function_code(FunctionName=name, S3Bucket=p["code"]["bucket"],
                                     S3Key=p["code"]["key"])
            self._wait(name, "function_updated_v2")
        resp = lam.update_function_configuration(**self._function_config(p))
        self._wait(name, "function_updated_v2")
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
        resp = self.client("lambda").publish_version(
            FunctionName=p["function_name"], Description=f"digest {p['function_digest'][:16]}")
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
        for item in api.get_apis().get("Items", []):
            if item["Name"] == p["name"] and item.get("Tags", {}) == p["tags"]:
                return self._api_outputs(item)  # adopt
        resp = api.create_api(Name=p["name"], ProtocolType=p["protocol"], Tags=p["tags"])
        api.create_stage(ApiId=resp["ApiId"], StageName=p["stage"], AutoDeploy=True)
        return self._api_outputs(resp)

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
        listed = self.client("events").list_targets_by_rule(Rule=entry.props["rule_name"])
        return any(t["Id"] == entry.props["target_id"] for t in listed.get("Targets", []))

    # -- ses_identity -----------------------------------------------------------------
    def create_ses_identity(self, p: Props) -> Outputs:
        self.client("ses").verify_email_identity(EmailAddress=p["email"])
        return {"identity": p["email"]}

    def update_ses_identity(self, p: Props, _before: Entry) -> Outputs:
        return self.create_ses_identity(p)

    def delete_ses_identity(self, entry: Entry, _destroying: bool) -> None:
        self.client("ses").delete_identity(Identity=entry.props["email"])

    def exists_ses_identity(self, entry: Entry) -> bool:
        listed = self.client("ses").list_identities(IdentityType="EmailAddress")
        return entry.props["email"] in listed.get("Identities", [])


def _check_table() -> None:
    if set(SERVICES) != set(KINDS):
        raise AssertionError("SERVICES must name the services of every kind")
    for kind in KINDS:
        for verb in ("create", "update", "delete", "exists"):
            if not hasattr(AwsProvider, f"{verb}_{kind}"):
                raise AssertionError(f"AwsProvider lacks {verb}_{kind}")


_check_table()
