"""Payloads: the typed input each event takes (DOMAIN.md §7).

Every command names a subject and an event; its ``payload`` is validated against
the model registered here for that event. Events without an entry take no payload.
Bad input — wrong types, unknown fields, impossible dates, negative amounts — is
refused with a :class:`~xuncha_flow.InvalidCommand` before anything changes; input
over a limit (``_limits.py``) with a :class:`~xuncha_flow.LimitExceeded`.

What every value must be:

* ids are :data:`~xuncha_flow._ids.Ident` (letters, digits, ``-_.``; see ``_ids.py``);
* texts have no control characters (a long text may have line breaks and tabs), one-line
  texts none at all, and every text and list has a maximum;
* evidence references (attachments) are non-blank, one line, and capped;
* amounts and counts are never negative and bounded;
* dates lie in the window of :class:`DateWindow` when the engine validates a command:
  not more than a year before the round was opened, not more than ten years after
  today, and a date of something that happened (delivered, done, transferred,
  reported) not after today.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

import attrs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._ids import Ident, OrgId, invisible
from ._limits import (
    DATES_AFTER_TODAY_YEARS,
    DATES_BEFORE_ROUND_YEARS,
    MAX_ATTACHMENT_LENGTH,
    MAX_BULLETIN_LENGTH,
    MAX_CHILDREN,
    MAX_COUNT,
    MAX_ENTRIES,
    MAX_LEAD_ITEMS,
    MAX_LOOKBACK_ROUNDS,
    MAX_MILESTONES,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_YUAN_DIGITS,
)

__all__ = [
    "PAYLOADS",
    "AddMeasure",
    "AddUnit",
    "Attachment",
    "ChildItem",
    "ClaimItem",
    "CompleteMeasure",
    "CompleteMilestone",
    "ConcludeLead",
    "DailyReport",
    "DateWindow",
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
    "Text",
    "TransferLead",
    "VerifyItem",
    "WeeklyBulletin",
]


# -- texts -------------------------------------------------------------------------------
_LINE_BREAKS = frozenset("\n\r\t")


def _control(ch: str, *, multiline: bool) -> bool:
    category = unicodedata.category(ch)
    if category == "Cs":  # a lone surrogate cannot be stored as UTF-8
        return True
    return category == "Cc" and not (multiline and ch in _LINE_BREAKS)


def _clean(multiline: bool) -> AfterValidator:
    def check(value: str) -> str:
        for ch in value:
            if _control(ch, multiline=multiline):
                raise PydanticCustomError(
                    "text_control_character",
                    "{what} may not contain the control character U+{code}",
                    {
                        "what": "a text" if multiline else "a one-line text",
                        "code": f"{ord(ch):04X}",
                    },
                )
        return value

    return AfterValidator(check)


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH), _clean(True)]
"""A text of several lines: no control characters but line breaks and tabs."""
Notes = Annotated[str, Field(max_length=MAX_TEXT_LENGTH), _clean(True)]
"""An optional text of several lines (may be empty)."""
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), _clean(False)]
"""A one-line text: a name or title."""
Label = Annotated[str, Field(max_length=MAX_NAME_LENGTH), _clean(False)]
"""An optional one-line text (may be empty): a theme, category, level, head."""


def _visible(value: str) -> str:
    if all(invisible(ch) for ch in value):
        raise PydanticCustomError("attachment_blank", "an evidence reference is not blank")
    return value


Attachment = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ATTACHMENT_LENGTH),
    _clean(False),
    AfterValidator(_visible),
]
"""An evidence reference (佐证材料: a file id or URI; the library stores references,
never files): one line, not blank."""

Yuan = Annotated[Decimal, Field(ge=0, max_digits=MAX_YUAN_DIGITS, decimal_places=2)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


# -- dates -------------------------------------------------------------------------------
def _years(day: date, years: int) -> date:
    year = min(max(day.year + years, date.min.year), date.max.year)
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a year without it
        return day.replace(year=year, day=28)


@attrs.frozen
class DateWindow:
    """The dates a command may carry, as of ``today`` (in the process's time zone).

    A date of something that happened (feedback delivered, a measure or milestone
    done, a lead transferred or reported back, a day reported) lies in
    [``earliest``, ``today``]; any other date (a due date, an on-site period, a
    milestone, an extension) in [``earliest``, ``latest``]. ``earliest`` is
    :data:`~xuncha_flow._limits.DATES_BEFORE_ROUND_YEARS` before the round was
    opened (before today for the command that opens it), ``latest``
    :data:`~xuncha_flow._limits.DATES_AFTER_TODAY_YEARS` after today: no feedback in
    year 1, no measure done in 2099, no due date so far away that deadline
    arithmetic overflows. The engine passes the window to payload validation as
    ``context={"dates": window}``; without one, dates are only parsed.
    """

    today: date
    earliest: date
    latest: date

    @classmethod
    def around(cls, now: datetime, tz: tzinfo, opened: datetime | None = None) -> DateWindow:
        """The window of a command decided at ``now`` on a round opened at ``opened``
        (None: the command opens it)."""
        today = now.astimezone(tz).date()
        since = opened.astimezone(tz).date() if opened is not None else today
        return cls(
            today=today,
            earliest=_years(min(since, today), -DATES_BEFORE_ROUND_YEARS),
            latest=_years(today, DATES_AFTER_TODAY_YEARS),
        )


def _window_of(info: ValidationInfo) -> DateWindow | None:
    context = info.context
    window = context.get("dates") if isinstance(context, Mapping) else None
    return window if isinstance(window, DateWindow) else None


def _out_of_window(value: date, window: DateWindow, last: date, what: str) -> Any:
    return PydanticCustomError(
        "date_out_of_window",
        "{date} is not {what}: dates lie between {earliest} and {latest}",
        {
            "date": value.isoformat(),
            "what": what,
            "earliest": window.earliest.isoformat(),
            "latest": last.isoformat(),
        },
    )


def _happened(value: date, info: ValidationInfo) -> date:
    window = _window_of(info)
    if window is None:
        return value
    if value > window.today:
        raise PydanticCustomError(
            "date_in_future",
            "{date} lies in the future (today is {today})",
            {"date": value.isoformat(), "today": window.today.isoformat()},
        )
    if value < window.earliest:
        raise _out_of_window(value, window, window.today, "plausible for this round")
    return value


def _planned(value: date, info: ValidationInfo) -> date:
    window = _window_of(info)
    if window is not None and not window.earliest <= value <= window.latest:
        raise _out_of_window(value, window, window.latest, "plausible for this round")
    return value


Happened = Annotated[date, AfterValidator(_happened)]
"""The date something happened: not after today, not before the window."""
Planned = Annotated[date, AfterValidator(_planned)]
"""A planned date (due date, on-site period, milestone): within the window."""


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
    name: Name
    level: RoundLevel
    kind: RoundKind = RoundKind.REGULAR
    theme: Label = ""
    parent_round_id: Ident | None = None
    lookback_of: tuple[Ident, ...] = Field(default=(), max_length=MAX_LOOKBACK_ROUNDS)
    planned_start: Planned | None = None
    planned_end: Planned | None = None

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
    petition_closing_date: Planned | None = None


class AddUnit(_Payload):
    name: Name
    organization_id: OrgId
    level: Label = ""
    head: Label = ""
    leader_in_charge: Label = ""
    team_id: OrgId | None = None
    onsite_start: Planned | None = None
    onsite_end: Planned | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _window(self.onsite_start, self.onsite_end, "the on-site period")
        return self


class RecordItem(_Payload):
    unit_id: Ident
    description: Text
    category: Label = ""
    source: ItemSource = ItemSource.OTHER
    common: bool = False
    concerns_head: bool = False
    amount_involved: Yuan = Decimal(0)


class DeliverFeedback(_Payload):
    delivered_on: Happened
    mode: FeedbackMode = FeedbackMode.COLLECTIVE


class ClaimItem(_Payload):
    claimed_by: Ident | None = None


class ChildItem(_Payload):
    id: Ident
    description: Text
    category: Label | None = None


class RefineItem(_Payload):
    children: tuple[ChildItem, ...] = Field(min_length=2, max_length=MAX_CHILDREN)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [c.id for c in self.children]
        if len(set(ids)) != len(ids):
            raise ValueError("child item ids must be unique")
        return self


class Milestone(_Payload):
    title: Name
    due: Planned


class MarkLongTerm(_Payload):
    milestones: tuple[Milestone, ...] = Field(min_length=1, max_length=MAX_MILESTONES)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        titles = [m.title for m in self.milestones]
        if len(set(titles)) != len(titles):
            raise ValueError("milestone titles must be unique")
        return self


class CompleteMilestone(_Payload):
    title: Name
    done_on: Happened


class SubmitItem(_Payload):
    summary: Notes = ""
    amount_recovered: Yuan = Decimal(0)
    rules_established: tuple[Name, ...] = Field(default=(), max_length=MAX_ENTRIES)
    people_held_accountable: Count = 0


class VerifyItem(_Payload):
    notes: Notes = ""


class ReopenItem(_Payload):
    lookback_round_id: Ident


class AddMeasure(_Payload):
    item_id: Ident
    text: Text
    responsible_leader: Ident | None = None
    responsible_person: Ident | None = None
    due_date: Planned | None = None


class ReviseMeasure(_Payload):
    partial: ClassVar[bool] = True

    text: Text | None = None
    responsible_leader: Ident | None = None
    responsible_person: Ident | None = None
    due_date: Planned | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("a revision changes at least one field")
        return self


class ReportMeasureProgress(_Payload):
    percent: int = Field(ge=0, le=100)
    notes: Notes = ""


class CompleteMeasure(_Payload):
    done_on: Happened


class TransferLead(_Payload):
    item_ids: tuple[Ident, ...] = Field(default=(), max_length=MAX_LEAD_ITEMS)
    receiver: LeadReceiver
    receiver_org: OrgId
    summary: Text
    transferred_on: Happened

    @field_validator("item_ids")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a lead names each item once (item_ids are unique)")
        return value


class ConcludeLead(_Payload):
    result: LeadResult
    notes: Notes = ""


class ReportLeadBack(_Payload):
    reported_on: Happened


class PublishUnit(_Payload):
    in_party: bool = True
    public: bool = True
    exemptions: tuple[Name, ...] = Field(default=(), max_length=MAX_ENTRIES)

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

    due: Planned


class DailyReport(_Payload):
    """A unit's daily report during concentrated rectification (日报告)."""

    day: Happened
    summary: Notes = ""


class WeeklyBulletin(_Payload):
    """The weekly bulletin (周通报) for the week containing ``week_of``."""

    week_of: Happened
    text: Annotated[str, Field(max_length=MAX_BULLETIN_LENGTH), _clean(True)] = ""


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
