"""Export the compiled resource graph as a CloudFormation template. Pure, like compile.

The graph is compiled with ``${AWS::AccountId}`` and ``${AWS::Region}`` in place of the
account and region, and every string holding them becomes ``Fn::Sub``; refs between resources
become ``Ref``/``Fn::GetAtt``. One table maps each resource kind to its CloudFormation form;
an unmapped kind is an error, never a silent skip.

The registry bucket and its content (model files, metadata, the handler zip) are not stack
resources: a registry outlives any one stack, and the functions' code must exist before the
stack does. ``mlops deploy`` (or any S3 client) creates them; the template lists them under
``Metadata.Mlops::Registry`` with the SHA-256 of every object, and refers to them by name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from framework.compile.graph import REF_KEY, Resource, ResourceGraph, is_ref

ACCOUNT = "${AWS::AccountId}"
REGION = "${AWS::Region}"

Template = dict[str, Any]


def logical_id(rid: str) -> str:
    """'function.predict' → 'FunctionPredict' (+ a short hash when characters were dropped)."""
    parts = re.split(r"[^A-Za-z0-9]+", rid)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not re.fullmatch(r"[a-z0-9.]+", rid.lower()) or "@" in rid:
        name += hashlib.sha256(rid.encode()).hexdigest()[:6]
    return name[:255]


def _value(value: Any) -> Any:
    """Config values → CloudFormation values: refs to intrinsics, placeholders to Fn::Sub."""
    if is_ref(value):
        target, attr = logical_id(value[REF_KEY]), ATTRS.get(value["attr"], value["attr"])
        got: Any = {"Ref": target} if attr == "Ref" else {"Fn::GetAtt": [target, attr]}
        fmt = value.get("format", "{}")
        if fmt != "{}":
            head, tail = fmt.split("{}", 1)
            got = {"Fn::Join": ["", [_value(head), got, _value(tail)]]}
        return got
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, str) and "${AWS::" in value:
        return {"Fn::Sub": value}
    return value


# Output names of the graph → CloudFormation attribute names ("Ref" means the Ref value).
ATTRS = {"api_id": "Ref", "integration_id": "Ref", "version": "Version", "arn": "Arn",
         "layer_version_arn": "Ref"}  # a LayerVersion's Ref is its ARN


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _role(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": p["role_name"], "AssumeRolePolicyDocument": p["trust_policy"],
        "Policies": [{"PolicyName": p["policy_name"], "PolicyDocument": p["policy"]}],
        "Tags": _tags(p["tags"])}}


def _stream(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::KinesisFirehose::DeliveryStream", "Properties": {
        "DeliveryStreamName": p["stream_name"], "DeliveryStreamType": "DirectPut",
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": p["role_arn"], "BucketARN": f"arn:aws:s3:::{p['bucket']}",
            "Prefix": p["prefix"], "ErrorOutputPrefix": p["error_prefix"],
            "BufferingHints": {"IntervalInSeconds": p["buffer_seconds"],
                               "SizeInMBs": p["buffer_mb"]},
            "CompressionFormat": p["compression"], "FileExtension": p["extension"]},
        "Tags": _tags(p["tags"])}}


def _log_group(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": p["name"], "RetentionInDays": p["retention_days"],
        "Tags": _tags(p["tags"])}}


def _layer(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::LayerVersion", "DeletionPolicy": "Retain",
            "Properties": {"LayerName": p["layer_name"], "Description": p["description"],
                           "Content": {"S3Bucket": p["bucket"], "S3Key": p["key"]},
                           "CompatibleRuntimes": p["runtimes"],
                           "CompatibleArchitectures": p["architectures"]}}


def _function(p: dict[str, Any]) -> dict[str, Any]:
    layers = {"Layers": p["layers"]} if p.get("layers") else {}
    if p.get("concurrency") is not None:
        layers["ReservedConcurrentExecutions"] = p["concurrency"]
    return {"Type": "AWS::Lambda::Function", "Properties": {**layers,
        "FunctionName": p["function_name"], "Runtime": p["runtime"], "Handler": p["handler"],
        "Architectures": p["architectures"],
        "Role": p["role_arn"], "MemorySize": p["memory"], "Timeout": p["timeout"],
        "Description": p["description"],
        "Code": {"S3Bucket": p["code"]["bucket"], "S3Key": p["code"]["key"]},
        "Environment": {"Variables": p["environment"]}, "Tags": _tags(p["tags"])}}


def _version(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::Version", "DeletionPolicy": "Retain",
            "Properties": {"FunctionName": p["function_name"],
                           "Description": f"digest {p['function_digest'][:16]}"}}


def _alias(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::Alias", "Properties": {
        "FunctionName": p["function_name"], "Name": p["alias"],
        "FunctionVersion": p["function_version"]}}


def _api(p: dict[str, Any]) -> dict[str, Any]:
    tags = p["tags"]
    return {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
        "Name": p["name"], "ProtocolType": p["protocol"], "Tags": tags}}


def _integration(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
        "ApiId": p["api_id"], "IntegrationType": "AWS_PROXY",
        "IntegrationUri": p["integration_uri"],
        "PayloadFormatVersion": p["payload_format_version"],
        "TimeoutInMillis": p["timeout_ms"]}}


def _route(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
        "ApiId": p["api_id"], "RouteKey": p["route_key"], "Target": p["target"],
        "AuthorizationType": "AWS_IAM" if p["authorization"] == "iam" else "NONE"}}


def _stage(p: dict[str, Any]) -> dict[str, Any]:
    def throttle(t: dict[str, Any]) -> dict[str, Any]:
        return {"ThrottlingRateLimit": t["rate"], "ThrottlingBurstLimit": t["burst"]}

    props: dict[str, Any] = {"ApiId": p["api_id"], "StageName": p["stage"],
                             "AutoDeploy": p["auto_deploy"]}
    if p.get("access_log"):
        props["AccessLogSettings"] = {"DestinationArn": p["access_log"]["destination_arn"],
                                      "Format": p["access_log"]["format"]}
    if p.get("throttle"):
        props["DefaultRouteSettings"] = throttle(p["throttle"])
    if p.get("route_throttles"):
        props["RouteSettings"] = {k: throttle(v) for k, v in p["route_throttles"].items()}
    return {"Type": "AWS::ApiGatewayV2::Stage", "Properties": props}


def _permission(p: dict[str, Any]) -> dict[str, Any]:
    fn = p["function_name"]
    return {"Type": "AWS::Lambda::Permission", "Properties": {
        "FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}:{p['qualifier']}",
        "Action": "lambda:InvokeFunction", "Principal": p["principal"],
        "SourceArn": p["source_arn"]}}


def _rule(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::Events::Rule", "Properties": {
        "Name": p["rule_name"], "ScheduleExpression": p["schedule_expression"],
        "State": p["state"], "Description": p["description"]}}


def _identity(p: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::SES::EmailIdentity", "Properties": {"EmailIdentity": p["email"]}}


REGISTRY = object()  # the registry and its content: made before the stack, listed in Metadata
TARGET = object()  # an EventBridge target: folded into its rule's Targets

RULES: dict[str, Callable[[dict[str, Any]], dict[str, Any]] | object] = {
    "s3_bucket": REGISTRY,
    "s3_object": REGISTRY,
    "model_version": REGISTRY,
    "lambda_layer": _layer,
    "iam_role": _role,
    "firehose_stream": _stream,
    "log_group": _log_group,
    "lambda_function": _function,
    "lambda_version": _version,
    "lambda_alias": _alias,
    "http_api": _api,
    "api_integration": _integration,
    "api_route": _route,
    "api_stage": _stage,
    "lambda_permission": _permission,
    "schedule_rule": _rule,
    "schedule_target": TARGET,
    "ses_identity": _identity,
}


def _depends(res: Resource, graph: ResourceGraph) -> list[str]:
    deps = [d for d in res.depends_on
            if RULES.get(graph.resources[d].kind) not in (REGISTRY, TARGET)]
    return sorted(logical_id(d) for d in deps)


def _fold_target(res: Resource, graph: ResourceGraph, resources: dict[str, Any]) -> None:
    rule_id = next(d for d in res.depends_on if graph.resources[d].kind == "schedule_rule")
    props = resources[logical_id(rule_id)]["Properties"]
    props.setdefault("Targets", []).append({
        "Id": res.props["target_id"], "Arn": _value(res.props["arn"]),
        "InputTransformer": res.props["input_transformer"]})


def synthesize(graph: ResourceGraph, *, description: str) -> Template:
    """The CloudFormation template of a graph compiled for ``${AWS::AccountId}``."""
    resources: dict[str, Any] = {}
    registry: list[dict[str, Any]] = []
    outputs: dict[str, Any] = {}
    for rid in graph.order():
        res = graph.resources[rid]
        if res.kind not in RULES:
            raise ValueError(f"no CloudFormation form for resource kind '{res.kind}'")
        rule = RULES[res.kind]
        if rule is REGISTRY:
            entry = {"Resource": rid, "Bucket": _value(res.props["bucket"])}
            for key in ("key", "prefix", "sha256"):
                if key in res.props:
                    entry[key.capitalize()] = res.props[key]
            registry.append(entry)
            continue
        if rule is TARGET:
            _fold_target(res, graph, resources)
            continue
        assert callable(rule)
        body = _value(rule(res.props))
        deps = _depends(res, graph)
        if deps:
            body["DependsOn"] = deps
        resources[logical_id(rid)] = body
        if res.kind == "http_api":
            outputs["ApiEndpoint"] = {"Value": {"Fn::GetAtt": [logical_id(rid), "ApiEndpoint"]}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Metadata": {"Mlops::Registry": registry},
        "Resources": resources,
        "Outputs": outputs,
    }


def to_json(template: Template) -> str:
    return json.dumps(template, indent=2, sort_keys=False) + "\n"


def to_sam(template: Template) -> Template:
    """The same stack as a SAM template: functions become ``AWS::Serverless::Function``
    (code from the registry's S3 object), everything else stays as it is."""
    resources: dict[str, Any] = {}
    for lid, body in template["Resources"].items():
        if body["Type"] != "AWS::Lambda::Function":
            resources[lid] = body
            continue
        p = dict(body["Properties"])
        code = p.pop("Code")
        tags = {t["Key"]: t["Value"] for t in p.pop("Tags", [])}
        sam = {"Type": "AWS::Serverless::Function",
               "Properties": {**p, "CodeUri": {"Bucket": code["S3Bucket"], "Key": code["S3Key"]},
                              "Tags": tags}}
        if "DependsOn" in body:
            sam["DependsOn"] = body["DependsOn"]
        resources[lid] = sam
    return {**template, "Transform": "AWS::Serverless-2016-10-31", "Resources": resources}
