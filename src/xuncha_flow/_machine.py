"""Definitions compiled onto ``transitions``.

Each :class:`~xuncha_flow.Definition` is compiled once onto one shared
``transitions.Machine`` with ``auto_transitions=False``. Subjects (rounds, items, ...)
are never registered on it: a command fires the machine's event on a throw-away
cursor that carries only the subject's current state and collects guard failures.
This keeps firing O(1) whatever the number of subjects (ANCHORS.md: ``add_model`` is
O(N)), leaves the real record untouched until the engine commits, and gives us
itemised guard failures where ``transitions`` only knows True or False.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from transitions import EventData, Machine, MachineError

from ._definition import Definition, TransitionSpec
from ._errors import GuardRejected, RuleViolation, TransitionNotAllowed

__all__ = ["CompiledMachine", "Guard"]

Guard = Callable[[Any], Iterable[RuleViolation]]
"""A guard takes the engine's guard context and yields the rules it finds broken."""


class _Cursor:
    """What ``transitions`` sees as the model: the state and a scratch pad."""

    __slots__ = ("state", "taken", "violations")

    def __init__(self, state: str) -> None:
        self.state = state
        self.taken: TransitionSpec | None = None
        self.violations: list[RuleViolation] = []


class _Condition:
    """All guards of one transition as a single ``transitions`` condition, so that
    every broken rule is reported, not only the first."""

    __slots__ = ("guards", "spec")

    def __init__(self, spec: TransitionSpec, guards: tuple[Guard, ...]) -> None:
        self.spec = spec
        self.guards = guards

    def __call__(self, event_data: EventData) -> bool:
        cursor = event_data.model
        assert isinstance(cursor, _Cursor)
        ctx = event_data.kwargs["ctx"]
        found = [v for guard in self.guards for v in guard(ctx)]
        if found:
            cursor.violations.extend(found)
            return False
        cursor.taken = self.spec
        return True


class CompiledMachine:
    """One definition on one shared ``transitions.Machine``."""

    def __init__(self, definition: Definition, guards: Mapping[str, Guard]) -> None:
        self.definition = definition
        stored = {s.name: s.stored for s in definition.states}
        self.machine = Machine(
            model=None,
            states=[s.stored for s in definition.states],
            initial=definition.initial.stored,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
            name=definition.name,
        )
        for t in definition.transitions:
            self.machine.add_transition(
                trigger=definition.event(t.event).stored,
                source=[stored[s] for s in t.source],
                dest=stored[t.dest] if t.dest is not None else None,
                conditions=[_Condition(t, tuple(guards[g] for g in t.guards))],
            )

    def fire(self, subject: str, state: str, event: str, ctx: Any) -> tuple[TransitionSpec, str]:
        """Fire ``event`` (identifier) for a subject in state identifier ``state``.

        Returns the transition taken and the target state identifier. Raises
        :class:`TransitionNotAllowed` or :class:`GuardRejected`; never mutates anything.
        """
        d = self.definition
        cursor = _Cursor(d.state(state).stored)
        try:
            moved = self.machine.events[d.event(event).stored].trigger(cursor, ctx=ctx)
        except MachineError as exc:
            raise TransitionNotAllowed(
                subject=subject, state=state, event=event, allowed=d.events_from(state)
            ) from exc
        if not moved or cursor.taken is None:
            raise GuardRejected(subject=subject, event=event, violations=cursor.violations)
        return cursor.taken, d.state_by_value(cursor.state).name

    def triggers(self, state: str) -> tuple[str, ...]:
        """Event identifiers ``transitions`` knows out of ``state`` (identifier)."""
        d = self.definition
        values = self.machine.get_triggers(d.state(state).stored)
        return tuple(d.event_by_value(v).name for v in values)
