"""Deadlines at work (issue 3, item 3): which events open, meet and cancel them,
and the deadline commands — approved extensions (later only, recorded with reason,
approver and old and new due date) and pauses.

Deadlines are subjects of kind ``deadline`` in the round's stream, opened, met and
cancelled by automatic events inside the command that causes them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from deadline_helpers import SH, DWorld, custom_policy, firings
from helpers import fingerprint
from xuncha_flow import (
    DeadlinePolicy,
    DeadlineRule,
    Duration,
    GuardRejected,
    Hooks,
    InMemoryEventLog,
    InvalidCommand,
    NotFound,
    PermissionDenied,
    Role,
    TransitionNotAllowed,
)
from xuncha_flow._model import Extension


def _events_of(w: DWorld, etype: str) -> list[str]:
    return [e.subject for e in w.events() if e.type == etype]


# -- feedback: the plan and the report ---------------------------------------------------------
def test_feedback_opens_the_plan_and_report_deadlines() -> None:
    w = DWorld()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    assert w.deadline_ids() == {"rectification_plan:U-1", "rectification_report:U-1"}
    plan, report = w.deadline("rectification_plan:U-1"), w.deadline("rectification_report:U-1")
    assert w.feedback_day == date(2026, 5, 11)
    assert (plan.state, plan.due, plan.ladder) == ("running", date(2026, 6, 11), "three_colour")
    assert (report.state, report.due, report.ladder) == (
        "running",
        date(2026, 7, 11),  # two months (Art. 27)
        "three_colour_half_time",
    )
    assert plan.start_at == report.start_at == datetime(2026, 5, 11, tzinfo=SH)
    assert report.due_at == datetime(2026, 7, 12, tzinfo=SH)
    assert (plan.subject_kind, plan.subject, plan.rule) == ("unit", "U-1", "rectification_plan")
    # recorded as automatic events of the feedback command, by its actor
    feedback = next(e for e in w.events() if e.type == "unit.deliver_feedback")
    opened = [e for e in w.events() if e.type == "deadline.open"]
    assert [e.subject for e in opened] == ["rectification_plan:U-1", "rectification_report:U-1"]
    for event in opened:
        assert event.automatic
        assert event.command_id == feedback.command_id
        assert event.actor == feedback.actor
        assert (event.from_state, event.to_state) == (None, "running")
        assert event.version > feedback.version
    assert opened[1].payload["due"] == "2026-07-11"
    assert opened[1].payload["due_at"] == "2026-07-12T00:00:00+08:00"
    assert w.engine.replay(w.round_id) == w.state


def test_each_unit_has_its_own_deadlines() -> None:
    w = DWorld()
    w.to_feedback({"U-1": ["P-1"], "U-2": ["P-2"]})
    assert w.deadline_ids() == {
        "rectification_plan:U-1",
        "rectification_report:U-1",
        "rectification_plan:U-2",
        "rectification_report:U-2",
    }


def test_the_county_preset_gives_three_months_for_the_report() -> None:
    w = DWorld(DeadlinePolicy.county())
    w.to_feedback({"U-1": ["P-1"]})
    assert w.deadline("rectification_report:U-1").due == date(2026, 8, 11)
    assert w.deadline("rectification_plan:U-1").due == date(2026, 6, 11)


def test_no_deadline_policy_opens_nothing() -> None:
    w = DWorld(DeadlinePolicy.none())
    w.planned({"U-1": ["P-1"]})
    assert not w.state.deadlines
    assert w.engine.sweep().events == ()


def test_submitting_the_plan_meets_the_plan_deadline() -> None:
    w = DWorld()
    w.to_feedback({"U-1": ["P-1"]})
    w.clock.advance(days=3)
    w.plan("U-1", approve=False)
    plan = w.deadline("rectification_plan:U-1")
    assert plan.state == "met"
    assert plan.closed_at == w.clock.now()
    assert w.deadline("rectification_report:U-1").state == "running"
    assert _events_of(w, "deadline.meet") == ["rectification_plan:U-1"]


def test_reporting_rectification_meets_the_report_deadline_and_opens_the_evaluation() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    w.move_to(date(2026, 6, 30))
    w.finish("P-1")
    w.report("U-1")
    assert w.deadline("rectification_report:U-1").state == "met"
    evaluation = w.deadline("evaluation:U-1")
    assert evaluation.state == "running"
    assert evaluation.start_at == datetime(2026, 6, 30, tzinfo=SH)  # the report's day
    assert evaluation.due == date(2026, 7, 30)  # a month later [practice]
    w.do("unit", "U-1", "publish", {"in_party": True, "public": True})
    w.do("unit", "U-1", "evaluate", {"score": "95", "grade": "good"})
    assert w.deadline("evaluation:U-1").state == "met"


def test_a_second_rectification_opens_a_second_generation_of_the_evaluation() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    w.finish("P-1")
    w.report("U-1")
    w.do("unit", "U-1", "publish", {"in_party": True, "public": True})
    w.do("unit", "U-1", "evaluate", {"score": "85", "grade": "average"})
    w.do("unit", "U-1", "order_second_rectification", reason="评估低于90分，二次整改")
    w.clock.advance(days=20)
    w.report("U-1")
    assert w.deadline("evaluation:U-1").state == "met"
    second = w.deadline("evaluation:U-1#2")
    assert second.state == "running"
    assert second.start_at.date() == w.clock.today()
    assert w.engine.replay(w.round_id) == w.state


# -- leads -------------------------------------------------------------------------------------
def test_a_transferred_lead_is_reported_back_within_three_months() -> None:
    w = DWorld()
    w.to_onsite({"U-1": ["P-1"]})
    w.move_to(w.onsite_start + timedelta(days=10))
    w.transfer_lead("L-1", "P-1", w.clock.today())  # transferred while inspecting (边巡边移)
    deadline = w.deadline("lead_report_back:L-1")
    assert (deadline.subject_kind, deadline.subject) == ("lead", "L-1")
    assert deadline.due == date(2026, 6, 19)  # 19 March + 3 months (Art. 29)
    for event, payload in (
        ("receive", None),
        ("start_check", None),
        ("conclude", {"result": "case_opened"}),
    ):
        w.do("lead", "L-1", event, payload)
    assert w.deadline("lead_report_back:L-1").state == "running"
    w.do("lead", "L-1", "report_back", {"reported_on": w.clock.today().isoformat()})
    assert w.deadline("lead_report_back:L-1").state == "met"


# -- immediate fixes ------------------------------------------------------------------------------
def test_an_immediate_fix_is_due_at_the_end_of_on_site() -> None:
    w = DWorld()
    w.to_onsite({"U-1": ["P-1", "P-2", "P-3"]})
    for item_id in ("P-1", "P-2", "P-3"):
        w.do("item", item_id, "order_immediate_fix")
    for item_id in ("P-1", "P-2", "P-3"):
        deadline = w.deadline(f"immediate_fix:{item_id}")
        assert deadline.due == w.onsite_end == date(2026, 4, 18)
        assert (deadline.subject_kind, deadline.state) == ("item", "running")
    w.do("item", "P-1", "include_in_report")  # not fixable on site after all
    w.do("item", "P-2", "withdraw", reason="经核实不属实")
    assert w.deadline("immediate_fix:P-1").state == "cancelled"
    assert w.deadline("immediate_fix:P-2").state == "cancelled"
    assert w.deadline("immediate_fix:P-3").state == "running"
    w.submit("P-3", {"summary": "已当场整改"})
    w.do("item", "P-3", "verify")
    assert w.deadline("immediate_fix:P-3").state == "running"
    w.do("item", "P-3", "close")
    assert w.deadline("immediate_fix:P-3").state == "met"
    # each deadline closed by exactly one event
    closing = _events_of(w, "deadline.cancel") + _events_of(w, "deadline.meet")
    assert sorted(closing) == ["immediate_fix:P-1", "immediate_fix:P-2", "immediate_fix:P-3"]


# -- measures ----------------------------------------------------------------------------------
def test_measure_deadlines_open_when_the_plan_is_approved() -> None:
    w = DWorld()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    w.claim_all("U-1")
    w.add_measure("P-1", "M-1", due=date(2026, 6, 20))
    w.add_measure("P-1", "M-2", due=date(2026, 7, 1))
    w.add_measure("P-2", "M-3", due=date(2026, 6, 25))
    w.do("unit", "U-1", "submit_plan")
    assert not any(d.startswith("measure_due") for d in w.deadline_ids())
    w.do("unit", "U-1", "return_plan", reason="措施不够具体")
    w.do("unit", "U-1", "submit_plan")
    assert not any(d.startswith("measure_due") for d in w.deadline_ids())
    w.clock.advance(days=2)
    w.do("unit", "U-1", "approve_plan")
    due = {d.subject: d.due for d in w.state.deadlines.values() if d.rule == "measure_due"}
    assert due == {"M-1": date(2026, 6, 20), "M-2": date(2026, 7, 1), "M-3": date(2026, 6, 25)}
    m1 = w.deadline("measure_due:M-1")
    assert m1.start_at == datetime(2026, 5, 13, tzinfo=SH)  # the approval's day
    assert m1.due_at == datetime(2026, 6, 21, tzinfo=SH)


def test_a_measure_added_after_approval_opens_its_deadline_once_it_is_approved() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    w.add_measure("P-1", "M-late", due=date(2026, 8, 1))
    assert w.state.measures["M-late"].state == "proposed"  # a change to the plan: reviewed
    assert "measure_due:M-late" not in w.state.deadlines
    (approved, opened) = w.do("measure", "M-late", "approve")
    assert approved.actor == w.cast.supervision
    assert (opened.type, opened.subject) == ("deadline.open", "measure_due:M-late")
    deadline = w.deadline("measure_due:M-late")
    assert (deadline.state, deadline.due) == ("running", date(2026, 8, 1))
    assert deadline.start_at.date() == w.clock.today()  # it runs from the approval


def test_completing_a_measure_meets_and_dropping_it_cancels_its_deadline() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    w.add_approved_measure("P-1", "M-extra", due=date(2026, 8, 1))
    w.do("measure", "M-extra", "drop", reason="与措施1重复", actor=w.reviewer)
    assert w.deadline("measure_due:M-extra").state == "cancelled"
    w.do_measures("P-1")
    assert w.deadline("measure_due:M-P-1-1").state == "met"


def test_withdrawing_an_item_cancels_its_measure_deadlines() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1", "P-2"]})
    w.add_approved_measure("P-2", "M-P-2-2", due=date(2026, 7, 5))
    w.do("measure", "M-P-2-2", "start")
    w.do("item", "P-2", "withdraw", reason="经核实不属实")
    assert w.deadline("measure_due:M-P-2-1").state == "cancelled"
    assert w.deadline("measure_due:M-P-2-2").state == "cancelled"
    assert w.deadline("measure_due:M-P-1-1").state == "running"
    # and its ladder stops: nothing fires for it however late it gets
    report = w.sweep_at(datetime(2026, 12, 1, tzinfo=SH))
    assert {d for d, _ in firings(report.events)} == {
        "measure_due:M-P-1-1",
        "rectification_report:U-1",
    }


def test_closing_an_item_leaves_no_measure_deadline_running() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    w.finish("P-1")
    assert w.item_state("P-1") == "closed"
    assert all(
        d.state != "running" for d in w.state.deadlines.values() if d.subject_kind == "measure"
    )


def test_revising_a_due_date_after_approval_is_refused() -> None:
    w = DWorld()
    w.to_feedback({"U-1": ["P-1"]})
    w.claim_all("U-1")
    w.add_measure("P-1", "M-1", due=date(2026, 6, 20))
    w.do("measure", "M-1", "revise", {"due_date": "2026-06-27"})  # before approval: fine
    w.do("unit", "U-1", "submit_plan")
    w.do("unit", "U-1", "approve_plan")
    assert w.deadline("measure_due:M-1").due == date(2026, 6, 27)
    before = fingerprint(w.engine)
    with pytest.raises(GuardRejected) as info:
        w.do("measure", "M-1", "revise", {"due_date": "2026-09-30"})
    assert info.value.rules == ("due_fixed_after_approval",)
    assert "extension" in str(info.value)
    assert fingerprint(w.engine) == before
    # other fields may still be revised, and the due date stays
    w.do("measure", "M-1", "revise", {"text": "细化后的整改措施"})
    assert w.state.measures["M-1"].due_date == date(2026, 6, 27)
    assert w.deadline("measure_due:M-1").due == date(2026, 6, 27)


# -- extensions ------------------------------------------------------------------------------
def test_an_extension_moves_a_deadline_later_and_is_recorded() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    deadline_id = "measure_due:M-P-1-1"
    original = w.deadline(deadline_id)
    assert original.due == date(2026, 6, 25)
    w.clock.advance(days=5)
    (event,) = w.extend(deadline_id, date(2026, 7, 10), reason="需协调上级部门，批准延期")
    assert (event.type, event.from_state, event.to_state) == (
        "deadline.extend",
        "running",
        "running",
    )
    assert event.reason == "需协调上级部门，批准延期"
    assert event.actor == w.cast.supervision
    moved = w.deadline(deadline_id)
    assert moved.due == date(2026, 7, 10)
    assert moved.due_at == datetime(2026, 7, 11, tzinfo=SH)
    assert moved.original_due == date(2026, 6, 25)
    assert moved.extensions == (
        Extension(
            by=w.cast.supervision,
            at=w.clock.now(),
            from_due=date(2026, 6, 25),
            to_due=date(2026, 7, 10),
            reason="需协调上级部门，批准延期",
        ),
    )
    w.extend(deadline_id, date(2026, 7, 31), actor=w.cast.leading_group)
    again = w.deadline(deadline_id)
    assert [(x.from_due, x.to_due, x.by.role) for x in again.extensions] == [
        (date(2026, 6, 25), date(2026, 7, 10), Role.SUPERVISION_OFFICE),
        (date(2026, 7, 10), date(2026, 7, 31), Role.LEADING_GROUP),
    ]
    assert w.state.measures["M-P-1-1"].due_date == date(2026, 6, 25)  # the plan's own date
    assert w.engine.replay(w.round_id) == w.state


@pytest.mark.parametrize(
    ("due", "who", "reason", "error", "match"),
    [
        ("2026-06-24", "supervision", "申请延期", GuardRejected, "moves it later"),
        ("2026-06-25", "supervision", "申请延期", GuardRejected, "moves it later"),
        ("2026-07-10", "unit", "申请延期", PermissionDenied, "inspected_organization"),
        ("2026-07-10", "team", "申请延期", PermissionDenied, "inspection_team"),
        ("2026-07-10", "office", "申请延期", PermissionDenied, "inspection_office"),
        ("2026-07-10", "supervision", None, InvalidCommand, "requires a reason"),
        ("2026-07-10", "supervision", "   ", InvalidCommand, "requires a reason"),
        ("2026-02-30", "supervision", "申请延期", InvalidCommand, "due"),
        (None, "supervision", "申请延期", InvalidCommand, "due"),
    ],
)
def test_a_refused_extension_changes_nothing(
    due: str | None, who: str, reason: str | None, error: type[Exception], match: str
) -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    actors = {
        "supervision": w.cast.supervision,
        "unit": w.unit_actor("U-1"),
        "team": w.team_actor("U-1"),
        "office": w.cast.office,
    }
    before = fingerprint(w.engine)
    payload = {} if due is None else {"due": due}
    with pytest.raises(error, match=match) as info:
        w.do("deadline", "measure_due:M-P-1-1", "extend", payload, actor=actors[who], reason=reason)
    if isinstance(info.value, GuardRejected):
        assert info.value.rules == ("extension_later",)
    assert fingerprint(w.engine) == before
    assert w.deadline("measure_due:M-P-1-1").extensions == ()


def test_a_closed_deadline_cannot_be_extended_paused_or_resumed() -> None:
    w = DWorld()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    assert w.deadline("rectification_plan:U-1").state == "met"
    before = fingerprint(w.engine)
    with pytest.raises(TransitionNotAllowed):
        w.extend("rectification_plan:U-1", date(2026, 12, 31))
    with pytest.raises(TransitionNotAllowed):
        w.do("deadline", "rectification_plan:U-1", "pause", reason="暂停")
    with pytest.raises(TransitionNotAllowed):
        w.do("deadline", "rectification_report:U-1", "resume", reason="恢复")  # not paused
    with pytest.raises(NotFound):
        w.extend("rectification_plan:U-9", date(2026, 12, 31))
    with pytest.raises(InvalidCommand, match="fired by the engine"):
        w.do("deadline", "rectification_report:U-1", "meet")
    assert fingerprint(w.engine) == before


# -- pauses ------------------------------------------------------------------------------------
def test_pause_stops_the_ladder_and_resume_shifts_the_due_date_by_the_paused_days() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    deadline_id = "measure_due:M-P-1-1"
    assert w.deadline(deadline_id).due == date(2026, 6, 25)
    w.move_to(date(2026, 6, 1))
    w.do("deadline", deadline_id, "pause", reason="因重大活动暂停整改计时")
    paused = w.deadline(deadline_id)
    assert (paused.state, paused.paused_at) == ("paused", w.clock.now())
    # no rung while paused, however late
    report = w.sweep_at(datetime(2026, 7, 15, 10, tzinfo=SH))
    assert deadline_id not in {d for d, _ in firings(report.events)}
    assert deadline_id not in {d.id for _, d in w.engine.overdue()}
    w.do("deadline", deadline_id, "resume", reason="恢复计时")  # 44 days later, same hour
    resumed = w.deadline(deadline_id)
    assert resumed.state == "running"
    assert resumed.paused_at is None
    assert resumed.due == date(2026, 6, 25) + timedelta(days=44)
    assert resumed.due_at == datetime(2026, 8, 9, tzinfo=SH)
    # the ladder runs again against the new date: green 20 days before it
    report = w.sweep_at(datetime(2026, 7, 21, tzinfo=SH))
    assert (deadline_id, "green") in firings(report.events)
    assert (deadline_id, "yellow") not in firings(report.events)


def test_a_started_day_of_pause_counts_as_a_whole_day() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    deadline_id = "measure_due:M-P-1-1"
    w.do("deadline", deadline_id, "pause", reason="暂停")
    w.clock.advance(days=2, hours=1)
    w.do("deadline", deadline_id, "resume", reason="恢复")
    assert w.deadline(deadline_id).due == date(2026, 6, 25) + timedelta(days=3)


def test_pause_and_resume_need_a_reason_and_an_approver() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    deadline_id = "measure_due:M-P-1-1"
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("deadline", deadline_id, "pause")
    with pytest.raises(PermissionDenied):
        w.do("deadline", deadline_id, "pause", actor=w.unit_actor("U-1"), reason="自行暂停")
    assert fingerprint(w.engine) == before
    w.do("deadline", deadline_id, "pause", actor=w.cast.leading_group, reason="暂停")
    w.extend(deadline_id, date(2026, 7, 5))  # a paused deadline may be extended
    assert w.deadline(deadline_id).due == date(2026, 7, 5)
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("deadline", deadline_id, "resume")
    w.do("deadline", deadline_id, "resume", reason="恢复")
    assert w.deadline(deadline_id).state == "running"


# -- an earliest date --------------------------------------------------------------------------
def test_a_rule_with_an_earliest_date_refuses_meeting_it_too_early() -> None:
    window = DeadlineRule(
        name="considered_plan",
        label="整改方案（不早于反馈后7日）",
        source="a test rule [practice]",
        subject="unit",
        anchors=("unit.deliver_feedback",),
        start="payload:delivered_on",
        duration=Duration(amount=1, unit="months"),
        earliest=Duration(amount=7, unit="calendar_days"),
        met_by=("unit.submit_plan",),
        ladder="three_colour",
    )
    w = DWorld(custom_policy(window, name="window"))
    w.to_feedback({"U-1": ["P-1"]})
    assert w.deadline("considered_plan:U-1").earliest_at == datetime(2026, 5, 18, tzinfo=SH)
    w.claim_all("U-1")
    w.add_measure("P-1")
    before = fingerprint(w.engine)
    with pytest.raises(GuardRejected) as info:
        w.do("unit", "U-1", "submit_plan")
    assert info.value.rules == ("deadline_window",)
    assert "2026-05-18" in str(info.value)
    assert fingerprint(w.engine) == before
    w.move_to(date(2026, 5, 18), 0)
    w.do("unit", "U-1", "submit_plan")
    assert w.deadline("considered_plan:U-1").state == "met"


class DueRecordingLog(InMemoryEventLog):
    """Keeps the due time the engine notes with every append."""

    def __init__(self) -> None:
        super().__init__()
        self.dues: list[datetime | None] = []

    def record(
        self, stream: str, expected_version: int, events: Any, *, due: Any = None, **kw: Any
    ) -> None:
        super().record(stream, expected_version, events, due=due, **kw)
        self.dues.append(due)


def test_the_incremental_due_index_agrees_with_a_full_scan_after_every_command() -> None:
    """The engine keeps each round's next due time in an index updated from the
    deadlines a command touched; a scan of every deadline must give the same."""
    from xuncha_flow._timekeeping import round_next_due

    hooks = Hooks()
    log = DueRecordingLog()
    expected: list[datetime | None] = []
    w = DWorld(DeadlinePolicy.supervision(), hooks=hooks, log=log)
    hooks.after(
        lambda ctx: expected.append(
            round_next_due(ctx.state, w.engine.process.deadlines, w.clock.now())
        )
    )
    w.planned({"U-1": ["P-1", "P-2", "P-3"], "U-2": ["P-4"]})
    w.extend("measure_due:M-P-1-1", date(2026, 9, 1))
    w.do_measures("P-2")
    w.clock.advance(days=20)
    w.engine.sweep()
    w.do("item", "P-3", "withdraw", reason="不属实")
    w.clock.advance(days=40)
    w.engine.sweep()
    assert len(log.dues) == len(expected) > 10
    assert log.dues == expected
