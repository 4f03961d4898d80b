"""Deadline rules, ladders and policies as data (issue 3, items 2, 3 and 5).

* validation: a ladder has exactly one overdue rung; a rule has either a duration
  or a due field; a policy names only ladders it has; a process refuses a policy
  naming event types its definitions do not know;
* the presets and their sources (DOMAIN.md §3, §5, §6);
* the arithmetic of :func:`due_instant` and :func:`rung_time`;
* calendars under real deadlines: the end-of-month rule, working days around the
  National Day and Spring Festival holidays with their make-up working days (调休), and
  a deadline reaching into a year the holiday data does not cover — the command fails
  with :class:`YearNotCovered` and changes nothing until the host loads that year.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from pydantic import ValidationError

from deadline_helpers import (
    FAKE_2027_HOLIDAYS,
    FAKE_2027_WORKDAYS,
    OFFICIAL,
    DWorld,
    custom_policy,
    only_rules,
    with_fake_2027,
    working_day_plan_rule,
)
from helpers import fingerprint
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    CalendarDays,
    CalendarError,
    Calendars,
    ChinaWorkingDays,
    DeadlinePolicy,
    DeadlineRule,
    Duration,
    Engine,
    HolidaySchedule,
    InvalidDefinition,
    Ladder,
    Months,
    Process,
    Rung,
    YearNotCovered,
)
from xuncha_flow._deadlines import due_instant, rung_time

SH = DEFAULT_TIMEZONE
CN = ChinaWorkingDays(OFFICIAL)


def rung(name: str, kind: str = "warning", **fields: Any) -> Rung:
    if kind == "recommendation":
        fields.setdefault("recommends", "accountability")
    return Rung(name=name, label=name, kind=kind, **fields)


def ladder(*rungs: Rung, name: str = "custom") -> Ladder:
    return Ladder(name=name, label="自定义", source="a test ladder [practice]", rungs=rungs)


def rule(**fields: Any) -> DeadlineRule:
    data: dict[str, Any] = {
        "name": "plan",
        "label": "报送整改方案",
        "source": "a test rule [practice]",
        "subject": "unit",
        "anchors": ("unit.deliver_feedback",),
        "duration": Duration(amount=1, unit="months"),
        "met_by": ("unit.submit_plan",),
    }
    data.update(fields)
    return DeadlineRule(**data)


# -- ladders and rungs ------------------------------------------------------------------
def test_a_ladder_needs_exactly_one_overdue_rung() -> None:
    with pytest.raises(ValidationError, match="exactly one overdue rung"):
        ladder(rung("early", days=-5), rung("later", "recommendation", days=5))
    with pytest.raises(ValidationError, match="exactly one overdue rung"):
        ladder(rung("red", "overdue"), rung("black", "overdue"))
    with pytest.raises(ValidationError, match="rungs"):
        ladder()
    ok = ladder(rung("early", days=-5), rung("red", "overdue"))
    assert ok.overdue.name == "red"
    assert [r.name for r in ok.rungs] == ["early", "red"]


def test_rung_names_are_unique_within_a_ladder() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ladder(rung("red", "overdue"), rung("red", days=-1))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "overdue", "days": 3}, "overdue rung fires at the due time"),
        ({"kind": "overdue", "at": "start"}, "overdue rung fires at the due time"),
        ({"kind": "overdue", "at": "fraction", "fraction": 0.5}, "overdue rung"),
        ({"kind": "recommendation", "days": 10}, "says what it recommends"),
        ({"at": "fraction"}, "fraction goes with at='fraction'"),
        ({"at": "due", "fraction": 0.5}, "fraction goes with at='fraction'"),
        ({"at": "fraction", "fraction": 0}, "greater than 0"),
        ({"at": "fraction", "fraction": 1}, "less than 1"),
        ({"at": "middle"}, "at"),
        ({"kind": "letter"}, "kind"),
        ({"name": "Green"}, "pattern"),
        ({"name": "1st"}, "pattern"),
        ({"label": ""}, "label"),
        ({"final_days": 0}, "greater than or equal to 1"),
        ({"recipients": ("the_press",)}, "recipients"),
        ({"colour": "green"}, "Extra inputs"),
    ],
)
def test_bad_rungs_are_refused(fields: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"name": "r", "label": "r", "kind": "warning", **fields}
    with pytest.raises(ValidationError, match=message):
        Rung(**data)


def test_rungs_ladders_rules_and_policies_are_frozen() -> None:
    policy = DeadlinePolicy.standard()
    with pytest.raises(ValidationError):
        policy.rules[0].name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        policy.ladders[0].rungs[0].days = -30  # type: ignore[misc]
    with pytest.raises(ValidationError):
        policy.timezone = "UTC"  # type: ignore[misc]


# -- rules ----------------------------------------------------------------------------------
def test_a_rule_has_either_a_duration_or_a_due_field() -> None:
    with pytest.raises(ValidationError, match="either a duration or a due_field"):
        rule(due_field="unit.onsite_end")  # both
    with pytest.raises(ValidationError, match="either a duration or a due_field"):
        rule(duration=None)  # neither
    assert rule().duration == Duration(amount=1, unit="months")
    assert rule(duration=None, due_field="unit.onsite_end").due_field == "unit.onsite_end"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"anchors": ()}, "anchors"),
        ({"met_by": ()}, "met_by"),
        ({"start": "payload:Delivered"}, "start"),
        ({"start": "yesterday"}, "start"),
        ({"subject": "round"}, "subject"),
        ({"due_field": "item.due", "duration": None}, "due_field"),
        ({"duration": {"amount": -1, "unit": "months"}}, "greater than or equal to 0"),
        ({"duration": {"amount": 2, "unit": "weeks"}}, "unit"),
        ({"when": ("round_open",)}, "when"),
        ({"name": "Plan"}, "pattern"),
        ({"escalate": True}, "Extra inputs"),
    ],
)
def test_bad_rules_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rule(**fields)


# -- policies -----------------------------------------------------------------------------
def test_a_policy_refuses_a_rule_naming_an_unknown_ladder() -> None:
    with pytest.raises(ValidationError, match="rule plan names unknown ladder 'four_colour'"):
        custom_policy(rule(ladder="four_colour"))
    with pytest.raises(ValidationError, match="unknown ladder 'four_colour'"):
        DeadlinePolicy.standard("four_colour")
    with pytest.raises(ValidationError, match="unknown ladder"):
        DeadlinePolicy(name="bare", rules=(rule(ladder="three_colour"),))  # no ladders at all
    assert custom_policy(rule(ladder="three_colour")).rule("plan").ladder == "three_colour"


def test_a_policy_refuses_duplicate_rule_or_ladder_names() -> None:
    with pytest.raises(ValidationError, match="rule names must be unique"):
        custom_policy(rule(), rule())
    three = DeadlinePolicy.standard().ladder("three_colour")
    with pytest.raises(ValidationError, match="ladder names must be unique"):
        DeadlinePolicy(name="twice", ladders=(three, three))


def test_a_policy_refuses_an_unknown_time_zone_as_invalid_data() -> None:
    """Regression: an unknown zone used to escape validation as a bare
    ``ZoneInfoNotFoundError`` (a KeyError) instead of a ValidationError."""
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        DeadlinePolicy(name="x", timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        DeadlinePolicy(name="x", timezone="../etc/passwd")
    assert DeadlinePolicy(name="x", timezone="Asia/Urumqi").tz == ZoneInfo("Asia/Urumqi")
    assert DeadlinePolicy(name="x").tz is DEFAULT_TIMEZONE


def test_regression_the_default_zone_needs_no_time_zone_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: the presets checked "Asia/Shanghai" against the host's time zone
    database, so a host without one (Windows without ``tzdata``) could not build any
    policy, although the default zone has a fixed UTC+8 fallback (``_clock``)."""
    import xuncha_flow._deadlines as module

    def no_database(key: str) -> ZoneInfo:
        raise ZoneInfoNotFoundError(key)

    monkeypatch.setattr(module, "ZoneInfo", no_database)
    assert DeadlinePolicy.standard().tz is DEFAULT_TIMEZONE
    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Berlin'"):
        DeadlinePolicy(name="x", timezone="Europe/Berlin")


def test_a_process_refuses_a_policy_naming_event_types_it_does_not_know() -> None:
    policy = custom_policy(
        rule(anchors=("unit.deliver_feedbak",), cancelled_by=("item.vanish",)),
        rule(name="fine"),
        name="typos",
    )
    with pytest.raises(InvalidDefinition) as info:
        Process.standard(deadlines=policy)
    problems = info.value.problems
    assert len(problems) == 2
    assert "deadline rule 'plan' names unknown event type 'unit.deliver_feedbak'" in problems
    assert "deadline rule 'plan' names unknown event type 'item.vanish'" in problems
    assert "typos" in str(info.value)
    # event types use the stored event names: "<kind>.<event>"
    Process.standard(deadlines=custom_policy(rule(met_by=("unit.approve_plan",))))


def test_a_process_refuses_a_met_by_type_of_another_kind_that_does_not_exist() -> None:
    policy = custom_policy(rule(met_by=("lead.submit_plan",)))
    with pytest.raises(InvalidDefinition, match=r"lead\.submit_plan"):
        Process.standard(deadlines=policy)


# -- presets ----------------------------------------------------------------------------------
BASE_LADDERS = ("three_colour", "five_letters", "seed_ladder")
PRESETS = [
    pytest.param(make(ladder_name), id=f"{make.__name__}-{ladder_name}")
    for make in (DeadlinePolicy.standard, DeadlinePolicy.county, DeadlinePolicy.supervision)
    for ladder_name in BASE_LADDERS
]


@pytest.mark.parametrize("policy", PRESETS)
def test_every_preset_rule_cites_its_source(policy: DeadlinePolicy) -> None:
    sources = {r.name: r.source for r in policy.rules}
    assert set(sources) == {
        "rectification_plan",
        "rectification_report",
        "lead_report_back",
        "immediate_fix",
        "measure_due",
        "evaluation",
    }
    assert all(s.strip() for s in sources.values())
    county = policy.name.startswith("county")
    if county:
        assert "[practice]" in sources["rectification_report"]
        assert (
            "三个月" in sources["rectification_report"]
            or "three months" in (sources["rectification_report"])
        )
        assert "第二十七条" not in sources["rectification_report"]
    else:
        assert "第二十七条" in sources["rectification_report"]
        assert "[rule]" in sources["rectification_report"]
    assert "第二十九条" in sources["lead_report_back"]
    assert "[rule]" in sources["lead_report_back"]
    for practice in ("rectification_plan", "immediate_fix", "evaluation"):
        assert "[practice]" in sources[practice], practice
    assert "DOMAIN.md §4" in sources["measure_due"]  # the unit's own due dates
    # and every ladder the policy ships
    for lad in policy.ladders:
        assert lad.source.strip()
        assert "[practice]" in lad.source or "[seed" in lad.source
        assert lad.label.strip()


@pytest.mark.parametrize("name", BASE_LADDERS)
def test_ladder_values_the_sources_leave_open_are_marked_default(name: str) -> None:
    source = DeadlinePolicy.standard().ladder(name).source
    assert "[default]" in source


@pytest.mark.parametrize("ladder_name", BASE_LADDERS)
def test_preset_durations_and_ladders(ladder_name: str) -> None:
    standard = DeadlinePolicy.standard(ladder_name)
    county = DeadlinePolicy.county(ladder_name)
    for policy, report_months in ((standard, 2), (county, 3)):
        plan, report = policy.rule("rectification_plan"), policy.rule("rectification_report")
        lead, fix = policy.rule("lead_report_back"), policy.rule("immediate_fix")
        measure, evaluation = policy.rule("measure_due"), policy.rule("evaluation")
        assert plan.duration == Duration(amount=1, unit="months")
        assert report.duration == Duration(amount=report_months, unit="months")
        assert lead.duration == Duration(amount=3, unit="months")
        assert evaluation.duration == Duration(amount=1, unit="months")
        assert (fix.duration, fix.due_field) == (None, "unit.onsite_end")
        assert (measure.duration, measure.due_field) == (None, "measure.due_date")
        assert measure.when == ("plan_approved",)
        assert plan.start == report.start == "payload:delivered_on"
        assert lead.start == "payload:transferred_on"
        assert report.ladder == f"{ladder_name}_half_time"
        for r in (plan, lead, fix, measure, evaluation):
            assert r.ladder == ladder_name
        assert not policy.daily_report
        assert not policy.weekly_bulletin
        assert policy.timezone == "Asia/Shanghai"


def test_supervision_preset_checks_daily_reports_and_weekly_bulletins() -> None:
    policy = DeadlinePolicy.supervision()
    assert policy.daily_report
    assert policy.weekly_bulletin
    assert policy.rule("measure_due").ladder == "five_letters"  # its default ladder
    assert policy.rules == DeadlinePolicy.standard("five_letters").rules
    assert DeadlinePolicy.supervision("seed_ladder").rule("lead_report_back").ladder == (
        "seed_ladder"
    )


def test_no_deadlines_is_the_default() -> None:
    none = DeadlinePolicy.none()
    assert none.rules == ()
    assert not none.daily_report
    assert not none.weekly_bulletin
    assert Process.standard().deadlines == none


def test_the_three_ladders() -> None:
    policy = DeadlinePolicy.standard()
    three = policy.ladder("three_colour")
    assert [(r.name, r.kind, r.at, r.days) for r in three.rungs] == [
        ("green", "warning", "due", -20),
        ("yellow", "warning", "due", -10),
        ("red", "overdue", "due", 0),
        ("accountability", "recommendation", "due", 10),
    ]
    assert three.rungs[0].recipients == ("responsible_person",)
    assert set(three.rungs[1].recipients) >= {"responsible_person", "leader_in_charge"}
    assert set(three.rungs[2].recipients) == {"unit", "unit_head"}
    assert three.rungs[3].recommends == "accountability"
    five = policy.ladder("five_letters")
    assert [r.label for r in five.rungs] == [
        "督办通知书",
        "督查指导书",
        "提醒书",
        "告诫书",
        "问责书并约谈主要负责人",
    ]
    assert five.rungs[0].at == "start"
    assert (five.rungs[1].at, five.rungs[1].fraction) == ("fraction", 0.5)
    assert five.overdue.name == "admonition"
    assert five.overdue.final_days == 10
    assert five.rungs[4].recommends == "accountability_and_talk"
    seeds = policy.ladder("seed_ladder")
    assert [r.label for r in seeds.rungs] == [
        "提醒函",
        "约谈提醒",
        "点名道姓通报",
        "问责 / 停职建议",
    ]
    kinds = [r.kind for r in seeds.rungs]
    assert kinds == ["warning", "overdue", "recommendation", "recommendation"]


@pytest.mark.parametrize("name", BASE_LADDERS)
def test_half_time_variants_put_the_check_first(name: str) -> None:
    policy = DeadlinePolicy.standard()
    base, half = policy.ladder(name), policy.ladder(f"{name}_half_time")
    check = half.rungs[0]
    assert (check.name, check.kind, check.at, check.fraction) == (
        "half_time",
        "warning",
        "fraction",
        0.5,
    )
    assert check.check == "half_items_closed"
    assert half.rungs[1:] == base.rungs
    assert "时间过半、任务过半" in half.source
    assert base.source in half.source


def test_policy_versions_are_stable_and_distinct() -> None:
    versions = {
        DeadlinePolicy.standard().version_id,
        DeadlinePolicy.county().version_id,
        DeadlinePolicy.supervision().version_id,
        DeadlinePolicy.standard("seed_ladder").version_id,
        DeadlinePolicy.none().version_id,
    }
    assert len(versions) == 5
    assert DeadlinePolicy.standard().version_id == DeadlinePolicy.standard().version_id
    assert DeadlinePolicy.standard().version_id.startswith("deadlines:standard+three_colour#")
    process = Process.standard(deadlines=DeadlinePolicy.county())
    assert process.version_ids["deadlines"] == DeadlinePolicy.county().version_id


def test_regression_a_copied_policy_gets_its_own_version_and_time_zone() -> None:
    """Regression: the fingerprint and the time zone were cached on the instance, and
    pydantic's ``model_copy(update=...)`` copied the cache, so a changed copy kept its
    original's version id (two policies pinned under one id) and time zone."""
    original = DeadlinePolicy.standard()
    assert original.tz is DEFAULT_TIMEZONE
    version = original.version_id
    copy = original.model_copy(update={"rules": original.rules[:1], "timezone": "UTC"})
    assert copy.version_id != version
    assert copy.tz == ZoneInfo("UTC")
    rebuilt = DeadlinePolicy.model_validate(copy.model_dump())
    assert copy.version_id == rebuilt.version_id
    assert original.version_id == version  # the original is untouched


# -- the arithmetic of time --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (date(2026, 7, 11), datetime(2026, 7, 12, tzinfo=SH)),
        (date(2026, 12, 31), datetime(2027, 1, 1, tzinfo=SH)),
        (date(2028, 2, 28), datetime(2028, 2, 29, tzinfo=SH)),
        (date(2028, 2, 29), datetime(2028, 3, 1, tzinfo=SH)),
    ],
)
def test_a_deadline_dated_d_passes_at_midnight_starting_d_plus_one(
    due: date, expected: datetime
) -> None:
    instant = due_instant(due, SH)
    assert instant == expected
    assert instant.utcoffset() == timedelta(hours=8)
    assert instant - timedelta(microseconds=1) < expected  # still "by the end of D"


def test_due_instant_follows_the_policy_time_zone() -> None:
    utc = due_instant(date(2026, 7, 11), UTC)
    assert utc == datetime(2026, 7, 12, tzinfo=UTC)
    assert utc - due_instant(date(2026, 7, 11), SH) == timedelta(hours=8)


START_AT = datetime(2026, 5, 11, tzinfo=SH)
DUE_AT = datetime(2026, 7, 12, tzinfo=SH)  # 62 days later


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"days": -20}, DUE_AT - timedelta(days=20)),
        ({"days": 10, "kind": "recommendation"}, DUE_AT + timedelta(days=10)),
        ({"kind": "overdue"}, DUE_AT),
        ({"at": "start"}, START_AT),
        ({"at": "start", "days": 3}, START_AT + timedelta(days=3)),
        ({"at": "fraction", "fraction": 0.5}, datetime(2026, 6, 11, tzinfo=SH)),
        ({"at": "fraction", "fraction": 0.25}, datetime(2026, 5, 26, 12, tzinfo=SH)),
        ({"at": "fraction", "fraction": 0.75}, datetime(2026, 6, 26, 12, tzinfo=SH)),
    ],
)
def test_rung_time(fields: dict[str, Any], expected: datetime) -> None:
    assert rung_time(rung("r", **fields), START_AT, DUE_AT) == expected


def test_rung_time_fractions_of_odd_windows() -> None:
    half = rung("half", at="fraction", fraction=0.5)
    third = rung("third", at="fraction", fraction=1 / 3)
    start = datetime(2026, 5, 11, tzinfo=SH)
    assert rung_time(half, start, start + timedelta(days=3)) == datetime(2026, 5, 12, 12, tzinfo=SH)
    assert rung_time(third, start, start + timedelta(days=3)) == datetime(2026, 5, 12, tzinfo=SH)
    assert rung_time(half, start, start + timedelta(days=1, seconds=1)) == datetime(
        2026, 5, 11, 12, 0, 0, 500000, tzinfo=SH
    )
    # a warning "before" a window shorter than its offset falls before the start
    green = rung("green", days=-20)
    assert rung_time(green, start, start + timedelta(days=5)) < start


# -- calendars behind the durations ---------------------------------------------------------
def test_calendars_pick_the_calendar_of_a_duration() -> None:
    calendars = Calendars()
    assert isinstance(calendars.get("calendar_days"), CalendarDays)
    assert isinstance(calendars.get("months"), Months)
    assert isinstance(calendars.get("working_days"), ChinaWorkingDays)
    start = date(2026, 9, 30)
    assert calendars.add(start, Duration(amount=10, unit="calendar_days")) == date(2026, 10, 10)
    assert calendars.add(start, Duration(amount=1, unit="months")) == date(2026, 10, 30)
    assert calendars.add(start, Duration(amount=1, unit="working_days")) == date(2026, 10, 8)
    # months and calendar days need no holiday data, in any year
    assert calendars.add(date(2040, 1, 31), Duration(amount=1, unit="months")) == date(2040, 2, 29)


def test_working_days_without_the_package_say_how_to_get_the_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing() -> HolidaySchedule:
        raise ImportError("no chinese_calendar")

    monkeypatch.setattr(HolidaySchedule, "from_chinese_calendar", staticmethod(missing))
    with pytest.raises(CalendarError, match=r"xuncha_flow\[calendar\]"):
        Calendars().get("working_days")
    # a schedule passed by the host needs no package
    host = Calendars(schedule=with_fake_2027())
    assert host.add(date(2027, 2, 4), Duration(amount=1, unit="working_days")) == date(2027, 2, 13)


def test_a_result_outside_the_holiday_data_raises_through_calendars() -> None:
    with pytest.raises(YearNotCovered, match=r"2026-12-28 \+ 5 working days") as info:
        Calendars().add(date(2026, 12, 28), Duration(amount=5, unit="working_days"))
    assert info.value.year == 2027
    assert isinstance(info.value, CalendarError)
    loaded = Calendars(schedule=with_fake_2027())
    # MADE-UP 2027 data: 1–3 January off, so the 4th and 5th working days are 4 and 5 Jan
    assert loaded.add(date(2026, 12, 28), Duration(amount=5, unit="working_days")) == date(
        2027, 1, 5
    )


# -- the end-of-month rule through real deadlines --------------------------------------------
def _fed_back_on(day: date, deadlines: DeadlinePolicy | None = None) -> DWorld:
    """A world whose unit U-1 is fed back on ``day`` (its on-site period ~2 months before)."""
    w = DWorld(
        deadlines, start=datetime(day.year, day.month, day.day, 9, tzinfo=SH) - timedelta(70)
    )
    assert w.feedback_day == day
    w.to_feedback({"U-1": ["P-1"]}, start_rectification=False)
    return w


def test_feedback_on_31_december_clamps_the_report_to_the_end_of_february() -> None:
    w = _fed_back_on(date(2026, 12, 31))
    plan = w.deadline("rectification_plan:U-1")
    report = w.deadline("rectification_report:U-1")
    assert plan.due == date(2027, 1, 31)  # 31 January exists
    assert report.due == date(2027, 2, 28)  # no 31 February: the month's last day
    assert report.due_at == datetime(2027, 3, 1, tzinfo=SH)
    assert report.start_at == datetime(2026, 12, 31, tzinfo=SH)
    assert report.original_due == report.due


def test_feedback_on_31_january_one_month_is_28_february() -> None:
    w = _fed_back_on(date(2026, 1, 31))
    assert w.deadline("rectification_plan:U-1").due == date(2026, 2, 28)
    assert w.deadline("rectification_report:U-1").due == date(2026, 3, 31)
    county = _fed_back_on(date(2026, 1, 31), DeadlinePolicy.county())
    assert county.deadline("rectification_report:U-1").due == date(2026, 4, 30)  # clamped


def test_a_lead_transferred_on_30_november_is_reported_back_by_28_february() -> None:
    w = _fed_back_on(date(2026, 12, 31))
    w.transfer_lead("L-1", "P-1", date(2026, 11, 30))
    deadline = w.deadline("lead_report_back:L-1")
    assert deadline.due == date(2027, 2, 28)
    assert deadline.start_at == datetime(2026, 11, 30, tzinfo=SH)


# -- working days around holidays -------------------------------------------------------------
WORKING = custom_policy(
    working_day_plan_rule(1, name="plan_1"),
    working_day_plan_rule(2, name="plan_2"),
    working_day_plan_rule(3, name="plan_3"),
    working_day_plan_rule(5, name="plan_5"),
    name="working-days",
)


def test_working_day_deadlines_skip_the_national_day_week_and_count_its_make_up_saturday() -> None:
    # 2026: 1–7 October off; Saturday 10 October a make-up working day (State Council notice)
    w = _fed_back_on(date(2026, 9, 30), WORKING)  # a Wednesday
    due = {n: w.deadline(f"plan_{n}:U-1").due for n in (1, 2, 3, 5)}
    assert due == {
        1: date(2026, 10, 8),  # Thursday after the holiday
        2: date(2026, 10, 9),
        3: date(2026, 10, 10),  # the make-up Saturday
        5: date(2026, 10, 13),  # Sunday 11 October is off again
    }
    assert all(CN.is_working_day(d) for d in due.values())
    assert due[3].weekday() == 5
    assert w.deadline("plan_3:U-1").due_at == datetime(2026, 10, 11, tzinfo=SH)


def test_working_day_deadlines_around_the_spring_festival() -> None:
    # 2026: Saturday 14 February worked; 15–23 February off; Saturday 28 February worked
    w = _fed_back_on(date(2026, 2, 13), WORKING)  # the Friday before
    due = {n: w.deadline(f"plan_{n}:U-1").due for n in (1, 2, 3, 5)}
    assert due == {
        1: date(2026, 2, 14),  # the make-up Saturday
        2: date(2026, 2, 24),  # first day after the holiday
        3: date(2026, 2, 25),
        5: date(2026, 2, 27),
    }
    assert all(CN.is_working_day(d) for d in due.values())


def test_a_deadline_reaching_a_year_without_data_fails_the_command_and_changes_nothing() -> None:
    policy = custom_policy(working_day_plan_rule(5), name="working-days-5")
    day = date(2026, 12, 28)
    w = DWorld(policy, start=datetime(2026, 12, 28, 9, tzinfo=SH) - timedelta(70))
    w.to_onsite({"U-1": ["P-1"]})
    w.confirm_found("U-1")
    w.leave("U-1")
    w.round("conclude_onsite")
    w.decide("U-1")
    w.round("conclude_report")
    w.move_to(day)
    before = fingerprint(w.engine)
    feedback = {"delivered_on": day.isoformat(), "mode": "collective"}
    with pytest.raises(YearNotCovered) as info:
        w.do("unit", "U-1", "deliver_feedback", feedback)
    assert info.value.year == 2027
    assert "2026-12-28 + 5 working days" in str(info.value)
    assert "with_year(2027" in str(info.value)  # says what the host should do
    assert fingerprint(w.engine) == before
    assert w.unit_state("U-1") == "report_decided"
    assert w.item_state("P-1") == "confirmed"
    assert not w.state.deadlines
    assert w.engine.replay(w.round_id) == w.state

    # the host loads the (here MADE-UP) 2027 notice; the round's pinned versions are
    # unchanged (the calendar is not part of them), so the same log loads
    loaded = Process.standard(deadlines=policy, calendars=Calendars(schedule=with_fake_2027()))
    assert loaded.version_ids == w.engine.process.version_ids
    engine = Engine(clock=w.clock, log=w.engine.log, process=loaded)
    engine.fire(w.team_actor("U-1"), w.round_id, "unit", "U-1", "deliver_feedback", feedback)
    deadline = engine.state(w.round_id).deadlines["plan_in_working_days:U-1"]
    expected = ChinaWorkingDays(
        OFFICIAL.with_year(2027, holidays=FAKE_2027_HOLIDAYS, workdays=FAKE_2027_WORKDAYS)
    ).add(day, 5)
    assert deadline.due == expected == date(2027, 1, 5)
    assert engine.state(w.round_id).items["P-1"].state == "fed_back"
    assert engine.replay(w.round_id) == engine.state(w.round_id)


def test_a_policy_time_zone_sets_the_day_boundaries_of_deadlines() -> None:
    utc = only_rules(DeadlinePolicy.standard(), "rectification_plan", name="plan-utc")
    utc = DeadlinePolicy.model_validate({**utc.model_dump(), "timezone": "UTC"})
    w = _fed_back_on(date(2026, 5, 11), utc)
    plan = w.deadline("rectification_plan:U-1")
    assert plan.due == date(2026, 6, 11)
    assert plan.due_at == datetime(2026, 6, 12, tzinfo=UTC)
    assert plan.start_at == datetime(2026, 5, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "data",
    [
        {"amount": 10**9, "unit": "calendar_days"},
        {"amount": 3661, "unit": "months"},
        {"amount": -1, "unit": "working_days"},
    ],
)
def test_a_duration_beyond_ten_years_is_refused_when_the_policy_is_built(
    data: dict[str, object],
) -> None:
    """A far duration in a host's policy made deadline arithmetic overflow (a raw
    ``OverflowError``) at the command that opened the deadline."""
    with pytest.raises(ValidationError) as refused:
        Duration.model_validate(data)
    assert [e["loc"] for e in refused.value.errors()] == [("amount",)]
    assert Duration.model_validate({"amount": 3660, "unit": "calendar_days"}).amount == 3660
