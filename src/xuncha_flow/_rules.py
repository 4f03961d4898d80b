"""The process rules: guards and authorization, in one place.

A guard is a named function of a :class:`GuardContext` that yields a
:class:`~xuncha_flow.RuleViolation` for each rule it finds broken, naming the ids
concerned ("3 items unclaimed: P-12, P-17, P-31"). Definitions refer to guards by
name; :data:`GUARDS` is the registry of the built-in ones.

:func:`admit` is what every command passes first: it may not act in the engine's
own name (:data:`~xuncha_flow.SWEEPER`), and its payload is validated with the
dates the round allows (:class:`~xuncha_flow._payloads.DateWindow`).

:func:`authorize` decides whether an actor may fire a transition: the role must be
one the transition allows, an inspected organization acts only on its own items,
a team only on the units it inspects, a lead's receiver only on leads sent to it.
Then the owner rule: every subject has an owner — a unit, item or measure the
unit's organization, a lead its receiver, a deadline or a recommendation the owner
of what it times — and no organization supervises what it owns. An actor of the
owner's organization acts on it only in the owner's own role (the inspected
organization on its unit's matters, the receiver on its lead), never on a
deadline or recommendation, and never on a transition marked ``independent``
(plan review, verify, close, reject, withdraw, long-term, extensions and pauses,
decisions). Organizations are compared with :func:`~xuncha_flow.same_organization`.
The owner rule applies to what a command asks, not to the automatic events the
engine derives from it (a launch moves every unit on site).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from pydantic import BaseModel, ValidationError

from ._commands import Command, refusal
from ._definition import Definition
from ._errors import NotFound, PermissionDenied, RuleViolation, SeparationOfDuties
from ._model import Deadline, Item, Lead, Measure, RoundState, Unit
from ._payloads import (
    AddMeasure,
    CompleteMilestone,
    DailyReport,
    DateWindow,
    DeliverFeedback,
    ExtendDeadline,
    RecordItem,
    RefineItem,
    ReopenItem,
    ReportLeadBack,
    TransferLead,
)
from ._roles import Actor, Role, RolePolicy, is_engine_identity, same_organization

if TYPE_CHECKING:
    from ._process import Process

__all__ = ["GUARDS", "GuardContext", "Owner", "admit", "authorize", "owner_of", "unit_of"]

Guard = Callable[["GuardContext"], Iterable[RuleViolation]]

# Stored state values the rules look at. Kept here so a reader sees every one.
ITEM_DONE = frozenset({"closed", "withdrawn"})
ITEM_PLANNABLE = frozenset({"claimed", "planned", "rectifying", "long_term"})
ITEM_SETTLED_FOR_REPORT = frozenset({"confirmed", "closed", "withdrawn"})
MEASURE_LIVE = frozenset({"planned", "in_progress", "done"})
MEASURE_PROPOSED = "proposed"
"""A measure awaiting review (待审核): one the unit added after its plan was approved
(before, a measure is included in the plan under review at once)."""
LEAD_ROLE = {
    "discipline_commission": Role.DISCIPLINE_COMMISSION,
    "organization_department": Role.ORGANIZATION_DEPARTMENT,
    "other": Role.FUNCTIONAL_DEPARTMENT,
}


@attrs.frozen
class GuardContext:
    """What a guard may look at. Guards only read; they never change anything."""

    state: RoundState
    kind: str
    subject: str
    record: Any
    """The subject's current record; None for a creation event."""
    actor: Actor
    payload: BaseModel
    attachments: tuple[str, ...]
    reason: str | None
    now: datetime
    policy: RolePolicy
    definitions: Mapping[str, Definition]

    def rank(self, kind: str, value: str) -> int:
        return self.definitions[kind].state_by_value(value).rank

    @property
    def round_state(self) -> str:
        assert self.state.round is not None
        return self.state.round.state


P = TypeVar("P", bound=BaseModel)


def _as(payload: BaseModel, cls: type[P]) -> P:
    if not isinstance(payload, cls):
        raise TypeError(f"expected a {cls.__name__} payload, got {type(payload).__name__}")
    return payload


def _p(ctx: GuardContext, cls: type[P]) -> P:
    return _as(ctx.payload, cls)


def _ids(items: Iterable[Any], limit: int = 20) -> str:
    ids = [i.id for i in items]
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _violation(rule: str, bad: list[Any], noun: str, what: str) -> Iterator[RuleViolation]:
    if bad:
        yield RuleViolation(
            rule, f"{_count(len(bad), noun)} {what}: {_ids(bad)}", tuple(b.id for b in bad)
        )


# -- round ---------------------------------------------------------------------------
def round_has_units(ctx: GuardContext) -> Iterator[RuleViolation]:
    assert ctx.state.round is not None
    if not ctx.state.round.unit_ids:
        yield RuleViolation("round_has_units", "the round inspects no unit yet")


def _units_reached(rule: str, unit_state: str, what: str) -> Guard:
    def guard(ctx: GuardContext) -> Iterator[RuleViolation]:
        need = ctx.rank("unit", unit_state)
        behind = [u for u in ctx.state.units.values() if ctx.rank("unit", u.state) < need]
        yield from _violation(rule, behind, "unit", what)

    guard.__name__ = rule
    return guard


def round_accepts_units(ctx: GuardContext) -> Iterator[RuleViolation]:
    if ctx.round_state not in ("prepare", "mobilize"):
        yield RuleViolation(
            "round_accepts_units", f"units are added while preparing, not in {ctx.round_state!r}"
        )


def round_transfers_leads(ctx: GuardContext) -> Iterator[RuleViolation]:
    if ctx.round_state in ("prepare", "mobilize", "archived"):
        yield RuleViolation(
            "round_transfers_leads",
            f"leads are transferred from on-site on, not in {ctx.round_state!r}",
        )


# -- unit ----------------------------------------------------------------------------
def unit_items_settled(ctx: GuardContext) -> Iterator[RuleViolation]:
    open_ = [i for i in ctx.state.unit_items(ctx.subject) if i.state not in ITEM_SETTLED_FOR_REPORT]
    yield from _violation(
        "unit_items_settled", open_, "item", "not yet confirmed, withdrawn or fixed on site"
    )


def feedback_date_valid(ctx: GuardContext) -> Iterator[RuleViolation]:
    delivered = _p(ctx, DeliverFeedback).delivered_on
    unit: Unit = ctx.record
    if unit.onsite_start is not None and delivered < unit.onsite_start:
        yield RuleViolation(
            "feedback_date_valid",
            f"feedback date {delivered} is before the on-site period began ({unit.onsite_start})",
        )


def _measures(state: RoundState, item: Item) -> list[Measure]:
    return [state.measures[m] for m in item.measure_ids if state.measures[m].state in MEASURE_LIVE]


def _missing(m: Measure) -> list[str]:
    gaps = []
    if not m.responsible_leader:
        gaps.append("responsible leader")
    if not m.responsible_person:
        gaps.append("responsible person")
    if m.due_date is None:
        gaps.append("due date")
    return gaps


def plan_complete(ctx: GuardContext) -> Iterator[RuleViolation]:
    """Every fed-back item claimed with at least one measure, each measure with a
    responsible leader, a responsible person and a due date."""
    unclaimed: list[Item] = []
    bare: list[Item] = []
    incomplete: list[Measure] = []
    for item in ctx.state.leaves(ctx.subject):
        if item.state == "fed_back":
            unclaimed.append(item)
        elif item.state in ("claimed", "planned"):
            measures = _measures(ctx.state, item)
            if not measures:
                bare.append(item)
            incomplete.extend(m for m in measures if _missing(m))
    yield from _violation("items_claimed", unclaimed, "item", "unclaimed")
    yield from _violation("items_have_measures", bare, "item", "without a measure")
    if incomplete:
        detail = "; ".join(f"{m.id} (no {', '.join(_missing(m))})" for m in incomplete[:20])
        yield RuleViolation(
            "measures_complete",
            f"{_count(len(incomplete), 'measure')} incomplete: {detail}",
            tuple(m.id for m in incomplete),
        )


def rectification_done(ctx: GuardContext) -> Iterator[RuleViolation]:
    """Each item closed, long-term with milestones, or withdrawn."""
    open_ = [
        i
        for i in ctx.state.leaves(ctx.subject)
        if i.state not in ITEM_DONE and not (i.state == "long_term" and i.milestones)
    ]
    yield from _violation("rectification_done", open_, "item", "still open")


# -- item ----------------------------------------------------------------------------
def _unit_state_in(rule: str, states: tuple[str, ...], what: str) -> Guard:
    def guard(ctx: GuardContext) -> Iterator[RuleViolation]:
        unit = unit_of(ctx.state, ctx.kind, ctx.record, ctx.payload)
        if unit is not None and unit.state not in states:
            yield RuleViolation(rule, f"unit {unit.id} is {unit.state!r}: {what}")

    guard.__name__ = rule
    return guard


def _proposed(state: RoundState, item: Item) -> list[Measure]:
    return [
        state.measures[m] for m in item.measure_ids if state.measures[m].state == MEASURE_PROPOSED
    ]


def no_live_measures(ctx: GuardContext) -> Iterator[RuleViolation]:
    """A problem is refined before it is planned: its measures would belong to
    nothing once it is split into children."""
    item: Item = ctx.record
    yield from _violation(
        "no_live_measures",
        [*_measures(ctx.state, item), *_proposed(ctx.state, item)],
        "measure",
        f"still planned for {item.id}: drop them, then refine",
    )


def children_are_new(ctx: GuardContext) -> Iterator[RuleViolation]:
    taken = [c for c in _p(ctx, RefineItem).children if c.id in ctx.state.items]
    yield from _violation("children_are_new", taken, "child id", "already in use")


def has_complete_measures(ctx: GuardContext) -> Iterator[RuleViolation]:
    item: Item = ctx.record
    measures = _measures(ctx.state, item)
    if not measures:
        yield RuleViolation("items_have_measures", f"item {item.id} has no measure", (item.id,))
    yield from _violation(
        "measures_complete", [m for m in measures if _missing(m)], "measure", "incomplete"
    )


def milestone_open(ctx: GuardContext) -> Iterator[RuleViolation]:
    item: Item = ctx.record
    title = _p(ctx, CompleteMilestone).title
    match = [m for m in item.milestones if m.title == title]
    if not match:
        yield RuleViolation("milestone_open", f"item {item.id} has no milestone {title!r}")
    elif match[0].done_on is not None:
        yield RuleViolation("milestone_open", f"milestone {title!r} is already done")


def evidence_attached(ctx: GuardContext) -> Iterator[RuleViolation]:
    if not ctx.attachments:
        yield RuleViolation(
            "evidence_attached", f"item {ctx.subject}: a submission needs evidence (attachments)"
        )


def measures_done(ctx: GuardContext) -> Iterator[RuleViolation]:
    item: Item = ctx.record
    if item.immediate:
        return
    measures = _measures(ctx.state, item)
    if not measures:
        yield RuleViolation("measures_done", f"item {item.id} has no measure", (item.id,))
    yield from _violation(
        "measures_done", [m for m in measures if m.state != "done"], "measure", "not done"
    )
    yield from _violation(
        "measures_done",
        _proposed(ctx.state, item),
        "measure",
        "awaiting review (approve, refuse or drop it first)",
    )


def milestones_done(ctx: GuardContext) -> Iterator[RuleViolation]:
    item: Item = ctx.record
    if item.state == "long_term":
        pending = [m.title for m in item.milestones if m.done_on is None]
        if pending:
            yield RuleViolation(
                "milestones_done",
                f"{_count(len(pending), 'milestone')} not done: {', '.join(pending)}",
            )


def _submitted_from(value: str) -> Guard:
    def guard(ctx: GuardContext) -> Iterator[RuleViolation]:
        item: Item = ctx.record
        if item.submission is None or item.submission.from_state != value:
            yield RuleViolation(f"submitted_from_{value}", f"not submitted from {value!r}")

    return guard


def verified_submission(ctx: GuardContext) -> Iterator[RuleViolation]:
    """Closing requires a submission with evidence, verified by an allowed verifier
    from outside the rectifying organization."""
    item: Item = ctx.record
    unit = ctx.state.units[item.unit_id]
    sub, ver = item.submission, item.verification
    if sub is None or not sub.evidence:
        yield RuleViolation(
            "verified_submission", f"item {item.id} has no submission with evidence"
        )
    if ver is None:
        yield RuleViolation("verified_submission", f"item {item.id} is not verified")
    elif ver.by.role not in ctx.policy.verifiers or same_organization(
        ver.by.organization, unit.organization_id
    ):
        yield RuleViolation(
            "verified_submission", f"item {item.id} was verified by {ver.by}, who may not verify it"
        )


def reopen_allowed(ctx: GuardContext) -> Iterator[RuleViolation]:
    item: Item = ctx.record
    lookback = _p(ctx, ReopenItem).lookback_round_id
    if item.children:
        yield RuleViolation(
            "reopen_allowed", f"item {item.id} is refined: reopen the child items instead"
        )
    if lookback == ctx.state.stream:
        yield RuleViolation("reopen_allowed", "a round cannot look back on itself")
    unit = ctx.state.units[item.unit_id]
    if ctx.rank("unit", unit.state) < ctx.rank("unit", "rectifying"):
        yield RuleViolation(
            "reopen_allowed", f"unit {unit.id} has not reached rectification ({unit.state!r})"
        )
    if ctx.round_state == "archived" or unit.state == "archived":
        yield RuleViolation(
            "reopen_allowed", f"round {ctx.state.stream} is archived: its items stay closed"
        )


def children_done(ctx: GuardContext) -> Iterator[RuleViolation]:
    item: Item = ctx.record
    open_ = [ctx.state.items[c] for c in item.children if ctx.state.items[c].state not in ITEM_DONE]
    yield from _violation("children_done", open_, "child item", "still open")


def some_child_closed(ctx: GuardContext) -> Iterator[RuleViolation]:
    item: Item = ctx.record
    if not any(ctx.state.items[c].state == "closed" for c in item.children):
        yield RuleViolation("some_child_closed", f"no child of {item.id} is closed")


# -- measure -------------------------------------------------------------------------
def item_accepts_measures(ctx: GuardContext) -> Iterator[RuleViolation]:
    item = ctx.state.items[_p(ctx, AddMeasure).item_id]
    if item.children:
        yield RuleViolation(
            "item_accepts_measures", f"item {item.id} is refined: measures belong to its children"
        )
    if item.state not in ITEM_PLANNABLE:
        yield RuleViolation(
            "item_accepts_measures", f"item {item.id} is {item.state!r}: measures follow a claim"
        )


def due_after_feedback(ctx: GuardContext) -> Iterator[RuleViolation]:
    due = getattr(ctx.payload, "due_date", None)
    if due is None:
        return
    unit = unit_of(ctx.state, ctx.kind, ctx.record, ctx.payload)
    if unit is not None and unit.feedback_on is not None and due < unit.feedback_on:
        yield RuleViolation(
            "due_after_feedback", f"due date {due} is before the feedback date {unit.feedback_on}"
        )


def due_fixed_after_approval(ctx: GuardContext) -> Iterator[RuleViolation]:
    """Once the plan is approved, a measure's due date is a running deadline: it
    moves only by an approved extension (``deadline.extend``), never by a revision."""
    if "due_date" not in ctx.payload.model_fields_set:
        return
    if ctx.record is not None and ctx.record.state == MEASURE_PROPOSED:
        return  # a proposal under review: its deadline opens when it is approved
    unit = unit_of(ctx.state, ctx.kind, ctx.record, ctx.payload)
    if unit is not None and unit.plan_approved_at is not None:
        yield RuleViolation(
            "due_fixed_after_approval",
            f"the plan of unit {unit.id} is approved: the due date of {ctx.subject} moves only "
            "by an approved extension of its deadline",
        )


def plan_change_reviewed(ctx: GuardContext) -> Iterator[RuleViolation]:
    """Once a unit's plan is approved, a changed plan goes back to review: the unit
    may withdraw its own proposals (measures still awaiting review), but a measure of
    the approved plan is dropped only by the reviewing body."""
    measure: Measure = ctx.record
    if ctx.actor.role is not Role.INSPECTED_ORGANIZATION or measure.state == MEASURE_PROPOSED:
        return
    unit = unit_of(ctx.state, ctx.kind, ctx.record, ctx.payload)
    if unit is not None and unit.plan_approved_at is not None:
        yield RuleViolation(
            "plan_change_reviewed",
            f"the plan of unit {unit.id} is approved: {measure.id} is dropped by the body "
            "that reviews the plan, with a reason, not by the unit",
            (measure.id,),
        )


def item_open(ctx: GuardContext) -> Iterator[RuleViolation]:
    measure: Measure = ctx.record
    item = ctx.state.items[measure.item_id]
    if item.state in ITEM_DONE:
        yield RuleViolation("item_open", f"item {item.id} is {item.state!r}")


# -- deadlines and reports ----------------------------------------------------------
def extension_later(ctx: GuardContext) -> Iterator[RuleViolation]:
    deadline: Deadline = ctx.record
    due = _p(ctx, ExtendDeadline).due
    if due <= deadline.due:
        yield RuleViolation(
            "extension_later",
            f"deadline {deadline.id} is due {deadline.due}: "
            f"an extension moves it later, not to {due}",
        )


def report_day_valid(ctx: GuardContext) -> Iterator[RuleViolation]:
    unit: Unit = ctx.record
    day = _p(ctx, DailyReport).day
    since = unit.rectifying_since
    if since is not None and day < since.astimezone(ctx.now.tzinfo).date():
        yield RuleViolation("report_day_valid", f"{day} is before concentrated rectification began")
    if day in unit.daily_reports:
        yield RuleViolation("report_day_valid", f"unit {unit.id} already reported for {day}")


# -- lead ----------------------------------------------------------------------------
def lead_items_exist(ctx: GuardContext) -> Iterator[RuleViolation]:
    missing = [i for i in _p(ctx, TransferLead).item_ids if i not in ctx.state.items]
    if missing:
        yield RuleViolation(
            "lead_items_exist",
            f"{_count(len(missing), 'item')} unknown: {', '.join(missing)}",
            tuple(missing),
        )


def report_after_transfer(ctx: GuardContext) -> Iterator[RuleViolation]:
    lead: Lead = ctx.record
    reported = _p(ctx, ReportLeadBack).reported_on
    if reported < lead.transferred_on:
        yield RuleViolation(
            "report_after_transfer",
            f"report-back date {reported} is before the transfer ({lead.transferred_on})",
        )


GUARDS: dict[str, Guard] = {
    "round_has_units": round_has_units,
    "round_accepts_units": round_accepts_units,
    "round_transfers_leads": round_transfers_leads,
    "units_left_site": _units_reached("units_left_site", "reporting", "still on site"),
    "units_reports_decided": _units_reached(
        "units_reports_decided", "report_decided", "without a decided report"
    ),
    "units_fed_back": _units_reached("units_fed_back", "fed_back", "not yet given feedback"),
    "units_rectification_reported": _units_reached(
        "units_rectification_reported", "rectification_reported", "without a rectification report"
    ),
    "units_published": _units_reached("units_published", "published", "not yet published"),
    "units_evaluated": _units_reached("units_evaluated", "evaluated", "not yet evaluated"),
    "unit_items_settled": unit_items_settled,
    "feedback_date_valid": feedback_date_valid,
    "plan_complete": plan_complete,
    "rectification_done": rectification_done,
    "unit_on_site": _unit_state_in("unit_on_site", ("onsite",), "immediate fixes happen on site"),
    "unit_inspecting": _unit_state_in(
        "unit_inspecting", ("onsite", "reporting"), "problems are recorded while inspecting"
    ),
    "children_are_new": children_are_new,
    "no_live_measures": no_live_measures,
    "has_complete_measures": has_complete_measures,
    "milestone_open": milestone_open,
    "evidence_attached": evidence_attached,
    "measures_done": measures_done,
    "milestones_done": milestones_done,
    "is_immediate": _submitted_from("immediate"),
    "is_long_term": _submitted_from("long_term"),
    "verified_submission": verified_submission,
    "reopen_allowed": reopen_allowed,
    "children_done": children_done,
    "some_child_closed": some_child_closed,
    "item_accepts_measures": item_accepts_measures,
    "due_after_feedback": due_after_feedback,
    "item_open": item_open,
    "lead_items_exist": lead_items_exist,
    "report_after_transfer": report_after_transfer,
    "extension_later": extension_later,
    "due_fixed_after_approval": due_fixed_after_approval,
    "plan_change_reviewed": plan_change_reviewed,
    "report_day_valid": report_day_valid,
}
"""The built-in guards by name."""


# -- admission and authorization ----------------------------------------------------
def admit(state: RoundState, process: Process, cmd: Command, now: datetime) -> BaseModel | None:
    """What every command passes before it is decided (the engine calls it first):

    * it does not act in the engine's own name (:data:`~xuncha_flow.SWEEPER`, or any
      id or organization in its reserved namespace): :class:`PermissionDenied`;
    * its payload is valid with the round's :class:`DateWindow` (dates as of ``now``
      in the process's time zone): :class:`~xuncha_flow.InvalidCommand`, or
      :class:`~xuncha_flow.LimitExceeded` for a part over its maximum.

    Returns the validated payload (None for an event the definition does not know:
    that is refused when the command is decided)."""
    if is_engine_identity(cmd.actor):
        raise PermissionDenied(
            actor=cmd.actor.id,
            role=cmd.actor.role.value,
            event=cmd.event,
            allowed_roles=(),
            subject=f"{cmd.kind} {cmd.subject}",
            reason="the engine's own identity (its sweeps) cannot be used by a command",
        )
    if not process.definition(cmd.kind).has_event(cmd.event):
        return None
    opened = state.round.opened_at if state.round is not None else None
    window = DateWindow.around(now, process.deadlines.tz, opened)
    model = process.payload_model(cmd.kind, cmd.event)
    try:
        return model.model_validate(cmd.payload, context={"dates": window})
    except ValidationError as exc:
        raise refusal(exc, f"invalid payload for {cmd.kind}.{cmd.event}", ["payload"]) from exc


def unit_of(state: RoundState, kind: str, record: Any, payload: BaseModel) -> Unit | None:
    """The inspected unit a subject belongs to (for a creation event, the one its
    payload names). Raises :class:`NotFound` for a dangling reference."""
    if kind == "unit" and record is not None:
        return state.units[record.id]
    if kind == "item":
        unit_id = record.unit_id if record is not None else _as(payload, RecordItem).unit_id
        if unit_id not in state.units:
            raise NotFound("unit", unit_id, state.stream)
        return state.units[unit_id]
    if kind == "measure":
        item_id = record.item_id if record is not None else _as(payload, AddMeasure).item_id
        if item_id not in state.items:
            raise NotFound("item", item_id, state.stream)
        return state.units[state.items[item_id].unit_id]
    return None


@attrs.frozen
class Owner:
    """Who answers for a subject: ``organization``, acting on it in ``role`` (None
    when it may not act on it at all: a deadline or a recommendation)."""

    organization: str
    role: Role | None
    label: str
    """What the owner is, for messages: "rectifies item P-1", "received lead L-1"."""


def _owner_of_subject(state: RoundState, kind: str, subject: str) -> str | None:
    """The organization that answers for a subject named by kind and id, if it exists."""
    unit: Unit | None = None
    if kind == "unit":
        unit = state.units.get(subject)
    elif kind == "item" and subject in state.items:
        unit = state.units.get(state.items[subject].unit_id)
    elif kind == "measure" and subject in state.measures:
        item = state.items.get(state.measures[subject].item_id)
        unit = state.units.get(item.unit_id) if item is not None else None
    elif kind == "lead" and subject in state.leads:
        return state.leads[subject].receiver_org
    return unit.organization_id if unit is not None else None


def owner_of(
    state: RoundState, kind: str, subject: str, record: Any, payload: BaseModel
) -> Owner | None:
    """The owner of a subject (for a creation event, of what its payload names), or
    None: a round, a round-level deadline, a unit or a lead being created."""
    if kind in ("unit", "item", "measure"):
        unit = unit_of(state, kind, record, payload)
        if unit is None:
            return None
        return Owner(
            unit.organization_id, Role.INSPECTED_ORGANIZATION, f"rectifies {kind} {subject}"
        )
    if kind == "lead" and record is not None:
        lead: Lead = record
        return Owner(lead.receiver_org, LEAD_ROLE[lead.receiver], f"received lead {subject}")
    timed: tuple[str, str] | None = None
    if kind == "deadline" and record is not None:
        timed = (record.subject_kind, record.subject)
    elif kind == "recommendation" and record is not None:
        deadline = state.deadlines.get(record.deadline_id)
        timed = (
            (deadline.subject_kind, deadline.subject)
            if deadline is not None
            else (record.subject_kind, record.subject)
        )
    if timed is None:
        return None
    organization = _owner_of_subject(state, *timed)
    if organization is None:
        return None
    return Owner(organization, None, f"answers for {kind} {subject} (on {timed[0]} {timed[1]})")


def _automatic(ctx: GuardContext, event: str) -> bool:
    """Whether ``event`` on the subject is one the engine fires (a consequence of a
    command), not one a command asks for."""
    definition = ctx.definitions.get(ctx.kind)
    if definition is None:
        return False
    if ctx.record is None:
        create = definition.data.create
        return create.automatic and event == create.event
    try:
        source = definition.state_by_value(ctx.record.state).name
    except KeyError:
        return False
    candidates = definition.candidates(event, source)
    return bool(candidates) and candidates[0].automatic


def authorize(ctx: GuardContext, *, event: str, roles: frozenset[Role], independent: bool) -> None:
    """Raise :class:`PermissionDenied` (or :class:`SeparationOfDuties`) unless the
    actor may fire ``event`` on the subject."""
    actor = ctx.actor
    label = f"{ctx.kind} {ctx.subject}"

    def deny(reason: str, cls: type[PermissionDenied] = PermissionDenied) -> PermissionDenied:
        return cls(
            actor=actor.id,
            role=actor.role.value,
            event=event,
            allowed_roles=[r.value for r in roles],
            subject=label,
            reason=reason,
        )

    if actor.role not in roles:
        raise deny("")
    asked = not _automatic(ctx, event)  # a command's own event, not a consequence
    if asked and is_engine_identity(actor):
        raise deny("the engine's own identity (its sweeps) cannot be used by a command")
    unit = unit_of(ctx.state, ctx.kind, ctx.record, ctx.payload)
    if unit is not None:
        if actor.role is Role.INSPECTED_ORGANIZATION and not same_organization(
            actor.organization, unit.organization_id
        ):
            raise deny(
                f"acts for {actor.organization!r}, but {label} belongs to {unit.organization_id!r}"
            )
        if (
            actor.role is Role.INSPECTION_TEAM
            and unit.team_id
            and not same_organization(actor.organization, unit.team_id)
        ):
            raise deny(
                f"team {actor.organization!r} does not inspect unit {unit.id} "
                f"({unit.team_id!r} does)"
            )
    if ctx.kind == "lead" and ctx.record is not None and actor.role in LEAD_ROLE.values():
        lead: Lead = ctx.record
        expected = LEAD_ROLE[lead.receiver]
        if actor.role is not expected or not same_organization(
            actor.organization, lead.receiver_org
        ):
            raise deny(
                f"lead {lead.id} was transferred to {lead.receiver_org!r} ({expected.value})"
            )
    if not asked:
        return
    owner = owner_of(ctx.state, ctx.kind, ctx.subject, ctx.record, ctx.payload)
    if owner is None or not same_organization(actor.organization, owner.organization):
        return
    if independent or owner.role is None or actor.role is not owner.role:
        raise deny(
            f"{actor.organization!r} {owner.label} and may not check its own work",
            SeparationOfDuties,
        )
