"""A small stack of real resource kinds that a moto server serves whole (a bucket, objects, log
groups, a role, a schedule), and, run as a script, an apply of it whose provider gets stuck in
two calls: one before its call reaches AWS, one after (the resource exists, unrecorded).

    python -m tests.apply.stack ENDPOINT BUCKET HOME

prints ``stuck NAME`` for each, then waits to be killed.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path
from typing import Any

from framework.apply.audit import AuditLog
from framework.apply.executor import Executor
from framework.apply.store import StateStore
from framework.compile.graph import Resource, ResourceGraph, ref
from framework.plan.planner import Plan, make_plan
from framework.plan.state import State
from framework.providers.aws import AwsProvider
from framework.resources import IamRole, LogGroup, S3Bucket, S3Object, ScheduleRule
from framework.runtime.clients import Connection

STUCK_BEFORE, STUCK_AFTER = "logs.stuck-before-call", "logs.stuck-after-call"
AFTER_STUCK = "object.after-stuck"  # depends on STUCK_AFTER: never starts


def connection(endpoint: str) -> Connection:
    return Connection(region="us-east-1", endpoint_url=endpoint, dummy_credentials=True,
                      max_attempts=1)


def graph(bucket: str) -> ResourceGraph:
    def obj(i: str, *deps: str) -> Resource:
        text = f"object {i}\n"
        return Resource.of(f"object.{i}", S3Object(
            bucket=bucket, key=f"objects/{i}.txt", sha256=hashlib.sha256(text.encode())
            .hexdigest(), size=len(text), content=text, content_type="text/plain"),
            ("registry", *deps))

    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": ref("registry", "arn", "{}/objects/*")}]}
    return ResourceGraph.of([
        Resource.of("registry", S3Bucket(bucket=bucket, versioning=False, region="us-east-1",
                                         tags={})),
        *(obj(str(i)) for i in range(4)),
        obj("after-stuck", STUCK_AFTER),
        *(Resource.of(f"logs.{name}", LogGroup(name=f"/{bucket}/{name}", retention_days=7,
                                               tags={}))
          for name in ("a", "b", "c", "stuck-before-call", "stuck-after-call")),
        Resource.of("role.reader", IamRole(role_name=f"{bucket}-reader", trust_policy=trust,
                                           policy_name="read", policy=policy, tags={})),
        Resource.of("schedule.daily", ScheduleRule(
            rule_name=f"{bucket}-daily", schedule_expression="rate(1 day)", state="ENABLED",
            description="daily", tags={})),
    ])


def store(endpoint: str, bucket: str, home: Path) -> StateStore:
    return StateStore(s3=connection(endpoint).client("s3"), bucket=bucket, project="shop",
                      stage="prod", cache_dir=home / "state")


def audit(endpoint: str, bucket: str, home: Path) -> AuditLog:
    return AuditLog(s3=connection(endpoint).client("s3"), bucket=bucket,
                    local_file=home / "audit.jsonl")


def plan(provider: AwsProvider, state: State, bucket: str) -> Plan:
    """Refresh (what the state records that is gone) and plan, as `mlops plan` does."""
    live = {rid: provider.exists(entry) for rid, entry in state.resources.items()}
    return make_plan(graph(bucket), state, live, target="local", region="us-east-1",
                     account_id="123456789012")


class Stuck(AwsProvider):
    """Gets stuck in the calls of the two stuck log groups, until the process is killed."""

    def create(self, kind: str, props: dict[str, Any]) -> dict[str, Any]:
        name = str(props.get("name", ""))
        if name.endswith(STUCK_BEFORE.split(".", 1)[1]):
            print(f"stuck {STUCK_BEFORE}", flush=True)
            threading.Event().wait()
        outputs: dict[str, Any] = super().create(kind, props)
        if name.endswith(STUCK_AFTER.split(".", 1)[1]):
            print(f"stuck {STUCK_AFTER}", flush=True)
            threading.Event().wait()
        return outputs


def main(endpoint: str, bucket: str, home: Path) -> None:
    provider = Stuck(conn=connection(endpoint), root=home)
    the_store = store(endpoint, bucket, home)
    Executor(provider=provider, store=the_store, audit=audit(endpoint, bucket, home),
             actor="alice", parallelism=10).apply(plan(provider, the_store.load(), bucket))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
