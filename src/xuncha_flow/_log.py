"""The event log port and its in-memory adapter.

An :class:`EventLog` keeps each round's events in order. ``append`` is atomic and
optimistic: it writes all of a command's events or none, and only if the stream is
still at ``expected_version``; otherwise it raises
:class:`~xuncha_flow.ConcurrencyConflict`. Database adapters implement the same
interface and pass the same contract tests.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import attrs

from ._errors import ConcurrencyConflict, LogCorrupted
from ._events import ChainReport, Event, genesis_hash, verify_chain

__all__ = ["EventLog", "InMemoryEventLog", "LogReport"]


@attrs.frozen
class LogReport:
    """The outcome of :meth:`EventLog.verify` over one or more streams."""

    streams: tuple[ChainReport, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.streams)

    @property
    def first_bad(self) -> ChainReport | None:
        return next((r for r in self.streams if not r.ok), None)

    @property
    def events(self) -> int:
        return sum(r.checked for r in self.streams)

    def __bool__(self) -> bool:
        return self.ok


class EventLog(ABC):
    """Where events are kept. Implementations must be safe to share between threads."""

    @abstractmethod
    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        """Append ``events`` (versions ``expected_version + 1`` on) atomically, or raise
        :class:`ConcurrencyConflict` if the stream is no longer at ``expected_version``."""

    @abstractmethod
    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        """The stream's events with version > ``after``, in order."""

    @abstractmethod
    def streams(self) -> list[str]:
        """Every stream id, in creation order."""

    @abstractmethod
    def version(self, stream: str) -> int:
        """The version of the stream's last event (0 for an empty or unknown stream)."""

    # -- the due index: optional, for sweeps shared between workers --------------------
    def record(
        self,
        stream: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        due: datetime | None = None,
    ) -> None:
        """:meth:`append` the events and, in the same atomic step, note when the
        stream next has something due (its earliest ladder rung or check; None when
        nothing is pending) and end any sweep lease on it. Logs without a due index
        just append."""
        self.append(stream, expected_version, events)

    def claim_due(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[str] | None:
        """Lease to ``worker`` the streams due at or before ``at`` that no other worker
        holds (a lease lapses after ``lease``, so a crashed worker's streams are taken
        over), earliest first. None when the log keeps no due index: the engine's own
        agenda then decides what is due."""
        return None

    def release(self, stream: str, *, due: datetime | None, worker: str) -> None:
        """After a sweep that recorded nothing: note the stream's next due time and
        end ``worker``'s lease on it. Logs without a due index have nothing to do."""
        del stream, due, worker

    def verify(self, stream: str | None = None) -> LogReport:
        """Check the hash chain of one stream or of all; the report names the first
        bad event of each stream."""
        names = [stream] if stream is not None else self.streams()
        reports = []
        for name in names:
            report = verify_chain(name, self.read(name))
            if report.ok and report.checked != self.version(name):
                report = attrs.evolve(
                    report,
                    bad_version=report.checked + 1,
                    problem=f"stream head is at {self.version(name)} but only "
                    f"{report.checked} events could be read",
                )
            reports.append(report)
        return LogReport(tuple(reports))


def check_batch(stream: str, expected_version: int, head: str, events: Sequence[Event]) -> None:
    """Refuse a batch that does not continue the stream (shared by all adapters)."""
    prev = head
    for offset, event in enumerate(events, start=1):
        if event.stream != stream or event.version != expected_version + offset:
            raise LogCorrupted(
                f"event {event.id} is version {event.version} of {event.stream!r}, expected "
                f"{expected_version + offset} of {stream!r}",
                stream=stream,
                version=event.version,
            )
        if event.prev_hash != prev:
            raise LogCorrupted(
                f"event {event.id} does not link to the stream head",
                stream=stream,
                version=event.version,
            )
        prev = event.hash


@attrs.define
class _Due:
    at: datetime | None = None
    worker: str | None = None
    leased_until: datetime | None = None


class InMemoryEventLog(EventLog):
    """An event log in a dict: for tests, simulations and single-process hosts.
    It keeps a due index, so several engines sharing it split sweeps like workers
    sharing a database."""

    def __init__(self) -> None:
        self._streams: dict[str, list[Event]] = {}
        self._due: dict[str, _Due] = {}
        self._lock = threading.Lock()

    def record(
        self,
        stream: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        due: datetime | None = None,
    ) -> None:
        self.append(stream, expected_version, events)  # subclasses may wrap append
        with self._lock:
            self._due[stream] = _Due(at=due)

    def claim_due(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[str] | None:
        with self._lock:
            free = [
                (d.at, s)
                for s, d in self._due.items()
                if d.at is not None
                and d.at <= at
                and (d.leased_until is None or d.leased_until <= at or d.worker == worker)
            ]
            free.sort()
            taken = [s for _, s in free[:limit]] if limit is not None else [s for _, s in free]
            for s in taken:
                self._due[s] = attrs.evolve(self._due[s], worker=worker, leased_until=at + lease)
            return taken

    def release(self, stream: str, *, due: datetime | None, worker: str) -> None:
        with self._lock:
            current = self._due.get(stream)
            if current is None or current.worker in (None, worker):
                self._due[stream] = _Due(at=due)

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        with self._lock:
            self._append(stream, expected_version, events)

    def _append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        """Append under the log's lock (held by the caller)."""
        current = self._streams.get(stream, [])
        if len(current) != expected_version:
            raise ConcurrencyConflict(stream, expected_version, len(current))
        head = current[-1].hash if current else genesis_hash(stream)
        check_batch(stream, expected_version, head, events)
        self._streams.setdefault(stream, []).extend(events)

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        with self._lock:
            events = list(self._streams.get(stream, ())[max(after, 0) :])
        return iter(events)

    def streams(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def version(self, stream: str) -> int:
        with self._lock:
            return len(self._streams.get(stream, ()))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._streams.values())
