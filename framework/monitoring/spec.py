"""What a monitor run needs to know, as plain JSON (the Lambda has no pydantic).

Compile writes it into the monitor function's ``MLOPS_MONITOR`` environment variable;
``mlops monitor run`` builds the same dict from mlops.yaml.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "minute": 60, "minutes": 60, "hour": 3600,
         "hours": 3600, "day": 86400, "days": 86400}


def window_seconds(window: str | None, schedule: str) -> int:
    """The window length: explicit (``24h``), else the rate() period, else one day."""
    if window:
        text = window.strip()
        return int(float(text[:-1]) * _UNIT[text[-1]])
    m = _RATE.match(schedule.strip())
    return int(m.group(1)) * _UNIT[m.group(2)] if m else 86400


# ``notify.when``: the statuses of a run that are mailed (``always``: every run, OK included).
NOTIFY_WHEN = ("drift", "no_data", "degraded", "failure", "always")
DEFAULT_WHEN = ("drift", "degraded", "failure")  # every run that needs someone to act


def notify_when(value: object) -> tuple[str, ...]:
    """``notify.when`` -- one value or a list of ``NOTIFY_WHEN`` -- as a tuple; absent
    (``None``) is ``DEFAULT_WHEN``. Raises ``ValueError`` ("what; hint") naming the values."""
    if value is None:
        return DEFAULT_WHEN
    items = [value] if isinstance(value, str) else value
    allowed = ", ".join(NOTIFY_WHEN)
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"notify.when must be one of {allowed} or a list of them; "
                         "write e.g. when: drift or when: [drift, failure]")
    wrong = [v for v in items if not isinstance(v, str) or v not in NOTIFY_WHEN]
    if wrong:
        shown = ", ".join(repr(v) for v in wrong)
        close = [m for v in wrong if isinstance(v, str)
                 for m in difflib.get_close_matches(v, NOTIFY_WHEN, n=1, cutoff=0.6)]
        guess = f" (did you mean {', '.join(repr(m) for m in close)}?)" if close else ""
        raise ValueError(f"{shown} {'is' if len(wrong) == 1 else 'are'} not a notify.when "
                         f"value; use {allowed}, or a list of them{guess}")
    return tuple(dict.fromkeys(str(v) for v in items))


def mails(when: tuple[str, ...], on_drift: tuple[str, ...], status: str) -> bool:
    """Whether a run of ``status`` is mailed: ``always`` every run; else a status ``when``
    lists, drift only if ``on_drift`` has ``notify``."""
    if "always" in when:
        return True
    return status in when and (status != "drift" or "notify" in on_drift)


FAN_OUT = {"objects": 200, "workers": 8, "partials": 1000}  # as FanOut in the config

@dataclass(frozen=True)
class MonitorSpec:
    name: str
    project: str
    stage: str
    endpoint: str
    model: str
    version: str
    bucket: str
    window_seconds: int = 86400
    drift: dict[str, Any] = field(default_factory=dict)
    performance: dict[str, Any] | None = None
    alarms: dict[str, str] = field(default_factory=dict)
    charts: dict[str, Any] = field(default_factory=dict)
    notify: dict[str, Any] = field(default_factory=dict)
    on_drift: tuple[str, ...] = ("notify",)
    endpoint_function: str | None = None
    alias: str = "live"
    task: str = "classification"
    redacted: tuple[str, ...] = ()  # inputs the endpoint's captures leave out
    fan_out: dict[str, int] = field(default_factory=lambda: dict(FAN_OUT))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorSpec:
        return cls(
            name=data["name"], project=data["project"], stage=data.get("stage", "dev"),
            endpoint=data["endpoint"], model=data["model"], version=data["version"],
            bucket=data["bucket"], window_seconds=int(data.get("window_seconds", 86400)),
            drift=dict(data.get("drift") or {}), performance=data.get("performance"),
            alarms=dict(data.get("alarms") or {}), charts=dict(data.get("charts") or {}),
            notify={**(data.get("notify") or {}),
                    "when": notify_when((data.get("notify") or {}).get("when"))},
            on_drift=tuple(data.get("on_drift", ("notify",))),
            endpoint_function=data.get("endpoint_function"), alias=data.get("alias", "live"),
            task=data.get("task", "classification"),
            redacted=tuple(data.get("redacted") or ()),
            fan_out={**FAN_OUT, **(data.get("fan_out") or {})},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "project": self.project, "stage": self.stage,
            "endpoint": self.endpoint, "model": self.model, "version": self.version,
            "bucket": self.bucket, "window_seconds": self.window_seconds, "drift": self.drift,
            "performance": self.performance, "alarms": self.alarms, "charts": self.charts,
            "notify": self.notify, "on_drift": list(self.on_drift),
            "endpoint_function": self.endpoint_function, "alias": self.alias, "task": self.task,
            **({"redacted": list(self.redacted)} if self.redacted else {}),
            "fan_out": dict(self.fan_out),
        }


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str) -> Window:
        """``START..END`` (ISO dates or times, UTC)."""
        a, sep, b = text.partition("..")
        if not sep:
            raise ValueError(f"'{text}' is not a window (START..END)")
        try:
            start, end = parse_time(a), parse_time(b)
        except (ValueError, OverflowError) as e:
            raise ValueError(f"'{text}' is not a window: {e}") from None
        if end <= start:
            raise ValueError(f"'{text}' is not a window: its end is not after its start")
        return cls(start, end)

    @classmethod
    def ending(cls, end: datetime, seconds: int) -> Window:
        return cls(end - timedelta(seconds=seconds), end)

    def days(self, extra: int = 0) -> list[date]:
        first, last = self.start.date(), (self.end + timedelta(days=extra)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def to_dict(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
