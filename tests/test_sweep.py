"""Sweeps, ladders, round-level checks, decisions and hooks (issue 3, items 4–7).

A sweep at a time records, as automatic events in each round's stream, the ladder
rungs due by then (each at most once per deadline), the half-time checks, missing
daily reports and weekly bulletins; rungs past a warning raise recommendations that
the leading group confirms or dismisses. The hooks are called inside the sweep's
unit of work: one that raises leaves nothing recorded for its round.

Dates (see ``deadline_helpers``): feedback on 11 May 2026, so the rectification
report is due 11 July 2026 and a measure, by default, 25 June 2026 — its deadline
passes at midnight starting 26 June (Asia/Shanghai).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from deadline_helpers import (
    SH,
    DWorld,
    firings,
    log_firings,
    only_rules,
    process,
    with_fake_2027,
)
from helpers import fingerprint
from xuncha_flow import (
    SWEEPER,
    AfterContext,
    DeadlinePolicy,
    Engine,
    Event,
    GuardRejected,
    HookFailed,
    Hooks,
    InvalidCommand,
    PermissionDenied,
    Process,
    SweepReport,
    TransitionNotAllowed,
    YearNotCovered,
)
from xuncha_flow.testing import ManualClock

MEASURE = "measure_due:M-P-1-1"
REPORT = "rectification_report:U-1"
SECOND = timedelta(seconds=1)
MEASURES_ONLY = only_rules(DeadlinePolicy.standard(), "measure_due", name="measures")


def rungs_of(report: SweepReport, deadline_id: str) -> list[str]:
    return [rung for d, rung in firings(report.events) if d == deadline_id]


def escalation(report: SweepReport, deadline_id: str, rung: str) -> Event:
    return next(
        e
        for e in report.events
        if e.type == "deadline.escalate" and e.subject == deadline_id and e.payload["rung"] == rung
    )


# -- the three ladders ----------------------------------------------------------------------
def test_three_colour_rungs_fire_at_their_times() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    due_at = w.deadline(MEASURE).due_at
    assert due_at == datetime(2026, 6, 26, tzinfo=SH)

    assert rungs_of(w.sweep_at(due_at - timedelta(days=20) - SECOND), MEASURE) == []
    green = w.sweep_at(due_at - timedelta(days=20))
    assert rungs_of(green, MEASURE) == ["green"]
    event = escalation(green, MEASURE, "green")
    assert event.automatic
    assert event.actor == SWEEPER
    assert event.payload["kind"] == "warning"
    assert event.payload["outcome"] == "fired"
    assert event.payload["label"] == "绿色提醒函"
    assert event.payload["due"] == "2026-06-25"
    assert event.payload["fire_at"] == "2026-06-06T00:00:00+08:00"
    assert event.payload["recipients"] == [{"as": "responsible_person", "id": "person-1"}]

    assert rungs_of(w.sweep_at(due_at - timedelta(days=10) - SECOND), MEASURE) == []
    yellow = w.sweep_at(due_at - timedelta(days=10))
    assert rungs_of(yellow, MEASURE) == ["yellow"]
    assert escalation(yellow, MEASURE, "yellow").payload["recipients"] == [
        {"as": "responsible_person", "id": "person-1"},
        {"as": "responsible_leader", "id": "leader-1"},
        {"as": "leader_in_charge", "id": "U-1-leader-in-charge"},
    ]

    # one second before the due instant: not overdue; at it: overdue
    before = w.sweep_at(due_at - SECOND)
    assert rungs_of(before, MEASURE) == []
    assert not [e for e in before.overdue if e.subject == MEASURE]
    red = w.sweep_at(due_at)
    assert rungs_of(red, MEASURE) == ["red"]
    (overdue,) = [e for e in red.overdue if e.subject == MEASURE]
    assert overdue.payload["kind"] == "overdue"
    assert overdue.payload["recipients"] == [
        {"as": "unit", "id": "org-1"},
        {"as": "unit_head", "id": "U-1-head"},
    ]
    assert not red.recommendations

    assert rungs_of(w.sweep_at(due_at + timedelta(days=10) - SECOND), MEASURE) == []
    late = w.sweep_at(due_at + timedelta(days=10))
    assert rungs_of(late, MEASURE) == ["accountability"]
    (raised,) = [e for e in late.recommendations if e.payload["deadline"] == MEASURE]
    assert raised.subject == f"{MEASURE}@accountability"
    assert raised.payload["recommends"] == "accountability"
    assert (raised.payload["subject_kind"], raised.payload["subject"]) == ("measure", "M-P-1-1")
    recommendation = w.state.recommendations[f"{MEASURE}@accountability"]
    assert (recommendation.state, recommendation.rung) == ("pending", "accountability")
    assert recommendation.raised_at == w.clock.now()

    assert rungs_of(w.sweep_at(due_at + timedelta(days=400)), MEASURE) == []
    assert [r for d, r in w.log_firings() if d == MEASURE] == [
        "green",
        "yellow",
        "red",
        "accountability",
    ]
    assert [f.rung for f in w.deadline(MEASURE).fired] == [
        "green",
        "yellow",
        "red",
        "accountability",
    ]
    assert w.engine.replay(w.round_id) == w.state


def test_a_late_sweep_catches_up_every_rung_in_ladder_order() -> None:
    w = DWorld(MEASURES_ONLY)
    w.planned({"U-1": ["P-1"]})
    report = w.sweep_at(datetime(2026, 9, 1, tzinfo=SH))
    assert firings(report.events) == [
        (MEASURE, "green"),
        (MEASURE, "yellow"),
        (MEASURE, "red"),
        (MEASURE, "accountability"),
    ]
    assert [e.payload["fire_at"] for e in report.events if e.type == "deadline.escalate"] == [
        "2026-06-06T00:00:00+08:00",
        "2026-06-16T00:00:00+08:00",
        "2026-06-26T00:00:00+08:00",
        "2026-07-06T00:00:00+08:00",
    ]
    assert report.events[-1].type == "recommendation.recommend"


def test_five_letters() -> None:
    w = DWorld(DeadlinePolicy.standard("five_letters"))
    w.planned({"U-1": ["P-1"]})
    deadline = w.deadline(MEASURE)
    assert (deadline.start_at, deadline.due_at) == (
        datetime(2026, 5, 11, tzinfo=SH),
        datetime(2026, 6, 26, tzinfo=SH),
    )
    # the supervision notice when the deadline opens
    assert rungs_of(w.engine.sweep(), MEASURE) == ["supervision_notice"]
    # the guidance letter at half the window (46 days: 23 days in)
    assert rungs_of(w.sweep_at(datetime(2026, 6, 3, tzinfo=SH) - SECOND), MEASURE) == []
    assert rungs_of(w.sweep_at(datetime(2026, 6, 3, tzinfo=SH)), MEASURE) == ["guidance_letter"]
    # the reminder near the deadline (7 days before)
    assert rungs_of(w.sweep_at(datetime(2026, 6, 19, tzinfo=SH) - SECOND), MEASURE) == []
    assert rungs_of(w.sweep_at(datetime(2026, 6, 19, tzinfo=SH)), MEASURE) == ["reminder"]
    # the admonition when overdue, with a new final date
    assert rungs_of(w.sweep_at(deadline.due_at - SECOND), MEASURE) == []
    overdue = w.sweep_at(deadline.due_at)
    assert rungs_of(overdue, MEASURE) == ["admonition"]
    admonition = escalation(overdue, MEASURE, "admonition")
    assert admonition.payload["label"] == "告诫书"
    assert admonition.payload["kind"] == "overdue"
    assert admonition.payload["final_date"] == "2026-07-05"  # due 25 June + 10 days
    # then the accountability letter and a talk with the head: a recommendation
    late = w.sweep_at(deadline.due_at + timedelta(days=10))
    assert rungs_of(late, MEASURE) == ["accountability_letter"]
    (raised,) = [e for e in late.recommendations if e.payload["deadline"] == MEASURE]
    assert raised.payload["recommends"] == "accountability_and_talk"
    assert raised.subject == f"{MEASURE}@accountability_letter"


def test_the_seeds_ladder() -> None:
    w = DWorld(DeadlinePolicy.standard("seed_ladder"))
    w.planned({"U-1": ["P-1"]})
    due_at = w.deadline(MEASURE).due_at
    assert rungs_of(w.sweep_at(due_at - timedelta(days=5) - SECOND), MEASURE) == []
    assert rungs_of(w.sweep_at(due_at - timedelta(days=5)), MEASURE) == ["reminder_letter"]
    talk = w.sweep_at(due_at)
    assert rungs_of(talk, MEASURE) == ["admonition_talk"]
    assert escalation(talk, MEASURE, "admonition_talk").payload["recipients"] == [
        {"as": "unit_head", "id": "U-1-head"}
    ]
    naming = w.sweep_at(due_at + timedelta(days=15))
    assert rungs_of(naming, MEASURE) == ["public_naming"]
    suspension = w.sweep_at(due_at + timedelta(days=30))
    assert rungs_of(suspension, MEASURE) == ["accountability"]
    raised = {
        e.subject: e.payload["recommends"]
        for e in (*naming.recommendations, *suspension.recommendations)
        if e.payload["deadline"] == MEASURE
    }
    assert raised == {
        f"{MEASURE}@public_naming": "public_naming",
        f"{MEASURE}@accountability": "accountability_or_suspension",
    }


def test_a_lead_deadline_escalates_to_its_receiver() -> None:
    policy = only_rules(DeadlinePolicy.standard("seed_ladder"), "lead_report_back", name="leads")
    w = DWorld(policy)
    w.to_onsite({"U-1": ["P-1"]})
    w.transfer_lead("L-1", "P-1", w.clock.today())
    deadline = w.deadline("lead_report_back:L-1")
    report = w.sweep_at(deadline.due_at - timedelta(days=5))
    assert rungs_of(report, deadline.id) == ["reminder_letter"]
    # a lead has no unit: only the recipients it has are named
    assert escalation(report, deadline.id, "reminder_letter").payload["recipients"] == []


def test_an_extension_rearms_the_ladder_for_the_new_date() -> None:
    """An approved extension is a new due date: its letters go out again for it
    (each rung fires once per deadline and generation)."""
    w = DWorld(MEASURES_ONLY)
    w.planned({"U-1": ["P-1"]})
    old_due_at = w.deadline(MEASURE).due_at
    assert rungs_of(w.sweep_at(old_due_at - timedelta(days=20)), MEASURE) == ["green"]
    w.extend(MEASURE, date(2026, 7, 25))  # 30 days later
    assert w.deadline(MEASURE).generation == 2
    assert rungs_of(w.sweep_at(old_due_at), MEASURE) == []  # not overdue any more
    new_due_at = w.deadline(MEASURE).due_at
    assert rungs_of(w.sweep_at(new_due_at - timedelta(days=10)), MEASURE) == [
        "green",
        "yellow",
    ]
    assert rungs_of(w.sweep_at(new_due_at - SECOND), MEASURE) == []
    assert rungs_of(w.sweep_at(new_due_at), MEASURE) == ["red"]
    fired = [(f.rung, f.generation) for f in w.deadline(MEASURE).fired]
    assert fired == [("green", 1), ("green", 2), ("yellow", 2), ("red", 2)]


def test_a_met_deadline_stops_its_ladder() -> None:
    w = DWorld(MEASURES_ONLY)
    w.planned({"U-1": ["P-1"]})
    due_at = w.deadline(MEASURE).due_at
    assert rungs_of(w.sweep_at(due_at - timedelta(days=20)), MEASURE) == ["green"]
    w.do_measures("P-1")
    assert w.deadline(MEASURE).state == "met"
    assert w.sweep_at(due_at + timedelta(days=100)).events == ()


# -- half the time, half the tasks ------------------------------------------------------------
HALF = datetime(2026, 6, 11, tzinfo=SH)  # half of 11 May 00:00 .. 12 July 00:00
HALF_ONLY = only_rules(DeadlinePolicy.standard(), "rectification_report", name="half-time")


def _half_time(closed: list[str], withdrawn: list[str], items: list[str]) -> SweepReport:
    w = DWorld(HALF_ONLY)
    w.planned({"U-1": items})
    for item_id in closed:
        w.finish(item_id)
    for item_id in withdrawn:
        w.do("item", item_id, "withdraw", reason="经核实不属实")
    assert rungs_of(w.sweep_at(HALF - SECOND), REPORT) == []
    report = w.sweep_at(HALF)
    assert rungs_of(report, REPORT) == ["half_time"]
    assert w.deadline(REPORT).fired[0].rung == "half_time"
    assert rungs_of(w.sweep_at(HALF + timedelta(days=1)), REPORT) == []  # once only
    return report


def test_half_time_check_passes_when_half_the_items_are_closed() -> None:
    report = _half_time(closed=["P-1"], withdrawn=[], items=["P-1", "P-2"])
    (check,) = report.checks_passed
    assert check.payload["outcome"] == "passed"
    assert check.payload["detail"] == "1 of 2 items closed"
    assert report.warnings == ()
    assert report.overdue == ()


def test_half_time_check_warns_with_the_counts_otherwise() -> None:
    report = _half_time(closed=["P-1"], withdrawn=[], items=["P-1", "P-2", "P-3"])
    assert report.checks_passed == ()
    (warning,) = report.warnings
    assert warning.payload["rung"] == "half_time"
    assert warning.payload["outcome"] == "fired"
    assert warning.payload["detail"] == "1 of 3 items closed"
    assert warning.payload["recipients"] == [
        {"as": "unit", "id": "org-1"},
        {"as": "unit_head", "id": "U-1-head"},
    ]


def test_half_time_check_leaves_withdrawn_items_out() -> None:
    report = _half_time(closed=["P-1"], withdrawn=["P-2"], items=["P-1", "P-2", "P-3"])
    (check,) = report.checks_passed
    assert check.payload["detail"] == "1 of 2 items closed"


# -- daily reports and weekly bulletins (日报告、周通报) -------------------------------------------
def _supervised(feedback: date) -> DWorld:
    """U-1 under the supervision preset, fed back, planned and approved on ``feedback``."""
    w = DWorld(
        DeadlinePolicy.supervision(),
        start=datetime(feedback.year, feedback.month, feedback.day, 9, tzinfo=SH)
        - timedelta(days=70),
    )
    w.planned({"U-1": ["P-1"]})
    assert w.clock.today() == feedback
    return w


def _missing_days(report: SweepReport) -> list[str]:
    return [
        str(e.payload["day"]) for e in report.missing_reports if e.type == "unit.report_missing"
    ]


def _missing_weeks(report: SweepReport) -> list[str]:
    return [
        str(e.payload["week_of"])
        for e in report.missing_reports
        if e.type == "round.bulletin_missing"
    ]


def test_missing_daily_reports_are_counted_on_working_days_only() -> None:
    # 2026: 1–7 October off (国庆、中秋), Saturday 10 October a make-up working day
    w = _supervised(date(2026, 9, 28))  # concentrated rectification from Monday 28 September
    w.move_to(date(2026, 9, 29), 18)
    w.do("unit", "U-1", "daily_report", {"day": "2026-09-29", "summary": "整改进展日报"})
    w.move_to(date(2026, 10, 9), 18)
    w.do("unit", "U-1", "daily_report", {"day": "2026-10-09", "summary": "整改进展日报"})
    report = w.sweep_at(datetime(2026, 10, 13, 10, tzinfo=SH))
    assert _missing_days(report) == [
        "2026-09-28",
        "2026-09-30",
        "2026-10-08",
        "2026-10-10",  # the make-up Saturday counts
        "2026-10-12",  # not Sunday 11 October, not the holiday week, not today
    ]
    assert all(
        e.subject == "U-1" for e in report.missing_reports if e.type == "unit.report_missing"
    )
    assert w.state.units["U-1"].missing_reports == tuple(
        date.fromisoformat(d) for d in _missing_days(report)
    )
    assert w.state.units["U-1"].daily_reports == (date(2026, 9, 29), date(2026, 10, 9))
    # the next day adds only that day, once
    again = w.sweep_at(datetime(2026, 10, 14, 10, tzinfo=SH))
    assert _missing_days(again) == ["2026-10-13"]
    assert _missing_days(w.sweep_at(datetime(2026, 10, 14, 11, tzinfo=SH))) == []
    # once the rectification is reported, concentrated rectification is over
    w.finish("P-1")
    w.report("U-1")
    assert _missing_days(w.sweep_at(datetime(2026, 10, 30, tzinfo=SH))) == []
    assert w.engine.replay(w.round_id) == w.state


def test_a_daily_report_prevents_its_warning() -> None:
    w = _supervised(date(2026, 6, 1))  # a Monday
    w.do("unit", "U-1", "daily_report", {"day": "2026-06-01", "summary": "今日已完成……"})
    w.move_to(date(2026, 6, 2), 17)
    w.do("unit", "U-1", "daily_report", {"day": "2026-06-02"})
    report = w.sweep_at(datetime(2026, 6, 3, 9, tzinfo=SH))
    assert _missing_days(report) == []
    assert _missing_days(w.sweep_at(datetime(2026, 6, 4, 9, tzinfo=SH))) == ["2026-06-03"]


def test_no_daily_report_checks_without_the_supervision_preset() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    report = w.sweep_at(datetime(2026, 6, 1, tzinfo=SH))
    assert report.missing_reports == ()
    assert w.state.units["U-1"].missing_reports == ()


def test_the_weekly_bulletin_is_due_for_every_complete_week_of_rectification() -> None:
    w = _supervised(date(2026, 9, 28))  # the round went into rectification on Monday 28 Sep
    assert _missing_weeks(w.sweep_at(datetime(2026, 10, 5, tzinfo=SH) - SECOND)) == []
    assert _missing_weeks(w.sweep_at(datetime(2026, 10, 5, tzinfo=SH))) == ["2026-09-28"]
    w.move_to(date(2026, 10, 9))
    w.round("publish_bulletin", {"week_of": "2026-10-07", "text": "第2周整改通报"})
    report = w.sweep_at(datetime(2026, 10, 19, 10, tzinfo=SH))
    assert _missing_weeks(report) == ["2026-10-12"]
    rnd = w.state.round
    assert rnd is not None
    assert rnd.bulletins == (date(2026, 10, 5),)  # filed under the week's Monday
    assert rnd.missing_bulletins == (date(2026, 9, 28), date(2026, 10, 12))
    assert _missing_weeks(w.sweep_at(datetime(2026, 10, 19, 11, tzinfo=SH))) == []
    # out of the rectification stage: no more bulletins are due
    w.finish("P-1")
    w.report("U-1")
    w.round("publish")
    assert _missing_weeks(w.sweep_at(datetime(2026, 11, 30, tzinfo=SH))) == []


def test_a_check_needing_a_year_without_holiday_data_fails_until_the_host_loads_it() -> None:
    """Daily reports are counted on working days: on 4 January 2027, with the
    official data ending in 2026, the sweep raises and records nothing for the round;
    with the year loaded (MADE-UP 2027 data here) the same sweep goes through."""
    w = _supervised(date(2026, 12, 28))
    w.clock.set(datetime(2027, 1, 4, 10, tzinfo=SH))
    before = fingerprint(w.engine)
    with pytest.raises(YearNotCovered) as info:
        w.engine.sweep()
    assert info.value.year == 2027
    assert fingerprint(w.engine) == before
    loaded = Engine(
        clock=w.clock,
        log=w.engine.log,
        process=process(DeadlinePolicy.supervision(), with_fake_2027()),
    )
    report = loaded.sweep()
    # 28–31 December 2026; 1–3 January 2027 are (made-up) holidays
    assert _missing_days(report) == ["2026-12-28", "2026-12-29", "2026-12-30", "2026-12-31"]


def test_regression_a_fresh_engine_runs_the_daily_and_weekly_checks_on_its_first_sweep() -> None:
    """Regression: an engine loading a round put its daily-report and weekly-bulletin
    checks on the agenda for the next midnight, so a host sweeping from a fresh
    process each time (a cron job, a Kubernetes CronJob) never recorded a missing
    daily report or bulletin."""
    w = _supervised(date(2026, 6, 1))  # Monday; the round in rectification since then
    w.clock.set(datetime(2026, 6, 10, 10, tzinfo=SH))
    for run in range(2):  # a fresh engine per run, as a cron job would have
        engine = Engine(clock=w.clock, log=w.engine.log, process=w.engine.process)
        report = engine.sweep()
        if run == 0:
            assert _missing_days(report) == [
                "2026-06-01",
                "2026-06-02",
                "2026-06-03",
                "2026-06-04",
                "2026-06-05",
                "2026-06-08",
                "2026-06-09",
            ]
            assert _missing_weeks(report) == ["2026-06-01"]
        else:  # and never twice
            assert report.missing_reports == ()
        w.clock.advance(hours=1)


# -- the sweep API ----------------------------------------------------------------------------
def test_a_sweep_cannot_look_ahead_of_the_clock() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand, match="ahead of the clock"):
        w.engine.sweep(w.clock.now() + SECOND)
    with pytest.raises(ValueError, match="timezone-aware"):
        w.engine.sweep(datetime(2026, 5, 1))  # naive
    assert fingerprint(w.engine) == before
    # an earlier time is allowed (a sweep that fell behind)
    assert isinstance(w.engine.sweep(w.clock.now() - timedelta(days=1)), SweepReport)


def test_a_sweep_with_nothing_due_records_nothing() -> None:
    w = DWorld(MEASURES_ONLY)
    w.planned({"U-1": ["P-1"]})
    before = fingerprint(w.engine)
    report = w.engine.sweep()
    assert (report.at, report.events) == (w.clock.now(), ())
    assert report.warnings == report.overdue == report.recommendations == ()
    assert fingerprint(w.engine) == before


def test_sweep_report_accessors() -> None:
    w = DWorld(
        only_rules(
            DeadlinePolicy.supervision("three_colour"),
            "measure_due",
            "rectification_report",
            name="mixed",
        )
    )
    w.planned({"U-1": ["P-1"]})
    at = datetime(2026, 7, 7, 10, tzinfo=SH)
    version = w.state.version
    report = w.sweep_at(at)
    assert report.at == at
    # the events are exactly what the sweep appended, in log order
    assert report.events == tuple(w.events()[version:])
    assert [e.version for e in report.events] == list(
        range(version + 1, version + 1 + len(report.events))
    )
    assert len({e.command_id for e in report.events}) == 1  # one unit of work for the round
    assert {(e.subject, e.payload["rung"]) for e in report.warnings} == {
        (MEASURE, "green"),
        (MEASURE, "yellow"),
        (REPORT, "half_time"),
        (REPORT, "green"),
        (REPORT, "yellow"),
    }
    assert {e.subject for e in report.overdue} == {MEASURE}
    assert [e.subject for e in report.recommendations] == [f"{MEASURE}@accountability"]
    assert report.checks_passed == ()
    assert {e.type for e in report.missing_reports} == {
        "unit.report_missing",
        "round.bulletin_missing",
    }
    kinds = {e.type for e in report.events}
    assert kinds == {
        "deadline.escalate",
        "recommendation.recommend",
        "unit.report_missing",
        "round.bulletin_missing",
    }
    assert all(e.automatic and e.actor == SWEEPER for e in report.events)


def test_a_sweep_records_its_actor_and_refuses_one_who_may_not_escalate() -> None:
    w = DWorld(MEASURES_ONLY)
    w.planned({"U-1": ["P-1"]})
    due_at = w.deadline(MEASURE).due_at
    w.clock.set(due_at)
    before = fingerprint(w.engine)
    with pytest.raises(PermissionDenied):
        w.engine.sweep(actor=w.cast.leading_group)
    assert fingerprint(w.engine) == before
    report = w.engine.sweep(actor=w.cast.office)
    assert rungs_of(report, MEASURE) == ["green", "yellow", "red"]
    assert {e.actor for e in report.events} == {w.cast.office}


def test_select_splits_the_work_and_the_parts_add_up() -> None:
    def build() -> DWorld:
        w = DWorld(DeadlinePolicy.supervision("three_colour"))
        w.planned({"U-1": ["P-1", "P-2"], "U-2": ["P-3"]})
        return w

    at = datetime(2026, 7, 20, tzinfo=SH)
    whole, split = build(), build()
    everything = whole.sweep_at(at)

    def measures(stream: str, key: tuple[str, str]) -> bool:
        return key[0] == "deadline" and key[1].startswith("measure_due:")

    assert split.sweep_at(at, select=lambda s, k: False).events == ()
    first = split.sweep_at(at, select=measures)
    assert {d for d, _ in firings(first.events)} == {
        "measure_due:M-P-1-1",
        "measure_due:M-P-2-1",
        "measure_due:M-P-3-1",
    }
    assert first.missing_reports == ()
    rest = split.sweep_at(at, select=lambda s, k: not measures(s, k))
    assert rest.missing_reports  # daily reports and bulletins came with the rest
    assert not {d for d, _ in firings(rest.events)} & {d for d, _ in firings(first.events)}
    assert sorted(firings(first.events) + firings(rest.events)) == sorted(
        firings(everything.events)
    )
    assert len(first.events) + len(rest.events) == len(everything.events)
    assert split.sweep_at(at).events == ()  # nothing left
    assert {d.id: d.fired for d in split.state.deadlines.values()} == {
        d.id: d.fired for d in whole.state.deadlines.values()
    }


def test_a_restarted_engine_fires_nothing_twice() -> None:
    w = DWorld(MEASURES_ONLY)
    w.planned({"U-1": ["P-1"]})
    due_at = w.deadline(MEASURE).due_at
    assert rungs_of(w.sweep_at(due_at - timedelta(days=10)), MEASURE) == ["green", "yellow"]
    restarted = Engine(clock=w.clock, log=w.engine.log, process=w.engine.process)
    assert restarted.sweep().events == ()
    w.clock.set(due_at)
    assert rungs_of(restarted.sweep(), MEASURE) == ["red"]
    assert [r for _, r in log_firings(w.engine.log)] == ["green", "yellow", "red"]


def test_overdue_lists_running_deadlines_past_their_due_time() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1", "P-2"]})
    w.add_approved_measure("P-2", "M-P-2-2", due=date(2026, 6, 20))
    assert w.engine.overdue() == []
    w.move_to(date(2026, 6, 27))
    assert [(r, d.id) for r, d in w.engine.overdue()] == [
        ("R-1", "measure_due:M-P-2-2"),  # earliest due first
        ("R-1", "measure_due:M-P-1-1"),
        ("R-1", "measure_due:M-P-2-1"),
    ]
    assert [d.id for _, d in w.engine.overdue(datetime(2026, 6, 21, tzinfo=SH))] == [
        "measure_due:M-P-2-2"
    ]
    w.do_measures("P-1")
    w.do("deadline", "measure_due:M-P-2-1", "pause", reason="暂停")
    assert [d.id for _, d in w.engine.overdue()] == ["measure_due:M-P-2-2"]
    # a query: it records nothing
    assert rungs_of(w.engine.sweep(), "measure_due:M-P-2-2") == ["green", "yellow", "red"]
    w.move_to(date(2026, 7, 13))
    assert [d.id for _, d in w.engine.overdue()] == ["measure_due:M-P-2-2", REPORT]


# -- decisions on recommendations --------------------------------------------------------------
def _with_recommendations() -> DWorld:
    w = DWorld(MEASURES_ONLY)
    w.planned({"U-1": ["P-1", "P-2"]})
    report = w.sweep_at(datetime(2026, 7, 10, tzinfo=SH))
    assert len(report.recommendations) == 2
    return w


def test_the_leading_group_confirms_or_dismisses_with_a_reason() -> None:
    w = _with_recommendations()
    first, second = f"{MEASURE}@accountability", "measure_due:M-P-2-1@accountability"
    w.clock.advance(days=1)
    (confirm,) = w.do("recommendation", first, "confirm", reason="逾期未整改，启动问责")
    assert confirm.actor == w.cast.leading_group
    assert (confirm.from_state, confirm.to_state) == ("pending", "confirmed")
    decided = w.state.recommendations[first]
    assert decided.decided_by == w.cast.leading_group
    assert decided.decided_at == w.clock.now()
    assert decided.reason == "逾期未整改，启动问责"
    w.do("recommendation", second, "dismiss", reason="客观原因，已批准延期")
    assert w.state.recommendations[second].state == "dismissed"
    assert w.engine.replay(w.round_id) == w.state


@pytest.mark.parametrize("who", ["supervision", "office", "unit", "team", "secretary"])
def test_other_roles_may_not_decide(who: str) -> None:
    w = _with_recommendations()
    actors = {
        "supervision": w.cast.supervision,
        "office": w.cast.office,
        "unit": w.unit_actor("U-1"),
        "team": w.team_actor("U-1"),
        "secretary": w.cast.secretary,
    }
    before = fingerprint(w.engine)
    for event in ("confirm", "dismiss"):
        with pytest.raises(PermissionDenied):
            w.do(
                "recommendation",
                f"{MEASURE}@accountability",
                event,
                actor=actors[who],
                reason="决定",
            )
    assert fingerprint(w.engine) == before


def test_a_decision_needs_a_reason_and_is_taken_once() -> None:
    w = _with_recommendations()
    rec = f"{MEASURE}@accountability"
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("recommendation", rec, "confirm")
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("recommendation", rec, "dismiss", reason=" ")
    assert fingerprint(w.engine) == before
    w.do("recommendation", rec, "confirm", reason="启动问责")
    after = fingerprint(w.engine)
    with pytest.raises(TransitionNotAllowed):
        w.do("recommendation", rec, "confirm", reason="再次确认")
    with pytest.raises(TransitionNotAllowed):
        w.do("recommendation", rec, "dismiss", reason="改为不予采纳")
    assert fingerprint(w.engine) == after
    assert w.state.recommendations[rec].state == "confirmed"


# -- hooks -----------------------------------------------------------------------------------
def _rung_name(event: Event) -> str | None:
    rung = event.payload.get("rung")
    return None if rung is None else str(rung)


def _recording_hooks() -> tuple[Hooks, list[tuple[str, str, str, str | None]]]:
    hooks = Hooks()
    calls: list[tuple[str, str, str, str | None]] = []

    def recorder(name: str) -> Callable[[Event, AfterContext], None]:
        def hook(event: Event, ctx: AfterContext) -> None:
            assert event in ctx.events
            assert ctx.state.version == ctx.events[-1].version  # the new state
            calls.append((name, event.type, event.subject, _rung_name(event)))

        return hook

    hooks.on_warning(recorder("warning"))
    hooks.on_overdue(recorder("overdue"))
    hooks.on_escalation(recorder("escalation"))
    hooks.on_recommendation(recorder("recommendation"))
    hooks.on_decision(recorder("decision"))
    return hooks, calls


def test_hooks_are_called_with_their_events_in_log_order() -> None:
    hooks, calls = _recording_hooks()
    w = DWorld(
        only_rules(DeadlinePolicy.standard(), "measure_due", "rectification_report", name="x"),
        hooks=hooks,
    )
    w.planned({"U-1": ["P-1", "P-2"]})
    w.finish("P-1")  # the half-time check will pass: no hook for it
    report = w.sweep_at(datetime(2026, 7, 6, tzinfo=SH))

    def expected(name: str, events: tuple[Event, ...]) -> list[tuple[str, str, str, str | None]]:
        return [(name, e.type, e.subject, _rung_name(e)) for e in events]

    fired = tuple(e for e in report.events if e.type == "deadline.escalate")
    assert calls == [
        *expected("warning", report.warnings),
        *expected("overdue", report.overdue),
        *expected("escalation", tuple(e for e in fired if e.payload["outcome"] == "fired")),
        *expected("recommendation", report.recommendations),
    ]
    assert len(report.checks_passed) == 1
    assert ("escalation", "deadline.escalate", REPORT, "half_time") not in calls
    assert [c[2] for c in calls if c[0] == "overdue"] == ["measure_due:M-P-2-1"]
    assert [c[2] for c in calls if c[0] == "recommendation"] == [
        "measure_due:M-P-2-1@accountability"
    ]
    calls.clear()
    w.do("recommendation", "measure_due:M-P-2-1@accountability", "dismiss", reason="已整改到位")
    assert calls == [
        ("decision", "recommendation.dismiss", "measure_due:M-P-2-1@accountability", None)
    ]


def test_a_hook_that_raises_during_a_sweep_leaves_nothing_recorded() -> None:
    hooks = Hooks()
    failing = {"on": True}
    seen: list[tuple[str, str]] = []

    @hooks.on_overdue
    def send_red_letter(event: Event, ctx: AfterContext) -> None:
        if failing["on"]:
            raise RuntimeError("mail server down")
        seen.append((event.subject, str(event.payload["rung"])))

    w = DWorld(MEASURES_ONLY, hooks=hooks)
    w.planned({"U-1": ["P-1"]})
    due_at = w.deadline(MEASURE).due_at
    w.clock.set(due_at + timedelta(days=1))
    before = fingerprint(w.engine)
    with pytest.raises(HookFailed, match="mail server down"):
        w.engine.sweep()
    assert fingerprint(w.engine) == before
    assert w.deadline(MEASURE).fired == ()
    assert w.engine.replay(w.round_id) == w.state
    with pytest.raises(HookFailed):  # the same rungs are still due
        w.engine.sweep()
    failing["on"] = False
    report = w.engine.sweep()
    assert rungs_of(report, MEASURE) == ["green", "yellow", "red"]
    assert seen == [(MEASURE, "red")]
    assert w.engine.sweep().events == ()
    assert w.engine.replay(w.round_id) == w.state


def test_regression_a_hook_failing_for_one_round_loses_no_other_rounds_rungs() -> None:
    """Regression: when a hook raised for one round, the agenda entries already taken
    for the rounds after it in the same sweep were dropped, so their rungs never
    fired (until the engine was restarted)."""
    hooks = Hooks()
    failing = {"R-A"}

    @hooks.on_escalation
    def notify(event: Event, ctx: AfterContext) -> None:
        if event.stream in failing:
            raise RuntimeError(f"cannot notify for {event.stream}")

    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=SH))
    a = DWorld(MEASURES_ONLY, hooks=hooks, round_id="R-A", start=clock.now(), clock=clock)
    b = DWorld(round_id="R-B", engine=a.engine, clock=clock, start=clock.now())
    a.planned({"U-1": ["P-1"]})
    b.planned({"U-1": ["P-1"]}, due=date(2026, 6, 26))  # a day after R-A's: swept after it
    clock.set(datetime(2026, 7, 1, tzinfo=SH))
    with pytest.raises(HookFailed, match="R-A"):
        a.engine.sweep()
    assert log_firings(a.engine.log, "R-A") == log_firings(a.engine.log, "R-B") == []
    failing.clear()
    report = a.engine.sweep()
    assert {e.stream for e in report.events} == {"R-A", "R-B"}
    expected = [(MEASURE, "green"), (MEASURE, "yellow"), (MEASURE, "red")]
    assert log_firings(a.engine.log, "R-A") == expected
    assert log_firings(a.engine.log, "R-B") == expected


def test_rounds_swept_before_a_failing_round_keep_their_records() -> None:
    hooks = Hooks()
    failing = {"R-B"}

    @hooks.on_escalation
    def notify(event: Event, ctx: AfterContext) -> None:
        if event.stream in failing:
            raise RuntimeError(f"cannot notify for {event.stream}")

    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=SH))
    a = DWorld(MEASURES_ONLY, hooks=hooks, round_id="R-A", start=clock.now(), clock=clock)
    b = DWorld(round_id="R-B", engine=a.engine, clock=clock, start=clock.now())
    a.planned({"U-1": ["P-1"]})
    b.planned({"U-1": ["P-1"]}, due=date(2026, 6, 26))
    clock.set(datetime(2026, 7, 1, tzinfo=SH))
    with pytest.raises(HookFailed, match="R-B"):
        a.engine.sweep()
    assert len(log_firings(a.engine.log, "R-A")) == 3
    assert log_firings(a.engine.log, "R-B") == []
    assert a.engine.replay("R-B") == b.state
    failing.clear()
    report = a.engine.sweep()
    assert {e.stream for e in report.events} == {"R-B"}
    assert len(log_firings(a.engine.log, "R-B")) == 3


def test_two_engines_over_one_log_each_sweeping_its_rounds() -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=SH))
    a = DWorld(MEASURES_ONLY, round_id="R-A", start=clock.now(), clock=clock)
    b = DWorld(round_id="R-B", engine=a.engine, clock=clock, start=clock.now())
    a.planned({"U-1": ["P-1"]})
    b.planned({"U-1": ["P-1"]})
    clock.set(datetime(2026, 7, 1, tzinfo=SH))
    process: Process = a.engine.process
    ids = itertools.count(1)
    left = Engine(clock=clock, log=a.engine.log, process=process, ids=lambda: f"l-{next(ids)}")
    right = Engine(clock=clock, log=a.engine.log, process=process, ids=lambda: f"r-{next(ids)}")
    one = left.sweep(select=lambda stream, key: stream == "R-A")
    two = right.sweep(select=lambda stream, key: stream == "R-B")
    assert {e.stream for e in one.events} == {"R-A"}
    assert {e.stream for e in two.events} == {"R-B"}
    assert log_firings(a.engine.log, "R-A") == log_firings(a.engine.log, "R-B")
    assert len(log_firings(a.engine.log, "R-A")) == 3
    assert a.engine.log.verify().ok


def test_two_engines_sweeping_one_round_record_each_rung_once() -> None:
    """The first engine's append meets a ConcurrencyConflict (the other one recorded
    the rungs while its hooks ran): it reloads the round, finds them fired, and
    records nothing."""
    hooks = Hooks()
    w = DWorld(MEASURES_ONLY, hooks=hooks)
    w.planned({"U-1": ["P-1"]})
    ids = itertools.count(1)
    other = Engine(
        clock=w.clock, log=w.engine.log, process=w.engine.process, ids=lambda: f"o-{next(ids)}"
    )
    raced: list[SweepReport] = []

    @hooks.on_overdue
    def meanwhile(event: Event, ctx: AfterContext) -> None:
        if not raced:
            raced.append(other.sweep())

    w.clock.set(w.deadline(MEASURE).due_at)
    w.engine.lease = timedelta(0)  # the first engine's lease lapses at once: a real race
    assert w.engine.sweep().events == ()  # conflict, reload, nothing left to record
    assert rungs_of(raced[0], MEASURE) == ["green", "yellow", "red"]
    assert w.engine.sweep().events == ()
    assert w.log_firings() == [(MEASURE, "green"), (MEASURE, "yellow"), (MEASURE, "red")]
    assert w.engine.state(w.round_id) == w.engine.replay(w.round_id)


def test_a_round_leased_to_one_sweeping_engine_is_not_swept_by_another() -> None:
    """Workers sharing a log split the work by leasing rounds: while one engine
    sweeps a round, another skips it; each rung is recorded once."""
    hooks = Hooks()
    w = DWorld(MEASURES_ONLY, hooks=hooks)
    w.planned({"U-1": ["P-1"]})
    ids = itertools.count(1)
    other = Engine(
        clock=w.clock, log=w.engine.log, process=w.engine.process, ids=lambda: f"o-{next(ids)}"
    )
    meanwhile: list[SweepReport] = []
    hooks.on_overdue(lambda event, ctx: meanwhile.append(other.sweep()))
    w.clock.set(w.deadline(MEASURE).due_at)
    report = w.engine.sweep()
    assert rungs_of(report, MEASURE) == ["green", "yellow", "red"]
    assert [r.events for r in meanwhile] == [()]  # the round was leased to the first
    assert other.sweep().events == ()  # and is done
    assert w.log_firings() == [(MEASURE, "green"), (MEASURE, "yellow"), (MEASURE, "red")]


def test_regression_daily_reports_count_from_the_latest_entry_into_rectification() -> None:
    """Daily reports used to be counted from the plan's first approval: after a
    second rectification every working day the unit spent outside concentrated
    rectification was flagged as a missing report."""
    w = _supervised(date(2026, 6, 1))  # Monday: plan approved, concentrated rectification
    w.clock.set(datetime(2026, 6, 3, 10, tzinfo=SH))
    assert _missing_days(w.engine.sweep()) == ["2026-06-01", "2026-06-02"]
    w.finish("P-1")
    w.report("U-1")
    w.do("unit", "U-1", "publish", {"in_party": True, "public": True})
    w.do("unit", "U-1", "evaluate", {"score": "78", "grade": "average"})
    w.clock.set(datetime(2026, 7, 1, 9, tzinfo=SH))  # Wednesday
    assert _missing_days(w.engine.sweep()) == []  # no daily reports outside rectification
    w.do("unit", "U-1", "order_second_rectification", reason="评估为一般，二次整改")
    assert w.state.units["U-1"].rectifying_since == w.clock.now()
    w.clock.set(datetime(2026, 7, 3, 10, tzinfo=SH))
    assert _missing_days(w.engine.sweep()) == ["2026-07-01", "2026-07-02"]
    with pytest.raises(GuardRejected, match="before concentrated rectification began"):
        w.do("unit", "U-1", "daily_report", {"day": "2026-06-30"})


def test_a_command_landing_on_a_round_while_it_is_swept_makes_the_sweep_retry() -> None:
    """Another writer's command arrives between the sweep's decision and its append:
    the sweep reloads the round and records its rungs on top of that command."""
    hooks = Hooks()
    w = DWorld(MEASURES_ONLY, hooks=hooks)
    w.planned({"U-1": ["P-1", "P-2"]})
    ids = itertools.count(1)
    other = Engine(
        clock=w.clock, log=w.engine.log, process=w.engine.process, ids=lambda: f"o-{next(ids)}"
    )
    landed: list[int] = []

    @hooks.on_overdue
    def meanwhile(event: Event, ctx: AfterContext) -> None:
        if not landed:
            landed.append(1)
            other.fire(w.cast.supervision, w.round_id, "item", "P-2", "withdraw", reason="不属实")

    w.clock.set(w.deadline(MEASURE).due_at)
    report = w.engine.sweep()
    assert landed == [1]
    assert rungs_of(report, MEASURE) == ["green", "yellow", "red"]
    assert w.state.items["P-2"].state == "withdrawn"  # the command was kept
    assert w.log_firings().count((MEASURE, "red")) == 1
    assert w.engine.log.verify().ok
    assert w.engine.state(w.round_id) == w.engine.replay(w.round_id)
