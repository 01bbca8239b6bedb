"""The AWS provider: the same calls for every target, dispatched to the resource kinds.

Each kind's calls live in its module (``framework.resources``); they receive properties with
refs already resolved and return the resource's outputs. Creates adopt a resource that already
exists under the same name (an apply that crashed after the call but before recording it), so
re-running a deploy finishes the job.

This module holds what the kinds share: the ``Context`` they are called with (clients, the
project root, warnings for the person deploying) and the retry and wait helpers for what AWS
does and moto does not (each pinned by a test in tests/providers/test_aws_realities.py):

- a new IAM role takes seconds to propagate: Lambda and Firehose refuse it ("cannot be assumed")
  meanwhile, so those calls are retried with backoff for ``propagation_seconds``;
- resources created or deleted asynchronously (Firehose streams, Lambda function updates) are
  polled for ``settle_seconds``;
- every list call pages to the end.

Waits use ``sleep`` and ``clock``, which tests replace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from framework import resources
from framework.errors import DeployError
from framework.plan.state import Entry, State
from framework.resources.base import Outputs, Refused
from framework.runtime.clients import Connection

Props = dict[str, Any]
T = TypeVar("T")


def refused(exc: ClientError) -> Refused:
    """An AWS error answer as the kinds' calls see it."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return Refused(code=str(error.get("Code", "")), message=str(error.get("Message", "")),
                   status=status, error=exc)


def role_not_ready(r: Refused) -> bool:
    """A role created moments ago that Lambda or Firehose cannot assume yet: Lambda's
    ``InvalidParameterValueException`` "The role defined for the function cannot be assumed by
    Lambda.", Firehose's ``InvalidArgumentException`` "... is not authorized to perform:
    sts:AssumeRole ..." or "Firehose is unable to assume role ...". """
    return (r.code in {"InvalidParameterValueException", "InvalidArgumentException"}
            and "assume" in r.message.lower())


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item of a list call, page after page (boto3's paginator for it)."""
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


PROPAGATION_S = 60.0  # how long AWS may take before a new role can be assumed
SETTLE_S = 600.0  # how long a function update or a Firehose create/delete may take
MAX_BACKOFF_S = 8.0


@dataclass
class Context:
    """What a kind's provider calls are given: clients, the project root, the shared retry and
    wait helpers, and where to say what a person must still do."""

    conn: Connection
    root: Path  # project root: relative artifact paths are read from here
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    propagation_seconds: float  # how long a new role may take to be assumable
    settle_seconds: float  # how long an asynchronous create, update or delete may take
    warnings: list[str]  # what a person must still do after this apply
    # Seconds one interval of a CodeDeploy deployment config counts: a minute on AWS and
    # LocalStack; the local AWS's CodeDeploy counts seconds (framework/local/codedeploy.py).
    interval_unit_s: int = 60

    def client(self, service: str) -> Any:
        return self.conn.client(service)

    @property
    def region(self) -> str:
        return str(self.conn.region)

    @property
    def off_aws(self) -> bool:
        """The control plane is the local AWS or LocalStack (an endpoint URL), not AWS."""
        return self.conn.endpoint_url is not None

    def pages(self, client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        return pages(client, operation, key, **kwargs)

    # -- errors --------------------------------------------------------------------------
    def attempt(self, call: Callable[[], T], *, codes: Collection[str] = (),
                missing: bool = False,
                when: Callable[[Refused], bool] | None = None) -> T | Refused:
        """``call()``, or the ``Refused`` error it met when that error has one of ``codes``,
        says the resource is ``missing`` (with missing=True), or satisfies ``when``; any other
        error is raised."""
        try:
            return call()
        except ClientError as exc:
            got = refused(exc)
            if got.code in codes or (missing and got.missing) or (when is not None
                                                                   and when(got)):
                return got
            raise

    def ignore_missing(self, call: Callable[[], object]) -> None:
        """``call()``; a resource already gone is what was wanted."""
        self.attempt(call, missing=True)

    # -- waiting -------------------------------------------------------------------------
    def retry(self, call: Callable[[], T], retryable: Callable[[Refused], bool],
              seconds: float, fail: Callable[[Refused, float], DeployError],
              between: Callable[[], object] | None = None) -> T:
        """``call()``, retried with exponential backoff (1 s, 2 s, ... 8 s) while it raises a
        ``retryable`` error, for ``seconds``; then ``fail(last error, seconds)`` is raised."""
        deadline = self.clock() + seconds
        delay = 1.0
        while True:
            try:
                return call()
            except ClientError as exc:
                got = refused(exc)
                if not retryable(got):
                    raise
                if self.clock() + delay > deadline:
                    raise fail(got, seconds) from exc
            self.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            if between is not None:
                between()

    def poll(self, what: str, done: Callable[[], bool], hint: str) -> None:
        """Ask ``done()`` every few seconds until it is true, for ``settle_seconds``."""
        deadline = self.clock() + self.settle_seconds
        delay = 1.0
        while not done():
            if self.clock() + delay > deadline:
                raise DeployError(f"gave up after {self.settle_seconds:g} s waiting for {what}",
                                  hint=hint)
            self.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def role_retry(self, call: Callable[[], T], who: str, role_arn: str,
                   between: Callable[[], object] | None = None) -> T:
        """A call that names a role created moments ago: retried until AWS has propagated it."""
        def fail(r: Refused, seconds: float) -> DeployError:
            return DeployError(
                f"{who} still cannot assume {role_arn} after {seconds:g} s: {r.message}",
                hint="check the role's trust policy names the service (infra/iam/*-trust.json) "
                     "and that it exists; IAM changes usually propagate within a minute, so "
                     "deploying again often finishes the job")
        return self.retry(call, role_not_ready, self.propagation_seconds, fail, between)


@dataclass
class AwsProvider:
    conn: Connection
    root: Path  # project root: relative artifact paths are read from here
    local: bool = False  # the control plane is the embedded local AWS
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

    def context(self) -> Context:
        """What the kinds' calls are given (settings as they are now)."""
        propagation = self.propagation_seconds
        if propagation is None:
            propagation = PROPAGATION_S if self.conn.endpoint_url is None else 5.0
        return Context(conn=self.conn, root=self.root, sleep=self.sleep, clock=self.clock,
                       propagation_seconds=propagation, settle_seconds=self.settle_seconds,
                       warnings=self.warnings, interval_unit_s=1 if self.local else 60)

    def warm(self, kinds: set[str]) -> None:
        """Create the clients these kinds use, up front (boto3 sessions are not thread-safe;
        clients are)."""
        for name in sorted(kinds):
            for service in resources.kind(name).services:
                self.client(service)

    # -- dispatch -----------------------------------------------------------------------
    def create(self, kind: str, props: Props) -> Outputs:
        k = resources.kind(kind)
        out: Outputs = k.create(self.context(), k.parse(props))
        return out

    def update(self, kind: str, props: Props, before: Entry) -> Outputs:
        k = resources.kind(kind)
        out: Outputs = k.update(self.context(), k.parse(props), k.view(before))
        return out

    def replace(self, kind: str, props: Props, before: Entry) -> Outputs:
        k = resources.kind(kind)
        if k.replace is None:
            self.delete(before)
            return self.create(kind, props)
        out: Outputs = k.replace(self.context(), k.parse(props), k.view(before))
        return out

    def delete(self, entry: Entry, *, destroying: bool = False) -> None:
        k = resources.kind(entry.kind)
        k.delete(self.context(), k.view(entry), destroying)

    def exists(self, entry: Entry) -> bool:
        k = resources.kind(entry.kind)
        try:
            return bool(k.exists(self.context(), k.view(entry)))
        except ClientError as exc:
            if refused(exc).missing:
                return False
            raise

    def observe(self, entry: Entry) -> Outputs | None:
        """What is live now of a resource that changes outside apply (an alias a CodeDeploy
        deployment moved, the deployment itself), as its kind reads it; None for the others."""
        k = resources.kind(entry.kind)
        if k.observe is None:
            return None
        out: Outputs | None = k.observe(self.context(), k.view(entry))
        return out

    def observed(self, state: State) -> dict[str, Outputs]:
        """``observe`` of every recorded resource whose kind reads what is live (the plan
        records what changed outside apply)."""
        out: dict[str, Outputs] = {}
        for rid, entry in state.resources.items():
            if resources.kind(entry.kind).observe is None:
                continue
            try:
                got = self.observe(entry)
            except ClientError as exc:
                if refused(exc).missing:
                    continue
                raise
            if got is not None:
                out[rid] = got
        return out
