"""The local EventBridge: fires schedule rules, and routes events to the rules they match, on
the local data plane.

moto stores rules but never fires them. The scheduler reads them back from the control plane
(``events.list_rules`` + ``list_targets_by_rule``, every ``RELOAD_S`` seconds and on the
gateway's ``POST /_mlops/refresh``), parses their ``rate()``/``cron()`` expressions with
``framework.config.schedule`` and, when one is due, invokes its Lambda targets through the
runner, as EventBridge would:

- **timing**: a ``rate()`` rule fires at ``anchor + k * interval``, the anchor being the moment
  the scheduler first saw the rule (EventBridge counts from the rule's creation; changing the
  expression re-anchors); a ``cron()`` rule fires on the minutes it selects (UTC);
- **what the target gets**: its ``Input`` (constant JSON) if set, else the ``InputPath``
  selection of the event, else its ``InputTransformer`` template filled from the event, else
  the scheduled event itself: ``{"version": "0", "id", "detail-type": "Scheduled Event",
  "source": "aws.events", "account", "time", "region", "resources": [rule ARN], "detail": {}}``
  (``time`` is the scheduled time);
- **disabled rules** never fire, and do not catch up when enabled again;
- **missed fires** (daemon down, clock moved forward) are coalesced into one fire, for the
  latest due time;
- **state**: ``home/scheduler.json`` keeps, per rule ARN, the anchor, the cursor (the latest
  due time already handled) and the last fire with its outcome. It is written atomically
  *before* the targets are invoked, so a restart never fires the same time twice (at most
  once, where EventBridge is at least once). Every fire is also logged.

**Events** (``route``): a service of the local AWS puts an event on the default bus (the
local CodeDeploy its ``CodeDeploy Deployment State-change Notification``s); every enabled rule
of the event's account and region whose ``EventPattern`` matches it has its targets invoked,
asynchronously, as above (the target's input, then Lambda's retries and on-failure
destination). Patterns are matched by moto's own EventBridge matcher (``matches``: exact
values, arrays of them, nested objects, ``prefix``, ``suffix``, ``anything-but``, ``numeric``,
``exists``, ``$or``), the one its ``PutEvents`` uses: one copy of that logic. Rules are
those last read (a deploy's ``POST /_mlops/refresh`` reads them again).

The clock is injectable: ``Clock`` is real time plus an offset that only moves forward. Tests
(and curious users) move it with ``POST /_mlops/clock`` on the gateway (see ``admin.py``)
instead of waiting a day; unit tests call ``Scheduler.tick(now)`` directly. The offset lives
in memory only: a restarted daemon runs on real time again (and fires nothing it already
handled, since cursors only move forward).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from framework.config.schedule import RateSchedule, Schedule, parse_schedule
from framework.runtime.clients import Connection

from .files import SCHEDULER_FILE

log = logging.getLogger(__name__)

RELOAD_S = 10.0  # re-read rules at least this often
TICK_S = 1.0  # check for due rules this often (real time)
FIRE_WORKERS = 4
_LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[^:]+(:[^:]+)?$")
# How far back to probe for the latest due time of a cron rule, smallest window first.
_PROBES = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=32),
           timedelta(days=367))


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class Clock:
    """Real time plus an offset that tests move forward; never goes back."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._real = now or (lambda: datetime.now(UTC))
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._real() + self._offset

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
            return self._real() + self._offset

    def set(self, when: datetime) -> datetime:
        """Move to ``when`` (aware, or naive UTC); refuses to go back."""
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        with self._lock:
            current = self._real() + self._offset
            if when < current:
                raise ValueError(f"{iso(when)} is before the clock's {iso(current)}; "
                                 "the clock only moves forward")
            self._offset += when - current
            return when


@dataclass(frozen=True)
class Target:
    """One target of a rule (the parts the scheduler uses)."""

    id: str
    arn: str
    input: str | None = None
    input_path: str | None = None
    input_transformer: dict[str, Any] | None = None


@dataclass(frozen=True)
class Rule:
    arn: str
    name: str
    region: str
    account: str
    expression: str  # rate() or cron(); "" for a rule of events
    enabled: bool
    targets: tuple[Target, ...] = ()
    pattern: dict[str, Any] | None = None  # its EventPattern, for a rule of events


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether ``event`` matches the EventBridge ``pattern`` (moto's matcher)."""
    from moto.events.models import EventPattern

    return bool(EventPattern(None, pattern).matches_event(event))  # type: ignore[arg-type]


@dataclass
class Fire:
    """One target invocation the scheduler made (or is making)."""

    rule: Rule
    target: Target
    scheduled: datetime
    payload: Any
    future: Future[dict[str, Any]] | None = field(default=None, repr=False)

    def outcome(self, timeout: float | None = None) -> dict[str, Any]:
        result = self.future.result(timeout) if self.future is not None else {}
        return {"rule": self.rule.name, "rule_arn": self.rule.arn, "target": self.target.id,
                "function": self.target.arn, "scheduled": iso(self.scheduled), **result}


# -- due times --------------------------------------------------------------------------------
def latest_due(schedule: Schedule, after: datetime, now: datetime,
               start: datetime | None = None) -> datetime | None:
    """The latest firing time in ``(after, now]``, or None. Missed fires coalesce into it."""
    try:
        first = schedule.next_fire(after, start=start)
    except ValueError:  # a cron that never fires again
        return None
    if first > now:
        return None
    if isinstance(schedule, RateSchedule):
        anchor = start if start is not None else first - schedule.interval
        k = (now - anchor) // schedule.interval
        return anchor + k * schedule.interval
    found = first
    for back in _PROBES:  # jump close to ``now`` instead of walking every missed minute
        lo = now - back
        if lo <= after:
            break
        probe = schedule.next_fire(lo, start=start)
        if probe <= now:
            found = probe
            break
    while True:
        try:
            following = schedule.next_fire(found, start=start)
        except ValueError:
            return found
        if following > now:
            return found
        found = following


def next_due(schedule: Schedule, after: datetime, start: datetime | None) -> datetime | None:
    try:
        return schedule.next_fire(after, start=start)
    except ValueError:
        return None


# -- what a target receives -------------------------------------------------------------------
def scheduled_event(rule: Rule, when: datetime) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": rule.account, "time": iso(when),
            "region": rule.region, "resources": [rule.arn], "detail": {}}


def json_path(document: Any, path: str) -> Any:
    """The simple JSONPath EventBridge accepts in InputPath: ``$`` or ``$.a.b``/``$['a']``."""
    if path.strip() == "$":
        return document
    value = document
    for part in re.findall(r"\.([^.\[]+)|\['([^']+)'\]", path.strip()[1:]):
        key = part[0] or part[1]
        value = value.get(key) if isinstance(value, dict) else None
    return value


def transform(template: str, paths: dict[str, str], event: dict[str, Any],
              rule: Rule) -> Any:
    """An InputTransformer: ``<name>`` placeholders filled from the event (strings inside
    quotes are inserted raw, anything else as JSON), plus EventBridge's predefined names."""
    values: dict[str, Any] = {k: json_path(event, p) for k, p in paths.items()}
    values.update({"aws.events.rule-arn": rule.arn, "aws.events.rule-name": rule.name,
                   "aws.events.event.ingestion-time": event["time"],
                   "aws.events.event": event,
                   "aws.events.event.json": event})
    text = template
    for name, value in values.items():
        raw = value if isinstance(value, str) else json.dumps(value)
        text = text.replace(f'"<{name}>"', json.dumps(raw))
        text = text.replace(f"<{name}>", json.dumps(value) if not isinstance(value, str)
                            else raw)
    try:
        return json.loads(text)
    except ValueError:
        return text  # a plain-text template is delivered as a string


def target_payload(target: Target, event: dict[str, Any], rule: Rule) -> Any:
    if target.input is not None:
        return json.loads(target.input)
    if target.input_path:
        return json_path(event, target.input_path)
    if target.input_transformer:
        return transform(str(target.input_transformer.get("InputTemplate", "")),
                         dict(target.input_transformer.get("InputPathsMap") or {}), event, rule)
    return event


# -- reading rules ----------------------------------------------------------------------------
def _pages(call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        resp = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from resp.get(key, [])
        token = resp.get("NextToken")
        if not token:
            return


def load_rules(control_url: str, regions: list[str]) -> list[Rule]:
    """Every rule of the default event bus (on a schedule, or an event pattern) of the given
    regions, with its targets."""
    rules: list[Rule] = []
    for region in regions:
        conn = Connection(region, control_url, dummy_credentials=True, max_attempts=1)
        events = conn.client("events")
        for r in _pages(events.list_rules, "Rules"):
            if not r.get("ScheduleExpression") and not r.get("EventPattern"):
                continue
            targets = tuple(
                Target(id=str(t["Id"]), arn=str(t["Arn"]), input=t.get("Input"),
                       input_path=t.get("InputPath"),
                       input_transformer=t.get("InputTransformer"))
                for t in _pages(events.list_targets_by_rule, "Targets", Rule=r["Name"]))
            arn = str(r["Arn"])
            pattern = r.get("EventPattern")
            rules.append(Rule(arn=arn, name=str(r["Name"]), region=region,
                              account=arn.split(":")[4],
                              expression=str(r.get("ScheduleExpression") or ""),
                              enabled=r.get("State", "ENABLED") == "ENABLED", targets=targets,
                              pattern=json.loads(pattern) if pattern else None))
    return rules


# -- the scheduler ----------------------------------------------------------------------------
Invoke = Callable[[str, Any], dict[str, Any]]  # (target ARN, payload) -> outcome


class Scheduler:
    """Decides what is due (``tick``) and fires it; ``start`` runs it on a thread.
    ``before_fire`` runs before a schedule's targets are invoked (the daemon ships what
    functions logged, so a scheduled monitor sees every request captured so far); events
    routed to pattern rules go at once, as EventBridge delivers them."""

    def __init__(self, home: Path, rules: Callable[[], list[Rule]], invoke: Invoke,
                 clock: Clock | None = None, *, before_fire: Callable[[], Any] | None = None,
                 workers: int = FIRE_WORKERS) -> None:
        self.path = home / SCHEDULER_FILE
        self._load_rules = rules
        self._invoke = invoke
        self.clock = clock or Clock()
        self.before_fire = before_fire
        self.rules: list[Rule] = []
        self._loaded = False
        self._state: dict[str, dict[str, Any]] = self._read()
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="scheduler-fire")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()

    # -- state file --
    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
            rules: dict[str, dict[str, Any]] = data.get("rules", {})
            return rules
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("scheduler: %s is unreadable; starting afresh", self.path)
            return {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps({"rules": self._state}, indent=2, sort_keys=True))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def state(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._state))  # type: ignore[no-any-return]

    # -- rules --
    def reload(self, now: datetime | None = None) -> list[Rule]:
        """Re-read the rules from the control plane; anchor the new ones at ``now``."""
        rules = self._load_rules()
        with self._lock:
            self.rules, self._loaded = rules, True
            if self._sync(now or self.clock.now()):
                self._save()
        return rules

    def _sync(self, now: datetime) -> bool:
        changed = False
        for rule in self.rules:
            entry = self._state.get(rule.arn)
            if not rule.expression or (entry is not None
                                       and entry.get("expression") == rule.expression):
                continue  # a rule of events has no schedule
            try:
                parse_schedule(rule.expression)
            except ValueError as e:
                if rule.arn not in self._warned:
                    self._warned.add(rule.arn)
                    log.warning("scheduler: rule %s is never fired: %s", rule.name, e)
                continue
            if entry is not None:
                log.info("scheduler: rule %s is now %s (was %s); re-anchored", rule.name,
                         rule.expression, entry.get("expression"))
            self._state[rule.arn] = {"name": rule.name, "expression": rule.expression,
                                     "anchor": iso(now), "cursor": iso(now),
                                     **({"last_fire": entry["last_fire"]}
                                        if entry and "last_fire" in entry else {})}
            changed = True
        return changed

    def schedules(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Each rule with its state and next due time (``GET /_mlops/schedules``)."""
        now = now or self.clock.now()
        out = []
        with self._lock:
            for rule in self.rules:
                entry = dict(self._state.get(rule.arn, {}))
                nxt = None
                if entry.get("expression") == rule.expression and rule.enabled:
                    schedule = parse_schedule(rule.expression)
                    anchor = parse_iso(entry["anchor"])
                    due = next_due(schedule, parse_iso(entry["cursor"]),
                                   anchor if isinstance(schedule, RateSchedule) else None)
                    nxt = iso(due) if due else None
                out.append({"rule": rule.name, "arn": rule.arn, "expression": rule.expression,
                            "enabled": rule.enabled, "targets": [t.arn for t in rule.targets],
                            "next_fire": nxt, **({"event_pattern": rule.pattern}
                                                 if rule.pattern is not None else {}),
                            **entry})
        return out

    # -- firing --
    def tick(self, now: datetime | None = None) -> list[Fire]:
        """Fire every rule that is due at ``now`` (the clock's time by default)."""
        now = now or self.clock.now()
        with self._lock:
            if not self._loaded:
                self.reload(now)
            due: list[tuple[Rule, datetime]] = []
            changed = False
            for rule in self.rules:
                entry = self._state.get(rule.arn)
                if entry is None or entry.get("expression") != rule.expression:
                    continue  # an expression the scheduler cannot parse: never fired
                schedule = parse_schedule(rule.expression)
                anchor = parse_iso(entry["anchor"])
                when = latest_due(schedule, parse_iso(entry["cursor"]), now,
                                  anchor if isinstance(schedule, RateSchedule) else None)
                if when is None:
                    continue
                entry["cursor"] = iso(when)
                changed = True
                if not rule.enabled:
                    log.info("scheduler: rule %s is disabled; %s skipped", rule.name, iso(when))
                    continue
                entry["last_fire"] = {"scheduled": iso(when), "fired_at": iso(now),
                                      "targets": [t.id for t in rule.targets]}
                due.append((rule, when))
            if changed:
                self._save()  # before invoking: a restart never fires this time again
        fires: list[Fire] = []
        for rule, when in due:
            event = scheduled_event(rule, when)
            if not rule.targets:
                log.info("scheduler: rule %s fired for %s (no targets)", rule.name, iso(when))
            for target in rule.targets:
                fire = Fire(rule, target, when, target_payload(target, event, rule))
                log.info("scheduler: rule %s fired for %s -> %s", rule.name, iso(when),
                         target.arn)
                fire.future = self._pool.submit(self._deliver, fire)
                fires.append(fire)
        return fires

    def route(self, event: dict[str, Any]) -> list[Fire]:
        """Deliver ``event`` (put on the default bus of its account and region) to the
        targets of every enabled rule whose pattern it matches, each invoked asynchronously."""
        with self._lock:
            if not self._loaded:
                self.reload()
            rules = [r for r in self.rules if r.pattern is not None and r.enabled
                     and (r.region, r.account) == (event.get("region"), event.get("account"))
                     and matches(r.pattern, event)]
        when = parse_iso(str(event["time"]))
        fires: list[Fire] = []
        for rule in rules:
            for target in rule.targets:
                fire = Fire(rule, target, when, target_payload(target, event, rule))
                log.info("events: %s %s matched rule %s -> %s", event.get("detail-type"),
                         event.get("id"), rule.name, target.arn)
                fire.future = self._pool.submit(self._deliver, fire)
                fires.append(fire)
        return fires

    def _deliver(self, fire: Fire) -> dict[str, Any]:
        if not _LAMBDA_ARN.match(fire.target.arn):
            outcome: dict[str, Any] = {"ok": False,
                                       "error": "only Lambda targets run on the local AWS"}
        else:
            if self.before_fire is not None and fire.rule.pattern is None:  # a schedule's
                try:
                    self.before_fire()
                except Exception:
                    log.exception("scheduler: before-fire hook failed")
            try:
                outcome = self._invoke(fire.target.arn, fire.payload)
            except Exception as e:
                outcome = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        level = logging.INFO if outcome.get("ok") else logging.WARNING
        log.log(level, "scheduler: rule %s (%s) -> %s: %s", fire.rule.name, iso(fire.scheduled),
                fire.target.arn, "ok" if outcome.get("ok") else outcome.get("error"))
        with self._lock:
            entry = self._state.get(fire.rule.arn)
            last = entry.get("last_fire") if entry else None
            if last and last.get("scheduled") == iso(fire.scheduled):
                last.setdefault("outcomes", {})[fire.target.id] = {
                    k: v for k, v in outcome.items() if k != "payload"}
                self._save()
        return outcome

    # -- background thread --
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_reload = -1e18
        while not self._stop.is_set():
            real = datetime.now(UTC).timestamp()
            try:
                if not self._loaded or real - last_reload >= RELOAD_S:
                    self.reload()
                    last_reload = real
                self.tick()
            except Exception:
                log.exception("scheduler: tick failed")
            self._wake.wait(TICK_S)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
