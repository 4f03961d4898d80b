"""The event log port and its in-memory adapter.

An :class:`EventLog` keeps each round's events in order. ``append`` is atomic and
optimistic: it writes all of a command's events or none, and only if the stream is
still at ``expected_version``; otherwise it raises
:class:`~xuncha_flow.ConcurrencyConflict`. Database adapters implement the same
interface and pass the same contract tests.

Beside the events a log keeps, in the same atomic step: the due index (when each
stream next has something for a sweep, and which worker leases it) and the outbox
(notifications to deliver after commit, :mod:`xuncha_flow._outbox`). Each log chains
its events with one hash algorithm (:attr:`EventLog.hash_algorithm`), fixed when it
is created.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from ._clock import require_aware
from ._errors import (
    CheckpointInvalid,
    ConcurrencyConflict,
    DuplicateKey,
    InvalidArgument,
    LogCorrupted,
    StoreError,
)
from ._events import (
    DEFAULT_HASH,
    ChainReport,
    Event,
    check_algorithm,
    genesis_hash,
    short_of_anchor,
    verify_chain,
)
from ._outbox import Message

if TYPE_CHECKING:
    from ._checkpoints import Checkpoints

__all__ = ["DueEntry", "EventLog", "Finding", "InMemoryEventLog", "LogReport", "check_key"]

MAX_KEY = 200
"""The longest stream id, event id, subject, command id or worker name a log keeps
(event types and message topics: 100; outbox message keys: :data:`MAX_MESSAGE_KEY`)."""
MAX_MESSAGE_KEY = 320
"""The longest outbox message key: an event id, a colon and a topic."""


def check_key(value: object, what: str, limit: int = MAX_KEY) -> str:
    """``value`` if it is a string a log can store as a key, else raise
    :class:`~xuncha_flow.InvalidArgument`: no NUL character (PostgreSQL refuses it in
    text) and at most ``limit`` characters. Every adapter checks its keys with this,
    so all refuse the same input the same way, before any database sees it."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character: {value!r}")
    if len(value) > limit:
        raise InvalidArgument(f"{what} is {len(value)} characters long; at most {limit}")
    return value


def check_message(message: Message) -> None:
    """Refuse a message whose key or text columns a log cannot store."""
    check_key(message.key, "message key", MAX_MESSAGE_KEY)
    check_key(message.stream, "message stream")
    check_key(message.subject, "message subject")
    check_key(message.topic, "message topic", 100)
    check_key(message.event_type, "message event type", 100)
    require_aware(message.created_at, "message created_at")


@attrs.frozen
class Finding:
    """Something :meth:`~xuncha_flow.Engine.verify` or a store's ``verify`` found
    beside the hash chains: a snapshot that does not equal the replay of its events,
    a due-index entry or a fired-rung row that does not agree with the events.
    ``kind`` is ``"snapshot"``, ``"due_index"``, ``"replay"``, ``"rungs"`` or
    ``"projections"``."""

    stream: str
    kind: str
    message: str
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.stream}: {self.message}"


@attrs.frozen
class LogReport:
    """The outcome of :meth:`EventLog.verify` over one or more streams: a chain
    report per stream and any other ``findings``."""

    streams: tuple[ChainReport, ...]
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.streams) and not self.findings

    @property
    def first_bad(self) -> ChainReport | None:
        """The first stream, in the log's order, whose chain does not hold (or no
        longer reaches its checkpoint)."""
        return next((r for r in self.streams if not r.ok), None)

    @property
    def events(self) -> int:
        return sum(r.checked for r in self.streams)

    def __bool__(self) -> bool:
        return self.ok


@attrs.frozen
class DueEntry:
    """A stream's entry in the due index: when it is next due (None: nothing
    pending) and the sweep lease on it, if any."""

    at: datetime | None = None
    worker: str | None = None
    leased_until: datetime | None = None


class EventLog(ABC):
    """Where events are kept. Implementations must be safe to share between threads."""

    @property
    def hash_algorithm(self) -> str:
        """The hash the log's events are chained with (see
        :data:`~xuncha_flow.HASH_ALGORITHMS`); fixed when the log is created."""
        return DEFAULT_HASH

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
        messages: Sequence[Message] = (),
    ) -> None:
        """:meth:`append` the events and, in the same atomic step, note when the
        stream next has something due (its earliest ladder rung or check; None when
        nothing is pending), end any sweep lease on it, and put ``messages`` in the
        outbox. A message key already in the outbox raises
        :class:`~xuncha_flow.DuplicateKey` and nothing is written.

        Logs without a due index or an outbox (a minimal adapter) just append; one
        that keeps no outbox refuses a batch with messages
        (:class:`~xuncha_flow.StoreError`) rather than lose them."""
        if messages:
            raise StoreError(
                f"{type(self).__name__} keeps no outbox: the {len(messages)} message(s) of "
                f"this command cannot be recorded with its events"
            )
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

    def due_entry(self, stream: str) -> DueEntry | None:
        """The stream's entry in the due index (None: no such stream, or a log
        without a due index)."""
        del stream
        return None

    def reset_due(self, stream: str, due: datetime | None) -> None:
        """Set the stream's next due time and end any lease on it, whoever holds it:
        for repairing the index from the events (:meth:`Engine.rebuild_indexes
        <xuncha_flow.Engine.rebuild_indexes>`), not for sweeps."""
        del stream, due

    def rebuild_index(self) -> int:
        """Rebuild what the log derives from its events alone (a SQL log: the
        fired-rung keys and the projections); return the number of events read.
        Logs that derive nothing have nothing to do."""
        return 0

    # -- the outbox: optional, for notifications delivered after commit ------------
    def claim_messages(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[Message]:
        """Lease to ``worker`` the undelivered messages available at ``at`` that no
        other worker holds (a lease lapses after ``lease``), oldest first; each
        claim counts as an attempt. A log without an outbox has none."""
        del at, worker, lease, limit
        return []

    def ack(self, key: str, *, at: datetime) -> None:
        """Mark the message delivered at ``at`` (whoever holds its lease: delivered
        is delivered) and end its lease."""
        del key, at

    def fail(self, key: str, *, error: str, retry_at: datetime) -> None:
        """A delivery failed with ``error``: end the lease and make the message
        available again at ``retry_at``."""
        del key, error, retry_at

    def messages(self, *, stream: str | None = None, pending: bool | None = None) -> list[Message]:
        """The outbox's messages, oldest first: of one stream, and only the
        undelivered (``pending=True``) or delivered (False) ones."""
        del stream, pending
        return []

    # -- verification --------------------------------------------------------------
    def verify(
        self, stream: str | None = None, *, checkpoints: Checkpoints | None = None
    ) -> LogReport:
        """Check the hash chain of one stream or of all; the report names the first
        bad event of each stream. With ``checkpoints`` (signed, see
        :func:`~xuncha_flow.make_checkpoints`), each stream's chain must also still
        reach the head each checkpoint recorded: a cut-off tail or a chain rewritten
        and re-sealed from some event on is reported, naming the stream; a stream a
        checkpoint names that the log no longer has is reported too."""
        anchors = self._anchors(checkpoints)
        names = [stream] if stream is not None else self.streams()
        reports = []
        for name in names:
            report = verify_chain(name, self.read(name), self.hash_algorithm, anchors.get(name))
            if report.ok and report.checked != self.version(name):
                report = attrs.evolve(
                    report,
                    bad_version=report.checked + 1,
                    problem=f"stream head is at {self.version(name)} but only "
                    f"{report.checked} events could be read",
                )
            reports.append(report)
        reports += self._vanished(anchors, names, stream)
        return LogReport(tuple(reports))

    def _anchors(self, checkpoints: Checkpoints | None) -> dict[str, dict[int, str]]:
        """Version → hash per stream from ``checkpoints`` made for this log's hash."""
        if checkpoints is None:
            return {}
        if checkpoints.hash_algorithm != self.hash_algorithm:
            raise CheckpointInvalid(
                f"the checkpoints were made for a log hashed with "
                f"{checkpoints.hash_algorithm!r}; this log uses {self.hash_algorithm!r}"
            )
        return checkpoints.anchors()

    def _vanished(
        self, anchors: dict[str, dict[int, str]], checked: list[str], only: str | None
    ) -> list[ChainReport]:
        """Reports for streams a checkpoint names that are not in the log."""
        seen = set(checked) if only is not None else set(self.streams())
        return [
            ChainReport(
                name,
                0,
                genesis_hash(name, self.hash_algorithm),
                bad_version=min(pins),
                problem=short_of_anchor(0, min(pins)),
            )
            for name, pins in sorted(anchors.items())
            if name not in seen and (only is None or name == only)
        ]


def check_batch(
    stream: str,
    expected_version: int,
    head: str,
    events: Sequence[Event],
    algorithm: str = DEFAULT_HASH,
) -> None:
    """Refuse a batch that does not continue the stream or whose events do not match
    their hashes under the log's ``algorithm`` (shared by all adapters)."""
    prev = head
    for offset, event in enumerate(events, start=1):
        for what, value, limit in (
            ("stream", event.stream, MAX_KEY),
            ("event id", event.id, MAX_KEY),
            ("event subject", event.subject, MAX_KEY),
            ("command id", event.command_id, MAX_KEY),
            ("event type", event.type, 100),
        ):
            check_key(value, what, limit)
        if event.computed_hash(algorithm) != event.hash:
            raise LogCorrupted(
                f"event {event.id} does not match its {algorithm} hash; it was not "
                "sealed for this log or was changed",
                stream=stream,
                version=event.version,
            )
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
class _Slot:
    """An outbox message and its lease, in memory."""

    message: Message
    available_at: datetime
    worker: str | None = None
    leased_until: datetime | None = None


class InMemoryEventLog(EventLog):
    """An event log in a dict: for tests, simulations and single-process hosts.
    It keeps a due index and an outbox, so several engines sharing it split sweeps
    and deliveries like workers sharing a database. ``hash_algorithm`` is the hash
    its events are chained with (``"sha256"`` or ``"sm3"``)."""

    def __init__(self, *, hash_algorithm: str = DEFAULT_HASH) -> None:
        self._hash = check_algorithm(hash_algorithm)
        self._streams: dict[str, list[Event]] = {}
        self._ids: set[str] = set()
        self._due: dict[str, DueEntry] = {}
        self._outbox: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    @property
    def hash_algorithm(self) -> str:
        return self._hash

    def record(
        self,
        stream: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        due: datetime | None = None,
        messages: Sequence[Message] = (),
    ) -> None:
        check_key(stream, "stream")
        if due is not None:
            require_aware(due, "due")
        for message in messages:
            check_message(message)
        keys = [m.key for m in messages]
        with self._lock:
            taken = [k for k in keys if k in self._outbox]
            if taken or len(set(keys)) != len(keys):
                raise DuplicateKey("outbox.key", f"message key {(taken or keys)[0]!r}")
        self.append(stream, expected_version, events)  # subclasses may wrap append
        with self._lock:
            self._due[stream] = DueEntry(at=due)
            for message in messages:
                self._outbox[message.key] = _Slot(message, message.created_at)

    def due_entry(self, stream: str) -> DueEntry | None:
        check_key(stream, "stream")
        with self._lock:
            return self._due.get(stream)

    def reset_due(self, stream: str, due: datetime | None) -> None:
        check_key(stream, "stream")
        if due is not None:
            require_aware(due, "due")
        with self._lock:
            if stream in self._streams:
                self._due[stream] = DueEntry(at=due)

    def claim_messages(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[Message]:
        require_aware(at, "at")
        check_key(worker, "worker")
        with self._lock:
            free = [
                s
                for s in self._outbox.values()
                if s.message.delivered_at is None
                and s.available_at <= at
                and (s.leased_until is None or s.leased_until <= at)
            ]
            free.sort(key=lambda s: (s.available_at, s.message.created_at, s.message.key))
            taken = free[:limit] if limit is not None else free
            out = []
            for slot in taken:
                slot.worker, slot.leased_until = worker, at + lease
                slot.message = attrs.evolve(slot.message, attempts=slot.message.attempts + 1)
                out.append(slot.message)
            return out

    def ack(self, key: str, *, at: datetime) -> None:
        check_key(key, "message key", MAX_MESSAGE_KEY)
        require_aware(at, "at")
        with self._lock:
            slot = self._outbox.get(key)
            if slot is not None and slot.message.delivered_at is None:
                slot.message = attrs.evolve(slot.message, delivered_at=at)
                slot.worker = slot.leased_until = None

    def fail(self, key: str, *, error: str, retry_at: datetime) -> None:
        check_key(key, "message key", MAX_MESSAGE_KEY)
        require_aware(retry_at, "retry_at")
        with self._lock:
            slot = self._outbox.get(key)
            if slot is not None and slot.message.delivered_at is None:
                slot.message = attrs.evolve(slot.message, last_error=error)
                slot.available_at = retry_at
                slot.worker = slot.leased_until = None

    def messages(self, *, stream: str | None = None, pending: bool | None = None) -> list[Message]:
        if stream is not None:
            check_key(stream, "stream")
        with self._lock:
            found = [
                s.message
                for s in self._outbox.values()
                if (stream is None or s.message.stream == stream)
                and (pending is None or (s.message.delivered_at is None) == pending)
            ]
        return sorted(found, key=lambda m: (m.created_at, m.stream, m.version, m.key))

    def claim_due(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[str] | None:
        require_aware(at, "at")
        check_key(worker, "worker")
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
        check_key(stream, "stream")
        check_key(worker, "worker")
        if due is not None:
            require_aware(due, "due")
        with self._lock:
            current = self._due.get(stream)
            if current is None or current.worker in (None, worker):
                self._due[stream] = DueEntry(at=due)

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        check_key(stream, "stream")
        with self._lock:
            self._append(stream, expected_version, events)

    def _append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        """Append under the log's lock (held by the caller)."""
        current = self._streams.get(stream, [])
        if len(current) != expected_version:
            raise ConcurrencyConflict(stream, expected_version, len(current))
        head = current[-1].hash if current else genesis_hash(stream, self._hash)
        check_batch(stream, expected_version, head, events, self._hash)
        ids = [e.id for e in events]
        taken = [i for i in ids if i in self._ids]
        if taken or len(set(ids)) != len(ids):
            raise DuplicateKey("events.id", f"event id {(taken or ids)[0]!r} is already used")
        self._streams.setdefault(stream, []).extend(events)
        self._ids.update(ids)

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        check_key(stream, "stream")
        with self._lock:
            events = list(self._streams.get(stream, ())[max(after, 0) :])
        return iter(events)

    def streams(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def version(self, stream: str) -> int:
        check_key(stream, "stream")
        with self._lock:
            return len(self._streams.get(stream, ()))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._streams.values())
