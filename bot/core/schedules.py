"""Schedules of the scheduled jobs, in TIMEZONE: weekly ("fri 15:00", "mon-fri 09:30", "daily 02:00") and,
for the runbook check, quarterly: "quarterly mon 10:00" is the first Monday of January, April, July and
October at 10:00."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SCHEDULE = re.compile(r"^(?P<days>[a-z,\-]+)\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})$")


def parse_days(days_text: str, text: str | None = None) -> tuple[int, ...]:
    """`mon-fri`, `mon,thu`, `sat,sun` or `daily` -> weekdays (0 = Monday); `text` is what errors quote."""
    quoted = repr(text if text is not None else days_text)
    days: set[int] = set()
    for part in days_text.strip().lower().split(","):
        if part == "daily":
            days.update(range(7))
        elif "-" in part:
            first, _, last = part.partition("-")
            if first not in DAYS or last not in DAYS:
                raise ValueError(f"{quoted}: unknown day in {part!r} (use mon..sun)")
            start, end = DAYS.index(first), DAYS.index(last)
            if start > end:
                raise ValueError(f"{quoted}: the range {part!r} runs backwards")
            days.update(range(start, end + 1))
        elif part in DAYS:
            days.add(DAYS.index(part))
        else:
            raise ValueError(f"{quoted}: unknown day {part!r} (use mon..sun, a range mon-fri, or daily)")
    return tuple(sorted(days))


@dataclass(frozen=True)
class WeeklySchedule:
    """A cron-like schedule: days of the week and a local time, e.g. "fri 15:00", "mon-fri 09:30",
    "mon,thu 10:00" or "daily 08:00". Times are in `TIMEZONE`."""

    days: tuple[int, ...]  # 0 = Monday, as datetime.weekday()
    hour: int
    minute: int

    @classmethod
    def parse(cls, text: str) -> WeeklySchedule:
        match = _SCHEDULE.match(text.strip().lower())
        if match is None:
            raise ValueError(f"{text!r} is not a schedule: write days and a time, e.g. 'fri 15:00'")
        hour, minute = int(match["hour"]), int(match["minute"])
        if hour > 23 or minute > 59:
            raise ValueError(f"{text!r}: the time must be between 00:00 and 23:59")
        return cls(days=parse_days(match["days"], text), hour=hour, minute=minute)

    @property
    def cron_days(self) -> str:
        """APScheduler's `day_of_week` field."""
        return ",".join(DAYS[day] for day in self.days)

    def previous(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The latest scheduled instant at or before `now` (aware UTC in, aware UTC out)."""
        local = now.astimezone(tz)
        for back in range(8):
            day = local.date() - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            candidate = datetime.combine(day, time(self.hour, self.minute), tzinfo=tz).astimezone(now.tzinfo)
            if candidate <= now:
                return candidate
        raise AssertionError("a weekly schedule fires at least once in eight days")


QUARTER_MONTHS = (1, 4, 7, 10)
_QUARTERLY = re.compile(r"^quarterly\s+(?P<day>[a-z]{3})\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})$")


@dataclass(frozen=True)
class QuarterlySchedule:
    weekday: int  # 0 = Monday
    hour: int
    minute: int

    @classmethod
    def parse(cls, text: str) -> QuarterlySchedule | None:
        """The schedule, or None when `text` is not a quarterly one; ValueError when it is, wrongly."""
        match = _QUARTERLY.match(text.strip().lower())
        if match is None:
            return None
        if match["day"] not in DAYS:
            raise ValueError(f"{text!r}: unknown day {match['day']!r} (use mon..sun)")
        hour, minute = int(match["hour"]), int(match["minute"])
        if hour > 23 or minute > 59:
            raise ValueError(f"{text!r}: the time must be between 00:00 and 23:59")
        return cls(weekday=DAYS.index(match["day"]), hour=hour, minute=minute)

    @property
    def cron_days(self) -> str:
        return DAYS[self.weekday]

    def first_day(self, year: int, month: int) -> date:
        first = date(year, month, 1)
        return first + timedelta(days=(self.weekday - first.weekday()) % 7)

    def previous(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The latest scheduled instant at or before `now` (aware UTC in, aware UTC out)."""
        local = now.astimezone(tz)
        year = local.year
        candidates = [(year - back, month) for back in (0, 1) for month in QUARTER_MONTHS]
        for year_of, month in sorted(candidates, reverse=True):
            day = self.first_day(year_of, month)
            instant = datetime.combine(day, time(self.hour, self.minute), tzinfo=tz).astimezone(now.tzinfo)
            if instant <= now:
                return instant
        raise AssertionError("a quarterly schedule fires within a year")
