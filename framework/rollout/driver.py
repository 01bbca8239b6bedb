"""Drive rollouts: shift the alias' weights step by step, judge the candidate, roll back.

Traffic is shifted with the Lambda alias' weighted routing (``FunctionVersion`` = stable,
``AdditionalVersionWeights`` = {candidate: share}); the local data plane honours the weights.
Every transition is written to the rollout record (compare-and-swap) and the audit log; a
rollback also sends an e-mail when the endpoint's monitors name recipients. A rollout whose
driver was killed is picked up where its record says by the next ``mlops deploy`` or
``mlops rollout`` command; traffic only ever points at published versions, which are never
deleted while the function exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from framework.compile import names
from framework.config.models import Rollout, parse_duration
from framework.rollout.record import (
    ABORTED,
    COMPLETED,
    ROLLED_BACK,
    RUNNING,
    RolloutRecord,
    RolloutStore,
)
from framework.rollout.strategy import Health, judge, schedule


class HealthSource(Protocol):
    def sample(self, record: RolloutRecord) -> dict[str, Any]:
        """Cumulative figures now: the baseline a step is judged against."""
        ...

    def health(self, record: RolloutRecord, since: float,
               baseline: dict[str, Any]) -> Health:
        """What the candidate did since ``since`` (epoch seconds) / ``baseline``."""
        ...


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


Notify = Callable[[RolloutRecord], None]
Audit = Callable[..., Any]


@dataclass
class Driver:
    lam: Any  # boto3 Lambda client
    store: RolloutStore
    health: HealthSource
    audit: Audit  # AuditLog.record
    actor: str
    clock: Clock
    notify: Notify | None = None
    on_event: Callable[[RolloutRecord, str], None] | None = None
    after_route: Callable[[], None] | None = None  # e.g. tell the local gateway to re-read

    # -- alias ------------------------------------------------------------------------
    def _route(self, record: RolloutRecord, step: dict[str, Any] | None) -> None:
        """Point the alias: at ``step``'s weights, or (None) wholly at the serving version."""
        if step is None or step["weight"] in (0, 100):
            version = record.candidate if (step and step["weight"] == 100) or (
                step is None and record.status == COMPLETED) else record.stable
            self.lam.update_alias(FunctionName=record.function, Name=record.alias,
                                  FunctionVersion=version,
                                  RoutingConfig={"AdditionalVersionWeights": {}})
        else:
            share = round(step["weight"] / 100.0, 4)
            self.lam.update_alias(FunctionName=record.function, Name=record.alias,
                                  FunctionVersion=record.stable,
                                  RoutingConfig={"AdditionalVersionWeights": {
                                      record.candidate: share}})
        self._mirror(record, bool(step and step.get("mirror")))
        if self.after_route is not None:
            self.after_route()

    def _mirror(self, record: RolloutRecord, on: bool) -> None:
        """Shadow steps: tag the function with the version that gets a copy of the traffic
        (the local data plane mirrors requests to it); any other step removes the tag."""
        arn = self.lam.get_function(FunctionName=record.function)["Configuration"]["FunctionArn"]
        if on:
            self.lam.tag_resource(Resource=arn, Tags={names.SHADOW_TAG: record.candidate})
        else:
            self.lam.untag_resource(Resource=arn, TagKeys=[names.SHADOW_TAG])

    def _save(self, record: RolloutRecord, etag: str | None, what: str) -> str:
        etag = self.store.put(record, etag)
        self.audit(actor=self.actor, command="rollout", stage=record.stage,
                   action=f"rollout {what}", resource=f"endpoint.{record.endpoint}",
                   kind="rollout", outcome="succeeded", reason=record.reason,
                   before={"version": record.stable}, after={
                       "version": record.serving, "candidate": record.candidate,
                       "weight": record.weight, "status": record.status})
        if self.on_event is not None:
            self.on_event(record, what)
        return etag

    # -- transitions ------------------------------------------------------------------
    def start(self, *, stage: str, endpoint: str, function: str, alias: str, stable: str,
              candidate: str, stable_model: str, candidate_model: str,
              rollout: Rollout) -> RolloutRecord:
        """Begin a rollout (superseding one still running for this endpoint)."""
        now = self.clock.now()
        existing = self.store.get(stage, endpoint)
        etag = None
        if existing is not None:
            old, etag = existing
            if old.status == RUNNING:
                old = replace(old, status=ABORTED, reason=f"superseded by version {candidate}")
                self._route(old, None)
                etag = self._save(old.event(now, "aborted", reason=old.reason), etag,
                                  "aborted")
                stable = old.stable  # the superseded candidate never became stable
                stable_model = old.stable_model
        steps = [{"weight": s.weight, "mirror": s.mirror, "bake": s.bake}
                 for s in schedule(rollout)]
        record = RolloutRecord(
            stage=stage, endpoint=endpoint, function=function, alias=alias, stable=stable,
            candidate=candidate, stable_model=stable_model, candidate_model=candidate_model,
            strategy=rollout.strategy.value, steps=steps, started_at=now, step_started_at=now,
            updated_at=now)
        self._route(record, record.current)
        record = replace(record, baseline=self.health.sample(record))
        record = record.event(now, "started", weight=record.weight)
        self._save(record, etag, "started")
        return record

    def tick(self, record: RolloutRecord, rollout: Rollout) -> RolloutRecord:
        """One look at a running rollout: advance, complete, roll back, or keep baking."""
        if record.status != RUNNING:
            return record
        stored = self.store.get(record.stage, record.endpoint)
        if stored is None:
            return record
        record, etag = stored
        if record.status != RUNNING:
            return record
        now = self.clock.now()
        step = record.current
        bake = parse_duration(rollout.every)
        elapsed = now - record.step_started_at
        health = self.health.health(record, record.step_started_at, record.baseline)
        verdict = judge(health, rollout.watch, shadow=bool(step.get("mirror")))
        if verdict.enough and not verdict.healthy:
            return self.rollback(record, etag, verdict.reason, health)
        if step["bake"] and elapsed < bake:
            return record
        if step["bake"] and not verdict.enough and elapsed < 2 * bake:
            return record  # wait for traffic, up to a second bake time
        if verdict.enough:
            note = verdict.reason
        elif step["bake"]:
            note = f"advanced on time: {verdict.reason}"
        else:
            note = f"{step['weight']}% step needs no bake"
        return self._advance(record, etag, note, health)

    def _advance(self, record: RolloutRecord, etag: str, note: str,
                 health: Health) -> RolloutRecord:
        now = self.clock.now()
        if record.step + 1 >= len(record.steps):
            done = replace(record, status=COMPLETED, reason=note)
            self._route(done, None)
            done = done.event(now, "completed", health=health.to_dict(), note=note)
            self._save(done, etag, "completed")
            return done
        nxt = replace(record, step=record.step + 1, step_started_at=now)
        self._route(nxt, nxt.current)
        nxt = replace(nxt, baseline=self.health.sample(nxt))
        nxt = nxt.event(now, "advanced", weight=nxt.weight, health=health.to_dict(), note=note)
        self._save(nxt, etag, "advanced")
        return nxt

    def rollback(self, record: RolloutRecord, etag: str, reason: str,
                 health: Health | None = None) -> RolloutRecord:
        now = self.clock.now()
        back = replace(record, status=ROLLED_BACK, reason=reason)
        self._route(back, None)
        back = back.event(now, "rolled_back", reason=reason,
                          health=health.to_dict() if health else None)
        self._save(back, etag, "rolled back")
        if self.notify is not None:
            self.notify(back)
        return back

    def promote(self, record: RolloutRecord) -> RolloutRecord:
        """Skip the remaining steps: all traffic to the candidate now."""
        stored = self.store.get(record.stage, record.endpoint)
        assert stored is not None
        record, etag = stored
        if record.status != RUNNING:
            return record
        return self._advance(replace(record, step=len(record.steps) - 1), etag,
                             "promoted by hand", Health())

    def abort(self, record: RolloutRecord, reason: str = "aborted by hand") -> RolloutRecord:
        stored = self.store.get(record.stage, record.endpoint)
        assert stored is not None
        record, etag = stored
        if record.status != RUNNING:
            return record
        return self.rollback(record, etag, reason)

    def run(self, record: RolloutRecord, rollout: Rollout, *, poll: float = 1.0,
            max_seconds: float | None = None) -> RolloutRecord:
        """Tick until the rollout ends (or ``max_seconds`` pass)."""
        started = self.clock.now()
        while record.status == RUNNING:
            record = self.tick(record, rollout)
            if record.status != RUNNING:
                break
            if max_seconds is not None and self.clock.now() - started >= max_seconds:
                break
            self.clock.sleep(min(poll, parse_duration(rollout.every)))
        return record

