"""Calendars: how "N days", "N months" or "N working days" after a date becomes a date.

A calendar counts forward from a start date that itself does not count
(《民法典》第二百零一条: 开始的当日不计入): ``add(start, n)`` is the last day of a period
of ``n`` units beginning after ``start``; ``add(start, 0)`` is ``start``; a negative ``n`` raises
:class:`ValueError` (deadlines count forward only); a ``datetime`` raises :class:`TypeError`.

- :class:`CalendarDays`: ``start + n`` days.
- :class:`Months`, the **end-of-month rule**: the same day of the month ``n`` months on,
  or the last day of that month if it is shorter (《民法典》第二百零二条: 没有对应日的，
  月末日为期间的最后一日). One month after 31, 30 or 29 January is 28 February (29 in a
  leap year); one month after 31 March is 30 April. Clamping does not compose, so add
  from the original start: 31 Jan + 2 months is 31 March, not 28 March.
- :class:`ChinaWorkingDays`, the **working-day rule** (工作日): a day is a working day if
  it is an official make-up working day (调休上班, a Saturday or Sunday), or if it is a
  Monday to Friday that is not an official holiday. ``add(start, n)`` is the ``n``-th
  working day strictly after ``start``, whether or not ``start`` is one.

Holidays and make-up working days come from the State Council General Office's
yearly notice (国务院办公厅关于部分节假日安排的通知), published each November or
December for the next year. A :class:`HolidaySchedule` holds them per year, loaded
from the optional package ``chinese-calendar`` (``pip install 'xuncha_flow[calendar]'``)
or from the host, which can add next year's notice before the package catches up.
A year without data is never guessed: :class:`YearNotCovered` (a
:class:`~xuncha_flow.CalendarError`) is raised. Bad schedule data raises
:class:`ScheduleError` (a :class:`ValueError`).

Not done here: moving a deadline off a holiday (《民法典》第二百零三条) is policy.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import attrs

from ._errors import CalendarError, XunchaError

__all__ = [
    "Calendar",
    "CalendarDays",
    "ChinaWorkingDays",
    "HolidaySchedule",
    "Months",
    "ScheduleError",
    "WorkingDayCalendar",
    "YearNotCovered",
]

_ONE_DAY = timedelta(days=1)
_YearData = Mapping[str, Iterable[date | str]]


class ScheduleError(XunchaError, ValueError):
    """Holiday schedule data is malformed or inconsistent; ``problems`` lists them all."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid holiday schedule: " + "; ".join(self.problems))


class YearNotCovered(CalendarError):
    """The holiday schedule has no data for ``year``; ``covered`` lists the years it has."""

    def __init__(self, year: int, covered: Sequence[int], needed_for: str = "") -> None:
        self.year = year
        self.covered = tuple(covered)
        why = f" (needed for {needed_for})" if needed_for else ""
        super().__init__(
            f"no holiday schedule for {year}{why}; covered: {_spans(self.covered) or 'none'}. "
            f"Load the State Council's notice for {year} with "
            f"HolidaySchedule.with_year({year}, holidays=..., workdays=...)"
        )


def _spans(years: Sequence[int]) -> str:
    """``(2004, ..., 2026)`` -> ``'2004–2026'`` if there is no gap, else a list."""
    if len(years) > 1 and years[-1] - years[0] + 1 == len(years):
        return f"{years[0]}–{years[-1]}"
    return ", ".join(map(str, years))


def _check(d: date, amount: int = 0, what: str = "start") -> None:
    if isinstance(d, datetime) or not isinstance(d, date):
        raise TypeError(f"{what} must be a date, got {d!r}; use the clock's .today()")
    if amount < 0:
        raise ValueError(f"amount must be >= 0 (deadlines count forward only), got {amount}")


class Calendar(ABC):
    """A way of counting a period forward from a start date."""

    __slots__ = ()
    name: ClassVar[str]

    @abstractmethod
    def add(self, start: date, amount: int) -> date:
        """The last day of a period of ``amount`` units beginning after ``start``."""


class WorkingDayCalendar(Calendar):
    """A calendar that counts working days only."""

    __slots__ = ()

    @abstractmethod
    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day."""

    @abstractmethod
    def working_days_between(self, a: date, b: date) -> int:
        """The number of working days in ``(a, b]``; negative if ``b < a``."""


@attrs.frozen
class CalendarDays(Calendar):
    """Calendar days (自然日): ``add(start, n) == start + n days``."""

    name: ClassVar[str] = "calendar_days"

    def add(self, start: date, amount: int) -> date:
        _check(start, amount)
        return start + timedelta(days=amount)


@attrs.frozen
class Months(Calendar):
    """Calendar months, clamped to the end of a shorter month (see the module docs)."""

    name: ClassVar[str] = "months"

    def add(self, start: date, amount: int) -> date:
        _check(start, amount)
        year, month0 = divmod(start.year * 12 + start.month - 1 + amount, 12)
        last = _stdlib_calendar.monthrange(year, month0 + 1)[1]
        return date(year, month0 + 1, min(start.day, last))


@attrs.frozen
class _Year:
    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    working: tuple[date, ...] = attrs.field(init=False, eq=False, repr=False)

    @working.default
    def _working(self) -> tuple[date, ...]:
        d, days = date(self.year, 1, 1), []
        while d.year == self.year:
            if d in self.workdays or (d.weekday() < 5 and d not in self.holidays):
                days.append(d)
            d += _ONE_DAY
        return tuple(days)


def _parse_dates(year: int, kind: str, values: Any, problems: list[str]) -> frozenset[date]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        problems.append(f"{year} {kind}: expected a list of dates, got {values!r}")
        return frozenset()
    out: set[date] = set()
    for v in values:
        try:  # a datetime is refused: which day it falls on depends on a time zone
            d = v if isinstance(v, date) and not isinstance(v, datetime) else date.fromisoformat(v)
        except (TypeError, ValueError):
            problems.append(f"{year} {kind}: {v!r} is neither a date nor YYYY-MM-DD")
            continue
        if d.year != year:
            problems.append(f"{year} {kind}: {d.isoformat()} is not in {year}")
        out.add(d)
    return frozenset(out)


def _build_year(year: Any, holidays: Any, workdays: Any, problems: list[str]) -> _Year | None:
    """Validate one year's data, appending to ``problems``; None if it is unusable."""
    if isinstance(year, bool) or not isinstance(year, int) or not 1 <= year <= 9999:
        problems.append(f"year must be an integer in 1..9999, got {year!r}")
        return None
    before = len(problems)
    off = _parse_dates(year, "holidays", holidays, problems)
    on = _parse_dates(year, "workdays", workdays, problems)
    for d in sorted(off & on):
        problems.append(f"{year}: {d.isoformat()} is listed both as holiday and as workday")
    for d in sorted(on):
        if d.weekday() < 5:
            problems.append(
                f"{year} workdays: {d.isoformat()} is a {d:%A}; make-up working days "
                "(调休上班) are Saturdays or Sundays"
            )
    return _Year(year, off, on) if len(problems) == before else None


def _sorted_years(years: Iterable[_Year]) -> tuple[_Year, ...]:
    return tuple(sorted(years, key=lambda y: y.year))


@attrs.frozen(repr=False, cache_hash=True)
class HolidaySchedule:
    """Official holidays and make-up working days, per calendar year (see the module
    docs). Build one with :meth:`from_chinese_calendar`, :meth:`from_mapping` or
    :meth:`with_year`. Immutable and picklable: ``with_year`` and ``merge`` return copies.

    A date belongs to the year it falls in, whichever notice announced it: a notice
    that moves 31 December into next year's New Year holiday amends the earlier year.
    """

    _years: tuple[_Year, ...] = attrs.field(converter=_sorted_years)
    _index: dict[int, _Year] = attrs.field(init=False, eq=False)  # never mutated

    @_index.default
    def _make_index(self) -> dict[int, _Year]:
        return {y.year: y for y in self._years}

    @classmethod
    def from_chinese_calendar(cls) -> HolidaySchedule:
        """Every year the installed ``chinese-calendar`` package covers (1.11.0: 2004–2026).

        :raises ImportError: the optional package is not installed.
        """
        try:
            from chinese_calendar import constants
        except ImportError as exc:
            raise ImportError(
                "the official holiday schedule needs the optional package chinese-calendar: "
                "pip install 'xuncha_flow[calendar]'",
                name="chinese_calendar",
            ) from exc
        off: dict[date, str] = constants.holidays
        on: dict[date, str] = constants.workdays
        years = {d.year for d in off} | {d.year for d in on}  # covered: every year min..max
        data: dict[int, dict[str, list[date]]] = {
            y: {"holidays": [], "workdays": []} for y in range(min(years), max(years) + 1)
        }
        for kind, days in (("holidays", off), ("workdays", on)):
            for d in days:
                data[d.year][kind].append(d)
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Mapping[Any, _YearData]) -> HolidaySchedule:
        """A schedule from host data, e.g. ``{"2027": {"holidays": ["2027-01-01", ...],
        "workdays": ["2027-02-07", ...]}}``. Years are ints or digit strings; dates are
        :class:`date` objects or ISO strings; a missing list is empty. Holidays on weekends
        are allowed.

        :raises ScheduleError: listing every problem: a date outside its year, a day both
            holiday and workday, a make-up workday on a weekday, unknown keys, bad values.
        """
        if not isinstance(data, Mapping):
            raise ScheduleError([f"expected a mapping of year to data, got {data!r}"])
        problems: list[str] = []
        years: list[_Year] = []
        for key, entry in data.items():
            year: Any = int(key) if isinstance(key, str) and key.isdigit() else key
            if not isinstance(entry, Mapping):
                problems.append(f"{key}: expected a mapping with holidays/workdays, got {entry!r}")
                continue
            if unknown := sorted(set(entry) - {"holidays", "workdays"}, key=str):
                problems.append(f"{key}: unknown keys {unknown}; expected holidays, workdays")
            built = _build_year(
                year, entry.get("holidays", ()), entry.get("workdays", ()), problems
            )
            if built is not None:
                years.append(built)
        if len({y.year for y in years}) != len(years):
            problems.append("a year is given more than once")
        if problems:
            raise ScheduleError(problems)
        return cls(years)

    def with_year(
        self, year: int, *, holidays: Iterable[date | str] = (), workdays: Iterable[date | str] = ()
    ) -> HolidaySchedule:
        """A copy with ``year``'s data added, or replaced wholesale if already present.

        To amend a year, start from its data: ``s.with_year(2026,
        holidays=s.holidays_in(2026) | {extra}, workdays=s.workdays_in(2026))``.
        """
        return self.merge(self.from_mapping({year: {"holidays": holidays, "workdays": workdays}}))

    def merge(self, other: HolidaySchedule) -> HolidaySchedule:
        """A copy with every year of ``other`` added; ``other`` wins where both have a year."""
        return HolidaySchedule(
            [y for y in self._years if y.year not in other._index] + [*other._years]
        )

    @property
    def years(self) -> tuple[int, ...]:
        """The covered years, ascending."""
        return tuple(y.year for y in self._years)

    def holidays_in(self, year: int) -> frozenset[date]:
        """The official days off in ``year`` (weekend days of a holiday block included)."""
        return self._year(year).holidays

    def workdays_in(self, year: int) -> frozenset[date]:
        """The make-up working days (调休上班) in ``year``."""
        return self._year(year).workdays

    def working_days(self, year: int) -> tuple[date, ...]:
        """Every working day of ``year``, ascending."""
        return self._year(year).working

    def _year(self, year: int) -> _Year:
        try:
            return self._index[year]
        except KeyError:
            raise YearNotCovered(year, self.years) from None

    def __repr__(self) -> str:
        return f"HolidaySchedule(years={_spans(self.years) or 'none'})"


@attrs.frozen
class ChinaWorkingDays(WorkingDayCalendar):
    """Working days in mainland China under ``schedule`` (see the module docs).

    Counting uses a precomputed, sorted list of each year's working days and
    :func:`bisect`, so adding hundreds of working days costs a few lookups.
    """

    name: ClassVar[str] = "china_working_days"
    schedule: HolidaySchedule

    def is_working_day(self, d: date) -> bool:
        """:raises YearNotCovered: the schedule has no data for ``d.year``."""
        _check(d, what="d")
        days = self.schedule.working_days(d.year)
        i = bisect_left(days, d)
        return i < len(days) and days[i] == d

    def add(self, start: date, amount: int) -> date:
        """The ``amount``-th working day strictly after ``start``.

        :raises YearNotCovered: the count reaches a year the schedule does not cover.
        """
        _check(start, amount)
        if amount == 0:
            return start
        after, left = start + _ONE_DAY, amount
        year = after.year
        try:
            days = self.schedule.working_days(year)
            i = bisect_left(days, after)
            while left > len(days) - i:
                left -= len(days) - i
                year += 1
                days, i = self.schedule.working_days(year), 0
        except YearNotCovered as exc:
            why = f"{start.isoformat()} + {amount} working days"
            raise YearNotCovered(exc.year, exc.covered, why) from None
        return days[i + left - 1]

    def working_days_between(self, a: date, b: date) -> int:
        """The number of working days in ``(a, b]``, for "how much time has passed";
        ``-working_days_between(b, a)`` if ``b < a``.

        :raises YearNotCovered: the interval touches a year the schedule does not cover.
        """
        _check(a, what="a")
        _check(b, what="b")
        if b < a:
            return -self.working_days_between(b, a)
        if a == b:
            return 0
        lo, total = a + _ONE_DAY, 0
        try:
            for year in range(lo.year, b.year + 1):
                days = self.schedule.working_days(year)
                total += bisect_right(days, b) - bisect_left(days, lo)
        except YearNotCovered as exc:
            why = f"working days from {a.isoformat()} to {b.isoformat()}"
            raise YearNotCovered(exc.year, exc.covered, why) from None
        return total
