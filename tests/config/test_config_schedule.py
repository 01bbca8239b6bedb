"""Schedule expressions: AWS's rate/cron rules, and next_fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from framework.config import parse_schedule
from framework.config.schedule import CronSchedule, RateSchedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "interval"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(12 hours)", timedelta(hours=12)),
        ("rate(1 day)", timedelta(days=1)),
        ("rate(2 days)", timedelta(days=2)),
    ],
)
def test_valid_rates(expr: str, interval: timedelta) -> None:
    schedule = parse_schedule(expr)
    assert isinstance(schedule, RateSchedule)
    assert schedule.interval == interval
    assert str(schedule) == expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("rate(1 minutes)", "uses the plural 'minutes' with the value 1; write rate(1 minute)"),
        ("rate(1 days)", "write rate(1 day)"),
        ("rate(5 minute)", "uses the singular 'minute' with the value 5; write rate(5 minutes)"),
        ("rate(2 hour)", "write rate(2 hours)"),
        ("rate(0 minutes)", "not a whole number of 1 or more"),
        ("rate(-1 minutes)", "not a whole number of 1 or more"),
        ("rate(1.5 hours)", "not a whole number of 1 or more"),
        ("rate(1 week)", "'week', which is not a rate unit"),
        ("rate(2 seconds)", "use minute(s), hour(s) or day(s)"),
        ("rate(5)", "is not a valid rate expression"),
        ("rate(5  minutes)", "is not a valid rate expression"),
        ("rate()", "is not a valid rate expression"),
        ("every day", "is not a schedule expression"),
        ("Rate(1 day)", "is not a schedule expression"),
        ("", "is not a schedule expression"),
    ],
)
def test_invalid_rates(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match="; ") as info:
        parse_schedule(expr)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "expr",
    [
        "cron(0 12 * * ? *)",
        "cron(0/15 * * * ? *)",
        "cron(*/5 8-17 ? * MON-FRI *)",
        "cron(0 18 ? * mon,wed,fri *)",
        "cron(15 10 ? JAN,JUL 2 2026-2030)",
        "cron(0 0 1 1-12/3 ? *)",
        "cron(0 9 L * ? *)",
        "cron(0 9 LW * ? *)",
        "cron(0 9 15W * ? *)",
        "cron(0 9 ? * 6L *)",
        "cron(0 9 ? * FRI#3 *)",
        "cron(0 9 ? * L *)",
        "cron(0 0 ? JUN-JUL SAT *)",
    ],
)
def test_valid_crons(expr: str) -> None:
    assert isinstance(parse_schedule(expr), CronSchedule)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("cron(0 12 * * *)", "has 5 fields, cron needs 6"),
        ("cron(0 12 * * ? * *)", "has 7 fields"),
        ("cron(0 12 * * * *)", "sets both day-of-month and day-of-week; put '?' in one"),
        ("cron(0 12 1 * MON *)", "sets both day-of-month and day-of-week"),
        ("cron(0 12 ? * ? *)", "'?' in both day-of-month and day-of-week"),
        ("cron(60 12 * * ? *)", "minutes value 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours value 24 is outside 0-23"),
        ("cron(0 12 32 * ? *)", "day-of-month value 32 is outside 1-31"),
        ("cron(0 12 0 * ? *)", "day-of-month value 0 is outside 1-31"),
        ("cron(0 12 * 13 ? *)", "month value 13 is outside 1-12"),
        ("cron(0 12 * FOO ? *)", "month has 'FOO', which is not a value"),
        ("cron(0 12 ? * 8 *)", "day-of-week value 8 is outside 1-7"),
        ("cron(0 12 ? * 0 *)", "day-of-week value 0 is outside 1-7"),
        ("cron(0 12 ? * MOON *)", "day-of-week has 'MOON'"),
        ("cron(0 12 * * ? 1969)", "year value 1969 is outside 1970-2199"),
        ("cron(0 12 * * ? 2200)", "outside 1970-2199"),
        ("cron(0/0 12 * * ? *)", "step '0' in '0/0' is not a positive number"),
        ("cron(10-5 12 * * ? *)", "range '10-5' runs backwards"),
        ("cron(0,,5 12 * * ? *)", "empty list item"),
        ("cron(? 12 * * ? *)", "'?' is only allowed in day-of-month and day-of-week"),
        ("cron(0 12 ? * MON#6 *)", "is not DAY#N"),
        ("cron(0 12 5L * ? *)", "misuses L/W"),
        ("cron(0 12 ? * 1-3L *)", "is not DAYL"),
        ("cron(a 12 * * ? *)", "minutes has 'a'"),
    ],
)
def test_invalid_crons(expr: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(expr)
    text = str(info.value)
    assert message in text
    assert "; " in text  # what; hint


def fires(expr: str, after: str, count: int = 3) -> list[str]:
    schedule = parse_schedule(expr)
    moment = at(after)
    out = []
    for _ in range(count):
        moment = schedule.next_fire(moment)
        out.append(moment.strftime("%Y-%m-%d %H:%M %a"))
    return out


def test_rate_next_fire_defaults_to_epoch_alignment() -> None:
    assert fires("rate(1 day)", "2026-01-30T10:07:00") == [
        "2026-01-31 00:00 Sat",
        "2026-02-01 00:00 Sun",
        "2026-02-02 00:00 Mon",
    ]
    assert fires("rate(5 minutes)", "2026-01-30T10:10:00", 2) == [
        "2026-01-30 10:15 Fri",
        "2026-01-30 10:20 Fri",
    ]


def test_rate_next_fire_anchored_at_start() -> None:
    schedule = parse_schedule("rate(2 hours)")
    start = at("2026-03-01T09:30:00")
    # before the first interval has elapsed: the first firing is one interval after start
    assert schedule.next_fire(at("2026-03-01T08:00:00"), start=start) == at("2026-03-01T11:30:00")
    assert schedule.next_fire(start, start=start) == at("2026-03-01T11:30:00")
    assert schedule.next_fire(at("2026-03-01T11:30:00"), start=start) == at("2026-03-01T13:30:00")
    assert schedule.next_fire(at("2026-03-02T00:00:00"), start=start) == at("2026-03-02T01:30:00")


def test_next_fire_is_strictly_after_and_utc() -> None:
    schedule = parse_schedule("cron(0 12 * * ? *)")
    assert schedule.next_fire(at("2026-05-01T12:00:00")) == at("2026-05-02T12:00:00")
    assert schedule.next_fire(at("2026-05-01T11:59:59")) == at("2026-05-01T12:00:00")
    # naive datetimes are UTC; other zones are converted
    assert schedule.next_fire(datetime(2026, 5, 1, 11, 0)) == at("2026-05-01T12:00:00")
    paris = timezone(timedelta(hours=2))
    got = schedule.next_fire(datetime(2026, 5, 1, 13, 30, tzinfo=paris))  # 11:30 UTC
    assert got == at("2026-05-01T12:00:00") and got.tzinfo is UTC


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        (
            "cron(0/15 8-17 ? * MON-FRI *)",
            "2026-01-30T17:50:00",  # a Friday, after the last slot
            ["2026-02-02 08:00 Mon", "2026-02-02 08:15 Mon", "2026-02-02 08:30 Mon"],
        ),
        (
            "cron(30 6 1 */3 ? *)",
            "2026-01-01T06:30:00",
            ["2026-04-01 06:30 Wed", "2026-07-01 06:30 Wed", "2026-10-01 06:30 Thu"],
        ),
        (
            "cron(0 9 ? * SUN,WED *)",
            "2026-02-01T09:00:00",
            ["2026-02-04 09:00 Wed", "2026-02-08 09:00 Sun", "2026-02-11 09:00 Wed"],
        ),
        (
            "cron(0 0 29 FEB ? *)",
            "2026-01-01T00:00:00",
            ["2028-02-29 00:00 Tue", "2032-02-29 00:00 Sun", "2036-02-29 00:00 Fri"],
        ),
        (
            "cron(5 4 * * ? 2027)",
            "2026-12-31T23:59:00",
            ["2027-01-01 04:05 Fri", "2027-01-02 04:05 Sat", "2027-01-03 04:05 Sun"],
        ),
        (
            "cron(59 23 31 DEC ? *)",
            "2026-12-31T23:58:30",
            ["2026-12-31 23:59 Thu", "2027-12-31 23:59 Fri", "2028-12-31 23:59 Sun"],
        ),
        (
            "cron(0 9 L * ? *)",
            "2026-01-30T00:00:00",
            ["2026-01-31 09:00 Sat", "2026-02-28 09:00 Sat", "2026-03-31 09:00 Tue"],
        ),
        (
            "cron(0 9 LW * ? *)",
            "2026-01-01T00:00:00",
            ["2026-01-30 09:00 Fri", "2026-02-27 09:00 Fri", "2026-03-31 09:00 Tue"],
        ),
        (
            "cron(0 9 1W * ? *)",
            "2026-01-15T00:00:00",
            ["2026-02-02 09:00 Mon", "2026-03-02 09:00 Mon", "2026-04-01 09:00 Wed"],
        ),
        (
            "cron(0 9 ? * 6L *)",
            "2026-01-01T00:00:00",
            ["2026-01-30 09:00 Fri", "2026-02-27 09:00 Fri", "2026-03-27 09:00 Fri"],
        ),
        (
            "cron(0 9 ? * MON#1 *)",
            "2026-01-01T00:00:00",
            ["2026-01-05 09:00 Mon", "2026-02-02 09:00 Mon", "2026-03-02 09:00 Mon"],
        ),
    ],
)
def test_cron_next_fire(expr: str, after: str, expected: list[str]) -> None:
    assert fires(expr, after) == expected


def test_cron_that_never_fires_again() -> None:
    schedule = parse_schedule("cron(0 0 30 FEB ? *)")
    with pytest.raises(ValueError, match="never fires"):
        schedule.next_fire(at("2026-01-01T00:00:00"))
    past = parse_schedule("cron(0 0 * * ? 2020)")
    with pytest.raises(ValueError, match="never fires"):
        past.next_fire(at("2026-01-01T00:00:00"))
