"""The in-memory state of a round: small frozen attrs records in plain dicts.

A round is one event stream; its state holds the round's own record and those of
its units, problem items, measures and leads. Records are immutable and replaced
whole, so undoing a failed command is cheap and exact: every replacement goes
through :meth:`RoundState.put`, which journals the old value while a unit of work
is open, and :meth:`RoundState.rollback` restores them in reverse order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import attrs

from ._roles import Actor

__all__ = [
    "Deadline",
    "Extension",
    "Firing",
    "Item",
    "Lead",
    "Measure",
    "MilestoneState",
    "Recommendation",
    "Rejection",
    "Reopening",
    "Round",
    "RoundState",
    "Submission",
    "Unit",
    "Verification",
]

Table = Literal["units", "items", "measures", "leads", "deadlines", "recommendations"]


@attrs.frozen
class Round:
    id: str
    name: str
    level: str
    kind: str
    state: str
    opened_at: datetime
    theme: str = ""
    parent_round_id: str | None = None
    lookback_of: tuple[str, ...] = ()
    planned_start: date | None = None
    planned_end: date | None = None
    petition_closing_date: date | None = None
    definitions: tuple[tuple[str, str], ...] = ()
    """(subject kind, definition version id) pinned when the round was opened."""
    unit_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    reopenings: int = 0
    rectify_since: datetime | None = None
    """When the round last entered the rectification stage (weekly bulletins count from it)."""
    bulletins: tuple[date, ...] = ()
    """Weeks (their Mondays) with a published weekly bulletin (周通报)."""
    missing_bulletins: tuple[date, ...] = ()


@attrs.frozen
class Unit:
    id: str
    name: str
    organization_id: str
    state: str
    level: str = ""
    head: str = ""
    leader_in_charge: str = ""
    team_id: str | None = None
    onsite_start: date | None = None
    onsite_end: date | None = None
    item_ids: tuple[str, ...] = ()
    feedback_on: date | None = None
    feedback_mode: str | None = None
    plan_approved_at: datetime | None = None
    rectification_reported_at: datetime | None = None
    published: tuple[bool, bool] | None = None
    """(in-party, public) once published."""
    score: Decimal | None = None
    grade: str | None = None
    second_rectifications: int = 0
    rectifying_since: datetime | None = None
    """When the unit last entered concentrated rectification (plan approved, second
    rectification ordered, or reopened by a look-back)."""
    daily_reports: tuple[date, ...] = ()
    """Days with a daily report (日报告) during concentrated rectification."""
    missing_reports: tuple[date, ...] = ()


@attrs.frozen
class Submission:
    by: Actor
    at: datetime
    evidence: tuple[str, ...]
    from_state: str
    summary: str = ""


@attrs.frozen
class Verification:
    by: Actor
    at: datetime
    notes: str = ""


@attrs.frozen
class Rejection:
    by: Actor
    at: datetime
    reason: str


@attrs.frozen
class Reopening:
    by: Actor
    at: datetime
    lookback_round_id: str
    reason: str


@attrs.frozen
class MilestoneState:
    title: str
    due: date
    done_on: date | None = None


@attrs.frozen
class Item:
    id: str
    unit_id: str
    description: str
    state: str
    found_at: datetime
    category: str = ""
    source: str = "other"
    common: bool = False
    concerns_head: bool = False
    amount_involved: Decimal = Decimal(0)
    amount_recovered: Decimal = Decimal(0)
    parent_id: str | None = None
    children: tuple[str, ...] = ()
    immediate: bool = False
    long_term: bool = False
    fed_back_at: datetime | None = None
    milestones: tuple[MilestoneState, ...] = ()
    measure_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    claimed_by: str | None = None
    submission: Submission | None = None
    verification: Verification | None = None
    rejections: tuple[Rejection, ...] = ()
    reopenings: tuple[Reopening, ...] = ()
    closed_at: datetime | None = None
    withdrawn_reason: str | None = None
    rules_established: tuple[str, ...] = ()
    people_held_accountable: int = 0


@attrs.frozen
class Measure:
    id: str
    item_id: str
    text: str
    state: str
    responsible_leader: str | None = None
    responsible_person: str | None = None
    due_date: date | None = None
    progress: int = 0
    notes: str = ""
    done_on: date | None = None


@attrs.frozen
class Lead:
    id: str
    receiver: str
    receiver_org: str
    summary: str
    transferred_on: date
    state: str
    item_ids: tuple[str, ...] = ()
    result: str | None = None
    notes: str = ""
    reported_on: date | None = None
    reconciled_at: datetime | None = None


@attrs.frozen
class Extension:
    by: Actor
    at: datetime
    from_due: date
    to_due: date
    reason: str


@attrs.frozen
class Firing:
    """A rung fired for a deadline: ``outcome`` is "fired", or "passed" for a check
    that held."""

    rung: str
    kind: str
    at: datetime
    outcome: str = "fired"
    generation: int = 1
    """The deadline's generation it fired for (an approved extension starts a new one)."""


@attrs.frozen
class Deadline:
    id: str
    rule: str
    subject_kind: str
    subject: str
    state: str
    start_at: datetime
    due: date
    due_at: datetime
    original_due: date
    ladder: str | None = None
    earliest_at: datetime | None = None
    extensions: tuple[Extension, ...] = ()
    paused_at: datetime | None = None
    fired: tuple[Firing, ...] = ()
    closed_at: datetime | None = None
    generation: int = 1
    """1, plus one per approved extension: each extension re-arms the ladder for the
    new due date, so each rung fires at most once per deadline and generation."""

    def has_fired(self, rung: str) -> bool:
        """Whether ``rung`` fired for the current generation."""
        return any(f.rung == rung and f.generation == self.generation for f in self.fired)


@attrs.frozen
class Recommendation:
    """A rung past a warning: the engine recommends, the leading group decides."""

    id: str
    deadline_id: str
    rung: str
    recommends: str
    state: str
    raised_at: datetime
    subject_kind: str = ""
    subject: str = ""
    decided_by: Actor | None = None
    decided_at: datetime | None = None
    reason: str | None = None


_MISSING: Any = object()


class RoundState:
    """Everything known about one round: the fold of its event stream.

    ``version`` is the version of the last applied event and ``head`` its hash.
    ``commands`` maps each applied command id to the versions of its events, so a
    command re-sent after a lost reply is recognised and not applied twice.
    """

    __slots__ = (
        "_journal",
        "at",
        "commands",
        "deadlines",
        "head",
        "items",
        "leads",
        "measures",
        "recommendations",
        "round",
        "stream",
        "units",
        "version",
    )

    def __init__(self, stream: str, head: str) -> None:
        self.stream = stream
        self.version = 0
        self.head = head
        self.at: datetime | None = None
        """The time of the last applied event (None before the first)."""
        self.round: Round | None = None
        self.units: dict[str, Unit] = {}
        self.items: dict[str, Item] = {}
        self.measures: dict[str, Measure] = {}
        self.leads: dict[str, Lead] = {}
        self.deadlines: dict[str, Deadline] = {}
        self.recommendations: dict[str, Recommendation] = {}
        self.commands: dict[str, tuple[int, int]] = {}
        self._journal: list[tuple[Any, Any, Any]] | None = None

    # -- unit of work ----------------------------------------------------------------
    def begin(self) -> None:
        if self._journal is not None:
            raise RuntimeError("a unit of work is already open on this round")
        self._journal = []

    @property
    def in_unit_of_work(self) -> bool:
        """True between :meth:`begin` and :meth:`commit` or :meth:`rollback`."""
        return self._journal is not None

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        """Undo every change since :meth:`begin`, newest first."""
        journal, self._journal = self._journal, None
        for target, key, old in reversed(journal or ()):
            if isinstance(target, dict):
                if old is _MISSING:
                    del target[key]
                else:
                    target[key] = old
            else:
                setattr(target, key, old)

    def _note(self, target: Any, key: Any, old: Any) -> None:
        if self._journal is not None:
            self._journal.append((target, key, old))

    def put(self, table: Table, record: Any) -> None:
        """Insert or replace a unit, item, measure or lead record."""
        mapping: dict[str, Any] = getattr(self, table)
        self._note(mapping, record.id, mapping.get(record.id, _MISSING))
        mapping[record.id] = record

    def set(self, name: Literal["round", "version", "head", "at"], value: Any) -> None:
        self._note(self, name, getattr(self, name))
        setattr(self, name, value)

    def note_command(self, command_id: str, versions: tuple[int, int]) -> None:
        self._note(self.commands, command_id, self.commands.get(command_id, _MISSING))
        self.commands[command_id] = versions

    # -- reading ---------------------------------------------------------------------
    def unit_items(self, unit_id: str) -> Iterator[Item]:
        """Items of a unit, parents and children alike, in recording order."""
        unit = self.units[unit_id]
        items = self.items
        for item_id in unit.item_ids:
            yield items[item_id]

    def leaves(self, unit_id: str | None = None) -> Iterator[Item]:
        """Items without children (refined parents are represented by their children)."""
        source = self.unit_items(unit_id) if unit_id is not None else iter(self.items.values())
        return (i for i in source if not i.children)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.stream,
            self.version,
            self.head,
            self.at,
            self.round,
            self.units,
            self.items,
            self.measures,
            self.leads,
            self.deadlines,
            self.recommendations,
            self.commands,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RoundState):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable container: not hashable

    def __repr__(self) -> str:
        return (
            f"<RoundState {self.stream!r} v{self.version} units={len(self.units)} "
            f"items={len(self.items)} leads={len(self.leads)}>"
        )
