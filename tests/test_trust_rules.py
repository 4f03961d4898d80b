"""Regressions of separation of duties, identifiers, sizes and values.

Each test names a way a command used to get through and says what happened before.
Each asserts the typed error and that nothing changed: the round's version is the
same and its log still verifies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest

from deadline_helpers import DWorld
from helpers import ROUND, World, fingerprint
from xuncha_flow import (
    SWEEPER,
    Actor,
    Definition,
    GuardRejected,
    InvalidCommand,
    InvalidDefinition,
    LimitExceeded,
    PermissionDenied,
    Process,
    Role,
    RolePolicy,
    SeparationOfDuties,
    XunchaError,
    same_organization,
)
from xuncha_flow._limits import (
    MAX_ATTACHMENT_LENGTH,
    MAX_ATTACHMENTS,
    MAX_CHILDREN,
    MAX_COMMAND_BYTES,
    MAX_COUNT,
    MAX_LEAD_ITEMS,
)
from xuncha_flow._rules import GUARDS


@contextmanager
def unchanged(w: World, error: type[XunchaError]) -> Iterator[pytest.ExceptionInfo[Any]]:
    """The block raises exactly ``error`` (or a subclass) and leaves the round as it was."""
    version = w.engine.state(ROUND).version
    before = fingerprint(w.engine)
    with pytest.raises(error) as raised:
        yield raised
    assert w.engine.state(ROUND).version == version
    assert fingerprint(w.engine) == before
    assert w.engine.log.verify().ok


def _command(w: World, actor: Actor | dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A command as a host would send it (a mapping, ready for JSON)."""
    return {
        "command_id": f"raw-{time.perf_counter_ns()}",
        "round_id": ROUND,
        "actor": actor if isinstance(actor, dict) else actor.model_dump(mode="json"),
        **fields,
    }


def _rectifying(w: World) -> None:
    """U-1 (org-1) with P-1, P-2 and U-2 (org-2) with Q-1, plans approved."""
    w.to_feedback({"U-1": ["P-1", "P-2"], "U-2": ["Q-1"]})
    w.plan("U-1")
    w.plan("U-2")


# -- 4. separation of duties -------------------------------------------------------------------
def test_regression_an_organization_cannot_approve_its_own_plan() -> None:
    """A supervision office that is itself an inspected unit (org-1) could approve
    org-1's own rectification plan: plan review was not a check independent of the
    unit."""
    w = World()
    w.to_feedback({"U-1": ["P-1"], "U-2": ["Q-1"]})
    w.plan("U-1", approve=False)
    insider = World.actor(Role.SUPERVISION_OFFICE, "org-1", "seconded-staff")
    with unchanged(w, SeparationOfDuties) as refused:
        w.do("unit", "U-1", "approve_plan", actor=insider)
    assert refused.value.reason == "'org-1' rectifies unit U-1 and may not check its own work"
    with unchanged(w, SeparationOfDuties):
        w.do("unit", "U-1", "return_plan", actor=insider, reason="自己退回")
    assert w.unit_state("U-1") == "plan_submitted"
    w.plan("U-2", approve=False)
    w.do("unit", "U-2", "approve_plan", actor=insider)  # another unit's plan: fine
    assert w.unit_state("U-2") == "rectifying"


@pytest.mark.parametrize("event", ["extend", "pause"])
def test_regression_an_organization_cannot_extend_or_pause_its_own_deadline(event: str) -> None:
    """A leading-group member acting for org-1 could extend or pause the deadline of
    org-1's own measure: deadlines had no owner."""
    w = DWorld()
    w.planned({"U-1": ["P-1"], "U-2": ["Q-1"]})
    deadline = w.deadline("measure_due:M-P-1-1")
    insider = World.actor(Role.LEADING_GROUP, "org-1", "lg-member")
    payload = {"due": (deadline.due + timedelta(days=30)).isoformat()} if event == "extend" else {}
    with unchanged(w, SeparationOfDuties) as refused:
        w.do("deadline", deadline.id, event, payload, actor=insider, reason="工作需要")
    assert refused.value.reason == (
        "'org-1' answers for deadline measure_due:M-P-1-1 (on measure M-P-1-1) "
        "and may not check its own work"
    )
    assert w.deadline(deadline.id).due == deadline.due
    assert w.engine.allowed_events(insider, ROUND, "deadline", deadline.id) == ()
    other = w.deadline("measure_due:M-Q-1-1")  # org-2's deadline: the same person may
    w.do("deadline", other.id, event, payload, actor=insider, reason="工作需要")


def test_regression_an_organization_cannot_mark_its_own_item_long_term() -> None:
    """Marking an item long-term exempts it from closing in the window; a verifier of
    org-1 could do it for org-1's own item."""
    w = World()
    _rectifying(w)
    insider = World.actor(Role.SUPERVISION_OFFICE, "org-1", "seconded-staff")
    stones = {"milestones": [{"title": "完成清查", "due": "2026-12-31"}]}
    with unchanged(w, SeparationOfDuties):
        w.do("item", "P-1", "mark_long_term", stones, actor=insider)
    assert w.item_state("P-1") == "rectifying"


def test_regression_an_office_that_is_the_unit_cannot_withdraw_its_immediate_fix() -> None:
    """An inspection office that is itself the inspected unit could withdraw the
    unit's immediate fix (立行立改) before feedback: that withdrawal was not marked
    independent."""
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    w.do("item", "P-1", "order_immediate_fix")
    own_office = World.actor(Role.INSPECTION_OFFICE, "org-1", "office-staff")
    with unchanged(w, SeparationOfDuties):
        w.do("item", "P-1", "withdraw", actor=own_office, reason="不属实")
    assert w.item_state("P-1") == "immediate"
    w.do("item", "P-1", "withdraw", actor=w.cast.office, reason="不属实")  # another office
    assert w.item_state("P-1") == "withdrawn"


def test_regression_dropping_a_measure_and_adding_a_later_one_goes_back_to_review() -> None:
    """After its plan was approved a unit could drop a measure and add one with a
    later due date: the new measure counted at once, its deadline ran from the later
    date, and no reviewer ever saw the change."""
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    unit = w.unit_actor("U-1")
    with unchanged(w, GuardRejected) as refused:
        w.do("measure", "M-P-1-1", "drop", actor=unit, reason="调整措施")
    assert refused.value.rules == ("plan_change_reviewed",)

    later = w.feedback_day + timedelta(days=200)
    w.add_measure("P-1", "M-P-1-2", due=later)
    assert w.state.measures["M-P-1-2"].state == "proposed"
    assert "measure_due:M-P-1-2" not in w.state.deadlines  # no deadline before review
    w.do_measures("P-1")  # the approved measure is done; the proposal is pending
    with unchanged(w, GuardRejected) as pending:
        w.submit("P-1")
    assert "1 measure awaiting review" in str(pending.value)

    with unchanged(w, SeparationOfDuties):  # the unit's own office may not review it
        w.do("measure", "M-P-1-2", "approve", actor=World.actor(Role.SUPERVISION_OFFICE, "org-1"))
    w.do("measure", "M-P-1-2", "refuse", actor=w.reviewer, reason="原措施已完成，无需新增")
    assert w.state.measures["M-P-1-2"].state == "refused"
    w.submit("P-1")
    assert w.item_state("P-1") == "submitted"


def test_a_unit_withdraws_its_own_proposal_and_the_reviewer_drops_an_approved_measure() -> None:
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    w.add_measure("P-1", "M-P-1-2")
    w.do("measure", "M-P-1-2", "drop", reason="撤回新增措施")  # its own proposal
    assert w.state.measures["M-P-1-2"].state == "dropped"
    w.add_approved_measure("P-1", "M-P-1-3")
    assert w.deadline("measure_due:M-P-1-3").state == "running"
    w.do("measure", "M-P-1-1", "drop", actor=w.reviewer, reason="与措施3合并")
    assert w.deadline("measure_due:M-P-1-1").state == "cancelled"


def test_the_round_driver_picks_the_body_the_rules_want() -> None:
    """Both the unit and the reviewer may drop a measure; after approval the rules
    want the reviewer, and the test kit's driver picks it."""
    w = DWorld()
    w.planned({"U-1": ["P-1"]})
    assert w.drv.candidates("measure", "M-P-1-1", "drop") == [w.unit_actor("U-1"), w.reviewer]
    (event,) = w.drv.do("measure", "M-P-1-1", "drop", reason="与整改方案调整一致")[:1]
    assert event.actor == w.reviewer
    w.add_measure("P-1", "M-P-1-2")
    (event,) = w.drv.do("measure", "M-P-1-2", "drop", reason="撤回新增措施")[:1]
    assert event.actor == w.unit_actor("U-1")  # its own proposal: the unit, preferred


@pytest.mark.parametrize(
    ("organization", "error"),
    [
        ("ORG-1", SeparationOfDuties),
        ("ｏｒｇ－１", SeparationOfDuties),  # full width: "org-1" after NFKC
        ("org\u200b-1", InvalidCommand),  # a zero-width space is no id character
        ("\ufefforg-1", InvalidCommand),
    ],
)
def test_regression_a_variant_of_the_units_organization_is_the_same_organization(
    organization: str, error: type[XunchaError]
) -> None:
    """A verifier acting for "ORG-1", "org\\u200b-1" or a full-width "ｏｒｇ－１" was
    taken for another organization than the unit's "org-1" and could verify its item."""
    w = World()
    _rectifying(w)
    w.do_measures("P-1")
    w.submit("P-1")
    actor = {"id": "staff-1", "role": "supervision_office", "organization": organization}
    cmd = _command(w, actor, kind="item", subject="P-1", event="verify")
    with unchanged(w, error):
        w.engine.execute(cmd)
    with unchanged(w, error):
        w.engine.execute(json.dumps(cmd, ensure_ascii=False))
    assert w.item_state("P-1") == "submitted"
    assert same_organization(organization, "org-1")


def test_variants_of_the_units_organization_act_for_it() -> None:
    """The other side of one organization: the unit's secretary acting as "ORG-1"."""
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.do("item", "P-1", "claim", actor=World.actor(Role.INSPECTED_ORGANIZATION, "ORG-1"))
    assert w.item_state("P-1") == "claimed"


@pytest.mark.parametrize(
    "actor",
    [
        SWEEPER,
        Actor(id="xuncha_flow.sweep", role=Role.SUPERVISION_OFFICE, organization="jdb"),
        Actor(id="jdb-staff", role=Role.SUPERVISION_OFFICE, organization="XUNCHA_FLOW.sweep"),
    ],
    ids=["the-sweeper", "its-id", "its-organization"],
)
def test_regression_the_sweepers_identity_cannot_be_used_by_a_command(actor: Actor) -> None:
    """Any command could be sent as the engine's sweeper (a supervision office acting
    for "sweeper"), e.g. to verify and close items in the engine's name."""
    w = World()
    _rectifying(w)
    w.do_measures("P-1")
    w.submit("P-1")
    with unchanged(w, PermissionDenied) as refused:
        w.do("item", "P-1", "verify", actor=actor)
    assert type(refused.value) is PermissionDenied
    assert "engine's own identity" in refused.value.reason
    assert w.engine.allowed_events(actor, ROUND, "item", "P-1") == ()


def test_regression_no_unit_team_or_receiver_is_registered_under_the_sweepers_name() -> None:
    """A unit registered as "sweeper" (the sweeper's organization) would have been
    judged by the sweeper; the engine's namespace is reserved now."""
    w = World()
    w.open(["U-1"], approve=False)
    for field in ("organization_id", "team_id"):
        payload = {**w.unit_payload("U-1"), field: "xuncha_flow.sweep"}
        with unchanged(w, InvalidCommand) as refused:
            w.do("unit", "U-3", "add", payload)
        assert refused.value.errors[0]["loc"] == ["payload", field]
        assert refused.value.errors[0]["type"] == "id_reserved"


# -- 5. identifiers and sizes ------------------------------------------------------------------
def test_regression_a_hash_in_a_unit_id_cannot_meet_another_units_deadline() -> None:
    """Unit "U-1#2" was accepted: its evaluation deadline "evaluation:U-1#2" was the id
    of U-1's second evaluation deadline, so one unit's evaluation met the other's."""
    w = DWorld()
    w.open(["U-1"], approve=False)
    for bad in ("U-1#2", "U-1:x", "U@1", "U 1", "U/1", "-U1", "U\u200b1", "U" * 65):
        with unchanged(w, InvalidCommand) as refused:
            w.do("unit", bad, "add", w.unit_payload("U-1"))
        assert refused.value.errors[0]["loc"] == ["subject"]
    assert list(w.state.units) == ["U-1"]
    # letters of any script, full-width forms normalized
    w.do("unit", "单位-２", "add", w.unit_payload("U-2"))
    assert "单位-2" in w.state.units


def test_regression_fifty_thousand_repeated_lead_item_ids_are_refused_fast() -> None:
    """A 0.5 MB command naming one item 50,000 times took 90 s and 11.8 GB."""
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    payload = {
        "item_ids": ["P-1"] * 50_000,
        "receiver": "discipline_commission",
        "receiver_org": "jw",
        "summary": "线索",
        "transferred_on": w.clock.today().isoformat(),
    }
    cmd = _command(w, w.cast.office, kind="lead", subject="L-1", event="transfer", payload=payload)
    for form in (json.dumps(cmd), cmd):
        started = time.perf_counter()
        with unchanged(w, LimitExceeded) as refused:
            w.engine.execute(form)  # type: ignore[arg-type]
        assert time.perf_counter() - started < 2.0
        assert refused.value.errors[0]["type"] == "too_long"
    many = {**payload, "item_ids": [f"P-{n}" for n in range(MAX_LEAD_ITEMS + 1)]}
    with unchanged(w, LimitExceeded) as refused:
        w.do("lead", "L-1", "transfer", many)
    assert refused.value.errors[0]["loc"] == ["payload", "item_ids"]
    with unchanged(w, InvalidCommand) as refused:
        w.do("lead", "L-1", "transfer", {**payload, "item_ids": ["P-1", "P-1"]})
    assert not isinstance(refused.value, LimitExceeded)
    assert "each item once" in str(refused.value)


def test_regression_oversized_refinement_attachments_and_command_are_refused() -> None:
    """A refinement into any number of children, any number of attachments of any
    length and a command of any size were accepted."""
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    children = [{"id": f"P-1-{n}", "description": "细化"} for n in range(MAX_CHILDREN + 1)]
    with unchanged(w, LimitExceeded) as refused:
        w.do("item", "P-1", "refine", {"children": children})
    assert refused.value.errors[0] == {
        "loc": ["payload", "children"],
        "msg": refused.value.errors[0]["msg"],
        "type": "too_long",
    }
    for attachments, loc in [
        ([f"ev/{n}.pdf" for n in range(MAX_ATTACHMENTS + 1)], ["attachments"]),
        (["ev/" + "x" * MAX_ATTACHMENT_LENGTH], ["attachments", 0]),
    ]:
        with unchanged(w, LimitExceeded) as refused:
            w.do("item", "P-1", "claim", attachments=attachments)
        assert refused.value.errors[0]["loc"] == loc
        assert refused.value.errors[0]["type"] == "too_long"
    big = _command(
        w,
        w.unit_actor("U-1"),
        kind="item",
        subject="P-1",
        event="claim",
        payload={"claimed_by": "x" * MAX_COMMAND_BYTES},
    )
    for form in (json.dumps(big), json.dumps(big).encode(), big):
        with unchanged(w, LimitExceeded) as refused:
            w.engine.execute(form)  # type: ignore[arg-type]
        assert refused.value.errors[0]["type"] == "too_long"
    assert w.item_state("P-1") == "fed_back"


# -- 6. values that make sense ----------------------------------------------------------------
@pytest.mark.parametrize("evidence", ["", "   ", "\u200b", "\ufeff \u200b", "ev/a\nb.pdf", "\x00"])
def test_regression_blank_evidence_is_refused(evidence: str) -> None:
    """A blank reference counted as evidence (佐证材料): an item was submitted for
    closing with attachments=[" "]."""
    w = World()
    _rectifying(w)
    w.do_measures("P-1")
    with unchanged(w, InvalidCommand) as refused:
        w.do("item", "P-1", "submit", attachments=[evidence])
    assert refused.value.errors[0]["loc"] == ["attachments", 0]
    assert w.item_state("P-1") == "rectifying"


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"description": "问题\x00描述"}, ["payload", "description"]),
        ({"category": "财务\n管理"}, ["payload", "category"]),
        ({"category": "\x1b[31m"}, ["payload", "category"]),
        ({"description": "\ud800"}, ["payload", "description"]),  # a lone surrogate
    ],
)
def test_regression_control_characters_in_text_are_refused(
    payload: dict[str, str], loc: list[str]
) -> None:
    """A NUL in a description reached PostgreSQL and raised the driver's error; other
    control characters and lone surrogates were stored as they came."""
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    full = {"unit_id": "U-1", "description": "问题", **payload}
    with unchanged(w, InvalidCommand) as refused:
        w.do("item", "P-9", "record", full)
    assert refused.value.errors[0]["loc"][: len(loc)] == loc
    with unchanged(w, InvalidCommand) as refused:
        w.do("item", "P-1", "withdraw", reason="不属实\x00")
    assert refused.value.errors[0]["loc"] == ["reason"]
    # line breaks and tabs are fine in a long text
    w.do("item", "P-9", "record", {"unit_id": "U-1", "description": "一、问题\n\t（一）情况"})


def test_regression_feedback_in_year_1_is_refused() -> None:
    """Feedback could be delivered on 0001-01-01: the guard only looked for a date in
    the future or before the on-site period, and a unit need not give one."""
    w = World()
    with_dates = w.unit_payload
    w.unit_payload = lambda unit_id: {  # type: ignore[method-assign]
        k: v for k, v in with_dates(unit_id).items() if not k.startswith("onsite")
    }
    w.to_onsite({"U-1": ["P-1"]})
    w.confirm_found("U-1")
    w.leave("U-1")
    w.decide("U-1")
    with unchanged(w, InvalidCommand) as refused:
        w.do("unit", "U-1", "deliver_feedback", {"delivered_on": "0001-01-01"})
    assert refused.value.errors[0]["loc"] == ["payload", "delivered_on"]
    assert refused.value.errors[0]["type"] == "date_out_of_window"
    assert w.unit_state("U-1") == "report_decided"


@pytest.mark.parametrize(
    ("event", "payload", "field", "kind"),
    [
        ("complete", {"done_on": "2099-01-01"}, "done_on", "date_in_future"),
        ("complete", {"done_on": "0001-01-01"}, "done_on", "date_out_of_window"),
        ("revise", {"due_date": "9999-12-31"}, "due_date", "date_out_of_window"),
        ("revise", {"due_date": "2099-01-01"}, "due_date", "date_out_of_window"),
    ],
)
def test_regression_measure_dates_out_of_their_window_are_refused(
    event: str, payload: dict[str, str], field: str, kind: str
) -> None:
    """A measure could be done in 2099 (or in year 1); a due date in 9999 was
    accepted and then raised a raw OverflowError in the deadline arithmetic when the
    plan was approved, blocking the approval."""
    w = DWorld()
    w.to_feedback({"U-1": ["P-1"]})
    w.claim_all("U-1")
    w.add_measure("P-1")
    w.do("measure", "M-P-1-1", "start")
    with unchanged(w, InvalidCommand) as refused:
        w.do("measure", "M-P-1-1", event, payload)
    assert refused.value.errors[0]["loc"] == ["payload", field]
    assert refused.value.errors[0]["type"] == kind
    w.do("unit", "U-1", "submit_plan")  # the plan goes on
    w.do("unit", "U-1", "approve_plan")
    assert w.unit_state("U-1") == "rectifying"


def test_regression_a_far_due_date_no_longer_blocks_plan_approval() -> None:
    w = DWorld()
    w.to_feedback({"U-1": ["P-1"]})
    w.claim_all("U-1")
    with unchanged(w, InvalidCommand):
        w.add_measure("P-1", "M-1", due=date(9999, 12, 31))
    w.add_measure("P-1", "M-1", due=w.clock.today() + timedelta(days=3650))  # ten years: fine
    w.do("unit", "U-1", "submit_plan")
    w.do("unit", "U-1", "approve_plan")
    assert w.deadline("measure_due:M-1").state == "running"


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("people_held_accountable", -1, "greater_than_equal"),
        ("people_held_accountable", MAX_COUNT + 1, "less_than_equal"),
        ("people_held_accountable", 10**30, "less_than_equal"),
        ("amount_recovered", "-0.01", "greater_than_equal"),
        ("amount_recovered", "1e20", "decimal_max_digits"),
        ("amount_recovered", "NaN", "finite_number"),
    ],
)
def test_regression_negative_and_huge_counts_and_amounts_are_refused(
    field: str, value: object, kind: str
) -> None:
    """People held accountable had no upper bound (10**30 was stored as reported)."""
    w = World()
    _rectifying(w)
    w.do_measures("P-1")
    with unchanged(w, InvalidCommand) as refused:
        w.do("item", "P-1", "submit", {field: value}, attachments=["ev/P-1.pdf"])
    assert refused.value.errors[0]["loc"] == ["payload", field]
    assert refused.value.errors[0]["type"] == kind


# -- definitions that would let a unit judge itself ------------------------------------------
def _item_data(policy: RolePolicy | None = None) -> dict[str, Any]:
    return Process.standard(policy).definition("item").to_data()


@pytest.mark.parametrize("event", ["verify", "close", "withdraw", "mark_long_term"])
def test_a_definition_that_lets_the_unit_verify_close_or_exempt_is_refused(event: str) -> None:
    data = _item_data()
    for t in data["transitions"]:
        if t["event"] == event:
            t["roles"] = sorted({*t["roles"], "inspected_organization"})
    with pytest.raises(InvalidDefinition) as refused:
        Definition.build(data, guards=GUARDS)
    assert any("separation of duties" in p for p in refused.value.problems)


def test_a_definition_that_lets_the_unit_close_by_another_name_is_refused() -> None:
    data = _item_data()
    data["events"].append({"name": "self_close", "label": "自行销号"})
    data["transitions"].append(
        {
            "event": "self_close",
            "source": ["submitted"],
            "dest": "closed",
            "roles": ["inspected_organization"],
        }
    )
    with pytest.raises(InvalidDefinition) as refused:
        Definition.build(data, guards=GUARDS)
    problems = refused.value.problems
    assert any("'closed', which only a check independent of it" in p for p in problems)


def test_a_definition_that_lets_the_unit_extend_its_deadlines_is_refused() -> None:
    data = Process.standard().definition("deadline").to_data()
    for t in data["transitions"]:
        if t["event"] == "extend":
            t["roles"] = [*t["roles"], "inspected_organization"]
            t.pop("independent", None)
    with pytest.raises(InvalidDefinition) as refused:
        Definition.build(data, guards=GUARDS)
    assert any("only supervision moves" in p for p in refused.value.problems)
