"""The exception tree. Every error xuncha_flow raises derives from :class:`XunchaError`
and from the builtin exception it matches, and carries its context as attributes::

    XunchaError (Exception)
    ├── InvalidDefinition (ValueError)         a process definition fails its checks
    ├── InvalidCommand (ValueError)            malformed or impossible input; nothing changed
    ├── NotFound (LookupError)                 no such round, unit, item, measure or lead
    ├── AlreadyExists (ValueError)             an id is taken
    ├── PermissionDenied (PermissionError)     the actor's role may not fire this event
    │   └── SeparationOfDuties                 the rectifying organization acts on its own item
    ├── TransitionNotAllowed (RuntimeError)    the event is not possible from the current state
    ├── GuardRejected (RuntimeError)           a process rule refused the command (itemised)
    ├── HookFailed (RuntimeError)              a host hook raised; the command was rolled back
    │   └── Vetoed                             a before-hook refused the command on purpose
    ├── ConcurrencyConflict (RuntimeError)     another writer appended to the stream first
    ├── CalendarError (LookupError)            a calendar has no data for the date asked about
    │   └── YearNotCovered                     no official holiday schedule for that year
    ├── ScheduleError (ValueError)             holiday schedule data is malformed
    └── IntegrityError (ValueError)            a log fails verification or cannot be replayed

A refused command never changes state or log: when any of these is raised by
:meth:`~xuncha_flow.Engine.execute`, the round and its log are as they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

__all__ = [
    "AlreadyExists",
    "CalendarError",
    "ConcurrencyConflict",
    "GuardRejected",
    "HookFailed",
    "IntegrityError",
    "InvalidCommand",
    "InvalidDefinition",
    "NotFound",
    "PermissionDenied",
    "RuleViolation",
    "SeparationOfDuties",
    "TransitionNotAllowed",
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


class InvalidCommand(XunchaError, ValueError):
    """Input that cannot be applied: malformed JSON, unknown event, wrong types,
    impossible dates. ``errors`` holds one entry per problem (pydantic's shape)."""

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        self.errors = tuple(errors)
        super().__init__(message)


class NotFound(XunchaError, LookupError):
    """A referenced round, unit, item, measure or lead does not exist."""

    def __init__(self, kind: str, ident: str, where: str | None = None) -> None:
        self.kind = kind
        self.ident = ident
        self.where = where
        suffix = f" in {where}" if where else ""
        super().__init__(f"no {kind} {ident!r}{suffix}")


class AlreadyExists(XunchaError, ValueError):
    """An id is already taken."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} already exists")


class PermissionDenied(XunchaError, PermissionError):
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
    """The organization that rectifies an item tried to verify, close, reject or
    withdraw it. (Acting for an organization that is not one's own is a plain
    :class:`PermissionDenied`.)"""


class TransitionNotAllowed(XunchaError, RuntimeError):
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


class GuardRejected(XunchaError, RuntimeError):
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


class Vetoed(HookFailed):
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


class IntegrityError(XunchaError, ValueError):
    """A log failed verification or replay. ``stream`` and ``version`` name the
    first bad event."""

    def __init__(self, message: str, *, stream: str = "", version: int | None = None) -> None:
        self.stream = stream
        self.version = version
        super().__init__(message)
