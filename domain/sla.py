"""Service levels, pure: business calendars, SLA policies and business-time due arithmetic.

Business time is real elapsed time inside a calendar's working hours (local wall clock, minus
holidays). A due time is the earliest instant by which the target's business time has passed;
a pause pushes it back by the business time paused. Aware datetimes in, UTC datetimes out.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from domain.shared import InvalidValue

ZERO = timedelta(0)
MIDNIGHT = time(0)
_DAY = timedelta(days=1)


class Priority(StrEnum):
    """How urgent a ticket is; P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class WorkingHours(BaseModel):
    """One stretch of working time in a day, in local wall-clock time; `end` 00:00 is midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> WorkingHours:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidValue("working hours", self, "use naive local times")
        if self.end != MIDNIGHT and self.end <= self.start:
            raise InvalidValue("working hours", self, "must end after they start")
        return self

    @property
    def offsets(self) -> tuple[timedelta, timedelta]:
        """Start and end as wall-clock offsets from local midnight."""
        start = timedelta(
            hours=self.start.hour,
            minutes=self.start.minute,
            seconds=self.start.second,
            microseconds=self.start.microsecond,
        )
        if self.end == MIDNIGHT:
            return start, _DAY
        end = timedelta(
            hours=self.end.hour,
            minutes=self.end.minute,
            seconds=self.end.second,
            microseconds=self.end.microsecond,
        )
        return start, end


def hours(*spans: tuple[str, str]) -> tuple[WorkingHours, ...]:
    """Working hours from ("09:00", "12:00")-style pairs."""
    return tuple(
        WorkingHours(start=time.fromisoformat(a), end=time.fromisoformat(b)) for a, b in spans
    )


OFFICE_DAY = hours(("09:00", "18:00"))
OFFICE_WEEK = (OFFICE_DAY,) * 5 + ((), ())


class BusinessCalendar(BaseModel):
    """When the service desk works: a time zone, hours per weekday (Monday first), holidays."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_zone: str = "Asia/Shanghai"
    week: tuple[tuple[WorkingHours, ...], ...] = OFFICE_WEEK
    holidays: frozenset[date] = frozenset()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidValue("time zone", value, "not an IANA time zone") from None
        return value

    @field_validator("week")
    @classmethod
    def _seven_days_of_disjoint_hours(
        cls, value: tuple[tuple[WorkingHours, ...], ...]
    ) -> tuple[tuple[WorkingHours, ...], ...]:
        if len(value) != 7:
            raise InvalidValue("week", value, "needs exactly seven days, Monday first")
        for day in value:
            spans = [span.offsets for span in day]
            if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)):
                raise InvalidValue("week", value, "a day's hours must be sorted and disjoint")
        if not any(value):
            raise InvalidValue("week", value, "has no working hours at all")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)  # ZoneInfo caches instances by key

    @property
    def working_day(self) -> timedelta:
        """Length of one business day: the longest weekday's working hours (9h for 09–18)."""
        return max(
            sum((end - start for start, end in (s.offsets for s in day)), ZERO) for day in self.week
        )

    def windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working stretches of local `day` as sorted, disjoint UTC instants.

        Wall times that a DST change skips or repeats are read with fold=0 (the earlier offset).
        """
        if day in self.holidays:
            return []
        midnight = datetime.combine(day, MIDNIGHT)
        found: list[tuple[datetime, datetime]] = []
        floor: datetime | None = None
        for span in self.week[day.weekday()]:
            start_offset, end_offset = span.offsets
            start = self._utc(midnight + start_offset)
            end = self._utc(midnight + end_offset)
            # Across a DST change wall times can skip or repeat; keep the stretches disjoint.
            if floor is not None:
                start = max(start, floor)
            if end > start:
                found.append((start, end))
                floor = end
        return found

    def _utc(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which `duration` of working time has passed since `start`.

        A start outside working hours therefore counts from the next opening; a zero duration
        returns `start` itself (in UTC), which keeps adding business time associative.
        """
        cursor = _aware("start", start).astimezone(UTC)
        if duration < ZERO:
            raise InvalidValue("duration", duration, "must not be negative")
        remaining = duration
        if remaining == ZERO:
            return cursor
        day = self._local_date(cursor)
        while True:  # ends: the week has working hours and holidays are finite
            for window_start, window_end in self.windows(day):
                if window_end <= cursor:
                    continue
                begin = max(window_start, cursor)
                if remaining <= window_end - begin:
                    return begin + remaining
                remaining -= window_end - begin
            day += _DAY

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time within [a, b); zero when b is not after a."""
        a = _aware("a", a).astimezone(UTC)
        b = _aware("b", b).astimezone(UTC)
        total = ZERO
        day, last = self._local_date(a), self._local_date(b)
        while day <= last:
            for window_start, window_end in self.windows(day):
                overlap = min(window_end, b) - max(window_start, a)
                if overlap > ZERO:
                    total += overlap
            day += _DAY
        return total


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(name, value, "must be timezone-aware")
    return value


DEFAULT_CALENDAR = BusinessCalendar()


def business_days(n: float, calendar: BusinessCalendar = DEFAULT_CALENDAR) -> timedelta:
    """`n` business days as business time: n × the calendar's working day (9h by default)."""
    return n * calendar.working_day


def business_hours(n: float) -> timedelta:
    """`n` hours of business time."""
    return timedelta(hours=n)


class SlaTarget(BaseModel):
    """How much business time the desk has to respond first and to resolve."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_response: timedelta
    resolution: timedelta

    @model_validator(mode="after")
    def _positive_and_ordered(self) -> SlaTarget:
        if self.first_response <= ZERO:
            raise InvalidValue("first response target", self.first_response, "must be positive")
        if self.resolution < self.first_response:
            raise InvalidValue(
                "resolution target",
                self.resolution,
                "must not be shorter than the first response target",
            )
        return self


class DueTimes(NamedTuple):
    """When the first response and the resolution are due."""

    first_response: datetime
    resolution: datetime


class SlaPolicy(BaseModel):
    """Versioned SLA targets per priority, as business time (days already converted to hours)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    targets: dict[Priority, SlaTarget]

    @field_validator("targets")
    @classmethod
    def _every_priority(cls, value: dict[Priority, SlaTarget]) -> dict[Priority, SlaTarget]:
        missing = set(Priority) - set(value)
        if missing:
            raise InvalidValue("targets", sorted(missing), "every priority needs a target")
        return value

    def due_times(
        self,
        priority: Priority,
        opened_at: datetime,
        calendar: BusinessCalendar,
        paused: timedelta = ZERO,
    ) -> DueTimes:
        """Due times of a ticket opened at `opened_at`, its SLA clock stopped for `paused`."""
        target = self.targets[priority]
        return DueTimes(
            first_response=calendar.add_business_time(opened_at, target.first_response + paused),
            resolution=calendar.add_business_time(opened_at, target.resolution + paused),
        )


def extend_due(
    due: datetime, paused_from: datetime, paused_until: datetime, calendar: BusinessCalendar
) -> datetime:
    """`due` pushed back by the business time of the pause [paused_from, paused_until)."""
    return calendar.add_business_time(
        due, calendar.business_time_between(paused_from, paused_until)
    )


# Defaults: "1d" is one business day of DEFAULT_CALENDAR (9h), fixed when the policy is defined,
# so a policy keeps its hours even when applied with another calendar.
DEFAULT_POLICY = SlaPolicy(
    version="2026.1",
    targets={
        Priority.P1: SlaTarget(first_response=business_hours(1), resolution=business_hours(4)),
        Priority.P2: SlaTarget(first_response=business_hours(4), resolution=business_days(1)),
        Priority.P3: SlaTarget(first_response=business_hours(8), resolution=business_days(3)),
        Priority.P4: SlaTarget(first_response=business_days(1), resolution=business_days(5)),
    },
)
