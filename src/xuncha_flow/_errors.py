"""The exception tree. Every error xuncha_flow raises derives from :class:`XunchaError`
and from the builtin exception it matches, and carries its context as attributes::

    XunchaError (Exception)
    ├── InvalidDefinition (ValueError)          a process definition fails its checks
    ├── InvalidArgument (ValueError)            a bad argument to the API: a naive datetime, ...
    ├── CommandRefused                          a command was refused; nothing changed
    │   ├── InvalidCommand (ValueError)         malformed or impossible input
    │   │   └── LimitExceeded                   an id, text, list or the command is too long
    │   ├── NotFound (LookupError)              no such round, unit, item, measure or lead
    │   ├── AlreadyExists (ValueError)          an id is taken
    │   ├── PermissionDenied (PermissionError)  the actor's role may not fire this event
    │   │   └── SeparationOfDuties              an organization would judge its own work
    │   ├── TransitionNotAllowed (RuntimeError) the event is not possible from the current state
    │   ├── GuardRejected (RuntimeError)        a process rule refused the command (itemised)
    │   ├── ClockBehind (RuntimeError)          the clock is earlier than the round's last event
    │   └── Vetoed                              a before-hook refused the command on purpose
    ├── HookFailed (RuntimeError)               a host hook raised; the command was rolled back
    │   └── Vetoed                              a before-hook refused the command on purpose
    ├── ConcurrencyConflict (RuntimeError)      another writer appended to the stream first
    ├── UnknownProcess (LookupError)            a round was opened under a process not given
    ├── LogCorrupted (ValueError)               a log fails verification or cannot be replayed
    ├── CheckpointInvalid (ValueError)          a checkpoint's signature or form does not hold
    ├── StoreError (RuntimeError)               an event store refused or cannot serve a call
    │   ├── DuplicateKey                        a unique key other than (stream, version)
    │   └── SchemaMismatch                      the database is at another version or hash
    ├── CalendarError (LookupError)             a calendar has no data for the date asked about
    │   └── YearNotCovered                      no official holiday schedule for that year
    └── ScheduleError (ValueError)              holiday schedule data is malformed

A refused command never changes state or log: when any of these is raised by
:meth:`~xuncha_flow.Engine.execute`, the round and its log are as they were. A host
catches :class:`CommandRefused` for "the command was refused, tell the user why";
:class:`ConcurrencyConflict` is worth a retry; :class:`LogCorrupted` means the record
itself no longer holds and needs a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

__all__ = [
    "AlreadyExists",
    "CalendarError",
    "CheckpointInvalid",
    "ClockBehind",
    "CommandRefused",
    "ConcurrencyConflict",
    "DuplicateKey",
    "GuardRejected",
    "HookFailed",
    "InvalidArgument",
    "InvalidCommand",
    "InvalidDefinition",
    "LimitExceeded",
    "LogCorrupted",
    "NotFound",
    "PermissionDenied",
    "RuleViolation",
    "SchemaMismatch",
    "SeparationOfDuties",
    "StoreError",
    "TransitionNotAllowed",
    "UnknownProcess",
    "Vetoed",
    "XunchaError",
]


class XunchaError(Exception):
    """Base class of every error raised by xuncha_flow."""


class InvalidDefinition(XunchaError, ValueError):
    """A process definition failed its build-time checks.

    ``problems`` lists every failed check; ``states`` names the offending states.
    """

    def __init__(
        self, definition: str, problems: Sequence[str], states: Iterable[str] = ()
    ) -> None:
        self.definition = definition
        self.problems = tuple(problems)
        self.states = tuple(sorted(set(states)))
        super().__init__(f"invalid definition {definition!r}: " + "; ".join(self.problems))


class InvalidArgument(XunchaError, ValueError):
    """A bad argument to the API outside a command: a naive datetime, a time or size
    out of range, a setting that cannot work."""


class CommandRefused(XunchaError):
    """Base class of every refusal of a command. Nothing changed: the round and its
    log are as they were. Catch it to tell a user why their action was refused."""


class InvalidCommand(CommandRefused, ValueError):
    """Input that cannot be applied: malformed JSON, unknown event, wrong types,
    impossible dates. ``errors`` holds one entry per problem (pydantic's shape)."""

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        self.errors = tuple(errors)
        super().__init__(message)


class LimitExceeded(InvalidCommand):
    """An id, a text, a list or the whole command is over its documented maximum.
    ``errors`` names each field over its cap (``type`` ``"too_long"``)."""


class NotFound(CommandRefused, LookupError):
    """A referenced round, unit, item, measure or lead does not exist."""

    def __init__(self, kind: str, ident: str, where: str | None = None) -> None:
        self.kind = kind
        self.ident = ident
        self.where = where
        suffix = f" in {where}" if where else ""
        super().__init__(f"no {kind} {ident!r}{suffix}")


class AlreadyExists(CommandRefused, ValueError):
    """An id is already taken."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} already exists")


class PermissionDenied(CommandRefused, PermissionError):
    """The actor may not fire this event."""

    def __init__(
        self,
        *,
        actor: str,
        role: str,
        event: str,
        allowed_roles: Iterable[str],
        subject: str = "",
        reason: str = "",
    ) -> None:
        self.actor = actor
        self.role = role
        self.event = event
        self.subject = subject
        self.allowed_roles = tuple(sorted(allowed_roles))
        self.reason = reason or (
            f"role {role!r} may not fire {event!r}; "
            f"allowed: {', '.join(self.allowed_roles) or 'none'}"
        )
        on = f" on {subject}" if subject else ""
        super().__init__(f"{actor} ({role}) may not fire {event!r}{on}: {self.reason}")


class SeparationOfDuties(PermissionDenied):
    """An organization would judge its own work: the organization of an inspected
    unit acting, in a supervising role, on that unit's plan, items, measures,
    deadlines or recommendations (or a lead's receiver on its own lead's clock).
    Acting for an organization that is not one's own is a plain
    :class:`PermissionDenied`."""


class TransitionNotAllowed(CommandRefused, RuntimeError):
    """The event cannot be fired from the subject's current state."""

    def __init__(
        self, *, subject: str, state: str, event: str, allowed: Iterable[str] = ()
    ) -> None:
        self.subject = subject
        self.state = state
        self.event = event
        self.allowed = tuple(sorted(allowed))
        hint = f"; possible now: {', '.join(self.allowed)}" if self.allowed else ""
        super().__init__(f"{subject}: {event!r} is not possible in state {state!r}{hint}")


@attrs.frozen
class RuleViolation:
    """One failed process rule, with the ids it fails for."""

    rule: str
    message: str
    subjects: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


class GuardRejected(CommandRefused, RuntimeError):
    """One or more process rules refused the command."""

    def __init__(self, *, subject: str, event: str, violations: Sequence[RuleViolation]) -> None:
        self.subject = subject
        self.event = event
        self.violations = tuple(violations)
        super().__init__(
            f"{subject}: {event!r} refused: " + "; ".join(v.message for v in self.violations)
        )

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(v.rule for v in self.violations)


class HookFailed(XunchaError, RuntimeError):
    """A host hook raised. The command was rolled back; ``__cause__`` is the hook's error."""

    def __init__(self, *, hook: str, phase: str, message: str) -> None:
        self.hook = hook
        self.phase = phase
        super().__init__(f"{phase} hook {hook} failed: {message}")


class ClockBehind(CommandRefused, RuntimeError):
    """The engine's clock reads earlier than the round's last event: an event is never
    stamped before the one it follows (a worker's clock lags another's)."""

    def __init__(self, stream: str, now: datetime, last: datetime) -> None:
        self.stream = stream
        self.now = now
        self.last = last
        super().__init__(
            f"round {stream!r}: the clock reads {now.isoformat()}, earlier than the round's "
            f"last event at {last.isoformat()}; an event is never stamped before the one it "
            "follows"
        )


class Vetoed(HookFailed, CommandRefused):
    """Raised by a before-hook to refuse a command on purpose."""

    def __init__(self, message: str, *, hook: str = "", phase: str = "before") -> None:
        super().__init__(hook=hook or "<host>", phase=phase, message=message)
        self.reason = message


class ConcurrencyConflict(XunchaError, RuntimeError):
    """Another writer appended to the stream since it was read."""

    def __init__(self, stream: str, expected: int, actual: int | None = None) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        now = f", stream is at {actual}" if actual is not None else ""
        super().__init__(f"stream {stream!r}: expected version {expected}{now}")


class CalendarError(XunchaError, LookupError):
    """A calendar was asked about a date it has no data for."""


class UnknownProcess(XunchaError, LookupError):
    """A round was opened under a process (definition versions, deadline policy) this
    engine was not given: pass it in ``Engine(processes=...)``. ``stream`` names the
    round, ``pinned`` the version ids it was opened with."""

    def __init__(
        self, message: str, *, stream: str = "", pinned: Mapping[str, str] | None = None
    ) -> None:
        self.stream = stream
        self.pinned = dict(pinned or {})
        self.version: int | None = 1
        super().__init__(message)


class LogCorrupted(XunchaError, ValueError):
    """A log failed verification or replay: an event, a row or a snapshot no longer
    holds. ``stream`` and ``version`` name the first bad event. (Not to be confused
    with a database driver's ``LogCorrupted``, a constraint violation.)"""

    def __init__(self, message: str, *, stream: str = "", version: int | None = None) -> None:
        self.stream = stream
        self.version = version
        super().__init__(message)


class CheckpointInvalid(XunchaError, ValueError):
    """A checkpoint (or a file of them) is malformed, signed with an unknown key, or
    its signature does not verify: it cannot vouch for any log."""


class StoreError(XunchaError, RuntimeError):
    """An event store refused a call or cannot serve it."""


class DuplicateKey(StoreError):
    """A unique key other than a stream's version was violated: an event id used
    twice, a ladder rung recorded twice, an outbox key reused. Unlike
    :class:`ConcurrencyConflict`, retrying does not help. ``constraint`` names it."""

    def __init__(self, constraint: str, detail: str = "") -> None:
        self.constraint = constraint
        self.detail = detail
        more = f": {detail}" if detail else ""
        super().__init__(f"unique key {constraint!r} violated{more}")


class SchemaMismatch(StoreError):
    """The database was written by another schema version or with another hash
    algorithm than this store was opened with."""
