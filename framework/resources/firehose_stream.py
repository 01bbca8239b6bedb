"""firehose_stream: an endpoint's capture stream, delivering gzip JSON lines to the registry
under ``capture/{endpoint}/dt=YYYY-MM-DD/`` (the layout the monitors read).

AWS creates and deletes streams asynchronously: CREATING → ACTIVE (or CREATING_FAILED),
DELETING → gone; a name stays taken (ResourceInUseException) until the old stream is gone. A
replace waits for the old stream to be gone, never adopts a dying one, and waits for ACTIVE
before anything may put records. A change of the buffering hints alone is made in place
(``UpdateDestination``, as CloudFormation does it: no interruption); any other change replaces
the stream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import DeployError
from framework.resources.base import (
    ABSENT,
    Absent,
    CfnResource,
    Deployed,
    Kind,
    Outputs,
    Props,
    Refused,
    Stack,
    cfn_tags,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class FirehoseStream(Props):
    kind = "firehose_stream"

    stream_name: str
    bucket: str
    role_arn: str
    prefix: str
    error_prefix: str
    buffer_seconds: int
    buffer_mb: int
    compression: str
    extension: str
    source: str | Absent = ABSENT  # "cloudwatch_logs": records are CloudWatch Logs envelopes
    tags: dict[str, str]


# CloudWatch Logs sends subscription data gzip-compressed, many log events per record, wrapped
# in an envelope: Firehose decompresses it and keeps each event's message.
LOGS_PROCESSING = {"Enabled": True, "Processors": [
    {"Type": "Decompression",
     "Parameters": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}]},
    {"Type": "CloudWatchLogProcessing",
     "Parameters": [{"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}]},
]}


def stream_destination(p: FirehoseStream) -> dict[str, Any]:
    """The stream's S3 destination, as the API and CloudFormation both spell it."""
    dest: dict[str, Any] = {
        "RoleARN": p.role_arn, "BucketARN": f"arn:aws:s3:::{p.bucket}",
        "Prefix": p.prefix, "ErrorOutputPrefix": p.error_prefix,
        "BufferingHints": {"IntervalInSeconds": p.buffer_seconds, "SizeInMBs": p.buffer_mb},
        "CompressionFormat": p.compression, "FileExtension": p.extension}
    if p.source == "cloudwatch_logs":
        dest["ProcessingConfiguration"] = LOGS_PROCESSING
    return dest


def described(ctx: Context, name: str) -> dict[str, Any] | None:
    """The stream's description, None once it is gone."""
    got = ctx.attempt(lambda: ctx.client("firehose").describe_delivery_stream(
        DeliveryStreamName=name), missing=True)
    if isinstance(got, Refused):
        return None
    desc: dict[str, Any] = got["DeliveryStreamDescription"]
    return desc


def gone(ctx: Context, name: str) -> None:
    ctx.poll(f"Firehose stream {name} to finish deleting",
             lambda: described(ctx, name) is None,
             hint="a stream can take a few minutes to delete; deploy again later")


def active(ctx: Context, name: str) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def done() -> bool:
        desc = described(ctx, name)
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

    ctx.poll(f"Firehose stream {name} to become ACTIVE", done,
             hint="it is still CREATING; deploy again later to adopt it")
    return got


def create(ctx: Context, p: FirehoseStream) -> Outputs:
    fh = ctx.client("firehose")
    name = p.stream_name

    def put() -> Any:
        return fh.create_delivery_stream(
            DeliveryStreamName=name, DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration=stream_destination(p), Tags=cfn_tags(p.tags))

    for _ in range(3):  # at most: gone meanwhile, failed one recreated, then it is ours
        made = ctx.attempt(lambda: ctx.role_retry(put, "Firehose", p.role_arn),
                           codes={"ResourceInUseException"})
        if not isinstance(made, Refused):
            break
        desc = described(ctx, name)
        if desc is None:
            continue  # deleted between the two calls: create it now
        status = desc.get("DeliveryStreamStatus")
        if status == "CREATING_FAILED":  # a crashed deploy's stream that never worked
            ctx.ignore_missing(lambda: fh.delete_delivery_stream(DeliveryStreamName=name))
        if status in {"DELETING", "CREATING_FAILED"}:
            gone(ctx, name)  # never adopt a stream that is going away
            continue
        break  # ACTIVE or CREATING: adopt it
    desc = active(ctx, name)
    return {"arn": desc["DeliveryStreamARN"], "stream_name": name}


IN_PLACE = frozenset({"buffer_seconds", "buffer_mb"})  # UpdateDestination's BufferingHints


def update(ctx: Context, p: FirehoseStream, before: Deployed[FirehoseStream] | None) -> Outputs:
    if before is None:
        return create(ctx, p)
    old, new = before.props.to_props(), p.to_props()
    if {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} - IN_PLACE \
            or not exists(ctx, before):
        return replace(ctx, p, before)
    fh = ctx.client("firehose")
    hints = stream_destination(p)["BufferingHints"]
    desc: dict[str, Any] = {}

    def change() -> Any:
        desc.update(active(ctx, p.stream_name))
        return fh.update_destination(
            DeliveryStreamName=p.stream_name, CurrentDeliveryStreamVersionId=desc["VersionId"],
            DestinationId=desc["Destinations"][0]["DestinationId"],
            ExtendedS3DestinationUpdate={"BufferingHints": hints})

    for _ in range(3):  # another writer moved the version between describe and update
        if not isinstance(ctx.attempt(change, codes={"ConcurrentModificationException"}),
                          Refused):
            break
    else:
        raise DeployError(f"Firehose stream {p.stream_name} kept changing while its buffering "
                          "hints were updated", hint="deploy again")
    return {"arn": desc["DeliveryStreamARN"], "stream_name": p.stream_name}


def replace(ctx: Context, p: FirehoseStream, before: Deployed[FirehoseStream]) -> Outputs:
    delete(ctx, before, False)
    gone(ctx, before.props.stream_name)
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[FirehoseStream], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("firehose").delete_delivery_stream(
        DeliveryStreamName=d.props.stream_name))


def exists(ctx: Context, d: Deployed[FirehoseStream]) -> bool:
    desc = described(ctx, d.props.stream_name)
    return desc is not None and desc.get("DeliveryStreamStatus") != "DELETING"


def cloudformation(p: FirehoseStream) -> CfnResource:
    return {"Type": "AWS::KinesisFirehose::DeliveryStream", "Properties": {
        "DeliveryStreamName": p.stream_name, "DeliveryStreamType": "DirectPut",
        "ExtendedS3DestinationConfiguration": stream_destination(p),
        "Tags": cfn_tags(p.tags)}}


KIND = Kind(
    props=FirehoseStream, services=("firehose",),
    replace_on=frozenset(f.name for f in dataclasses.fields(FirehoseStream)) - IN_PLACE,
    create=create, update=update, replace=replace, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
