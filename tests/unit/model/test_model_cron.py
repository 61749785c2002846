"""Cron schedules as CronJob (robfig/cron ParseStandard) accepts them."""

from __future__ import annotations

import datetime as dt

import pytest

from netsim.model.cron import CronError, parse_cron


@pytest.mark.parametrize("text", ["* * * * *", "*/15 0-6 1,15 * *", "0 0 ? * SUN", "5/10 * * jan-mar mon-fri",
                                  "@hourly", "@midnight", "0 0 1 1 *", "1-10/3 * * * 6"])
def test_valid(text):
    parse_cron(text)


@pytest.mark.parametrize("text,message", [
    ("* * * *", "expected 5 fields"),
    ("0 24 * * *", "hour: 24 is out of range 0-23"),
    ("0 0 0 * *", "day of month: 0 is out of range 1-31"),
    ("0 0 * 13 *", "month: 13 is out of range 1-12"),
    ("0 0 * * 7", "day of week: 7 is out of range 0-6"),
    ("*/0 * * * *", "step '0' must be a positive number"),
    ("5-1 * * * *", "starts after it ends"),
    ("? * * * *", "only allowed in the day fields"),
    ("0 0 * * funday", "not a number or name"),
    ("CRON_TZ=UTC 0 0 * * *", "use spec.timeZone"),
    ("@every 5m", "not supported"),
    ("@fortnightly", "unknown descriptor"),
    ("1,,2 * * * *", "empty list element"),
])
def test_invalid(text, message):
    with pytest.raises(CronError, match=message):
        parse_cron(text)


def test_sets_and_day_semantics():
    s = parse_cron("5/20 9-17/4 * jan,JUL *")
    assert s.minutes == {5, 25, 45} and s.hours == {9, 13, 17} and s.months == {1, 7}
    # both day fields restricted: either matches (the 13th, or any Friday)
    either = parse_cron("0 0 13 * 5")
    assert either.matches(dt.datetime(2024, 9, 13))  # Friday the 13th
    assert either.matches(dt.datetime(2024, 9, 6))  # a Friday
    assert either.matches(dt.datetime(2024, 10, 13))  # a Sunday the 13th
    assert not either.matches(dt.datetime(2024, 9, 7))
    # a star in one day field: both must match
    both = parse_cron("0 0 * * 5")
    assert not both.matches(dt.datetime(2024, 10, 13))


def test_next_after():
    s = parse_cron("*/15 * * * *")
    assert s.next_after(dt.datetime(2024, 1, 1, 10, 7, 30)) == dt.datetime(2024, 1, 1, 10, 15)
    assert s.next_after(dt.datetime(2024, 1, 1, 10, 15)) == dt.datetime(2024, 1, 1, 10, 30)
    leap = parse_cron("0 12 29 2 *")
    assert leap.next_after(dt.datetime(2024, 3, 1)) == dt.datetime(2028, 2, 29, 12, 0)
    assert parse_cron("0 0 30 2 *").next_after(dt.datetime(2024, 1, 1)) is None
    assert parse_cron("@yearly").next_after(dt.datetime(2024, 12, 31, 23, 59)) == dt.datetime(2025, 1, 1)
