"""Guards say which rule failed and for which items, all at once (issue 2 item 5)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpers import World, fingerprint
from xuncha_flow import GuardRejected, InvalidCommand, RuleViolation


def _refused(w: World, *args: object, **kw: object) -> GuardRejected:
    before = fingerprint(w.engine)
    with pytest.raises(GuardRejected) as refused:
        w.do(*args, **kw)
    assert fingerprint(w.engine) == before  # a refusal changes nothing
    return refused.value


# -- the rectification plan ----------------------------------------------------------------
def test_plan_refused_names_the_unclaimed_items() -> None:
    w = World()
    ids = ["P-03", "P-12", "P-17", "P-20", "P-31"]
    w.to_feedback({"U-1": ids})
    for item_id in ("P-03", "P-20"):
        w.do("item", item_id, "claim")
        w.add_measure(item_id)
    err = _refused(w, "unit", "U-1", "submit_plan")
    assert err.violations == (
        RuleViolation(
            "items_claimed", "3 items unclaimed: P-12, P-17, P-31", ("P-12", "P-17", "P-31")
        ),
    )
    assert str(err) == "unit U-1: 'submit_plan' refused: 3 items unclaimed: P-12, P-17, P-31"
    assert err.subject == "unit U-1"
    assert err.event == "submit_plan"
    assert w.unit_state("U-1") == "fed_back"


def test_plan_refused_names_items_without_a_measure() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2", "P-3"]})
    w.claim_all("U-1")
    w.add_measure("P-2")
    err = _refused(w, "unit", "U-1", "submit_plan")
    assert err.rules == ("items_have_measures",)
    assert err.violations[0].message == "2 items without a measure: P-1, P-3"
    assert err.violations[0].subjects == ("P-1", "P-3")


def test_plan_refused_says_what_each_incomplete_measure_lacks() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    w.claim_all("U-1")
    w.add_measure("P-1", "M-1")
    w.add_measure("P-1", "M-2", responsible_leader=None)
    w.add_measure("P-2", "M-3", responsible_person=None, due_date=None)
    err = _refused(w, "unit", "U-1", "submit_plan")
    assert err.rules == ("measures_complete",)
    assert err.violations[0].message == (
        "2 measures incomplete: M-2 (no responsible leader); M-3 (no responsible person, due date)"
    )
    assert err.violations[0].subjects == ("M-2", "M-3")


def test_plan_refused_reports_every_broken_rule_together() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2", "P-3", "P-4"]})
    for item_id in ("P-2", "P-3", "P-4"):
        w.do("item", item_id, "claim")
    w.add_measure("P-3", "M-3", responsible_person=None, due_date=None)
    w.add_measure("P-4", "M-4")
    err = _refused(w, "unit", "U-1", "submit_plan")
    assert err.rules == ("items_claimed", "items_have_measures", "measures_complete")
    assert [v.subjects for v in err.violations] == [("P-1",), ("P-2",), ("M-3",)]
    assert str(err) == (
        "unit U-1: 'submit_plan' refused: 1 item unclaimed: P-1; "
        "1 item without a measure: P-2; "
        "1 measure incomplete: M-3 (no responsible person, due date)"
    )


def test_plan_approval_is_checked_again_by_the_reviewer() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    w.plan("U-1", approve=False)
    assert w.unit_state("U-1") == "plan_submitted"
    assert {w.item_state(i) for i in ("P-1", "P-2")} == {"planned"}
    # the unit drops P-2's only measure after handing the plan in
    w.do("measure", "M-P-2-1", "drop", reason="措施调整")
    err = _refused(w, "unit", "U-1", "approve_plan")
    assert err.violations == (
        RuleViolation("items_have_measures", "1 item without a measure: P-2", ("P-2",)),
    )
    # the reviewer sends the plan back: items return to claimed
    events = w.do("unit", "U-1", "return_plan", reason="P-2 无整改措施")
    assert [e.type for e in events] == ["unit.return_plan", "item.unplan", "item.unplan"]
    assert {w.item_state(i) for i in ("P-1", "P-2")} == {"claimed"}
    w.add_measure("P-2", "M-P-2-2")
    w.do("unit", "U-1", "submit_plan")
    w.do("unit", "U-1", "approve_plan")
    assert w.unit_state("U-1") == "rectifying"


def test_a_long_list_of_ids_is_cut_after_twenty() -> None:
    w = World()
    ids = [f"P-{n:02d}" for n in range(1, 24)]
    w.to_feedback({"U-1": ids})
    err = _refused(w, "unit", "U-1", "submit_plan")
    assert err.violations[0].message == (
        "23 items unclaimed: " + ", ".join(ids[:20]) + " and 3 more"
    )
    assert err.violations[0].subjects == tuple(ids)  # every id, not only those shown


# -- the rectification report ---------------------------------------------------------------
def test_report_rectification_lists_the_open_items() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2", "P-3", "P-4"]})
    w.plan("U-1")
    w.finish("P-1")
    w.do("item", "P-4", "withdraw", reason="不属实")
    w.do_measures("P-3")
    w.submit("P-3")
    err = _refused(w, "unit", "U-1", "report_rectification")
    assert err.violations == (
        RuleViolation("rectification_done", "2 items still open: P-2, P-3", ("P-2", "P-3")),
    )


# -- the inspection report ------------------------------------------------------------------
def test_decide_report_lists_the_unsettled_items() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1", "P-2", "P-3", "P-4", "P-5"]})
    w.do("item", "P-1", "confirm")
    w.do("item", "P-2", "order_immediate_fix")  # ordered but not fixed
    w.do("item", "P-3", "withdraw", reason="不属实")
    w.do("item", "P-5", "order_immediate_fix")
    w.submit("P-5")
    w.do("item", "P-5", "verify")
    w.do("item", "P-5", "close")
    w.leave("U-1")
    err = _refused(w, "unit", "U-1", "decide_report")
    assert err.violations == (
        RuleViolation(
            "unit_items_settled",
            "2 items not yet confirmed, withdrawn or fixed on site: P-2, P-4",
            ("P-2", "P-4"),
        ),
    )


# -- round stage gates ----------------------------------------------------------------------
UNITS3 = {"U-1": ("org-1", "team-1"), "U-2": ("org-2", "team-2"), "U-3": ("org-3", "team-1")}


def test_round_gates_name_the_lagging_units() -> None:
    w = World(units=UNITS3)
    w.to_onsite({"U-1": ["P-1"], "U-2": ["Q-1"], "U-3": ["R-1"]})
    w.confirm_found("U-2")
    w.leave("U-2")
    err = _refused(w, "round", w.round_id, "conclude_onsite")
    assert err.violations == (
        RuleViolation("units_left_site", "2 units still on site: U-1, U-3", ("U-1", "U-3")),
    )
    for unit_id in ("U-1", "U-3"):
        w.confirm_found(unit_id)
        w.leave(unit_id)
    w.round("conclude_onsite")

    w.decide("U-1")
    err = _refused(w, "round", w.round_id, "conclude_report")
    assert str(err.violations[0]) == "2 units without a decided report: U-2, U-3"
    w.decide("U-2")
    w.decide("U-3")
    w.round("conclude_report")

    w.feed_back("U-3")
    err = _refused(w, "round", w.round_id, "start_rectification")
    assert str(err.violations[0]) == "2 units not yet given feedback: U-1, U-2"
    w.feed_back("U-1")
    w.feed_back("U-2")
    w.round("start_rectification")

    for unit_id in UNITS3:
        w.plan(unit_id)
    for item_id in ("P-1", "Q-1", "R-1"):
        w.finish(item_id)
    w.report("U-2")
    err = _refused(w, "round", w.round_id, "publish")
    assert str(err.violations[0]) == "2 units without a rectification report: U-1, U-3"
    w.report("U-1")
    w.report("U-3")
    w.round("publish")

    w.do("unit", "U-1", "publish", {"in_party": True, "public": True})
    err = _refused(w, "round", w.round_id, "start_evaluation")
    assert str(err.violations[0]) == "2 units not yet published: U-2, U-3"
    for unit_id in ("U-2", "U-3"):
        w.do("unit", unit_id, "publish", {"in_party": True, "public": True})
    w.round("start_evaluation")

    w.do("unit", "U-3", "evaluate", {"score": "95", "grade": "good"})
    err = _refused(w, "round", w.round_id, "close")
    assert err.rules == ("units_evaluated",)
    assert err.violations[0].subjects == ("U-1", "U-2")
    for unit_id in ("U-1", "U-2"):
        w.do("unit", unit_id, "evaluate", {"score": "90", "grade": "good"})
    w.round("close")
    assert w.round_state() == "closed"


def test_a_round_without_units_is_not_approved() -> None:
    w = World()
    w.round("open", {"name": "空轮次", "level": "county"})
    err = _refused(w, "round", w.round_id, "approve")
    assert err.violations == (RuleViolation("round_has_units", "the round inspects no unit yet"),)


def test_units_are_added_only_while_preparing() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    err = _refused(
        w,
        "unit",
        "U-2",
        "add",
        {"name": "迟到单位", "organization_id": "org-2", "team_id": "team-2"},
    )
    assert err.rules == ("round_accepts_units",)
    assert "'onsite'" in str(err)


# -- item guards -----------------------------------------------------------------------------
def test_submission_reports_missing_evidence_and_unfinished_measures_together() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.claim_all("U-1")
    w.add_measure("P-1", "M-1")
    w.add_measure("P-1", "M-2")
    w.do("unit", "U-1", "submit_plan")
    w.do("unit", "U-1", "approve_plan")
    w.do("measure", "M-1", "start")
    w.do("measure", "M-1", "complete", {"done_on": w.clock.today().isoformat()})
    err = _refused(w, "item", "P-1", "submit", {"summary": "完成"})
    assert err.rules == ("evidence_attached", "measures_done")
    assert err.violations[0].message == "item P-1: a submission needs evidence (attachments)"
    assert err.violations[1] == RuleViolation("measures_done", "1 measure not done: M-2", ("M-2",))


def test_items_are_recorded_only_while_inspecting() -> None:
    w = World()
    w.open()
    err = _refused(w, "item", "P-1", "record", {"unit_id": "U-1", "description": "太早"})
    assert err.violations == (
        RuleViolation(
            "unit_inspecting",
            "unit U-1 is 'scheduled': problems are recorded while inspecting",
        ),
    )


def test_feedback_date_must_not_be_in_the_future_nor_before_on_site() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    w.confirm_found("U-1")
    w.leave("U-1")
    w.decide("U-1")
    future = w.clock.today() + timedelta(days=3)
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand) as invalid:  # a payload check, before any rule
        w.do("unit", "U-1", "deliver_feedback", {"delivered_on": future.isoformat()})
    assert invalid.value.errors[0]["loc"] == ["payload", "delivered_on"]
    assert invalid.value.errors[0]["type"] == "date_in_future"
    assert fingerprint(w.engine) == before
    early = w.onsite_start - timedelta(days=1)
    err = _refused(w, "unit", "U-1", "deliver_feedback", {"delivered_on": early.isoformat()})
    assert str(err.violations[0]) == (
        f"feedback date {early} is before the on-site period began ({w.onsite_start})"
    )
