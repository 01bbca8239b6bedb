"""EventBridge schedule expressions, parsed and validated here (moto accepts anything).

Two forms, with AWS's rules:

- ``rate(VALUE UNIT)``: VALUE a whole number >= 1; UNIT ``minute``/``hour``/``day`` when
  VALUE is 1 and ``minutes``/``hours``/``days`` otherwise.
- ``cron(MINUTES HOURS DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR)``: six fields with ``, - * /``,
  ``?`` in exactly one of the two day fields, ``L``/``W`` in day-of-month, ``L``/``#`` in
  day-of-week, month names JAN-DEC and day names SUN-SAT (1 is Sunday).

``Schedule.next_fire(after)`` gives the next firing time in UTC, strictly after ``after``.
All times are UTC, as for EventBridge rules.
"""

from __future__ import annotations

import calendar
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_MIN, YEAR_MAX = 1970, 2199

_UNITS: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}  # JAN=1 .. DEC=12
_DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_CRON_EXAMPLE = "e.g. cron(0 12 * * ? *) for every day at 12:00 UTC"
_FIELDS = "minutes hours day-of-month month day-of-week year"


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime; naive datetimes are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class Schedule(ABC):
    """A parsed schedule expression."""

    expression: str

    @abstractmethod
    def next_fire(self, after: datetime, *, start: datetime | None = None) -> datetime:
        """The first firing time strictly after ``after`` (UTC, aware)."""

    def __str__(self) -> str:
        return self.expression


@dataclass(frozen=True)
class RateSchedule(Schedule):
    """``rate(VALUE UNIT)``: fires every ``interval``."""

    expression: str
    value: int
    unit: Literal["minute", "hour", "day"]

    @property
    def interval(self) -> timedelta:
        return self.value * _UNITS[self.unit]

    def next_fire(self, after: datetime, *, start: datetime | None = None) -> datetime:
        """Fires at ``start + k * interval`` for k >= 1; ``start`` defaults to the Unix epoch,
        which aligns ``rate(1 day)`` to midnight UTC and ``rate(1 hour)`` to the hour."""
        after = _utc(after)
        anchor = _utc(start) if start is not None else EPOCH
        interval = self.interval
        if after < anchor + interval:
            return anchor + interval
        k = (after - anchor) // interval + 1
        return anchor + k * interval


@dataclass(frozen=True)
class DayRule:
    """How a day field selects days.

    kind is one of: ``any`` (``?``), ``set`` (explicit days), ``last`` (``L``),
    ``last_weekday`` (``LW``), ``nearest_weekday`` (``nW``, n in ``n``), ``last_of`` (``dL``:
    the last day-of-week d of the month) and ``nth`` (``d#n``: the n-th day-of-week d).
    Days of week use AWS numbering: 1 is Sunday, 7 is Saturday.
    """

    kind: Literal["any", "set", "last", "last_weekday", "nearest_weekday", "last_of", "nth"]
    values: frozenset[int] = frozenset()
    n: int = 0


@dataclass(frozen=True)
class CronSchedule(Schedule):
    """``cron(...)``: the six fields, expanded to the values they select."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    day_of_month: DayRule
    months: frozenset[int]
    day_of_week: DayRule
    years: frozenset[int]

    def matches_day(self, day: date) -> bool:
        """Whether the day fields select ``day`` (month and year are checked separately)."""
        return _dom_matches(self.day_of_month, day) and _dow_matches(self.day_of_week, day)

    def next_fire(self, after: datetime, *, start: datetime | None = None) -> datetime:
        """The next minute after ``after`` that every field selects; ``start`` is unused."""
        t = _utc(after).replace(second=0, microsecond=0) + timedelta(minutes=1)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        while t.year <= YEAR_MAX:
            if t.year not in self.years:
                later = [y for y in self.years if y > t.year]
                if not later:
                    break
                t = datetime(min(later), 1, 1, tzinfo=UTC)
                continue
            if t.month not in self.months:
                t = _first_of_next_month(t)
                continue
            if not self.matches_day(t.date()):
                t = _next_day(t)
                continue
            hour = next((h for h in hours if h >= t.hour), None)
            if hour is None:
                t = _next_day(t)
                continue
            if hour > t.hour:
                t = t.replace(hour=hour, minute=0)
            minute = next((m for m in minutes if m >= t.minute), None)
            if minute is None:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            return t.replace(minute=minute)
        raise ValueError(
            f"'{self.expression}' never fires after {after.isoformat()}; "
            "check the day, month and year fields"
        )


def _next_day(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)


def _first_of_next_month(t: datetime) -> datetime:
    if t.month == 12:
        return datetime(t.year + 1, 1, 1, tzinfo=UTC)
    return datetime(t.year, t.month + 1, 1, tzinfo=UTC)


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _aws_dow(day: date) -> int:
    """AWS day-of-week number: 1 is Sunday ... 7 is Saturday."""
    return (day.weekday() + 1) % 7 + 1


def _dom_matches(rule: DayRule, day: date) -> bool:
    last = _last_day(day)
    if rule.kind == "any":
        return True
    if rule.kind == "set":
        return day.day in rule.values
    if rule.kind == "last":
        return day.day == last
    if rule.kind == "last_weekday":
        target = last
        weekday = date(day.year, day.month, last).weekday()
        if weekday == 5:  # Saturday -> Friday
            target -= 1
        elif weekday == 6:  # Sunday -> Friday
            target -= 2
        return day.day == target
    if rule.kind == "nearest_weekday":
        if rule.n > last:
            return False
        target = rule.n
        weekday = date(day.year, day.month, rule.n).weekday()
        if weekday == 5:  # Saturday: the Friday before, or Monday the 3rd for the 1st
            target = rule.n + 2 if rule.n == 1 else rule.n - 1
        elif weekday == 6:  # Sunday: the Monday after, or Friday before at month end
            target = rule.n - 2 if rule.n == last else rule.n + 1
        return day.day == target
    raise AssertionError(f"unknown day-of-month rule {rule.kind}")


def _dow_matches(rule: DayRule, day: date) -> bool:
    dow = _aws_dow(day)
    if rule.kind == "any":
        return True
    if rule.kind == "set":
        return dow in rule.values
    if rule.kind == "last_of":
        return dow in rule.values and day.day + 7 > _last_day(day)
    if rule.kind == "nth":
        return dow in rule.values and (day.day - 1) // 7 + 1 == rule.n
    raise AssertionError(f"unknown day-of-week rule {rule.kind}")


# ---------------------------------------------------------------------------- parsing


class _FieldError(Exception):
    """A problem in one cron field: what, and a hint."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


@dataclass(frozen=True)
class _Spec:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None
    hint: str = ""


_MINUTES = _Spec("minutes", 0, 59, hint="minutes are 0-59")
_HOURS = _Spec("hours", 0, 23, hint="hours are 0-23, in UTC")
_DOM = _Spec("day-of-month", 1, 31, hint="days of the month are 1-31, L, LW or nW")
_MONTH = _Spec("month", 1, 12, _MONTHS, hint="months are 1-12 or JAN-DEC")
_DOW = _Spec("day-of-week", 1, 7, _DAYS, hint="days of the week are 1-7 or SUN-SAT (1 is Sunday)")
_YEAR = _Spec("year", YEAR_MIN, YEAR_MAX, hint=f"years are {YEAR_MIN}-{YEAR_MAX}")


def _value(token: str, spec: _Spec) -> int:
    if token.isdigit():
        number = int(token)
    elif spec.names is not None and token.upper() in spec.names:
        return spec.names[token.upper()]
    else:
        raise _FieldError(f"{spec.name} has '{token}', which is not a value", spec.hint)
    if not spec.lo <= number <= spec.hi:
        raise _FieldError(f"{spec.name} value {number} is outside {spec.lo}-{spec.hi}", spec.hint)
    return number


def _values(text: str, spec: _Spec) -> frozenset[int]:
    """Expand a field made of ``*``, values, ranges, steps and lists."""
    selected: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _FieldError(f"{spec.name} '{text}' has an empty list item", "write a,b,c")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise _FieldError(
                    f"{spec.name} step '{step_text}' in '{item}' is not a positive number",
                    "write START/STEP, e.g. 0/15 or */15",
                )
            step = int(step_text)
        if base == "*":
            lo, hi = spec.lo, spec.hi
        elif "-" in base:
            first, _, last = base.partition("-")
            lo, hi = _value(first, spec), _value(last, spec)
            if lo > hi:
                raise _FieldError(
                    f"{spec.name} range '{base}' runs backwards",
                    "write the smaller value first, or use a list",
                )
        else:
            lo = _value(base, spec)
            hi = spec.hi if slash else lo
        selected.update(range(lo, hi + 1, step))
    return frozenset(selected)


def _day_of_month(text: str) -> DayRule:
    if text == "?":
        return DayRule("any")
    if text == "L":
        return DayRule("last")
    if text == "LW":
        return DayRule("last_weekday")
    if text.endswith("W") and text[:-1].isdigit():
        return DayRule("nearest_weekday", n=_value(text[:-1], _DOM))
    if "L" in text or "W" in text or "#" in text:
        raise _FieldError(
            f"day-of-month '{text}' misuses L/W",
            "use L (last day), LW (last weekday) or nW (weekday nearest day n), alone",
        )
    return DayRule("set", _values(text, _DOM))


def _day_of_week(text: str) -> DayRule:
    if text == "?":
        return DayRule("any")
    if text == "L":
        return DayRule("set", frozenset({7}))
    if "#" in text:
        day, _, nth = text.partition("#")
        if "," in text or "-" in day or not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise _FieldError(
                f"day-of-week '{text}' is not DAY#N",
                "write e.g. MON#1 (first Monday) or 6#3 (third Friday); N is 1-5",
            )
        return DayRule("nth", frozenset({_value(day, _DOW)}), n=int(nth))
    if text.endswith("L") and len(text) > 1:
        day = text[:-1]
        if "," in day or "-" in day or "/" in day:
            raise _FieldError(
                f"day-of-week '{text}' is not DAYL",
                "write e.g. 6L (last Friday of the month), alone",
            )
        return DayRule("last_of", frozenset({_value(day, _DOW)}))
    return DayRule("set", _values(text, _DOW))


def _parse_rate(expr: str, body: str) -> RateSchedule:
    hint = "write rate(VALUE UNIT), e.g. rate(5 minutes), rate(1 hour) or rate(2 days)"
    parts = body.split(" ")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"'{expr}' is not a valid rate expression; {hint}")
    value_text, unit = parts
    if not value_text.isdigit() or int(value_text) < 1:
        raise ValueError(
            f"'{expr}' has rate value '{value_text}', which is not a whole number of 1 or more; "
            "e.g. rate(90 minutes) instead of rate(1.5 hours)"
        )
    value = int(value_text)
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in _UNITS:
        raise ValueError(
            f"'{expr}' has unit '{unit}', which is not a rate unit; "
            "use minute(s), hour(s) or day(s), e.g. rate(7 days)"
        )
    if value == 1 and unit != singular:
        raise ValueError(
            f"'{expr}' uses the plural '{unit}' with the value 1; write rate(1 {singular})"
        )
    if value != 1 and unit == singular:
        raise ValueError(
            f"'{expr}' uses the singular '{unit}' with the value {value}; "
            f"write rate({value} {singular}s)"
        )
    unit_name: Literal["minute", "hour", "day"]
    if singular == "minute":
        unit_name = "minute"
    elif singular == "hour":
        unit_name = "hour"
    else:
        unit_name = "day"
    return RateSchedule(expression=expr, value=value, unit=unit_name)


def _parse_cron(expr: str, body: str) -> CronSchedule:
    fields = body.split()
    if len(fields) != 6:
        raise ValueError(
            f"'{expr}' has {len(fields)} field{'s' if len(fields) != 1 else ''}, cron needs 6; "
            f"write cron({_FIELDS}), {_CRON_EXAMPLE}"
        )
    minute, hour, dom, month, dow, year = fields
    if dom != "?" and dow != "?":
        raise ValueError(
            f"'{expr}' sets both day-of-month and day-of-week; put '?' in one of them, "
            "e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *)"
        )
    if dom == "?" and dow == "?":
        raise ValueError(
            f"'{expr}' has '?' in both day-of-month and day-of-week; "
            "put '*' or a value in one of them, e.g. cron(0 12 * * ? *)"
        )
    try:
        for name, text in (("minutes", minute), ("hours", hour), ("month", month), ("year", year)):
            if "?" in text:
                raise _FieldError(
                    f"{name} has '?'", "'?' is only allowed in day-of-month and day-of-week"
                )
        return CronSchedule(
            expression=expr,
            minutes=_values(minute, _MINUTES),
            hours=_values(hour, _HOURS),
            day_of_month=_day_of_month(dom),
            months=_values(month, _MONTH),
            day_of_week=_day_of_week(dow),
            years=_values(year, _YEAR),
        )
    except _FieldError as err:
        raise ValueError(
            f"'{expr}' is not a valid cron expression: {err.what}; {err.hint}"
        ) from None


def parse_schedule(expr: str) -> Schedule:
    """Parse an EventBridge schedule expression; ``ValueError("<what>; <hint>")`` if invalid."""
    if not isinstance(expr, str):
        raise ValueError(f"{expr!r} is not a schedule expression; write rate(1 day) or cron(...)")
    m = re.fullmatch(r"(rate|cron)\((.*)\)", expr, flags=re.DOTALL)
    if m is None:
        raise ValueError(
            f"'{expr}' is not a schedule expression; write rate(1 day), rate(5 minutes) "
            f"or cron({_FIELDS}), {_CRON_EXAMPLE}"
        )
    kind, body = m.group(1), m.group(2)
    if kind == "rate":
        return _parse_rate(expr, body)
    return _parse_cron(expr, body)
