"""Deadlines and escalation ladders as data (DOMAIN.md §3, §5, §6).

A :class:`DeadlineRule` says when a deadline opens (an anchor event such as the
feedback delivered to a unit), how long it runs (a :class:`Duration` on a calendar,
or a date field such as a measure's due date), which events meet it and which
cancel it, and which :class:`Ladder` escalates it. A ladder is a list of
:class:`Rung` s — warnings before the due time, the overdue rung at it, and
recommendations after it that a human confirms or dismisses.

A deadline date D means "by the end of D": the due instant is midnight at the
start of D + 1 in the policy's time zone (Asia/Shanghai by default).

Every preset names its source: **[rule]** quotes a regulation, **[practice]** is
reported local practice (configurable, DOMAIN.md §6), **[seed NNN]** points at a
source article, and **[default]** marks a value the sources leave open that this
library chose (change it in your own policy).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._calendar import Calendar, CalendarDays, ChinaWorkingDays, HolidaySchedule, Months
from ._clock import DEFAULT_TIMEZONE
from ._errors import CalendarError

__all__ = [
    "Calendars",
    "DeadlinePolicy",
    "DeadlineRule",
    "Duration",
    "Ladder",
    "Rung",
    "due_instant",
    "rung_time",
]

_IDENT = r"^[a-z][a-z0-9_]*$"
DurationUnit = Literal["calendar_days", "months", "working_days"]
Recipient = Literal[
    "responsible_person",
    "responsible_leader",
    "leader_in_charge",
    "unit",
    "unit_head",
    "lead_receiver",
    "inspection_office",
    "supervision_office",
    "leading_group",
]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Duration(_Data):
    """A time limit: ``amount`` calendar days, months or working days (at most ten
    years' worth of any unit, so deadline arithmetic never leaves the calendar)."""

    amount: int = Field(ge=0, le=3660)
    unit: DurationUnit

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.replace('_', ' ')}"


class Rung(_Data):
    """One step of a ladder. It fires once per deadline, at ``at`` + ``days``
    (calendar days; negative is before) or, for ``at="fraction"``, that share of
    the way from the deadline's start to its due time."""

    name: str = Field(pattern=_IDENT)
    label: str = Field(min_length=1)
    kind: Literal["warning", "overdue", "recommendation"]
    at: Literal["start", "due", "fraction"] = "due"
    days: int = Field(default=0, ge=-3660, le=3660)
    fraction: float | None = Field(default=None, gt=0, lt=1)
    recipients: tuple[Recipient, ...] = ()
    recommends: str | None = Field(
        default=None, description="what a recommendation proposes: accountability, talk, ..."
    )
    final_days: int | None = Field(
        default=None,
        ge=1,
        le=3660,
        description="a new final date this many days after the due date",
    )
    check: str | None = Field(
        default=None, description="a named check: when it holds, the rung is recorded as passed"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.at == "fraction") != (self.fraction is not None):
            raise ValueError(f"rung {self.name}: a fraction goes with at='fraction' only")
        if self.kind == "recommendation" and not self.recommends:
            raise ValueError(f"rung {self.name}: a recommendation says what it recommends")
        if self.kind == "overdue" and (self.at != "due" or self.days != 0):
            raise ValueError(f"rung {self.name}: the overdue rung fires at the due time")
        return self


class Ladder(_Data):
    """An escalation ladder: exactly one overdue rung; names unique."""

    name: str = Field(pattern=_IDENT)
    label: str
    source: str
    rungs: tuple[Rung, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [r.name for r in self.rungs]
        if len(set(names)) != len(names):
            raise ValueError(f"ladder {self.name}: rung names must be unique")
        if sum(r.kind == "overdue" for r in self.rungs) != 1:
            raise ValueError(f"ladder {self.name}: exactly one overdue rung is required")
        return self

    @property
    def overdue(self) -> Rung:
        return next(r for r in self.rungs if r.kind == "overdue")


class DeadlineRule(_Data):
    """When a deadline opens, how it is computed, what meets or cancels it."""

    name: str = Field(pattern=_IDENT)
    label: str
    source: str
    subject: Literal["unit", "item", "measure", "lead"]
    anchors: tuple[str, ...] = Field(min_length=1, description="event types that open it")
    start: str = Field(
        default="event",
        pattern=r"^(event|payload:[a-z_]+)$",
        description="the start date: the anchor event's date, or a date field of its payload",
    )
    duration: Duration | None = None
    due_field: Literal["measure.due_date", "unit.onsite_end"] | None = None
    earliest: Duration | None = Field(
        default=None, description="the meeting event is refused before start + earliest"
    )
    met_by: tuple[str, ...] = Field(min_length=1)
    cancelled_by: tuple[str, ...] = ()
    ladder: str | None = None
    when: tuple[Literal["plan_approved"], ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.duration is None) == (self.due_field is None):
            raise ValueError(f"rule {self.name}: give either a duration or a due_field")
        return self


class DeadlinePolicy(_Data):
    """The deadline rules and ladders of a process, pinned per round."""

    name: str
    rules: tuple[DeadlineRule, ...] = ()
    ladders: tuple[Ladder, ...] = ()
    timezone: str = "Asia/Shanghai"
    daily_report: bool = Field(
        default=False, description="warn when a unit in concentrated rectification skips a day"
    )
    weekly_bulletin: bool = Field(
        default=False, description="warn when a round in rectification misses a weekly bulletin"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ladders = {ladder.name for ladder in self.ladders}
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique")
        if len(ladders) != len(self.ladders):
            raise ValueError("ladder names must be unique")
        for rule in self.rules:
            if rule.ladder is not None and rule.ladder not in ladders:
                raise ValueError(f"rule {rule.name} names unknown ladder {rule.ladder!r}")
        if self.timezone != "Asia/Shanghai":  # the default has a fallback (see _clock)
            try:
                ZoneInfo(self.timezone)
            except ZoneInfoNotFoundError as exc:
                raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        return self

    # Not cached: ``model_copy(update=...)`` would copy a cached value into a changed copy.
    @property
    def fingerprint(self) -> str:
        data = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(data.encode()).hexdigest()

    @property
    def version_id(self) -> str:
        return f"deadlines:{self.name}#{self.fingerprint[:12]}"

    @property
    def tz(self) -> tzinfo:
        return DEFAULT_TIMEZONE if self.timezone == "Asia/Shanghai" else ZoneInfo(self.timezone)

    def rule(self, name: str) -> DeadlineRule:
        return next(r for r in self.rules if r.name == name)

    def ladder(self, name: str) -> Ladder:
        return next(x for x in self.ladders if x.name == name)

    def anchored_on(self, event_type: str) -> tuple[DeadlineRule, ...]:
        return tuple(r for r in self.rules if event_type in r.anchors)

    # -- presets -------------------------------------------------------------------------
    @classmethod
    def none(cls) -> DeadlinePolicy:
        """No deadlines at all."""
        return cls(name="none")

    @classmethod
    def standard(cls, ladder: str = "three_colour") -> DeadlinePolicy:
        """The rules of DOMAIN.md §3 with the 2-month rectification report (Art. 27)."""
        return cls(
            name=f"standard+{ladder}",
            rules=_standard_rules(ladder, report_months=2),
            ladders=LADDERS,
        )

    @classmethod
    def county(cls, ladder: str = "three_colour") -> DeadlinePolicy:
        """The county variant: rectification report within 3 months of feedback."""
        return cls(
            name=f"county+{ladder}",
            rules=_standard_rules(ladder, report_months=3),
            ladders=LADDERS,
        )

    @classmethod
    def supervision(cls, ladder: str = "five_letters") -> DeadlinePolicy:
        """The "一组两办" supervision model of seed 002: standard rules, daily reports
        and weekly bulletins (日报告、周通报) checked."""
        base = cls.standard(ladder)
        return base.model_copy(
            update={"name": f"supervision+{ladder}", "daily_report": True, "weekly_bulletin": True}
        )


# -- presets -------------------------------------------------------------------------------
ART_27 = (
    "《中国共产党巡视工作条例》(2015) 第二十七条: rectification report within two months "
    "of feedback [rule] (DOMAIN.md §3.7)"
)
ART_29 = (
    "《中国共产党巡视工作条例》(2015) 第二十九条: the receiver reports back on a transferred "
    "lead within three months [rule] (DOMAIN.md §3.6)"
)
COUNTY_REPORT = "one county: rectification report within three months [practice] (DOMAIN.md §3.7)"
PLAN_MONTH = "one city: rectification plan within one month of feedback [practice] (DOMAIN.md §3.7)"
ONSITE_FIX = "立行立改: fixed during the on-site period [practice] (DOMAIN.md §3.3)"
EVALUATION = (
    "one city: evaluation within a month after concentrated rectification ends "
    "[practice] (DOMAIN.md §3.9)"
)
MEASURE_DUE = (
    "each measure's due date set by the unit in its plan (DOMAIN.md §4); a measure "
    "added after the plan's approval runs from the approval of that change"
)
HALF_TIME = "时间过半、任务过半: at half the window, half the items done [practice] (DOMAIN.md §5)"


def _standard_rules(ladder: str, *, report_months: int) -> tuple[DeadlineRule, ...]:
    feedback = {"anchors": ("unit.deliver_feedback",), "start": "payload:delivered_on"}
    return (
        DeadlineRule(
            name="rectification_plan",
            label="报送整改方案",
            source=PLAN_MONTH,
            subject="unit",
            duration=Duration(amount=1, unit="months"),
            met_by=("unit.submit_plan",),
            ladder=ladder,
            **feedback,
        ),
        DeadlineRule(
            name="rectification_report",
            label="报送整改报告",
            source=ART_27 if report_months == 2 else COUNTY_REPORT,
            subject="unit",
            duration=Duration(amount=report_months, unit="months"),
            met_by=("unit.report_rectification",),
            ladder=f"{ladder}_half_time",
            **feedback,
        ),
        DeadlineRule(
            name="lead_report_back",
            label="线索办理情况反馈",
            source=ART_29,
            subject="lead",
            anchors=("lead.transfer",),
            start="payload:transferred_on",
            duration=Duration(amount=3, unit="months"),
            met_by=("lead.report_back",),
            ladder=ladder,
        ),
        DeadlineRule(
            name="immediate_fix",
            label="立行立改",
            source=ONSITE_FIX,
            subject="item",
            anchors=("item.order_immediate_fix",),
            due_field="unit.onsite_end",
            met_by=("item.close",),
            cancelled_by=("item.include_in_report", "item.withdraw"),
            ladder=ladder,
        ),
        DeadlineRule(
            name="measure_due",
            label="整改措施到期",
            source=MEASURE_DUE,
            subject="measure",
            anchors=("unit.approve_plan", "measure.approve"),
            due_field="measure.due_date",
            met_by=("measure.complete",),
            cancelled_by=("measure.drop",),
            ladder=ladder,
            when=("plan_approved",),
        ),
        DeadlineRule(
            name="evaluation",
            label="整改质效评估",
            source=EVALUATION,
            subject="unit",
            anchors=("unit.report_rectification",),
            duration=Duration(amount=1, unit="months"),
            met_by=("unit.evaluate",),
            ladder=ladder,
        ),
    )


def _half_time(ladder: Ladder) -> Ladder:
    check = Rung(
        name="half_time",
        label="时间过半、任务过半",
        kind="warning",
        at="fraction",
        fraction=0.5,
        recipients=("unit", "unit_head"),
        check="half_items_closed",
    )
    return Ladder(
        name=f"{ladder.name}_half_time",
        label=f"{ladder.label}（含时间过半检查）",
        source=f"{ladder.source}; {HALF_TIME}",
        rungs=(check, *ladder.rungs),
    )


THREE_COLOUR = Ladder(
    name="three_colour",
    label="三色预警",
    source="three-colour warnings: green 20 days before, yellow 10 days before, red when "
    "overdue, then accountability [practice] (DOMAIN.md §5); the accountability rung's "
    "10 days after the due date is a [default]",
    rungs=(
        Rung(
            name="green",
            label="绿色提醒函",
            kind="warning",
            days=-20,
            recipients=("responsible_person",),
        ),
        Rung(
            name="yellow",
            label="黄色预警",
            kind="warning",
            days=-10,
            recipients=("responsible_person", "responsible_leader", "leader_in_charge"),
        ),
        Rung(
            name="red", label="红色预警（逾期）", kind="overdue", recipients=("unit", "unit_head")
        ),
        Rung(
            name="accountability",
            label="问责建议",
            kind="recommendation",
            days=10,
            recommends="accountability",
            recipients=("leading_group",),
        ),
    ),
)
FIVE_LETTERS = Ladder(
    name="five_letters",
    label="五书制",
    source="督办通知书 → 督查指导书 → 提醒书 near the deadline → 告诫书 when overdue with a "
    "new final date → 问责书 and a talk with the head [practice] (DOMAIN.md §5); the guidance "
    "letter at half the window, the reminder 7 days before and the 10-day final date are "
    "[default]",
    rungs=(
        Rung(
            name="supervision_notice",
            label="督办通知书",
            kind="warning",
            at="start",
            recipients=("unit", "unit_head"),
        ),
        Rung(
            name="guidance_letter",
            label="督查指导书",
            kind="warning",
            at="fraction",
            fraction=0.5,
            recipients=("unit", "leader_in_charge"),
        ),
        Rung(
            name="reminder",
            label="提醒书",
            kind="warning",
            days=-7,
            recipients=("unit", "unit_head"),
        ),
        Rung(
            name="admonition",
            label="告诫书",
            kind="overdue",
            final_days=10,
            recipients=("unit", "unit_head"),
        ),
        Rung(
            name="accountability_letter",
            label="问责书并约谈主要负责人",
            kind="recommendation",
            days=10,
            recommends="accountability_and_talk",
            recipients=("leading_group",),
        ),
    ),
)
SEED_LADDER = Ladder(
    name="seed_ladder",
    label="提醒函 → 约谈提醒 → 通报 → 问责 / 停职",
    source="reminder letters (提醒函), admonition talks (约谈提醒), public naming "
    "(点名道姓通报) and suspension (停职) [seed 000, seed 002]; the day offsets (5 days "
    "before, at the due date, 15 and 30 days after) are [default]",
    rungs=(
        Rung(
            name="reminder_letter",
            label="提醒函",
            kind="warning",
            days=-5,
            recipients=("unit", "unit_head"),
        ),
        Rung(name="admonition_talk", label="约谈提醒", kind="overdue", recipients=("unit_head",)),
        Rung(
            name="public_naming",
            label="点名道姓通报",
            kind="recommendation",
            days=15,
            recommends="public_naming",
            recipients=("leading_group",),
        ),
        Rung(
            name="accountability",
            label="问责 / 停职建议",
            kind="recommendation",
            days=30,
            recommends="accountability_or_suspension",
            recipients=("leading_group",),
        ),
    ),
)
BASE_LADDERS = (THREE_COLOUR, FIVE_LETTERS, SEED_LADDER)
LADDERS: tuple[Ladder, ...] = (*BASE_LADDERS, *(_half_time(x) for x in BASE_LADDERS))


# -- tables for the documentation ----------------------------------------------------------
def rules_table(policy: DeadlinePolicy) -> str:
    """A markdown table of the policy's rules and their sources."""
    rows = [
        "| rule | 中文 | subject | opens on | due | met by | ladder | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in policy.rules:
        due = str(r.duration) if r.duration is not None else f"`{r.due_field}`"
        rows.append(
            f"| `{r.name}` | {r.label} | {r.subject} | {', '.join(f'`{a}`' for a in r.anchors)} "
            f"| {due} | {', '.join(f'`{m}`' for m in r.met_by)} | `{r.ladder}` | {r.source} |"
        )
    return "\n".join(rows)


def ladder_table(ladder: Ladder) -> str:
    """A markdown table of a ladder's rungs."""
    rows = [
        f"**{ladder.label}** (`{ladder.name}`) — {ladder.source}",
        "",
        "| rung | 中文 | kind | fires | recipients |",
        "|---|---|---|---|---|",
    ]
    for g in ladder.rungs:
        when = (
            f"{g.fraction:.0%} of the window"
            if g.at == "fraction"
            else f"{g.at} {g.days:+d} days"
            if g.days
            else f"at {g.at}"
        )
        extra = f" (recommends {g.recommends})" if g.recommends else ""
        extra += f" (new final date: due +{g.final_days} days)" if g.final_days else ""
        rows.append(
            f"| `{g.name}` | {g.label} | {g.kind}{extra} | {when} | {', '.join(g.recipients)} |"
        )
    return "\n".join(rows)


# -- computing times -----------------------------------------------------------------------
def due_instant(due: date, tz: tzinfo) -> datetime:
    """The moment a deadline dated ``due`` passes: midnight starting the next day."""
    return datetime.combine(due + timedelta(days=1), time(0), tz)


def rung_time(rung: Rung, start: datetime, due: datetime) -> datetime:
    """When ``rung`` fires for a deadline running from ``start`` to ``due``."""
    if rung.at == "fraction":
        assert rung.fraction is not None
        return start + (due - start) * rung.fraction
    base = start if rung.at == "start" else due
    return base + timedelta(days=rung.days)


@attrs.define
class Calendars:
    """The calendars deadlines are counted on. Working days need the official holiday
    schedule: pass one (``HolidaySchedule.from_chinese_calendar().with_year(2027, ...)``)
    or let it load lazily from the ``chinese-calendar`` package on first use."""

    schedule: HolidaySchedule | None = None

    def get(self, unit: DurationUnit) -> Calendar:
        if unit == "calendar_days":
            return CalendarDays()
        if unit == "months":
            return Months()
        if self.schedule is None:
            try:
                self.schedule = HolidaySchedule.from_chinese_calendar()
            except ImportError as exc:
                raise CalendarError(
                    "working-day deadlines need the official holiday schedule: install "
                    "'xuncha_flow[calendar]' or pass Calendars(schedule=...)"
                ) from exc
        return ChinaWorkingDays(self.schedule)

    def add(self, start: date, duration: Duration) -> date:
        return self.get(duration.unit).add(start, duration.amount)
