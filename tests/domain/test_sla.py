"""SLA arithmetic: business calendars, policies and due times, by example and by property."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.shared import InvalidValue
from domain.sla import (
    DEFAULT_CALENDAR,
    DEFAULT_POLICY,
    BusinessCalendar,
    Priority,
    SlaPolicy,
    SlaTarget,
    WorkingHours,
    business_days,
    business_hours,
    extend_due,
    hours,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
QINGMING = date(2026, 4, 6)  # a Monday
WITH_LUNCH = BusinessCalendar(
    week=(hours(("09:00", "12:00"), ("13:00", "18:00")),) * 5 + ((), ()),
    holidays=frozenset({QINGMING, date(2026, 5, 1)}),
)
ROUND_THE_CLOCK_BERLIN = BusinessCalendar(
    time_zone="Europe/Berlin", week=(hours(("00:00", "00:00")),) * 7
)


def local(*args: int, zone: ZoneInfo = SHANGHAI) -> datetime:
    """A Shanghai wall-clock time, as an aware datetime."""
    return datetime(*args, tzinfo=zone)


# --- examples ------------------------------------------------------------------------------------


def test_a_p1_ticket_opened_on_monday_morning_is_due_within_the_same_morning() -> None:
    due = DEFAULT_POLICY.due_times(Priority.P1, local(2026, 3, 2, 9, 0), DEFAULT_CALENDAR)
    assert due.first_response == local(2026, 3, 2, 10, 0)
    assert due.resolution == local(2026, 3, 2, 13, 0)


def test_due_times_come_back_in_utc() -> None:
    due = DEFAULT_CALENDAR.add_business_time(local(2026, 3, 2, 9, 0), H)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def test_one_business_day_is_the_calendars_working_day() -> None:
    assert business_days(1) == 9 * H
    assert business_days(3) == 27 * H
    assert business_days(1, WITH_LUNCH) == 8 * H
    assert business_days(1, ROUND_THE_CLOCK_BERLIN) == 24 * H
    assert business_hours(4) == 4 * H


def test_the_default_policy_targets_are_business_time() -> None:
    targets = DEFAULT_POLICY.targets
    assert DEFAULT_POLICY.version == "2026.1"
    assert (targets[Priority.P1].first_response, targets[Priority.P1].resolution) == (H, 4 * H)
    assert (targets[Priority.P2].first_response, targets[Priority.P2].resolution) == (4 * H, 9 * H)
    assert (targets[Priority.P3].first_response, targets[Priority.P3].resolution) == (8 * H, 27 * H)
    assert (targets[Priority.P4].first_response, targets[Priority.P4].resolution) == (9 * H, 45 * H)


def test_a_one_day_target_from_monday_opening_ends_at_monday_closing() -> None:
    assert DEFAULT_CALENDAR.add_business_time(local(2026, 3, 2, 9, 0), business_days(1)) == local(
        2026, 3, 2, 18, 0
    )


def test_a_p4_ticket_opened_on_monday_is_resolved_by_friday_evening() -> None:
    due = DEFAULT_POLICY.due_times(Priority.P4, local(2026, 3, 2, 9, 0), DEFAULT_CALENDAR)
    assert due.first_response == local(2026, 3, 2, 18, 0)
    assert due.resolution == local(2026, 3, 6, 18, 0)


def test_business_time_skips_the_weekend() -> None:
    friday_4pm = local(2026, 3, 6, 16, 0)
    assert DEFAULT_CALENDAR.add_business_time(friday_4pm, 4 * H) == local(2026, 3, 9, 11, 0)
    assert DEFAULT_CALENDAR.business_time_between(friday_4pm, local(2026, 3, 9, 11, 0)) == 4 * H


def test_business_time_skips_holidays_and_lunch() -> None:
    friday_5pm = local(2026, 4, 3, 17, 0)  # Monday 6 April is Qingming
    assert WITH_LUNCH.add_business_time(friday_5pm, 5 * H) == local(2026, 4, 7, 14, 0)
    # the earliest instant: a due time that uses up the morning falls at the lunch break
    assert WITH_LUNCH.add_business_time(friday_5pm, 4 * H) == local(2026, 4, 7, 12, 0)
    assert WITH_LUNCH.add_business_time(local(2026, 4, 7, 11, 30), H) == local(2026, 4, 7, 13, 30)
    assert WITH_LUNCH.business_time_between(local(2026, 4, 6, 0, 0), local(2026, 4, 7, 0, 0)) == (
        timedelta(0)
    )


def test_a_ticket_opened_on_saturday_counts_from_monday_opening() -> None:
    assert DEFAULT_CALENDAR.add_business_time(local(2026, 3, 7, 10, 0), H) == local(
        2026, 3, 9, 10, 0
    )


def test_adding_no_time_leaves_the_start_alone_even_after_hours() -> None:
    saturday = local(2026, 3, 7, 10, 0)
    assert DEFAULT_CALENDAR.add_business_time(saturday, timedelta(0)) == saturday


def test_nothing_is_working_time_when_the_end_is_not_after_the_start() -> None:
    monday = local(2026, 3, 2, 10, 0)
    assert DEFAULT_CALENDAR.business_time_between(monday, monday - H) == timedelta(0)
    assert DEFAULT_CALENDAR.business_time_between(monday, monday) == timedelta(0)


def test_multi_week_durations_are_computed_by_days_not_minutes() -> None:
    start = local(2026, 3, 2, 9, 0)
    due = DEFAULT_CALENDAR.add_business_time(start, business_days(5 * 52))
    assert due == local(2027, 2, 26, 18, 0)  # 52 working weeks later, Friday evening
    assert DEFAULT_CALENDAR.business_time_between(start, due) == business_days(5 * 52)


def test_a_pause_over_the_weekend_extends_the_due_time_by_its_business_hours_only() -> None:
    due = local(2026, 3, 9, 12, 0)
    extended = extend_due(due, local(2026, 3, 6, 17, 0), local(2026, 3, 9, 10, 0), DEFAULT_CALENDAR)
    assert extended == local(2026, 3, 9, 14, 0)


def test_a_round_the_clock_calendar_counts_real_time_even_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    saturday, monday = local(2026, 3, 28, zone=berlin), local(2026, 3, 30, zone=berlin)
    assert ROUND_THE_CLOCK_BERLIN.business_time_between(saturday, monday) == 47 * H
    assert ROUND_THE_CLOCK_BERLIN.add_business_time(saturday, 47 * H) == monday


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: DEFAULT_CALENDAR.add_business_time(datetime(2026, 3, 2), H), id="naive start"
        ),
        pytest.param(
            lambda: DEFAULT_CALENDAR.add_business_time(local(2026, 3, 2), -H), id="negative"
        ),
        pytest.param(
            lambda: DEFAULT_CALENDAR.business_time_between(local(2026, 3, 2), datetime(2026, 3, 3)),
            id="naive end",
        ),
        pytest.param(lambda: WorkingHours(start=time(18), end=time(9)), id="backwards hours"),
        pytest.param(
            lambda: BusinessCalendar(week=(hours(("09:00", "13:00"), ("12:00", "18:00")),) * 7),
            id="overlapping hours",
        ),
        pytest.param(
            lambda: BusinessCalendar(week=(hours(("09:00", "18:00")),) * 6), id="six days"
        ),
        pytest.param(lambda: BusinessCalendar(week=((),) * 7), id="never open"),
        pytest.param(lambda: BusinessCalendar(time_zone="Mars/Olympus_Mons"), id="unknown zone"),
        pytest.param(
            lambda: SlaPolicy(
                version="x", targets={Priority.P1: SlaTarget(first_response=H, resolution=H)}
            ),
            id="missing priority",
        ),
        pytest.param(
            lambda: SlaTarget(first_response=timedelta(0), resolution=H), id="zero target"
        ),
        pytest.param(lambda: SlaTarget(first_response=2 * H, resolution=H), id="resolution first"),
    ],
)
def test_malformed_calendars_policies_and_times_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidValue):
        build()


# --- properties ----------------------------------------------------------------------------------

ZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York")
QUARTERS_PER_DAY = 96


@st.composite
def calendars(
    draw: st.DrawFn, quarters: st.SearchStrategy[int] | None = None, zones: tuple[str, ...] = ZONES
) -> BusinessCalendar:
    """Random calendars: up to three stretches a day on quarter hours, some holidays."""
    marks = st.integers(0, QUARTERS_PER_DAY) if quarters is None else quarters
    week = []
    for _ in range(7):
        bounds = sorted(draw(st.sets(marks, max_size=6)))
        bounds = bounds[: len(bounds) // 2 * 2]
        week.append(
            tuple(
                WorkingHours(start=_quarter(a), end=_quarter(b))
                for a, b in zip(bounds[::2], bounds[1::2], strict=True)
            )
        )
    if not any(week):
        week[0] = hours(("09:00", "17:00"))
    holidays = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=20))
    return BusinessCalendar(
        time_zone=draw(st.sampled_from(zones)), week=tuple(week), holidays=holidays
    )


def _quarter(n: int) -> time:
    return time((n // 4) % 24, n % 4 * 15)


any_calendar = st.sampled_from((DEFAULT_CALENDAR, WITH_LUNCH, ROUND_THE_CLOCK_BERLIN)) | calendars()
instants = st.datetimes(datetime(2025, 12, 1), datetime(2027, 1, 31), timezones=st.just(UTC))
durations = st.timedeltas(timedelta(0), timedelta(days=20))
PROPERTIES = settings(max_examples=150, deadline=None)


@PROPERTIES
@given(any_calendar, instants, durations)
def test_a_due_time_is_never_before_its_start(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    assert calendar.add_business_time(start, duration) >= start


@PROPERTIES
@given(any_calendar, instants, durations)
def test_business_time_between_undoes_adding_business_time(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    due = calendar.add_business_time(start, duration)
    assert calendar.business_time_between(start, due) == duration


@PROPERTIES
@given(any_calendar, instants, durations, durations)
def test_adding_business_time_in_two_steps_equals_adding_it_at_once(
    calendar: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    in_steps = calendar.add_business_time(calendar.add_business_time(start, first), second)
    assert in_steps == calendar.add_business_time(start, first + second)


@PROPERTIES
@given(any_calendar, instants, st.lists(instants, min_size=2, max_size=2))
def test_a_pause_never_shortens_a_due_time(
    calendar: BusinessCalendar, due: datetime, pause: list[datetime]
) -> None:
    paused_from, paused_until = sorted(pause)
    assert extend_due(due, paused_from, paused_until, calendar) >= due


@PROPERTIES
@given(any_calendar, instants, instants)
def test_a_zero_length_pause_changes_nothing(
    calendar: BusinessCalendar, due: datetime, paused_at: datetime
) -> None:
    assert extend_due(due, paused_at, paused_at, calendar) == due


@PROPERTIES
@given(any_calendar, instants, st.lists(instants, min_size=3, max_size=3))
def test_splitting_a_pause_in_two_adjacent_ones_changes_nothing(
    calendar: BusinessCalendar, due: datetime, marks: list[datetime]
) -> None:
    a, b, c = sorted(marks)
    in_two = extend_due(extend_due(due, a, b, calendar), b, c, calendar)
    assert in_two == extend_due(due, a, c, calendar)


weekdays_at_night = st.dates(date(2026, 1, 1), date(2026, 12, 31)).filter(
    lambda d: d.weekday() < 4  # Monday–Thursday: the next day is a working day too
)


@PROPERTIES
@given(st.sampled_from((DEFAULT_CALENDAR, WITH_LUNCH)), weekdays_at_night)
def test_nights_weekends_and_holidays_count_zero(calendar: BusinessCalendar, day: date) -> None:
    closing = datetime.combine(day, time(18), SHANGHAI)
    next_opening = datetime.combine(day + timedelta(days=1), time(9), SHANGHAI)
    assert calendar.business_time_between(closing, next_opening) == timedelta(0)
    friday = day + timedelta(days=4 - day.weekday())
    weekend = (
        datetime.combine(friday, time(18), SHANGHAI),
        datetime.combine(friday + timedelta(days=3), time(9), SHANGHAI),
    )
    assert calendar.business_time_between(*weekend) == timedelta(0)
    day_off = calendar.model_copy(update={"holidays": calendar.holidays | {day}})
    midnight = datetime.combine(day, time(0), SHANGHAI)
    assert day_off.business_time_between(midnight, midnight + timedelta(days=1)) == timedelta(0)


def _next_opening(calendar: BusinessCalendar, day: date) -> datetime:
    """09:00 of the first working day after `day` (for Mon–Fri 09:00 calendars)."""
    day += timedelta(days=1)
    while day.weekday() >= 5 or day in calendar.holidays:
        day += timedelta(days=1)
    return datetime.combine(day, time(9), SHANGHAI)


@PROPERTIES
@given(
    st.sampled_from((DEFAULT_CALENDAR, WITH_LUNCH)),
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
    st.timedeltas(timedelta(microseconds=1), timedelta(days=10)),
)
def test_adding_business_time_at_23h_equals_adding_it_from_the_next_opening(
    calendar: BusinessCalendar, day: date, duration: timedelta
) -> None:
    late = datetime.combine(day, time(23), SHANGHAI)
    assert calendar.add_business_time(late, duration) == calendar.add_business_time(
        _next_opening(calendar, day), duration
    )


def _working_minutes(calendar: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Brute force: count the minutes in [a, b) whose local wall time is in working hours."""
    zone, total, minute = ZoneInfo(calendar.time_zone), 0, a
    while minute < b:
        wall = minute.astimezone(zone)
        offset = timedelta(hours=wall.hour, minutes=wall.minute)
        if wall.date() not in calendar.holidays and any(
            start <= offset < end
            for start, end in (s.offsets for s in calendar.week[wall.weekday()])
        ):
            total += 1
        minute += timedelta(minutes=1)
    return timedelta(minutes=total)


# Berlin skips and repeats 02:00–03:00 once a year; stretches bounded there are ambiguous.
unambiguous_quarters = st.integers(0, QUARTERS_PER_DAY).filter(lambda q: not 8 <= q <= 12)
minute_instants = st.builds(lambda at: at.replace(second=0, microsecond=0), instants)


@settings(max_examples=100, deadline=None)
@given(
    calendars(unambiguous_quarters, ("Asia/Shanghai", "Europe/Berlin")),
    minute_instants,
    st.integers(0, 3 * 24 * 60),
)
def test_business_time_between_agrees_with_counting_minutes(
    calendar: BusinessCalendar, start: datetime, minutes: int
) -> None:
    end = start + timedelta(minutes=minutes)
    assert calendar.business_time_between(start, end) == _working_minutes(calendar, start, end)
