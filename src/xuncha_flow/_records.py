"""Records: the pydantic form of a round's state, for output and JSON.

The engine keeps small attrs records internally; these models are what a host
serialises, shows or sends on (DOMAIN.md §7). :func:`snapshot` converts a whole
round; every model round-trips through JSON.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import attrs
from pydantic import AwareDatetime, BaseModel, ConfigDict

from ._model import RoundState
from ._roles import Actor

__all__ = [
    "DeadlineRecord",
    "ItemRecord",
    "LeadRecord",
    "MeasureRecord",
    "RecommendationRecord",
    "RoundRecord",
    "RoundSnapshot",
    "UnitRecord",
    "snapshot",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoundRecord(_Record):
    id: str
    name: str
    level: str
    kind: str
    state: str
    opened_at: AwareDatetime
    theme: str = ""
    parent_round_id: str | None = None
    lookback_of: tuple[str, ...] = ()
    planned_start: date | None = None
    planned_end: date | None = None
    petition_closing_date: date | None = None
    definitions: dict[str, str] = {}
    unit_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    reopenings: int = 0
    rectify_since: AwareDatetime | None = None
    bulletins: tuple[date, ...] = ()
    missing_bulletins: tuple[date, ...] = ()


class UnitRecord(_Record):
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
    plan_approved_at: AwareDatetime | None = None
    rectification_reported_at: AwareDatetime | None = None
    published: tuple[bool, bool] | None = None
    score: Decimal | None = None
    grade: str | None = None
    second_rectifications: int = 0
    rectifying_since: AwareDatetime | None = None
    daily_reports: tuple[date, ...] = ()
    missing_reports: tuple[date, ...] = ()


class SubmissionRecord(_Record):
    by: Actor
    at: AwareDatetime
    evidence: tuple[str, ...]
    from_state: str
    summary: str = ""


class VerificationRecord(_Record):
    by: Actor
    at: AwareDatetime
    notes: str = ""


class RejectionRecord(_Record):
    by: Actor
    at: AwareDatetime
    reason: str


class ReopeningRecord(_Record):
    by: Actor
    at: AwareDatetime
    lookback_round_id: str
    reason: str


class MilestoneRecord(_Record):
    title: str
    due: date
    done_on: date | None = None


class ItemRecord(_Record):
    id: str
    unit_id: str
    description: str
    state: str
    found_at: AwareDatetime
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
    fed_back_at: AwareDatetime | None = None
    milestones: tuple[MilestoneRecord, ...] = ()
    measure_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    claimed_by: str | None = None
    submission: SubmissionRecord | None = None
    verification: VerificationRecord | None = None
    rejections: tuple[RejectionRecord, ...] = ()
    reopenings: tuple[ReopeningRecord, ...] = ()
    closed_at: AwareDatetime | None = None
    withdrawn_reason: str | None = None
    rules_established: tuple[str, ...] = ()
    people_held_accountable: int = 0


class MeasureRecord(_Record):
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


class LeadRecord(_Record):
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
    reconciled_at: AwareDatetime | None = None


class ExtensionRecord(_Record):
    by: Actor
    at: AwareDatetime
    from_due: date
    to_due: date
    reason: str


class FiringRecord(_Record):
    rung: str
    kind: str
    at: AwareDatetime
    outcome: str = "fired"
    generation: int = 1


class DeadlineRecord(_Record):
    id: str
    rule: str
    subject_kind: str
    subject: str
    state: str
    start_at: AwareDatetime
    due: date
    due_at: AwareDatetime
    original_due: date
    ladder: str | None = None
    earliest_at: AwareDatetime | None = None
    extensions: tuple[ExtensionRecord, ...] = ()
    paused_at: AwareDatetime | None = None
    fired: tuple[FiringRecord, ...] = ()
    closed_at: AwareDatetime | None = None
    generation: int = 1


class RecommendationRecord(_Record):
    id: str
    deadline_id: str
    rung: str
    recommends: str
    state: str
    raised_at: AwareDatetime
    subject_kind: str = ""
    subject: str = ""
    decided_by: Actor | None = None
    decided_at: AwareDatetime | None = None
    reason: str | None = None


class RoundSnapshot(_Record):
    """A whole round at one version."""

    version: int
    head: str
    round: RoundRecord
    units: tuple[UnitRecord, ...]
    items: tuple[ItemRecord, ...]
    measures: tuple[MeasureRecord, ...]
    leads: tuple[LeadRecord, ...]
    deadlines: tuple[DeadlineRecord, ...] = ()
    recommendations: tuple[RecommendationRecord, ...] = ()


def _plain(record: Any) -> dict[str, Any]:
    return attrs.asdict(record, recurse=True)


def snapshot(state: RoundState) -> RoundSnapshot:
    """The round's state as pydantic records."""
    if state.round is None:
        raise ValueError(f"round {state.stream!r} has not been opened")
    rnd = _plain(state.round)
    rnd["definitions"] = dict(state.round.definitions)
    return RoundSnapshot(
        version=state.version,
        head=state.head,
        round=RoundRecord.model_validate(rnd),
        units=tuple(UnitRecord.model_validate(_plain(u)) for u in state.units.values()),
        items=tuple(ItemRecord.model_validate(_plain(i)) for i in state.items.values()),
        measures=tuple(MeasureRecord.model_validate(_plain(m)) for m in state.measures.values()),
        leads=tuple(LeadRecord.model_validate(_plain(le)) for le in state.leads.values()),
        deadlines=tuple(DeadlineRecord.model_validate(_plain(d)) for d in state.deadlines.values()),
        recommendations=tuple(
            RecommendationRecord.model_validate(_plain(r)) for r in state.recommendations.values()
        ),
    )
