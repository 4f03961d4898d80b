"""Clocks: the only place where xuncha_flow learns what time it is.

The core never reads the wall clock. Every command is stamped with the time of an
injected :class:`Clock`; :class:`SystemClock` is the one implementation that reads
the wall clock, :class:`ManualClock` is the controllable clock for tests and
simulations.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._errors import InvalidArgument

__all__ = ["DEFAULT_TIMEZONE", "Clock", "ManualClock", "SystemClock", "require_aware"]


def _shanghai() -> tzinfo:
    try:
        return ZoneInfo("Asia/Shanghai")
    except ZoneInfoNotFoundError:  # pragma: no cover - depends on the host's tz database
        # China has kept UTC+8 without daylight saving time since 1991.
        return timezone(timedelta(hours=8), "Asia/Shanghai")


DEFAULT_TIMEZONE: tzinfo = _shanghai()
"""Day boundaries are taken in this zone unless a clock says otherwise."""


def require_aware(moment: datetime, what: str = "datetime") -> datetime:
    """Return ``moment`` if it is an aware datetime, else raise
    :class:`~xuncha_flow.InvalidArgument` (a ``ValueError``)."""
    if not isinstance(moment, datetime):
        raise InvalidArgument(f"{what} must be a timezone-aware datetime, got {moment!r}")
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise InvalidArgument(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return moment


class Clock(ABC):
    """Where time comes from. ``now()`` returns an aware datetime."""

    timezone: tzinfo = DEFAULT_TIMEZONE

    @abstractmethod
    def now(self) -> datetime:
        """The current moment, timezone-aware."""

    def today(self) -> date:
        """The current date in this clock's time zone (its day boundaries)."""
        return self.now().astimezone(self.timezone).date()


class SystemClock(Clock):
    """The wall clock. The only object in xuncha_flow that reads it."""

    def __init__(self, tz: tzinfo = DEFAULT_TIMEZONE) -> None:
        self.timezone = tz

    def now(self) -> datetime:
        return datetime.now(self.timezone)


class ManualClock(Clock):
    """A clock that moves only when told to: for tests and simulations.

    >>> from datetime import datetime, timedelta
    >>> clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=DEFAULT_TIMEZONE))
    >>> clock.advance(days=1).isoformat()
    '2026-03-03T09:00:00+08:00'
    """

    def __init__(self, start: datetime, tz: tzinfo | None = None) -> None:
        self._now = require_aware(start, "start")
        self.timezone = tz if tz is not None else (start.tzinfo or DEFAULT_TIMEZONE)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment``; a clock never runs backwards."""
        require_aware(moment, "moment")
        with self._lock:
            if moment < self._now:
                raise InvalidArgument(
                    f"a clock never runs backwards: {moment.isoformat()} < {self._now.isoformat()}"
                )
            self._now = moment
            return moment

    def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> datetime:
        """Move forward by the given amount and return the new time."""
        step = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if step < timedelta(0):
            raise InvalidArgument("a clock never runs backwards")
        with self._lock:
            self._now = self._now + step
            return self._now
