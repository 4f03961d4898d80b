"""Outcome figures (issue 2 item 9, DOMAIN.md §4), checked against the seeds' own counts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from helpers import ROUND, World
from xuncha_flow import OutcomeFigures, RoundState, outcome_figures


def figures(w: World) -> OutcomeFigures:
    return outcome_figures(w.state)


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{k:04d}" for k in range(1, n + 1)]


# -- the seeds --------------------------------------------------------------------------------
def test_seed_001_district_1832_fed_back_1798_closed_is_98_14_percent() -> None:
    """Seed 001: "1,832 problems in five years, 1,798 closed, 98.14 %"."""
    w = World()
    problems = ids("P", 1832)
    w.to_feedback({"U-1": problems})
    w.plan("U-1")
    for item_id in problems[:1798]:
        w.finish(item_id)
    f = figures(w)
    assert f.problems_found == 1832
    assert f.problems_fed_back == 1832
    assert f.items == 1832
    assert f.closed == 1798
    assert f.open == 34
    assert f.long_term == 0
    assert f.withdrawn == 0
    assert f.completion_rate == pytest.approx(1798 / 1832)
    assert round(f.completion_rate * 100, 2) == 98.14
    (unit,) = f.units
    assert (unit.unit_id, unit.items, unit.closed, unit.open) == ("U-1", 1832, 1798, 34)
    assert unit.completion_rate == f.completion_rate


def test_seed_002_seventeen_problems_refined_into_forty_two() -> None:
    """Seed 002: "17 problems, refined by the county committee into 42: 25 done, 17 in
    progress, 64.3 %". 25 / 42 is 59.5 %, not 64.3 %: the seed's percentage does not
    match its own counts (64.3 % would be 27 of 42). We count closed / leaf items and
    assert 25 / 42."""
    w = World()
    problems = ids("P", 17)
    w.to_feedback({"U-1": problems})
    children: list[str] = []
    for n, parent in enumerate(problems):
        k = 3 if n < 8 else 2  # 8 × 3 + 9 × 2 = 42
        kids = [f"{parent}-{j}" for j in range(1, k + 1)]
        w.do(
            "item",
            parent,
            "refine",
            {"children": [{"id": c, "description": f"细化 {c}"} for c in kids]},
        )
        children += kids
    assert len(children) == 42
    w.plan("U-1")
    for child in children[:25]:
        w.finish(child)
    f = figures(w)
    assert f.problems_found == 17
    assert f.problems_fed_back == 17
    assert f.items == 42
    assert f.closed == 25
    assert f.open == 17
    assert f.completion_rate == pytest.approx(25 / 42)
    assert f.completion_rate == pytest.approx(0.595, abs=5e-4)
    assert round(f.completion_rate * 100, 1) != 64.3  # the seed's printed figure
    # refined parents are not items; the first 8 parents (3 children each, all in
    # the first 24 closed) are closed, the ninth is still refined
    states = [w.item_state(p) for p in problems]
    assert states[:8] == ["closed"] * 8
    assert states[8:] == ["refined"] * 9


# -- counting rules ---------------------------------------------------------------------------
def test_completion_rate_is_none_without_items() -> None:
    w = World()
    w.open()
    f = figures(w)
    assert f.items == 0
    assert f.completion_rate is None
    assert f.problems_found == 0
    assert f.economic_losses_recovered == Decimal(0)
    assert {u.completion_rate for u in f.units} == {None}


def test_completion_rate_is_none_when_every_item_is_withdrawn() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1", "P-2"]})
    for item_id in ("P-1", "P-2"):
        w.do("item", item_id, "withdraw", reason="不属实")
    f = figures(w)
    assert (f.items, f.withdrawn, f.completion_rate) == (2, 2, None)


def test_figures_of_a_mixed_round() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1", "P-2", "P-3", "P-4", "P-5", "P-6"], "U-2": ["Q-1", "Q-2"]})
    # an immediate fix closed on site, with money recovered
    w.do("item", "P-1", "order_immediate_fix")
    w.submit("P-1", {"summary": "退回多发补贴", "amount_recovered": "12000.50"})
    w.do("item", "P-1", "verify")
    w.do("item", "P-1", "close")
    # an immediate fix ordered but put into the report: not an immediate fix
    w.do("item", "Q-2", "order_immediate_fix")
    w.do("item", "Q-2", "include_in_report")
    # a withdrawn problem, and two leads
    w.do("item", "P-6", "withdraw", reason="不属实")
    for lead_id, item_id in (("L-1", "P-2"), ("L-2", "Q-1")):
        w.do(
            "lead",
            lead_id,
            "transfer",
            {
                "item_ids": [item_id],
                "receiver": "discipline_commission",
                "receiver_org": "jw",
                "summary": "线索",
                "transferred_on": w.clock.today().isoformat(),
            },
        )
    for unit_id in ("U-1", "U-2"):
        w.confirm_found(unit_id)
        w.leave(unit_id)
    w.round("conclude_onsite")
    for unit_id in ("U-1", "U-2"):
        w.decide(unit_id)
    w.round("conclude_report")
    for unit_id in ("U-1", "U-2"):
        w.feed_back(unit_id)
    w.round("start_rectification")
    # P-5 is refined into three children, one withdrawn
    w.do(
        "item",
        "P-5",
        "refine",
        {"children": [{"id": f"P-5-{k}", "description": "细化"} for k in (1, 2, 3)]},
    )
    w.do("item", "P-5-3", "withdraw", reason="重复")
    w.plan("U-1")
    w.plan("U-2")
    w.finish(
        "P-2",
        {
            "amount_recovered": "300000.25",
            "rules_established": ["财务报销管理办法", "公务接待管理规定"],
            "people_held_accountable": 2,
        },
    )
    w.finish("P-5-1", {"amount_recovered": "0.25", "rules_established": ["合同管理制度"]})
    w.finish("Q-1", {"people_held_accountable": 1})
    w.do_measures("P-3")
    w.do(
        "item",
        "P-3",
        "mark_long_term",
        {"milestones": [{"title": "完成改制", "due": "2027-06-30"}]},
    )
    # leads: one reconciled, one still with the receiver
    w.do("lead", "L-1", "receive")
    w.do("lead", "L-1", "start_check")
    w.do("lead", "L-1", "conclude", {"result": "handled"})
    w.do("lead", "L-1", "report_back", {"reported_on": w.clock.today().isoformat()})
    w.do("lead", "L-1", "reconcile")
    w.do("lead", "L-2", "receive")

    f = figures(w)
    assert f.round_id == ROUND
    assert f.problems_found == 8  # P-1..P-6, Q-1, Q-2; children are not new problems
    assert f.problems_fed_back == 6  # not P-1 (fixed on site) nor P-6 (withdrawn)
    assert f.immediate_fixes == 1
    assert f.leads_transferred == 2
    assert f.leads_reconciled == 1
    # leaves: P-1, P-2, P-3, P-4, P-6, P-5-1, P-5-2, P-5-3, Q-1, Q-2
    assert f.items == 10
    assert f.closed == 4  # P-1, P-2, P-5-1, Q-1
    assert f.long_term == 1  # P-3, counted apart
    assert f.withdrawn == 2  # P-6, P-5-3
    assert f.open == 3  # P-4, P-5-2, Q-2
    assert f.completion_rate == pytest.approx(4 / 8)
    assert f.economic_losses_recovered == Decimal("312001.00")  # 12000.50 + 300000.25 + 0.25
    assert isinstance(f.economic_losses_recovered, Decimal)
    assert str(f.economic_losses_recovered) == "312001.00"
    assert f.rules_established == 3
    assert f.people_held_accountable == 3

    by_unit = {u.unit_id: u for u in f.units}
    u1, u2 = by_unit["U-1"], by_unit["U-2"]
    assert (u1.items, u1.closed, u1.long_term, u1.withdrawn, u1.open) == (8, 3, 1, 2, 2)
    assert u1.completion_rate == pytest.approx(3 / 6)
    assert (u2.items, u2.closed, u2.long_term, u2.withdrawn, u2.open) == (2, 1, 0, 0, 1)
    assert u2.completion_rate == pytest.approx(1 / 2)
    assert u1.name == "U-1 党组"
    assert u1.state == "rectifying"
    assert sum(u.items for u in f.units) == f.items


def test_figures_are_computed_from_state_alone() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})
    w.plan("U-1")
    w.finish("P-1", {"amount_recovered": "99.99"})
    live = figures(w)
    replayed: RoundState = w.engine.replay(ROUND)
    assert outcome_figures(replayed) == live
    assert live.economic_losses_recovered == Decimal("99.99")
    assert OutcomeFigures.model_validate_json(live.model_dump_json()) == live


def test_a_rejected_resubmission_restates_the_amount_recovered() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    w.do_measures("P-1")
    w.submit("P-1", {"amount_recovered": "5000"})
    w.do("item", "P-1", "reject", reason="金额无凭证")
    w.submit("P-1", {"amount_recovered": "3000"})
    w.do("item", "P-1", "verify")
    w.do("item", "P-1", "close")
    assert figures(w).economic_losses_recovered == Decimal("3000")
