"""Five-field cron schedules as CronJob accepts them.

Kubernetes validates `spec.schedule` with robfig/cron's ParseStandard (kubernetes pkg/apis/batch/validation,
validateScheduleFormat; github.com/robfig/cron/v3 parser.go): minute hour day-of-month month day-of-week,
each `*`, `?` (day fields), `N`, `N-M`, `*/S`, `N/S` (N to the max, step S), `N-M/S`, comma lists; month and
weekday names (jan..dec, sun..sat, any case); weekday 0-6 (7 is rejected); descriptors @yearly, @annually,
@monthly, @weekly, @daily, @midnight, @hourly. A `TZ=`/`CRON_TZ=` prefix is rejected (use spec.timeZone).
`@every <duration>` is accepted by Kubernetes but not by netsim (it is reported as unsupported).

Day matching follows robfig: when both day-of-month and day-of-week are restricted, a day matching either
matches; when either is `*`/`?`, both must match.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_MONTHS = {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


class CronError(ValueError):
    """A schedule that does not parse; the message says which field and why."""


@dataclass(frozen=True)
class CronSchedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_star: bool
    weekdays_star: bool

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def matches(self, t: dt.datetime) -> bool:
        return (t.minute in self.minutes and t.hour in self.hours and t.month in self.months
                and self._day_matches(t))

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        """The first matching minute strictly after `t`, or None within five years (as robfig gives up)."""
        t = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t.replace(year=t.year + 5) if not (t.month == 2 and t.day == 29) else t + dt.timedelta(days=1826)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t + dt.timedelta(minutes=1)
            else:
                return t
        return None


def _value(token: str, index: int, lo: int, hi: int) -> int:
    names = _MONTHS if index == 3 else _DAYS if index == 4 else {}
    low = token.lower()
    if low in names:
        return names[low]
    if not token.isdigit():
        raise CronError(f"{_FIELD_NAMES[index]}: {token!r} is not a number" +
                        (" or name" if names else ""))
    v = int(token)
    if not lo <= v <= hi:
        raise CronError(f"{_FIELD_NAMES[index]}: {v} is out of range {lo}-{hi}")
    return v


def _field(expr: str, index: int) -> tuple[frozenset[int], bool]:
    lo, hi = _BOUNDS[index]
    values: set[int] = set()
    star = False
    for part in expr.split(","):
        if not part:
            raise CronError(f"{_FIELD_NAMES[index]}: empty list element in {expr!r}")
        rng, _, step_s = part.partition("/")
        step = 1
        if step_s or part.endswith("/"):
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"{_FIELD_NAMES[index]}: step {step_s!r} must be a positive number")
            step = int(step_s)
        if rng in ("*", "?"):
            if rng == "?" and index not in (2, 4):
                raise CronError(f"{_FIELD_NAMES[index]}: '?' is only allowed in the day fields")
            start, end = lo, hi
            star = star or step == 1
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _value(a, index, lo, hi), _value(b, index, lo, hi)
            if start > end:
                raise CronError(f"{_FIELD_NAMES[index]}: range {rng!r} starts after it ends")
        else:
            start = _value(rng, index, lo, hi)
            end = hi if step_s else start
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse_cron(text: str) -> CronSchedule:
    """Parse a standard five-field schedule (or descriptor); raise CronError naming the bad field."""
    if not isinstance(text, str) or not text.strip():
        raise CronError("schedule must be a non-empty string")
    spec = text.strip()
    if "TZ=" in spec:
        raise CronError("TZ= or CRON_TZ= in the schedule is not supported; use spec.timeZone")
    if spec.startswith("@"):
        if spec.startswith("@every"):
            raise CronError("@every schedules are not supported by netsim; use five cron fields")
        if spec not in _DESCRIPTORS:
            raise CronError(f"unknown descriptor {spec!r}; use one of {', '.join(_DESCRIPTORS)}")
        spec = _DESCRIPTORS[spec]
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(parts)}")
    parsed = [_field(p, i) for i, p in enumerate(parts)]
    return CronSchedule(text=text, minutes=parsed[0][0], hours=parsed[1][0], days=parsed[2][0],
                        months=parsed[3][0], weekdays=parsed[4][0], days_star=parsed[2][1],
                        weekdays_star=parsed[4][1])
