"""Calendars: calendar days, months (end-of-month rule) and China working days (调休).

Known dates are checked against the State Council's notices as published in the
``chinese-calendar`` package, and every day 2004–2026 is checked against that
package's own ``is_workday``, an implementation independent of ours.
"""

from __future__ import annotations

import calendar as stdlib_calendar
import pickle
import subprocess
import sys
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
import chinese_calendar as cc  # the dev extra installs it: the official data
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xuncha_flow._calendar import (
    Calendar,
    CalendarDays,
    ChinaWorkingDays,
    HolidaySchedule,
    Months,
    ScheduleError,
    WorkingDayCalendar,
    YearNotCovered,
)
from xuncha_flow._errors import CalendarError, XunchaError

if TYPE_CHECKING:
    from collections.abc import Callable


OFFICIAL = HolidaySchedule.from_chinese_calendar()
CN = ChinaWorkingDays(OFFICIAL)
FIRST, LAST = date(2004, 1, 1), date(2026, 12, 31)

# MADE-UP TEST DATA, not the real 2027 schedule (unpublished when this was written).
FAKE_2027_HOLIDAYS = (
    ["2027-01-01", "2027-01-02", "2027-01-03"]
    + [f"2027-02-{d:02}" for d in range(5, 13)]  # Fri 5 Feb .. Fri 12 Feb
    + [f"2027-10-{d:02}" for d in range(1, 8)]
)
FAKE_2027_WORKDAYS = ["2027-02-13", "2027-10-09"]  # both Saturdays


def naive_add(is_working: Callable[[date], bool], start: date, n: int) -> date:
    """Reference implementation: step one day at a time."""
    d = start
    while n:
        d += timedelta(days=1)
        n -= is_working(d)
    return d


def official_is_working(d: date) -> bool:
    return bool(cc.is_workday(d))


# --- the official data -------------------------------------------------------


def test_official_schedule_covers_2004_to_2026() -> None:
    assert OFFICIAL.years == tuple(range(2004, 2027))
    assert repr(OFFICIAL) == "HolidaySchedule(years=2004–2026)"


@pytest.mark.parametrize("d", [date(2024, 2, 4), date(2024, 2, 18)])
def test_2024_spring_festival_make_up_sundays_are_working_days(d: date) -> None:
    assert d.weekday() == 6
    assert d in OFFICIAL.workdays_in(2024)
    assert CN.is_working_day(d)


def test_2024_spring_festival_is_off() -> None:
    for day in range(10, 18):
        assert not CN.is_working_day(date(2024, 2, day))
    assert CN.is_working_day(date(2024, 2, 19))


def test_2024_national_day_week_is_off_and_make_up_saturday_works() -> None:
    for day in range(1, 8):
        assert date(2024, 10, day) in OFFICIAL.holidays_in(2024)
        assert not CN.is_working_day(date(2024, 10, day))
    assert date(2024, 10, 1).weekday() == 1  # a weekday that is a holiday is off
    assert CN.is_working_day(date(2024, 10, 8))
    assert CN.is_working_day(date(2024, 10, 12))  # Saturday, make-up working day


def test_2025_make_up_sunday_and_ordinary_days() -> None:
    assert date(2025, 1, 26).weekday() == 6
    assert CN.is_working_day(date(2025, 1, 26))
    assert not CN.is_working_day(date(2025, 3, 1))  # ordinary Saturday
    assert not CN.is_working_day(date(2025, 3, 2))  # ordinary Sunday
    assert CN.is_working_day(date(2025, 3, 3))  # ordinary Monday


def test_2026_data_present() -> None:
    assert CN.is_working_day(date(2026, 1, 4))  # Sunday, make-up working day
    assert not CN.is_working_day(date(2026, 2, 16))  # Monday, Spring Festival
    assert not CN.is_working_day(date(2026, 10, 1))
    assert CN.is_working_day(date(2026, 10, 10))  # Saturday, make-up working day


def test_2024_has_251_working_days() -> None:
    assert len(OFFICIAL.working_days(2024)) == 251
    assert CN.working_days_between(date(2023, 12, 31), date(2024, 12, 31)) == 251


def test_every_day_agrees_with_chinese_calendar_is_workday() -> None:
    d = FIRST
    while d <= LAST:
        assert CN.is_working_day(d) is official_is_working(d), d
        d += timedelta(days=1)


# --- adding working days -----------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2024, 9, 27), 1, date(2024, 9, 29)),  # Fri -> make-up Sunday
        (date(2024, 9, 27), 2, date(2024, 9, 30)),
        (date(2024, 9, 27), 3, date(2024, 10, 8)),  # over the National Day week
        (date(2024, 10, 1), 1, date(2024, 10, 8)),  # start on a holiday
        (date(2024, 9, 29), 1, date(2024, 9, 30)),  # start on a make-up day
        (date(2024, 12, 31), 1, date(2025, 1, 2)),  # 1 January is a holiday
        (date(2025, 1, 24), 1, date(2025, 1, 26)),  # Fri -> make-up Sunday
        (date(2025, 1, 27), 1, date(2025, 2, 5)),  # over the Spring Festival
        (date(2003, 12, 31), 1, date(2004, 1, 2)),  # only 2004 is needed
        (date(2024, 5, 6), 0, date(2024, 5, 6)),
        (date(2030, 5, 6), 0, date(2030, 5, 6)),  # zero needs no data
    ],
)
def test_add_working_days_known(start: date, n: int, expected: date) -> None:
    assert CN.add(start, n) == expected


def test_add_many_working_days_matches_reference() -> None:
    assert CN.add(FIRST, 5000) == naive_add(official_is_working, FIRST, 5000)
    assert CN.working_days_between(FIRST, CN.add(FIRST, 5000)) == 5000


def test_working_days_between_known() -> None:
    assert CN.working_days_between(date(2024, 9, 30), date(2024, 10, 8)) == 1
    assert CN.working_days_between(date(2024, 10, 8), date(2024, 9, 30)) == -1
    assert CN.working_days_between(date(2024, 10, 1), date(2024, 10, 7)) == 0
    assert CN.working_days_between(date(2030, 1, 1), date(2030, 1, 1)) == 0


starts = st.dates(FIRST - timedelta(days=1), date(2025, 6, 30))
amounts = st.integers(1, 300)


@given(starts, amounts)
def test_add_lands_on_a_working_day_and_agrees_with_reference(start: date, n: int) -> None:
    end = CN.add(start, n)
    assert CN.is_working_day(end)
    assert end > start
    assert CN.working_days_between(start, end) == n
    if n <= 60:
        assert end == naive_add(official_is_working, start, n)


@given(starts, amounts)
def test_add_is_strictly_increasing(start: date, n: int) -> None:
    assert CN.add(start, n - 1) < CN.add(start, n) < CN.add(start, n + 1)


@given(starts, st.integers(0, 150), st.integers(0, 150))
def test_add_composes(start: date, n: int, m: int) -> None:
    assert CN.add(start, n + m) == CN.add(CN.add(start, n), m)


@given(starts, starts)
def test_working_days_between_is_antisymmetric(a: date, b: date) -> None:
    assert CN.working_days_between(a, b) == -CN.working_days_between(b, a)


# --- no data: never a guess ----------------------------------------------------


def test_is_working_day_outside_the_data_raises_naming_the_year() -> None:
    with pytest.raises(CalendarError, match="2027") as info:
        CN.is_working_day(date(2027, 3, 1))
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, YearNotCovered)
    assert info.value.year == 2027
    assert info.value.covered == tuple(range(2004, 2027))
    with pytest.raises(CalendarError, match="2003"):
        CN.is_working_day(date(2003, 12, 31))


def test_add_crossing_into_a_year_without_data_raises() -> None:
    with pytest.raises(CalendarError, match=r"2027.*2026-12-01 \+ 40 working days"):
        CN.add(date(2026, 12, 1), 40)
    with pytest.raises(CalendarError, match="2027"):
        CN.working_days_between(date(2026, 12, 1), date(2027, 1, 5))


@given(st.dates(date(2026, 7, 1), LAST), st.integers(1, 500))
def test_result_outside_the_data_raises(start: date, extra: int) -> None:
    left = CN.working_days_between(start, LAST)  # working days still covered
    if left:
        assert CN.add(start, left) <= LAST
    with pytest.raises(YearNotCovered) as info:
        CN.add(start, left + extra)
    assert info.value.year == 2027


# --- host-loaded years ---------------------------------------------------------


def test_host_loaded_2027_makes_2027_queries_work() -> None:
    schedule = OFFICIAL.with_year(2027, holidays=FAKE_2027_HOLIDAYS, workdays=FAKE_2027_WORKDAYS)
    cal = ChinaWorkingDays(schedule)
    assert schedule.years[-1] == 2027
    assert OFFICIAL.years[-1] == 2026  # the original is unchanged
    assert cal.is_working_day(date(2027, 2, 13))  # Saturday, (fake) make-up day
    assert not cal.is_working_day(date(2027, 2, 8))  # Monday, (fake) holiday
    assert cal.is_working_day(date(2027, 2, 15))

    fake_off = {date.fromisoformat(s) for s in FAKE_2027_HOLIDAYS}
    fake_on = {date.fromisoformat(s) for s in FAKE_2027_WORKDAYS}

    def reference(d: date) -> bool:
        if d.year < 2027:
            return official_is_working(d)
        return d in fake_on or (d.weekday() < 5 and d not in fake_off)

    assert cal.add(date(2026, 12, 1), 40) == naive_add(reference, date(2026, 12, 1), 40)
    assert cal.add(date(2026, 12, 1), 200) == naive_add(reference, date(2026, 12, 1), 200)
    with pytest.raises(YearNotCovered, match="2028"):
        cal.add(date(2026, 12, 1), 600)


def test_from_mapping_then_merge_equals_with_year() -> None:
    data = {"2027": {"holidays": FAKE_2027_HOLIDAYS, "workdays": FAKE_2027_WORKDAYS}}
    merged = OFFICIAL.merge(HolidaySchedule.from_mapping(data))
    direct = OFFICIAL.with_year(2027, holidays=FAKE_2027_HOLIDAYS, workdays=FAKE_2027_WORKDAYS)
    assert merged == direct
    assert hash(merged) == hash(direct)


def test_with_year_replaces_a_year_wholesale() -> None:
    bare = OFFICIAL.with_year(2024)
    assert bare.holidays_in(2024) == frozenset()
    assert ChinaWorkingDays(bare).is_working_day(date(2024, 10, 1))  # a plain Tuesday now
    assert not CN.is_working_day(date(2024, 10, 1))


def test_from_mapping_accepts_dates_strings_and_int_keys() -> None:
    schedule = HolidaySchedule.from_mapping(
        {
            2027: {"holidays": [date(2027, 1, 1), "2027-02-06"], "workdays": ["2027-02-13"]},
            "2028": {"holidays": ["2028-01-01"]},  # a missing list is empty
        }
    )
    assert schedule.years == (2027, 2028)
    assert schedule.holidays_in(2027) == {date(2027, 1, 1), date(2027, 2, 6)}  # 6th: Saturday
    assert schedule.workdays_in(2028) == frozenset()


# --- bad schedule data -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"2027": {"holidays": ["2028-01-01"]}}, "2028-01-01 is not in 2027"),
        ({"2027": {"workdays": ["2026-12-26"]}}, "2026-12-26 is not in 2027"),
        (
            {"2027": {"holidays": ["2027-02-13"], "workdays": ["2027-02-13"]}},
            "2027-02-13 is listed both as holiday and as workday",
        ),
        ({"2027": {"workdays": ["2027-02-08"]}}, "2027-02-08 is a Monday"),
        ({"2027": {"holidays": ["2027-02-30"]}}, "'2027-02-30' is neither a date"),
        ({"2027": {"holidays": [datetime(2027, 1, 1)]}}, "is neither a date"),
        ({"2027": {"holidays": [20270101]}}, "is neither a date"),
        ({"2027": {"holidays": "2027-01-01"}}, "expected a list of dates"),
        ({"2027": {"holiday": ["2027-01-01"]}}, "unknown keys"),
        ({"2027": ["2027-01-01"]}, "expected a mapping"),
        ({"next year": {}}, "year must be an integer"),
        ({"2027": {}, 2027: {}}, "more than once"),
        (["2027"], "expected a mapping of year"),
    ],
)
def test_bad_mappings_are_refused(data: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as info:
        HolidaySchedule.from_mapping(data)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, XunchaError)
    assert not isinstance(info.value, CalendarError)


def test_every_problem_is_reported() -> None:
    with pytest.raises(ScheduleError) as info:
        HolidaySchedule.from_mapping(
            {"2027": {"holidays": ["2028-01-01"], "workdays": ["2027-02-08"]}}
        )
    assert len(info.value.problems) == 2


@given(st.dates(date(2027, 1, 1), date(2027, 12, 31)))
def test_only_weekends_can_be_make_up_working_days(d: date) -> None:
    if d.weekday() >= 5:
        assert HolidaySchedule.from_mapping({2027: {"workdays": [d]}}).workdays_in(2027) == {d}
    else:
        with pytest.raises(ScheduleError, match=f"{d.isoformat()} is a {d:%A}"):
            HolidaySchedule.from_mapping({2027: {"workdays": [d]}})


@given(st.dates(date(2027, 1, 1), date(2027, 12, 31)))
def test_any_day_can_be_a_holiday(d: date) -> None:
    schedule = HolidaySchedule.from_mapping({2027: {"holidays": [d]}})
    assert not ChinaWorkingDays(schedule).is_working_day(d)


def test_with_year_validates() -> None:
    with pytest.raises(ScheduleError, match="2027-02-08 is a Monday"):
        OFFICIAL.with_year(2027, workdays=["2027-02-08"])


# --- months and calendar days ------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year
        (date(2023, 1, 30), 1, date(2023, 2, 28)),
        (date(2024, 1, 30), 1, date(2024, 2, 29)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 1, 31), 2, date(2024, 3, 31)),  # from the start, not step by step
        (date(2023, 12, 31), 2, date(2024, 2, 29)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 11, 15), 3, date(2025, 2, 15)),
        (date(2024, 11, 15), 0, date(2024, 11, 15)),
    ],
)
def test_months_known(start: date, n: int, expected: date) -> None:
    assert Months().add(start, n) == expected


@given(st.dates(date(1900, 1, 1), date(2200, 12, 31)), st.integers(0, 1200))
def test_months_clamp_and_never_overflow(start: date, n: int) -> None:
    end = Months().add(start, n)
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == n
    last = stdlib_calendar.monthrange(end.year, end.month)[1]
    assert end.day == min(start.day, last)


def test_calendar_days() -> None:
    assert CalendarDays().add(date(2024, 2, 28), 2) == date(2024, 3, 1)
    assert CalendarDays().add(date(2024, 10, 1), 7) == date(2024, 10, 8)


@given(st.dates(max_value=date(9000, 1, 1)), st.integers(0, 10_000))
def test_calendar_days_property(start: date, n: int) -> None:
    assert CalendarDays().add(start, n) - start == timedelta(days=n)


# --- common contract -----------------------------------------------------------------


@pytest.mark.parametrize("cal", [CalendarDays(), Months(), CN], ids=lambda c: c.name)
def test_negative_amounts_and_datetimes_are_refused(cal: Calendar) -> None:
    with pytest.raises(ValueError, match="forward only"):
        cal.add(date(2024, 5, 6), -1)
    with pytest.raises(TypeError, match="must be a date"):
        cal.add(datetime(2024, 5, 6, 9), 1)


def test_calendars_are_immutable_hashable_values() -> None:
    assert isinstance(CN, WorkingDayCalendar)
    assert isinstance(Months(), Calendar)
    assert {CalendarDays().name, Months().name, CN.name} == {
        "calendar_days",
        "months",
        "china_working_days",
    }
    again = ChinaWorkingDays(HolidaySchedule.from_chinese_calendar())
    assert again == CN
    assert hash(again) == hash(CN)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        CN.schedule = OFFICIAL  # type: ignore[misc]


def test_calendars_survive_pickling() -> None:  # e.g. sent to worker processes
    copy = pickle.loads(pickle.dumps(CN))
    assert copy == CN
    assert hash(copy) == hash(CN)
    assert copy.add(date(2024, 9, 27), 3) == date(2024, 10, 8)


# --- the optional dependency ------------------------------------------------------------


def test_missing_chinese_calendar_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "chinese_calendar", None)
    with pytest.raises(ImportError, match=r"pip install 'xuncha_flow\[calendar\]'"):
        HolidaySchedule.from_chinese_calendar()


def test_chinese_calendar_is_imported_lazily() -> None:
    code = "import sys, xuncha_flow._calendar; assert 'chinese_calendar' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
