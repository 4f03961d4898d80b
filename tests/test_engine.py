"""The process paths of DOMAIN.md §3–4, and their refusals, through the engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from helpers import ROUND, World, fingerprint
from xuncha_flow import (
    Event,
    GuardRejected,
    InvalidCommand,
    PermissionDenied,
    Role,
    TransitionNotAllowed,
    outcome_figures,
)


def types(events: Sequence[Event]) -> list[str]:
    return [e.type for e in events]


# -- a full round ----------------------------------------------------------------------
def test_full_round_from_prepare_to_archived() -> None:
    w = World()
    w.open(approve=False)
    assert w.round_state() == "prepare"
    w.round("approve")
    assert w.round_state() == "mobilize"
    assert {w.unit_state(u) for u in ("U-1", "U-2")} == {"scheduled"}
    w.launch()
    assert w.round_state() == "onsite"
    assert {w.unit_state(u) for u in ("U-1", "U-2")} == {"onsite"}
    w.record("U-1", "P-1", "P-2")
    w.record("U-2", "Q-1")
    for unit_id in ("U-1", "U-2"):
        w.confirm_found(unit_id)
        w.leave(unit_id)
    w.round("conclude_onsite")
    assert w.round_state() == "report"
    for unit_id in ("U-1", "U-2"):
        w.decide(unit_id)
    w.round("conclude_report")
    assert w.round_state() == "feedback"
    for unit_id in ("U-1", "U-2"):
        w.feed_back(unit_id)
    assert {w.item_state(i) for i in ("P-1", "P-2", "Q-1")} == {"fed_back"}
    w.round("start_rectification")
    assert w.round_state() == "rectify"
    for unit_id in ("U-1", "U-2"):
        w.plan(unit_id)
    assert {w.item_state(i) for i in ("P-1", "P-2", "Q-1")} == {"rectifying"}
    for item_id in ("P-1", "P-2", "Q-1"):
        w.finish(item_id)
    w.close_round(["U-1", "U-2"])
    assert w.round_state() == "closed"
    assert {w.unit_state(u) for u in ("U-1", "U-2")} == {"evaluated"}

    events = w.round("archive")
    assert types(events) == ["round.archive", "unit.archive", "unit.archive"]
    assert [e.automatic for e in events] == [False, True, True]
    assert w.round_state() == "archived"
    assert {w.unit_state(u) for u in ("U-1", "U-2")} == {"archived"}
    assert {w.item_state(i) for i in ("P-1", "P-2", "Q-1")} == {"closed"}

    stages = [e.to_state for e in w.events() if e.type.startswith("round.")]
    assert stages == [
        "prepare",
        "mobilize",
        "onsite",
        "report",
        "feedback",
        "rectify",
        "publish",
        "evaluate",
        "closed",
        "archived",
    ]
    assert w.engine.log.verify().ok
    assert w.engine.replay(ROUND) == w.state
    with pytest.raises(TransitionNotAllowed):
        w.round("archive")


# -- per-unit tracks -------------------------------------------------------------------
def test_units_progress_independently_and_the_round_waits_for_the_laggard() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"], "U-2": ["Q-1"]})

    # U-1 goes all the way to feedback while U-2 is still on site
    w.unit_to_feedback("U-1")
    assert w.unit_state("U-1") == "fed_back"
    assert w.item_state("P-1") == "fed_back"
    assert w.unit_state("U-2") == "onsite"
    assert w.item_state("Q-1") == "found"
    assert w.round_state() == "onsite"

    with pytest.raises(GuardRejected) as refused:
        w.round("conclude_onsite")
    assert refused.value.violations[0].subjects == ("U-2",)

    # U-1 can even plan before the round as a whole starts rectification
    w.plan("U-1")
    assert w.unit_state("U-1") == "rectifying"
    assert w.item_state("P-1") == "rectifying"

    w.confirm_found("U-2")
    w.leave("U-2")
    w.round("conclude_onsite")
    w.decide("U-2")
    w.round("conclude_report")
    assert w.round_state() == "feedback"

    with pytest.raises(GuardRejected) as refused:
        w.round("start_rectification")
    err = refused.value
    assert err.rules == ("units_fed_back",)
    assert err.violations[0].subjects == ("U-2",)
    assert "U-2" in str(err)
    assert "U-1" not in err.violations[0].subjects
    assert w.round_state() == "feedback"

    w.feed_back("U-2")
    w.round("start_rectification")
    assert w.round_state() == "rectify"


# -- immediate fixes (立行立改) ----------------------------------------------------------
def test_immediate_fix_is_closed_while_on_site() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1", "P-2"]})
    w.do("item", "P-1", "order_immediate_fix")
    assert w.item_state("P-1") == "immediate"
    assert w.state.items["P-1"].immediate
    w.submit("P-1", {"summary": "已当场整改", "amount_recovered": "1200.50"})
    w.do("item", "P-1", "verify")
    w.do("item", "P-1", "close")
    item = w.state.items["P-1"]
    assert item.state == "closed"
    assert item.closed_at is not None
    assert w.unit_state("U-1") == "onsite"  # closed during the on-site period
    assert item.fed_back_at is None


def test_immediate_fix_is_refused_once_the_unit_has_left_site() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    w.leave("U-1")
    assert w.unit_state("U-1") == "reporting"
    w.record("U-1", "P-2")  # still possible while the report is drafted
    with pytest.raises(GuardRejected) as refused:
        w.do("item", "P-2", "order_immediate_fix")
    assert refused.value.rules == ("unit_on_site",)
    assert "immediate fixes happen on site" in str(refused.value)
    assert w.item_state("P-2") == "found"


def test_immediate_fix_not_fixed_goes_into_the_report_and_the_regular_path() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    w.do("item", "P-1", "order_immediate_fix")
    w.do("item", "P-1", "include_in_report")
    item = w.state.items["P-1"]
    assert item.state == "confirmed"
    assert not item.immediate
    w.unit_to_feedback("U-1")
    assert w.item_state("P-1") == "fed_back"
    w.plan("U-1")
    assert w.item_state("P-1") == "rectifying"
    w.finish("P-1")
    assert w.item_state("P-1") == "closed"


def test_rejected_immediate_fix_goes_back_to_immediate() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    w.do("item", "P-1", "order_immediate_fix")
    w.submit("P-1")
    w.do("item", "P-1", "reject", reason="收据不全")
    item = w.state.items["P-1"]
    assert item.state == "immediate"
    assert [r.reason for r in item.rejections] == ["收据不全"]


# -- refinement (细化) -------------------------------------------------------------------
def _refine(w: World, parent: str, n: int = 2) -> list[str]:
    children = [f"{parent}-{k}" for k in range(1, n + 1)]
    w.do(
        "item",
        parent,
        "refine",
        {"children": [{"id": c, "description": f"细化 {c}"} for c in children]},
    )
    return children


def test_refining_a_fed_back_problem_creates_children_in_its_state() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    children = _refine(w, "P-1", 3)
    parent = w.state.items["P-1"]
    assert parent.state == "refined"
    assert parent.children == tuple(children)
    for child_id in children:
        child = w.state.items[child_id]
        assert child.state == "fed_back"
        assert child.parent_id == "P-1"
        assert child.unit_id == "U-1"
        assert child.fed_back_at == parent.fed_back_at
    assert [i.id for i in w.state.leaves("U-1")] == ["P-2", *children]


def test_refining_a_claimed_problem_keeps_the_claim_on_the_children() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.do("item", "P-1", "claim")
    children = _refine(w, "P-1")
    for child_id in children:
        child = w.state.items[child_id]
        assert child.state == "claimed"
        assert child.claimed_by is not None
        assert child.claimed_by == w.state.items["P-1"].claimed_by


def test_refinement_refuses_child_ids_in_use() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    with pytest.raises(GuardRejected) as refused:
        w.do(
            "item",
            "P-1",
            "refine",
            {"children": [{"id": "P-2", "description": "x"}, {"id": "P-1-2", "description": "y"}]},
        )
    assert refused.value.violations[0].subjects == ("P-2",)
    assert w.item_state("P-1") == "fed_back"


def test_parent_closes_when_its_last_child_closes() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    c1, c2 = _refine(w, "P-1")
    w.plan("U-1")
    assert w.item_state(c1) == w.item_state(c2) == "rectifying"
    assert w.item_state("P-1") == "refined"
    w.finish(c1)
    assert w.item_state("P-1") == "refined"

    w.do_measures(c2)
    w.submit(c2)
    w.do("item", c2, "verify")
    events = w.do("item", c2, "close")
    assert types(events) == ["item.close", "item.children_done"]
    assert events[1].subject == "P-1"
    assert events[1].automatic
    parent = w.state.items["P-1"]
    assert parent.state == "closed"
    assert parent.closed_at is not None


def test_parent_is_closed_when_children_are_closed_or_withdrawn() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    c1, c2 = _refine(w, "P-1")
    w.do("item", c2, "withdraw", reason="经核实不属实")
    assert w.item_state("P-1") == "refined"
    w.plan("U-1")
    w.finish(c1)
    assert w.item_state("P-1") == "closed"


def test_parent_is_withdrawn_when_all_children_are_withdrawn() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    c1, c2 = _refine(w, "P-1")
    w.do("item", c1, "withdraw", reason="不属实")
    events = w.do("item", c2, "withdraw", reason="不属实")
    assert types(events) == ["item.withdraw", "item.children_done"]
    assert w.item_state("P-1") == "withdrawn"
    assert w.state.items["P-1"].closed_at is None


def test_reopening_a_child_reopens_its_closed_parent() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    c1, c2 = _refine(w, "P-1")
    w.plan("U-1")
    w.finish(c1)
    w.finish(c2)
    assert w.item_state("P-1") == "closed"
    events = w.do("item", c1, "reopen", {"lookback_round_id": "R-LB"}, reason="回头看发现反弹")
    assert types(events) == ["item.reopen", "item.reopen_parent"]
    assert w.item_state(c1) == "rectifying"
    assert w.item_state(c2) == "closed"
    parent = w.state.items["P-1"]
    assert parent.state == "refined"
    assert parent.closed_at is None
    assert w.engine.replay(ROUND) == w.state


# -- long-term items (长期整改) ----------------------------------------------------------
MILESTONES = [
    {"title": "完成资产清查", "due": "2026-12-31"},
    {"title": "完成历史遗留问题处置", "due": "2027-06-30"},
]


def _long_term(w: World) -> None:
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    w.plan("U-1")
    w.finish("P-2")
    w.do_measures("P-1")
    w.do("item", "P-1", "mark_long_term", {"milestones": MILESTONES})


def test_long_term_item_with_milestones_lets_the_unit_report() -> None:
    w = World()
    _long_term(w)
    item = w.state.items["P-1"]
    assert item.state == "long_term"
    assert item.long_term
    assert [m.title for m in item.milestones] == ["完成资产清查", "完成历史遗留问题处置"]
    w.report("U-1")
    assert w.unit_state("U-1") == "rectification_reported"
    assert w.item_state("P-1") == "long_term"


def test_long_term_item_is_submitted_only_when_its_milestones_are_done() -> None:
    w = World()
    _long_term(w)
    with pytest.raises(GuardRejected) as refused:
        w.submit("P-1")
    assert refused.value.rules == ("milestones_done",)
    assert str(refused.value.violations[0]) == (
        "2 milestones not done: 完成资产清查, 完成历史遗留问题处置"
    )

    today = w.clock.today().isoformat()
    w.do("item", "P-1", "complete_milestone", {"title": "完成资产清查", "done_on": today})
    assert w.item_state("P-1") == "long_term"  # an internal transition
    assert w.state.items["P-1"].milestones[0].done_on == w.clock.today()
    with pytest.raises(GuardRejected) as refused:
        w.submit("P-1")
    assert refused.value.violations[0].message == "1 milestone not done: 完成历史遗留问题处置"

    w.do("item", "P-1", "complete_milestone", {"title": "完成历史遗留问题处置", "done_on": today})
    w.submit("P-1")
    assert w.item_state("P-1") == "submitted"
    w.do("item", "P-1", "reject", reason="需补充处置文件")
    assert w.item_state("P-1") == "long_term"  # back where it came from
    w.submit("P-1")
    w.do("item", "P-1", "verify")
    w.do("item", "P-1", "close")
    assert w.item_state("P-1") == "closed"


@pytest.mark.parametrize(
    ("title", "message"),
    [("不存在的目标", "has no milestone"), ("完成资产清查", "is already done")],
)
def test_complete_milestone_refuses_unknown_and_done_milestones(title: str, message: str) -> None:
    w = World()
    _long_term(w)
    today = w.clock.today().isoformat()
    w.do("item", "P-1", "complete_milestone", {"title": "完成资产清查", "done_on": today})
    with pytest.raises(GuardRejected) as refused:
        w.do("item", "P-1", "complete_milestone", {"title": title, "done_on": today})
    assert refused.value.rules == ("milestone_open",)
    assert message in str(refused.value)


def test_mark_long_term_needs_milestones() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    with pytest.raises(InvalidCommand):
        w.do("item", "P-1", "mark_long_term", {"milestones": []})
    assert w.item_state("P-1") == "rectifying"


# -- withdrawal ------------------------------------------------------------------------
def test_withdraw_requires_a_reason() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("item", "P-1", "withdraw")
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("item", "P-1", "withdraw", reason="   ")
    assert w.item_state("P-1") == "found"
    w.do("item", "P-1", "withdraw", reason="经核实不属实")
    item = w.state.items["P-1"]
    assert item.state == "withdrawn"
    assert item.withdrawn_reason == "经核实不属实"
    with pytest.raises(TransitionNotAllowed):
        w.do("item", "P-1", "confirm")


def test_withdraw_after_feedback_is_the_verifiers_call() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    events = w.do("item", "P-1", "withdraw", reason="核实不属实")
    assert events[0].actor.role is Role.SUPERVISION_OFFICE
    assert w.item_state("P-1") == "withdrawn"
    w.report("U-1")  # a withdrawn item does not hold up the report
    assert w.unit_state("U-1") == "rectification_reported"


# -- rejected submissions ----------------------------------------------------------------
def test_rejected_submission_goes_back_to_rectifying_with_the_reason() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    w.do_measures("P-1")
    w.submit("P-1")
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("item", "P-1", "reject")
    events = w.do("item", "P-1", "reject", reason="佐证材料不足，二次整改")
    assert events[0].reason == "佐证材料不足，二次整改"
    item = w.state.items["P-1"]
    assert item.state == "rectifying"
    assert len(item.rejections) == 1
    assert item.rejections[0].reason == "佐证材料不足，二次整改"
    assert item.rejections[0].by.role is Role.SUPERVISION_OFFICE
    assert item.verification is None

    w.submit("P-1", {"summary": "补充材料"})
    w.do("item", "P-1", "reject", reason="仍不充分")
    assert [r.reason for r in w.state.items["P-1"].rejections] == [
        "佐证材料不足，二次整改",
        "仍不充分",
    ]
    w.submit("P-1", {"summary": "再次补充"})
    w.do("item", "P-1", "verify")
    w.do("item", "P-1", "close")
    assert w.item_state("P-1") == "closed"


def test_closing_needs_a_verification_first() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    w.do_measures("P-1")
    w.submit("P-1")
    with pytest.raises(TransitionNotAllowed) as refused:
        w.do("item", "P-1", "close")
    assert refused.value.state == "submitted"
    assert "verify" in refused.value.allowed


# -- reopening by a look-back round ------------------------------------------------------
def _closed_round(w: World) -> None:
    w.to_feedback({"U-1": ["P-1", "P-2"], "U-2": ["Q-1"]})
    for unit_id in ("U-1", "U-2"):
        w.plan(unit_id)
    for item_id in ("P-1", "P-2", "Q-1"):
        w.finish(item_id)
    w.close_round(["U-1", "U-2"])


def test_reopen_by_a_look_back_moves_unit_and_round_back_to_rectification() -> None:
    w = World()
    _closed_round(w)
    assert w.round_state() == "closed"
    events = w.do("item", "P-1", "reopen", {"lookback_round_id": "R-LB"}, reason="回头看发现反弹")
    assert types(events) == ["item.reopen", "unit.reopen", "round.reopen"]
    assert events[0].payload == {"lookback_round_id": "R-LB"}
    assert [e.automatic for e in events] == [False, True, True]
    item = w.state.items["P-1"]
    assert item.state == "rectifying"
    assert item.closed_at is None
    assert item.submission is None
    assert [(r.lookback_round_id, r.reason) for r in item.reopenings] == [
        ("R-LB", "回头看发现反弹")
    ]
    assert w.unit_state("U-1") == "rectifying"
    assert w.unit_state("U-2") == "evaluated"  # the other unit is not touched
    assert w.round_state() == "rectify"
    assert w.state.round is not None
    assert w.state.round.reopenings == 1

    # and the round can be taken to the end again
    w.finish("P-1")
    w.report("U-1")
    w.round("publish")
    w.do("unit", "U-1", "publish", {"in_party": True, "public": False})
    w.round("start_evaluation")
    w.do("unit", "U-1", "evaluate", {"score": "91", "grade": "good"})
    w.round("close")
    assert w.round_state() == "closed"
    assert w.engine.replay(ROUND) == w.state


def test_reopen_while_rectifying_leaves_unit_and_round_where_they_are() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    w.plan("U-1")
    w.finish("P-1")
    events = w.do("item", "P-1", "reopen", {"lookback_round_id": "R-LB"}, reason="复查")
    assert types(events) == ["item.reopen"]
    assert w.unit_state("U-1") == "rectifying"
    assert w.round_state() == "rectify"


def test_reopen_is_refused_for_a_refined_parent() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    c1, c2 = _refine(w, "P-1")
    w.plan("U-1")
    w.finish(c1)
    w.finish(c2)
    assert w.item_state("P-1") == "closed"
    with pytest.raises(GuardRejected) as refused:
        w.do("item", "P-1", "reopen", {"lookback_round_id": "R-LB"}, reason="回头看")
    assert refused.value.rules == ("reopen_allowed",)
    assert "reopen the child items instead" in str(refused.value)
    assert w.item_state("P-1") == "closed"


def test_reopen_is_refused_for_the_round_itself_and_without_reason() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    w.finish("P-1")
    with pytest.raises(GuardRejected) as refused:
        w.do("item", "P-1", "reopen", {"lookback_round_id": ROUND}, reason="回头看")
    assert "cannot look back on itself" in str(refused.value)
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("item", "P-1", "reopen", {"lookback_round_id": "R-LB"})
    with pytest.raises(InvalidCommand, match="lookback_round_id"):
        w.do("item", "P-1", "reopen", {}, reason="回头看")
    assert w.item_state("P-1") == "closed"


def test_only_closed_items_are_reopened() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    with pytest.raises(TransitionNotAllowed):
        w.do("item", "P-1", "reopen", {"lookback_round_id": "R-LB"}, reason="回头看")


# -- second rectification (二次整改) -------------------------------------------------------
def test_order_second_rectification_after_a_poor_evaluation() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"], "U-2": ["Q-1"]})
    for unit_id in ("U-1", "U-2"):
        w.plan(unit_id)
    w.finish("P-1")
    w.finish("Q-1")
    for unit_id in ("U-1", "U-2"):
        w.report(unit_id)
    w.round("publish")
    for unit_id in ("U-1", "U-2"):
        w.do("unit", unit_id, "publish", {"in_party": True, "public": True})
    w.round("start_evaluation")
    w.do("unit", "U-1", "evaluate", {"score": "78.5", "grade": "average"})
    assert w.state.units["U-1"].grade == "average"

    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("unit", "U-1", "order_second_rectification")
    with pytest.raises(PermissionDenied):
        w.do("unit", "U-1", "order_second_rectification", actor=w.unit_actor("U-1"), reason="x")
    events = w.do("unit", "U-1", "order_second_rectification", reason="评估低于90分")
    assert types(events) == ["unit.order_second_rectification", "round.reopen"]
    assert w.unit_state("U-1") == "rectifying"
    assert w.state.units["U-1"].second_rectifications == 1
    assert w.round_state() == "rectify"
    assert w.unit_state("U-2") == "published"

    # the leading group may order it too
    w.report("U-1")
    w.round("publish")
    w.do("unit", "U-1", "publish", {"in_party": True, "public": True})
    w.round("start_evaluation")
    w.do("unit", "U-1", "evaluate", {"score": "80", "grade": "average"})
    w.do(
        "unit",
        "U-1",
        "order_second_rectification",
        actor=w.cast.leading_group,
        reason="仍不达标",
    )
    assert w.state.units["U-1"].second_rectifications == 2


def test_second_rectification_only_after_evaluation() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    with pytest.raises(TransitionNotAllowed):
        w.do("unit", "U-1", "order_second_rectification", reason="x")


# -- measures --------------------------------------------------------------------------
def test_measure_goes_planned_in_progress_done() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.do("item", "P-1", "claim")
    m = w.add_measure("P-1", "M-1")
    measure = w.state.measures[m]
    assert measure.state == "planned"
    assert measure.item_id == "P-1"
    assert w.state.items["P-1"].measure_ids == ("M-1",)
    w.do("unit", "U-1", "submit_plan")
    w.do("unit", "U-1", "approve_plan")
    w.do("measure", m, "start")
    assert w.state.measures[m].state == "in_progress"
    w.do("measure", m, "report_progress", {"percent": 60, "notes": "已完成清查"})
    assert w.state.measures[m].progress == 60
    assert w.state.measures[m].state == "in_progress"
    done_on = w.clock.today()
    w.do("measure", m, "complete", {"done_on": done_on.isoformat()})
    measure = w.state.measures[m]
    assert (measure.state, measure.progress, measure.done_on) == ("done", 100, done_on)
    with pytest.raises(TransitionNotAllowed):
        w.do("measure", m, "start")


def test_measure_is_dropped_with_a_reason() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.do("item", "P-1", "claim")
    m1 = w.add_measure("P-1", "M-1")
    w.add_measure("P-1", "M-2")
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.do("measure", m1, "drop")
    w.do("measure", m1, "drop", reason="与 M-2 重复")
    assert w.state.measures[m1].state == "dropped"
    # a dropped measure does not count: the plan still passes with M-2
    w.do("unit", "U-1", "submit_plan")
    w.do("unit", "U-1", "approve_plan")
    w.finish("P-1")
    assert w.item_state("P-1") == "closed"


def test_measure_is_revised() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.do("item", "P-1", "claim")
    m = w.add_measure("P-1", "M-1")
    new_due = w.feedback_day + timedelta(days=60)
    events = w.do(
        "measure",
        m,
        "revise",
        {"responsible_person": "person-2", "due_date": new_due.isoformat()},
    )
    assert events[0].payload == {"responsible_person": "person-2", "due_date": new_due.isoformat()}
    measure = w.state.measures[m]
    assert measure.responsible_person == "person-2"
    assert measure.due_date == new_due
    assert measure.responsible_leader == "leader-1"  # not named, not changed
    assert measure.state == "planned"
    with pytest.raises(InvalidCommand):
        w.do("measure", m, "revise", {})


def test_measure_due_before_feedback_is_refused() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.do("item", "P-1", "claim")
    early = w.feedback_day - timedelta(days=1)
    with pytest.raises(GuardRejected) as refused:
        w.add_measure("P-1", "M-1", due=early)
    assert refused.value.rules == ("due_after_feedback",)
    assert str(refused.value.violations[0]) == (
        f"due date {early} is before the feedback date {w.feedback_day}"
    )
    assert "M-1" not in w.state.measures
    w.add_measure("P-1", "M-1", due=w.feedback_day)  # the feedback day itself is fine
    with pytest.raises(GuardRejected) as refused:
        w.do("measure", "M-1", "revise", {"due_date": early.isoformat()})
    assert refused.value.rules == ("due_after_feedback",)
    assert w.state.measures["M-1"].due_date == w.feedback_day


def test_measure_on_a_refined_parent_or_an_unclaimed_item_is_refused() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    _refine(w, "P-1")
    with pytest.raises(GuardRejected) as refused:
        w.add_measure("P-1", "M-1")
    assert refused.value.rules[0] == "item_accepts_measures"
    assert "measures belong to its children" in str(refused.value)
    with pytest.raises(GuardRejected, match="measures follow a claim"):
        w.add_measure("P-2", "M-2")
    assert not w.state.measures


def test_measure_of_a_withdrawn_item_cannot_move() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.do("item", "P-1", "claim")
    w.add_measure("P-1", "M-1")
    w.do("item", "P-1", "withdraw", reason="不属实")
    with pytest.raises(GuardRejected) as refused:
        w.do("measure", "M-1", "start")
    assert refused.value.rules == ("item_open",)
    assert str(refused.value.violations[0]) == "item P-1 is 'withdrawn'"
    assert w.state.measures["M-1"].state == "planned"


# -- leads -----------------------------------------------------------------------------
def _transfer(w: World, lead_id: str = "L-1", **over: object) -> None:
    payload = {
        "item_ids": ["P-1"],
        "receiver": "discipline_commission",
        "receiver_org": "jw",
        "summary": "涉嫌违纪问题线索",
        "transferred_on": w.clock.today().isoformat(),
        **over,
    }
    w.do("lead", lead_id, "transfer", payload)


def test_lead_is_transferred_while_inspecting_and_reconciled_once() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    _transfer(w)  # 边巡边移: the round is on site
    assert w.round_state() == "onsite"
    lead = w.state.leads["L-1"]
    assert lead.state == "transferred"
    assert lead.item_ids == ("P-1",)
    assert w.state.items["P-1"].lead_ids == ("L-1",)
    assert w.state.round is not None
    assert w.state.round.lead_ids == ("L-1",)

    events = w.do("lead", "L-1", "receive")
    assert events[0].actor == w.cast.discipline
    w.do("lead", "L-1", "start_check")
    w.do("lead", "L-1", "conclude", {"result": "case_opened", "notes": "已立案"})
    assert w.state.leads["L-1"].result == "case_opened"
    w.clock.advance(days=30)
    w.do("lead", "L-1", "report_back", {"reported_on": w.clock.today().isoformat()})
    assert w.state.leads["L-1"].reported_on == w.clock.today()
    events = w.do("lead", "L-1", "reconcile")
    assert events[0].actor.role is Role.INSPECTION_OFFICE
    lead = w.state.leads["L-1"]
    assert lead.state == "reconciled"
    assert lead.reconciled_at == w.clock.now()

    with pytest.raises(TransitionNotAllowed) as refused:
        w.do("lead", "L-1", "reconcile")
    assert refused.value.state == "reconciled"
    assert refused.value.allowed == ()


def test_lead_is_not_transferred_before_the_round_is_on_site() -> None:
    w = World()
    w.open()
    assert w.round_state() == "mobilize"
    with pytest.raises(GuardRejected) as refused:
        _transfer(w, item_ids=[])
    assert refused.value.rules == ("round_transfers_leads",)
    assert not w.state.leads


def test_lead_transfer_date_in_the_future_is_refused() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    before = fingerprint(w.engine)
    tomorrow = (w.clock.today() + timedelta(days=1)).isoformat()
    with pytest.raises(InvalidCommand, match="lies in the future") as refused:
        _transfer(w, transferred_on=tomorrow)
    assert refused.value.errors[0]["loc"] == ["payload", "transferred_on"]
    assert refused.value.errors[0]["type"] == "date_in_future"
    assert fingerprint(w.engine) == before


def test_lead_naming_unknown_items_is_refused() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    with pytest.raises(GuardRejected) as refused:
        _transfer(w, item_ids=["P-1", "P-404", "P-405"])
    assert refused.value.violations[0].subjects == ("P-404", "P-405")
    assert str(refused.value.violations[0]) == "2 items unknown: P-404, P-405"


def test_lead_report_back_date_must_lie_between_transfer_and_today() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    transferred = w.clock.today()
    _transfer(w)
    w.do("lead", "L-1", "receive")
    w.do("lead", "L-1", "start_check")
    w.do("lead", "L-1", "conclude", {"result": "no_case"})
    w.clock.advance(days=10)
    before = transferred - timedelta(days=1)
    with pytest.raises(GuardRejected) as refused:
        w.do("lead", "L-1", "report_back", {"reported_on": before.isoformat()})
    assert str(refused.value.violations[0]) == (
        f"report-back date {before} is before the transfer ({transferred})"
    )
    future = w.clock.today() + timedelta(days=1)
    with pytest.raises(InvalidCommand) as invalid:
        w.do("lead", "L-1", "report_back", {"reported_on": future.isoformat()})
    assert invalid.value.errors[0]["msg"] == (
        f"{future} lies in the future (today is {w.clock.today()})"
    )
    assert w.state.leads["L-1"].state == "concluded"
    w.do("lead", "L-1", "report_back", {"reported_on": transferred.isoformat()})
    assert w.state.leads["L-1"].state == "reported_back"


def test_lead_is_handled_only_by_the_receiver_it_was_sent_to() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    _transfer(w)
    other_jw = World.actor(Role.DISCIPLINE_COMMISSION, "jw-other-county", "jw2-staff")
    with pytest.raises(PermissionDenied) as refused:
        w.do("lead", "L-1", "receive", actor=other_jw)
    assert "transferred to 'jw'" in str(refused.value)
    with pytest.raises(PermissionDenied):
        w.do("lead", "L-1", "receive", actor=w.cast.organization_dept)
    with pytest.raises(PermissionDenied):
        w.do("lead", "L-1", "receive", actor=w.cast.office)
    assert w.state.leads["L-1"].state == "transferred"
    w.do("lead", "L-1", "receive", actor=w.cast.discipline)
    assert w.state.leads["L-1"].state == "received"


def test_leads_to_the_organization_department_and_other_units() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1", "P-2"]})
    _transfer(w, "L-1", receiver="organization_department", receiver_org="zzb")
    _transfer(w, "L-2", item_ids=["P-2"], receiver="other", receiver_org="audit-bureau")
    with pytest.raises(PermissionDenied):
        w.do("lead", "L-1", "receive", actor=w.cast.discipline)
    w.do("lead", "L-1", "receive", actor=w.cast.organization_dept)
    auditor = World.actor(Role.FUNCTIONAL_DEPARTMENT, "audit-bureau", "auditor")
    w.do("lead", "L-2", "receive", actor=auditor)
    assert {le.state for le in w.state.leads.values()} == {"received"}


def test_regression_an_item_of_an_archived_round_cannot_be_reopened() -> None:
    """Reopening an item of an archived round used to leave the item rectifying in a
    round and unit that are terminal (archived) and can never finish again."""
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    w.plan("U-1")
    w.finish("P-1")
    w.finish("P-2")
    w.close_round(["U-1"])
    w.round("archive")
    before = fingerprint(w.engine)
    with pytest.raises(GuardRejected, match="archived") as refused:
        w.do("item", "P-1", "reopen", {"lookback_round_id": "R-LB"}, reason="回头看")
    assert refused.value.rules == ("reopen_allowed",)
    assert fingerprint(w.engine) == before
    assert w.item_state("P-1") == "closed"


def test_regression_a_reopened_immediate_fix_is_rectified_like_any_item() -> None:
    """A look-back reopening an immediate fix used to leave it marked immediate: it
    could be submitted again with no measure and still counted as fixed on site."""
    w = World()
    w.to_onsite({"U-1": ["P-1", "P-2"]})
    w.do("item", "P-1", "order_immediate_fix")
    w.submit("P-1")
    w.do("item", "P-1", "verify")
    w.do("item", "P-1", "close")
    w.do("item", "P-2", "confirm")
    w.leave("U-1")
    w.decide("U-1")
    w.move_to(w.feedback_day)
    w.feed_back("U-1")
    w.plan("U-1")
    assert outcome_figures(w.state).immediate_fixes == 1
    w.do("item", "P-1", "reopen", {"lookback_round_id": "R-LB"}, reason="回头看发现反弹")
    item = w.state.items["P-1"]
    assert item.state == "rectifying"
    assert not item.immediate
    assert outcome_figures(w.state).immediate_fixes == 0
    with pytest.raises(GuardRejected) as refused:  # a measure is needed now
        w.submit("P-1")
    assert "measures_done" in refused.value.rules
    w.add_approved_measure("P-1")  # the plan is approved: the new measure is reviewed
    w.finish("P-1")
    assert w.item_state("P-1") == "closed"


def test_regression_a_problem_with_live_measures_cannot_be_refined() -> None:
    """Refining a planned problem used to leave its measures on the parent, alive
    for ever and never blocking anything."""
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.claim_all("U-1")
    w.add_measure("P-1")
    before = fingerprint(w.engine)
    children = {
        "children": [{"id": "P-1-1", "description": "a"}, {"id": "P-1-2", "description": "b"}]
    }
    with pytest.raises(GuardRejected) as refused:
        w.do("item", "P-1", "refine", children)
    assert refused.value.rules == ("no_live_measures",)
    assert fingerprint(w.engine) == before
    for measure_id in w.state.items["P-1"].measure_ids:
        w.do("measure", measure_id, "drop", reason="问题细化后分别制定措施")
    w.do("item", "P-1", "refine", children)
    assert w.item_state("P-1") == "refined"
