"""S3's events to EventBridge, on the local AWS: every object created in a bucket whose
notification configuration has ``EventBridgeConfiguration`` becomes an ``Object Created``
event in AWS's shape, put on the local default bus (``Scheduler.route``: the rules whose
pattern matches it have their Lambda targets invoked asynchronously).

moto stores the configuration, but answers ``GetBucketNotificationConfiguration`` without it
and hands its own S3 events to its own EventBridge, which invokes no function. So
``patch_moto``:

- answers ``EventBridgeConfiguration`` as S3 does, when the bucket has it;
- hooks moto's S3 notification point (``moto.s3.notifications.send_event``, which moto calls
  after PutObject, POST Object, CopyObject and CompleteMultipartUpload alike, whoever made the
  request: the CLI, a function, the local Firehose's deliveries) and, for such a bucket, makes
  the event S3 sends::

    {"version": "0", "id", "detail-type": "Object Created", "source": "aws.s3", "account",
     "time", "region", "resources": ["arn:aws:s3:::BUCKET"],
     "detail": {"version": "0", "bucket": {"name"}, "object": {"key", "size", "etag",
                "version-id" (versioned buckets), "sequencer"}, "request-id", "requester",
                "source-ip-address", "reason": "PutObject" | "POST Object" | "CopyObject" |
                "CompleteMultipartUpload"}}

The hook runs inside the write it reports (under the journal's write lock): it only queues
the event; one thread (``start``) hands the queue to the bus, in order. Until ``start`` (the
journal's replay, when the daemon starts) nothing is queued: a replayed write is no new
object.
"""

from __future__ import annotations

import logging
import queue
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

DETAIL_TYPE = "Object Created"
# moto's event names (S3NotificationEvent values) → the event's detail.reason
REASONS = {"s3:ObjectCreated:Put": "PutObject", "s3:ObjectCreated:Post": "POST Object",
           "s3:ObjectCreated:Copy": "CopyObject",
           "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload"}
SOURCE_IP = "127.0.0.1"

Publish = Callable[[dict[str, Any]], Any]  # an event, to the default bus (Scheduler.route)

_queue: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
_state: dict[str, Any] = {"publish": None, "patched": False, "thread": None, "sequencer": 0}
_lock = threading.Lock()


def _sequencer() -> str:
    """Increasing hex, as S3's sequencer orders the events of one key."""
    with _lock:
        _state["sequencer"] = max(_state["sequencer"] + 1, time.time_ns())
        return f"{_state['sequencer']:016X}"


def object_created(account: str, region: str, bucket: str, key: str, size: int, etag: str,
                   version_id: str | None, reason: str,
                   now: datetime | None = None) -> dict[str, Any]:
    """The ``Object Created`` event S3 puts on the default bus for this object."""
    obj: dict[str, Any] = {"key": key, "size": int(size), "etag": etag.strip('"')}
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    obj["sequencer"] = _sequencer()
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": DETAIL_TYPE,
            "source": "aws.s3", "account": account,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                       "request-id": "".join(secrets.choice(string.ascii_uppercase
                                                            + string.digits) for _ in range(16)),
                       "requester": account, "source-ip-address": SOURCE_IP,
                       "reason": reason}}


def event_bridge_enabled(bucket: Any) -> bool:
    """Whether moto's bucket sends its events to EventBridge."""
    config = getattr(bucket, "notification_configuration", None)
    return config is not None and getattr(config, "event_bridge", None) is not None


def _hooked(original: Callable[..., None]) -> Callable[..., None]:
    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        original(account_id, event_name, bucket, key)
        reason = REASONS.get(str(getattr(event_name, "value", event_name)))  # an enum member
        if reason is None or _state["publish"] is None or key is None \
                or not event_bridge_enabled(bucket):
            return
        if reason == "PutObject" and getattr(key, "multipart", None) is not None:
            return  # moto completes an upload with a put of its own: one event, the next one
        try:
            _queue.put(object_created(account_id, bucket.region_name, bucket.name, key.name,
                                      key.size, key.etag, getattr(key, "version_id", None),
                                      reason))
        except Exception:  # the write succeeded whatever happens to its event
            log.exception("s3 events: no event for s3://%s/%s", bucket.name, key.name)
    return send_event


def _answer_event_bridge(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def get_bucket_notification(self: Any) -> Any:
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or getattr(config, "event_bridge", None) is None:
            return original(self)
        serialized = self.serialized

        def with_event_bridge(result: Any) -> Any:
            body = getattr(result, "result", None)
            if isinstance(body, dict):
                body["EventBridgeConfiguration"] = {}
            return serialized(result)
        self.serialized = with_event_bridge  # this request's instance only
        return original(self)
    return get_bucket_notification


def patch_moto() -> None:
    """Hook moto's S3 events and answer ``EventBridgeConfiguration`` (once per process)."""
    with _lock:
        if _state["patched"]:
            return
        from moto.s3 import notifications
        from moto.s3.responses import S3Response

        notifications.send_event = _hooked(notifications.send_event)
        S3Response.get_bucket_notification = _answer_event_bridge(  # type: ignore[method-assign,assignment]
            S3Response.get_bucket_notification)
        _state["patched"] = True


def _dispatch() -> None:
    while True:
        event = _queue.get()
        publish = _state["publish"]
        if publish is None:
            continue
        try:
            publish(event)
        except Exception:
            log.exception("s3 events: %s of s3://%s/%s not delivered", event["detail-type"],
                          event["detail"]["bucket"]["name"], event["detail"]["object"]["key"])


def start(publish: Publish) -> None:
    """From now on, each object created in an EventBridge-enabled bucket is an event handed to
    ``publish`` (on a thread of its own, in order)."""
    patch_moto()
    with _lock:
        _state["publish"] = publish
        if _state["thread"] is None:
            thread = threading.Thread(target=_dispatch, name="s3-events", daemon=True)
            thread.start()
            _state["thread"] = thread


def stop() -> None:
    """No more events (queued ones are dropped)."""
    with _lock:
        _state["publish"] = None
