"""The calendar month or week, in a time zone, that a sales-funnel slice covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Period:
    """A calendar month, or a week starting on Monday, in a time zone: when records entered."""

    unit: Literal["month", "week"]
    day: date  # any day of the period
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if self.unit not in ("month", "week"):
            raise ValueError(f"a period is a 'month' or a 'week', not {self.unit!r}")

    @classmethod
    def month(cls, year: int, month: int, time_zone: str = "UTC") -> Period:
        return cls("month", date(year, month, 1), time_zone)

    @classmethod
    def week_of(cls, day: date, time_zone: str = "UTC") -> Period:
        return cls("week", day, time_zone)

    def bounds(self) -> tuple[datetime, datetime]:
        """The first instant of the period and the first instant after it."""
        if self.unit == "week":
            start = self.day - timedelta(days=self.day.weekday())
            end = start + timedelta(days=7)
        else:
            start = self.day.replace(day=1)
            end = (start + timedelta(days=32)).replace(day=1)
        zone = ZoneInfo(self.time_zone)
        return datetime.combine(start, time(), zone), datetime.combine(end, time(), zone)
