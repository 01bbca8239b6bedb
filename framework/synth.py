"""Export the compiled resource graph as a CloudFormation template. Pure, like compile.

The graph is compiled with ``${AWS::AccountId}`` and ``${AWS::Region}`` in place of the
account and region, and every string holding them becomes ``Fn::Sub``; refs between resources
become ``Ref``/``Fn::GetAtt``. Each resource kind's module (``framework.resources``) gives its
CloudFormation form; a kind the table does not register is an error, never a silent skip.

An endpoint rolled out step by step is deployed as SAM's ``DeploymentPreference`` deploys a
function: a CodeDeploy application, a deployment group with the endpoint's alarms and
automatic rollback, a deployment config, and the alias's ``UpdatePolicy``
(``CodeDeployLambdaAliasUpdate``, with the pre-traffic hook), so CloudFormation starts the
deployment when the alias's version changes. Bake times must then be whole minutes.

The registry bucket and its content (model files, metadata, the handler zip) are not stack
resources: a registry outlives any one stack, and the functions' code must exist before the
stack does. ``mlops deploy`` (or any S3 client) creates them; the template lists them under
``Metadata.Mlops::Registry`` with the SHA-256 of every object, and refers to them by name.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from framework import resources
from framework.compile.graph import REF_KEY, Resource, ResourceGraph, is_ref
from framework.errors import ConfigError
from framework.resources.base import ACCOUNT, REGION, FoldedInto, Implicit, InRegistry, Stack

__all__ = ["ACCOUNT", "REGION", "logical_id", "synthesize", "to_json", "to_sam"]

Template = dict[str, Any]


def logical_id(rid: str) -> str:
    """'function.predict' → 'FunctionPredict' (+ a short hash when characters were dropped)."""
    parts = re.split(r"[^A-Za-z0-9]+", rid)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not re.fullmatch(r"[a-z0-9.]+", rid.lower()) or "@" in rid:
        name += hashlib.sha256(rid.encode()).hexdigest()[:6]
    return name[:255]


def _value(value: Any, graph: ResourceGraph) -> Any:
    """Config values → CloudFormation values: refs to intrinsics, placeholders to Fn::Sub."""
    if is_ref(value):
        target = logical_id(value[REF_KEY])
        attr = _attr(graph, value[REF_KEY], value["attr"])
        got: Any = {"Ref": target} if attr == "Ref" else {"Fn::GetAtt": [target, attr]}
        fmt = value.get("format", "{}")
        if fmt != "{}":
            head, tail = fmt.split("{}", 1)
            got = {"Fn::Join": ["", [_value(head, graph), got, _value(tail, graph)]]}
        return got
    if isinstance(value, dict):
        return {k: _value(v, graph) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v, graph) for v in value]
    if isinstance(value, str) and "${AWS::" in value:
        return {"Fn::Sub": value}
    return value


def _attr(graph: ResourceGraph, target: str, attr: str) -> str:
    """The CloudFormation attribute of a graph output (``"Ref"``: the Ref value), as the kind
    of the resource it belongs to names it."""
    form = resources.kind(graph.resources[target].kind).cloudformation
    return form.attrs.get(attr, attr) if isinstance(form, Stack) else attr


def _depends(res: Resource, graph: ResourceGraph) -> list[str]:
    deps = [d for d in res.depends_on
            if isinstance(resources.kind(graph.resources[d].kind).cloudformation, Stack)]
    return sorted(logical_id(d) for d in deps)


def _fold(res: Resource, form: FoldedInto[Any], graph: ResourceGraph,
          stack: dict[str, Any]) -> None:
    """Add ``res`` to the resource of ``form.parent``'s kind it depends on."""
    parent = next(d for d in res.depends_on if graph.resources[d].kind == form.parent)
    props = stack[logical_id(parent)]["Properties"]
    typed = resources.kind(res.kind).parse(res.props)
    props.setdefault(form.key, []).append(_value(form.item(typed), graph))


def synthesize(graph: ResourceGraph, *, description: str) -> Template:
    """The CloudFormation template of a graph compiled for ``${AWS::AccountId}``."""
    from framework.plan.deployments import aws_problems

    problems = aws_problems(graph)  # what CodeDeploy on AWS cannot run
    if problems:
        raise ConfigError(problems, source="synth")
    stack: dict[str, Any] = {}  # the stack's resources, by logical id
    registry: list[dict[str, Any]] = []
    outputs: dict[str, Any] = {}
    for rid in graph.order():
        res = graph.resources[rid]
        kind = resources.kind(res.kind)
        form = kind.cloudformation
        if isinstance(form, Implicit):
            continue  # the stack does it by itself (a deployment: the alias's UpdatePolicy)
        if isinstance(form, InRegistry):
            entry = {"Resource": rid, "Bucket": _value(res.props["bucket"], graph)}
            for key in ("key", "prefix", "sha256"):
                if key in res.props:
                    entry[key.capitalize()] = res.props[key]
            if res.props.get("event_bridge") is True:  # the monitors' landing rules need it
                entry["NotificationConfiguration"] = {
                    "EventBridgeConfiguration": {"EventBridgeEnabled": True}}
            registry.append(entry)
            continue
        if isinstance(form, FoldedInto):
            _fold(res, form, graph, stack)
            continue
        body = _value(form.form(kind.parse(res.props)), graph)
        deps = _depends(res, graph)
        if deps:
            body["DependsOn"] = deps
        stack[logical_id(rid)] = body
        for name, attr in form.outputs.items():
            outputs[name] = {"Value": {"Fn::GetAtt": [logical_id(rid), attr]}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Metadata": {"Mlops::Registry": registry},
        "Resources": stack,
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
