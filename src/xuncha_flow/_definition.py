"""Process definitions are data, checked when they are built.

A definition lists states (stable stored value, English identifier, Chinese label,
whether terminal), events, the creation event that brings a subject into being, and
transitions (event, source states, target, guard names, roles allowed to fire it).
:func:`Definition.build` checks it: exactly one initial state, no transition out of a
terminal state, no unreachable state, no dead end, a terminal state reachable from
every state, no unknown guard or role, no step backwards that is not marked as one,
and separation of duties: the inspected organization is given no transition marked
``independent``, no transition of its own into a state only such a check enters
(``verified``, ``closed``, ...), and no say over a deadline or a recommendation.
Every failed check is collected into one :class:`~xuncha_flow.InvalidDefinition`
that names the offending states.

Loading a definition from data never evaluates code: guards are referred to by
name and looked up in a registry the host controls.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from functools import cached_property
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from ._errors import InvalidDefinition
from ._roles import Role

__all__ = [
    "CreationSpec",
    "Definition",
    "DefinitionData",
    "EventSpec",
    "StateSpec",
    "TransitionSpec",
]

_IDENT = r"^[a-z][a-z0-9_]*$"

RoleSet = Annotated[
    frozenset[Role],
    PlainSerializer(lambda roles: sorted(r.value for r in roles), return_type=list[str]),
]
"""A set of roles, serialised sorted: a set's iteration order changes with Python's
hash seed, and the serialised form feeds the definition's fingerprint."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StateSpec(_Spec):
    """A state. ``value`` is what is stored; ``name`` is the identifier used in code."""

    name: str = Field(pattern=_IDENT)
    label: str = Field(min_length=1, description="Chinese label")
    value: str = Field(default="", description="stable stored value; defaults to name")
    initial: bool = False
    terminal: bool = False
    rank: int = Field(
        default=0,
        ge=0,
        description="progress order: a transition to a lower rank must be marked backward",
    )

    @property
    def stored(self) -> str:
        return self.value or self.name


class EventSpec(_Spec):
    """An event: identifier, Chinese label and stable stored value."""

    name: str = Field(pattern=_IDENT)
    label: str = Field(min_length=1)
    value: str = ""

    @property
    def stored(self) -> str:
        return self.value or self.name


class TransitionSpec(_Spec):
    """One arrow. ``dest`` None means an internal transition: data changes, state stays.

    Several transitions may share an event and a source: they are tried in order and
    the first whose guards pass is taken (a conditional branch).
    """

    event: str
    source: tuple[str, ...] = Field(min_length=1)
    dest: str | None
    roles: RoleSet = Field(min_length=1)
    guards: tuple[str, ...] = ()
    backward: bool = Field(default=False, description="an explicit step back (reopen, reject)")
    automatic: bool = Field(
        default=False,
        description="fired by the engine as a consequence of another command; "
        "roles are those of the commands that may cause it",
    )
    reason_required: bool = False
    independent: bool = Field(
        default=False,
        description="separation of duties, an act of supervision: the inspected "
        "organization may not be given it, and no actor of the organization it concerns "
        "may fire it",
    )

    @field_validator("source", mode="before")
    @classmethod
    def _one_source(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class CreationSpec(_Spec):
    """The event that brings a subject into being, in the initial state."""

    event: str
    roles: RoleSet = Field(min_length=1)
    guards: tuple[str, ...] = ()
    automatic: bool = Field(
        default=False, description="subjects of this kind are created by the engine only"
    )


class DefinitionData(_Spec):
    """The serialisable form of a definition (what JSON or YAML would hold)."""

    kind: str = Field(pattern=_IDENT, description="what the definition drives: round, item, ...")
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    states: tuple[StateSpec, ...] = Field(min_length=1)
    events: tuple[EventSpec, ...] = Field(min_length=1)
    create: CreationSpec
    transitions: tuple[TransitionSpec, ...] = Field(min_length=1)


class Definition:
    """A checked, immutable process definition. Build with :meth:`build`."""

    def __init__(self, data: DefinitionData) -> None:  # use Definition.build
        self.data = data
        self._states = {s.name: s for s in data.states}
        self._states_by_value = {s.stored: s for s in data.states}
        self._events = {e.name: e for e in data.events}
        self._events_by_value = {e.stored: e for e in data.events}
        index: dict[tuple[str, str], list[TransitionSpec]] = {}
        for t in data.transitions:
            for src in t.source:
                index.setdefault((t.event, src), []).append(t)
        self._by_event_source = {k: tuple(v) for k, v in index.items()}

    # -- construction --------------------------------------------------------------
    @classmethod
    def build(
        cls, data: DefinitionData | Mapping[str, Any], *, guards: Collection[str] = ()
    ) -> Definition:
        """Validate ``data`` and return a checked definition.

        ``guards`` is the set of guard names the host's registry knows; a transition
        naming any other guard makes the definition invalid.
        """
        if not isinstance(data, DefinitionData):
            name = str(data.get("name", "?")) if isinstance(data, Mapping) else "?"
            try:
                data = DefinitionData.model_validate(data)
            except ValidationError as exc:
                problems = [
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                ]
                raise InvalidDefinition(name, problems) from exc
        problems, states = _check(data, frozenset(guards))
        if problems:
            raise InvalidDefinition(data.name, problems, states)
        return cls(data)

    def to_data(self) -> dict[str, Any]:
        """The JSON-ready data this definition was built from."""
        return self.data.model_dump(mode="json", exclude_defaults=True)

    # -- identity --------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.data.kind

    @property
    def name(self) -> str:
        return self.data.name

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical data: two definitions with the same fingerprint
        behave the same."""
        canonical = json.dumps(
            self.data.model_dump(mode="json"),
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def version_id(self) -> str:
        """``name@version#fingerprint[:12]``: recorded on every event."""
        return f"{self.data.name}@{self.data.version}#{self.fingerprint[:12]}"

    # -- lookups ---------------------------------------------------------------------
    @property
    def states(self) -> tuple[StateSpec, ...]:
        return self.data.states

    @property
    def events(self) -> tuple[EventSpec, ...]:
        return self.data.events

    @property
    def transitions(self) -> tuple[TransitionSpec, ...]:
        return self.data.transitions

    @cached_property
    def initial(self) -> StateSpec:
        return next(s for s in self.data.states if s.initial)

    def state(self, name: str) -> StateSpec:
        """The state with identifier ``name``. Raises KeyError."""
        return self._states[name]

    def state_by_value(self, value: str) -> StateSpec:
        """The state stored as ``value``. Raises KeyError."""
        return self._states_by_value[value]

    def has_event(self, name: str) -> bool:
        return name in self._events

    def event(self, name: str) -> EventSpec:
        return self._events[name]

    def event_by_value(self, value: str) -> EventSpec:
        return self._events_by_value[value]

    def candidates(self, event: str, source: str) -> tuple[TransitionSpec, ...]:
        """Transitions for ``event`` out of state identifier ``source``, in order."""
        return self._by_event_source.get((event, source), ())

    def events_from(self, source: str) -> tuple[str, ...]:
        """Event identifiers with a transition out of ``source``, in definition order."""
        seen: dict[str, None] = {}
        for t in self.data.transitions:
            if source in t.source:
                seen.setdefault(t.event, None)
        return tuple(seen)

    def __repr__(self) -> str:
        return f"<Definition {self.version_id}>"


def _check(data: DefinitionData, known_guards: frozenset[str]) -> tuple[list[str], set[str]]:
    problems: list[str] = []
    bad: set[str] = set()

    def dup(kind: str, values: Iterable[str], *, states: bool = False) -> None:
        seen: set[str] = set()
        for v in values:
            if v in seen:
                problems.append(f"duplicate {kind} {v!r}")
                if states:
                    bad.add(v)
            seen.add(v)

    dup("state name", (s.name for s in data.states), states=True)
    dup("state value", (s.stored for s in data.states), states=True)
    dup("event name", (e.name for e in data.events))
    dup("event value", (e.stored for e in data.events))

    states = {s.name: s for s in data.states}
    events = {e.name for e in data.events}
    initials = [s.name for s in data.states if s.initial]
    if len(initials) != 1:
        problems.append(f"exactly one initial state is required, found {len(initials)}")
        bad.update(initials)
    if data.create.event not in events:
        problems.append(f"creation event {data.create.event!r} is not declared")
    for g in data.create.guards:
        if g not in known_guards:
            problems.append(f"creation event {data.create.event!r} names unknown guard {g!r}")

    edges: dict[str, set[str]] = {name: set() for name in states}
    used_events = {data.create.event}
    branch_roles: dict[tuple[str, str], frozenset[Role]] = {}
    for t in data.transitions:
        used_events.add(t.event)
        where = f"transition {t.event!r}"
        if t.event not in events:
            problems.append(f"{where} uses undeclared event")
        unknown = [s for s in (*t.source, t.dest) if s is not None and s not in states]
        if unknown:
            problems.append(f"{where} names unknown states {sorted(unknown)}")
            bad.update(unknown)
            continue
        for g in t.guards:
            if g not in known_guards:
                problems.append(f"{where} names unknown guard {g!r}")
                bad.update(t.source)
        for src in t.source:
            if states[src].terminal:
                problems.append(f"{where} leaves terminal state {src!r}")
                bad.add(src)
            key = (t.event, src)
            if key in branch_roles and branch_roles[key] != t.roles:
                problems.append(f"{where} from {src!r}: branches of one event disagree on roles")
                bad.add(src)
            branch_roles.setdefault(key, t.roles)
            if t.dest is not None:
                edges[src].add(t.dest)
                lower = states[t.dest].rank < states[src].rank
                if lower and not t.backward:
                    problems.append(
                        f"{where} moves back from {src!r} to {t.dest!r} but is not marked backward"
                    )
                    bad.update((src, t.dest))
                if t.backward and not lower:
                    problems.append(
                        f"{where} is marked backward but does not move back from {src!r}"
                    )
                    bad.add(src)
    for unused in sorted(events - used_events):
        problems.append(f"event {unused!r} is declared but never used")
    problems += _separation_problems(data, bad)

    if len(initials) == 1:
        reached = _reach(initials[0], edges)
        unreachable = sorted(set(states) - reached)
        if unreachable:
            problems.append(f"unreachable states {unreachable}")
            bad.update(unreachable)
    dead = sorted(n for n, s in states.items() if not s.terminal and not edges[n])
    if dead:
        problems.append(f"dead-end states {dead} (not terminal, no way out)")
        bad.update(dead)
    terminals = {n for n, s in states.items() if s.terminal}
    if not terminals:
        problems.append("no terminal state")
    else:
        stuck = sorted(n for n in states if not (_reach(n, edges) & terminals))
        if stuck:
            problems.append(f"no terminal state is reachable from {stuck}")
            bad.update(stuck)
    return problems, bad


SUPERVISED_KINDS = frozenset({"deadline", "recommendation"})
"""Kinds moved only by supervision: the inspected organization has no say over them."""


def _separation_problems(data: DefinitionData, bad: set[str]) -> list[str]:
    """The organization that rectifies never checks its own work, whatever a custom
    definition says: the inspected organization may not fire a transition marked
    ``independent``, nor one of its own into a state that such a check enters (it
    would verify or close by another name), nor anything on a deadline or a
    recommendation (extend, pause, decide)."""
    unit = Role.INSPECTED_ORGANIZATION
    judged = {
        t.dest for t in data.transitions if t.independent and not t.backward and t.dest is not None
    }
    problems: list[str] = []
    for t in data.transitions:
        if unit not in t.roles:
            continue
        where = f"transition {t.event!r} from {list(t.source)}"
        if t.independent:
            problems.append(
                f"{where} is a check independent of the unit, but the inspected organization "
                "may fire it (separation of duties)"
            )
            bad.update(t.source)
        elif not t.automatic and t.dest in judged:
            problems.append(
                f"{where} lets the inspected organization move to {t.dest!r}, which only a "
                "check independent of it enters (separation of duties)"
            )
            bad.update(t.source)
        elif not t.automatic and data.kind in SUPERVISED_KINDS:
            problems.append(
                f"{where} lets the inspected organization act on a {data.kind}, which only "
                "supervision moves (separation of duties)"
            )
            bad.update(t.source)
    return problems


def _reach(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
