"""Payloads: the typed input each event takes (DOMAIN.md §7).

Every command names a subject and an event; its ``payload`` is validated against
the model registered here for that event. Events without an entry take no payload.
Bad input — wrong types, unknown fields, impossible dates, negative amounts — is
refused with a :class:`~xuncha_flow.InvalidCommand` before anything changes.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "PAYLOADS",
    "AddMeasure",
    "AddUnit",
    "ChildItem",
    "ClaimItem",
    "CompleteMeasure",
    "CompleteMilestone",
    "ConcludeLead",
    "DailyReport",
    "DeliverFeedback",
    "Empty",
    "EvaluateUnit",
    "ExtendDeadline",
    "FeedbackMode",
    "Grade",
    "ItemSource",
    "LaunchRound",
    "LeadReceiver",
    "LeadResult",
    "MarkLongTerm",
    "Milestone",
    "OpenRound",
    "PublishUnit",
    "RecordItem",
    "RefineItem",
    "ReopenItem",
    "ReportLeadBack",
    "ReportMeasureProgress",
    "ReviseMeasure",
    "RoundKind",
    "RoundLevel",
    "SubmitItem",
    "TransferLead",
    "VerifyItem",
    "WeeklyBulletin",
]

Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$")]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Yuan = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]


class RoundKind(StrEnum):
    REGULAR = "regular"  # 常规巡察
    SPECIAL = "special"  # 专项巡察
    MOBILE = "mobile"  # 机动巡察
    LOOKBACK = "lookback"  # 巡察“回头看”
    ELEVATED = "elevated"  # 提级巡察
    LINKED = "linked"  # 联动巡察
    VILLAGE = "village"  # 对村（社区）巡察


class RoundLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


class ItemSource(StrEnum):
    INTERVIEW = "interview"  # 个别谈话
    PETITION = "petition"  # 信访
    DOCUMENT_REVIEW = "document_review"  # 调阅资料
    VISIT = "visit"  # 走访
    OTHER = "other"


class FeedbackMode(StrEnum):
    COLLECTIVE = "collective"  # 集体反馈
    ONE_TO_ONE = "one_to_one"  # 一对一反馈
    WRITTEN = "written"  # 书面反馈


class LeadReceiver(StrEnum):
    DISCIPLINE_COMMISSION = "discipline_commission"  # 纪委监委
    ORGANIZATION_DEPARTMENT = "organization_department"  # 组织部
    OTHER = "other"  # 其他有关单位


class LeadResult(StrEnum):
    CASE_OPENED = "case_opened"  # 立案
    HANDLED = "handled"  # 其他方式处置
    NO_CASE = "no_case"  # 了结


class Grade(StrEnum):
    GOOD = "good"  # 好
    FAIRLY_GOOD = "fairly_good"  # 较好
    AVERAGE = "average"  # 一般
    POOR = "poor"  # 差


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    partial: ClassVar[bool] = False
    """True when only the fields a caller set are recorded (a revision)."""


class Empty(_Payload):
    """No payload."""


def _window(start: date | None, end: date | None, what: str) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError(f"{what} ends ({end}) before it starts ({start})")


class OpenRound(_Payload):
    name: Text
    level: RoundLevel
    kind: RoundKind = RoundKind.REGULAR
    theme: str = Field(default="", max_length=200)
    parent_round_id: Ident | None = None
    lookback_of: tuple[Ident, ...] = ()
    planned_start: date | None = None
    planned_end: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _window(self.planned_start, self.planned_end, "the round")
        if self.kind is RoundKind.LINKED and self.parent_round_id is None:
            raise ValueError("a linked round needs parent_round_id")
        if self.kind is RoundKind.LOOKBACK and not self.lookback_of:
            raise ValueError("a look-back round names the rounds it looks back on (lookback_of)")
        if self.kind is not RoundKind.LOOKBACK and self.lookback_of:
            raise ValueError("only a look-back round has lookback_of")
        return self


class LaunchRound(_Payload):
    petition_closing_date: date | None = None


class AddUnit(_Payload):
    name: Text
    organization_id: Ident
    level: str = Field(default="", max_length=50)
    head: str = Field(default="", max_length=128)
    leader_in_charge: str = Field(default="", max_length=128)
    team_id: Ident | None = None
    onsite_start: date | None = None
    onsite_end: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _window(self.onsite_start, self.onsite_end, "the on-site period")
        return self


class RecordItem(_Payload):
    unit_id: Ident
    description: Text
    category: str = Field(default="", max_length=100)
    source: ItemSource = ItemSource.OTHER
    common: bool = False
    concerns_head: bool = False
    amount_involved: Yuan = Decimal(0)


class DeliverFeedback(_Payload):
    delivered_on: date
    mode: FeedbackMode = FeedbackMode.COLLECTIVE


class ClaimItem(_Payload):
    claimed_by: Ident | None = None


class ChildItem(_Payload):
    id: Ident
    description: Text
    category: str | None = None


class RefineItem(_Payload):
    children: tuple[ChildItem, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [c.id for c in self.children]
        if len(set(ids)) != len(ids):
            raise ValueError("child item ids must be unique")
        return self


class Milestone(_Payload):
    title: Text
    due: date


class MarkLongTerm(_Payload):
    milestones: tuple[Milestone, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        titles = [m.title for m in self.milestones]
        if len(set(titles)) != len(titles):
            raise ValueError("milestone titles must be unique")
        return self


class CompleteMilestone(_Payload):
    title: Text
    done_on: date


class SubmitItem(_Payload):
    summary: str = Field(default="", max_length=4000)
    amount_recovered: Yuan = Decimal(0)
    rules_established: tuple[Text, ...] = ()
    people_held_accountable: int = Field(default=0, ge=0)


class VerifyItem(_Payload):
    notes: str = Field(default="", max_length=4000)


class ReopenItem(_Payload):
    lookback_round_id: Ident


class AddMeasure(_Payload):
    item_id: Ident
    text: Text
    responsible_leader: Ident | None = None
    responsible_person: Ident | None = None
    due_date: date | None = None


class ReviseMeasure(_Payload):
    partial: ClassVar[bool] = True

    text: Text | None = None
    responsible_leader: Ident | None = None
    responsible_person: Ident | None = None
    due_date: date | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("a revision changes at least one field")
        return self


class ReportMeasureProgress(_Payload):
    percent: int = Field(ge=0, le=100)
    notes: str = Field(default="", max_length=4000)


class CompleteMeasure(_Payload):
    done_on: date


class TransferLead(_Payload):
    item_ids: tuple[Ident, ...] = ()
    receiver: LeadReceiver
    receiver_org: Ident
    summary: Text
    transferred_on: date


class ConcludeLead(_Payload):
    result: LeadResult
    notes: str = Field(default="", max_length=4000)


class ReportLeadBack(_Payload):
    reported_on: date


class PublishUnit(_Payload):
    in_party: bool = True
    public: bool = True
    exemptions: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _somewhere(self) -> Self:
        if not (self.in_party or self.public):
            raise ValueError("publication goes in-party, public, or both")
        return self


class EvaluateUnit(_Payload):
    score: Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]
    grade: Grade


class ExtendDeadline(_Payload):
    """An approved extension: the new due date (a deadline only ever moves later)."""

    due: date


class DailyReport(_Payload):
    """A unit's daily report during concentrated rectification (日报告)."""

    day: date
    summary: str = Field(default="", max_length=4000)


class WeeklyBulletin(_Payload):
    """The weekly bulletin (周通报) for the week containing ``week_of``."""

    week_of: date
    text: str = Field(default="", max_length=20000)


PAYLOADS: dict[tuple[str, str], type[_Payload]] = {
    ("round", "open"): OpenRound,
    ("round", "launch"): LaunchRound,
    ("unit", "add"): AddUnit,
    ("unit", "deliver_feedback"): DeliverFeedback,
    ("unit", "publish"): PublishUnit,
    ("unit", "evaluate"): EvaluateUnit,
    ("item", "record"): RecordItem,
    ("item", "claim"): ClaimItem,
    ("item", "refine"): RefineItem,
    ("item", "mark_long_term"): MarkLongTerm,
    ("item", "complete_milestone"): CompleteMilestone,
    ("item", "submit"): SubmitItem,
    ("item", "verify"): VerifyItem,
    ("item", "reopen"): ReopenItem,
    ("measure", "add"): AddMeasure,
    ("measure", "revise"): ReviseMeasure,
    ("measure", "report_progress"): ReportMeasureProgress,
    ("measure", "complete"): CompleteMeasure,
    ("lead", "transfer"): TransferLead,
    ("lead", "conclude"): ConcludeLead,
    ("lead", "report_back"): ReportLeadBack,
    ("deadline", "extend"): ExtendDeadline,
    ("unit", "daily_report"): DailyReport,
    ("round", "publish_bulletin"): WeeklyBulletin,
}
"""(subject kind, event identifier) → payload model. Missing pairs take :class:`Empty`."""
