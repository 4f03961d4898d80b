"""Roles and separation of duties (issue 2 item 4): "巡察办管巡、监督办管督、被巡察单位管改"."""

from __future__ import annotations

import pytest

from helpers import World, fingerprint
from xuncha_flow import (
    Actor,
    GuardRejected,
    InvalidCommand,
    PermissionDenied,
    Role,
    RolePolicy,
    SeparationOfDuties,
)


def _submitted(w: World, item_id: str = "P-1") -> None:
    """U-1 (org-1) and U-2 (org-2) fed back and planned; ``item_id`` submitted."""
    w.to_feedback({"U-1": ["P-1", "P-2"], "U-2": ["Q-1"]})
    w.plan("U-1")
    w.plan("U-2")
    w.do_measures(item_id)
    w.submit(item_id)


def _denied(w: World, actor: Actor, *args: object, **kw: object) -> PermissionDenied:
    before = fingerprint(w.engine)
    with pytest.raises(PermissionDenied) as refused:
        w.do(*args, actor=actor, **kw)
    assert fingerprint(w.engine) == before
    return refused.value


# -- the inspected organization never checks its own work ---------------------------------
@pytest.mark.parametrize(
    ("event", "reason"),
    [("verify", None), ("reject", "自己退回"), ("withdraw", "自己撤销")],
)
def test_inspected_organization_cannot_verify_reject_or_withdraw_its_item(
    event: str, reason: str | None
) -> None:
    w = World()
    _submitted(w)
    own = w.unit_actor("U-1")
    err = _denied(w, own, "item", "P-1", event, reason=reason)
    assert type(err) is PermissionDenied
    assert err.actor == "org-1-secretary"
    assert err.role == "inspected_organization"
    assert err.event == event
    assert err.allowed_roles == ("supervision_office",)
    assert err.subject == "item P-1"
    assert "inspected_organization" in str(err)
    assert w.item_state("P-1") == "submitted"


def test_inspected_organization_cannot_close_its_item() -> None:
    w = World()
    _submitted(w)
    w.do("item", "P-1", "verify")
    err = _denied(w, w.unit_actor("U-1"), "item", "P-1", "close")
    assert (err.actor, err.role, err.event, err.allowed_roles) == (
        "org-1-secretary",
        "inspected_organization",
        "close",
        ("supervision_office",),
    )
    assert w.item_state("P-1") == "verified"


def test_policy_never_lets_the_inspected_organization_verify() -> None:
    with pytest.raises(ValueError, match="separation of duties"):
        RolePolicy(frozenset({Role.SUPERVISION_OFFICE, Role.INSPECTED_ORGANIZATION}))


@pytest.mark.parametrize(
    ("event", "reason", "prepare"),
    [
        ("verify", None, False),
        ("reject", "退回", False),
        ("close", None, True),
        ("withdraw", "撤销", False),
    ],
)
def test_verifier_from_the_rectifying_organization_is_separation_of_duties(
    event: str, reason: str | None, prepare: bool
) -> None:
    w = World()
    _submitted(w)
    if prepare:
        w.do("item", "P-1", "verify")
    inside = World.actor(Role.SUPERVISION_OFFICE, "org-1", "seconded-staff")
    err = _denied(w, inside, "item", "P-1", event, reason=reason)
    assert isinstance(err, SeparationOfDuties)
    assert err.actor == "seconded-staff"
    assert err.role == "supervision_office"
    assert err.event == event
    assert "may not check its own work" in err.reason
    # the same person acting for another organization's item is fine
    w.do_measures("Q-1")
    w.submit("Q-1")
    w.do("item", "Q-1", "verify", actor=inside)
    assert w.item_state("Q-1") == "verified"


# -- acting for the right organization -----------------------------------------------------
def test_inspected_organization_cannot_act_on_another_units_item() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"], "U-2": ["Q-1"]})
    err = _denied(w, w.unit_actor("U-2"), "item", "P-1", "claim")
    assert type(err) is PermissionDenied
    assert err.role == "inspected_organization"
    assert "acts for 'org-2', but item P-1 belongs to 'org-1'" in err.reason
    assert w.item_state("P-1") == "fed_back"
    w.do("item", "P-1", "claim", actor=w.unit_actor("U-1"))
    assert w.item_state("P-1") == "claimed"


def test_inspected_organization_cannot_plan_for_another_unit() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"], "U-2": ["Q-1"]})
    w.do("item", "P-1", "claim")
    other = w.unit_actor("U-2")
    err = _denied(
        w,
        other,
        "measure",
        "M-1",
        "add",
        {
            "item_id": "P-1",
            "text": "代为整改",
            "responsible_leader": "x",
            "responsible_person": "y",
        },
    )
    assert "belongs to 'org-1'" in err.reason
    _denied(w, other, "unit", "U-1", "submit_plan")


def test_team_cannot_act_on_a_unit_it_does_not_inspect() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"], "U-2": ["Q-1"]})
    stranger_team = w.team_actor("U-2")
    err = _denied(w, stranger_team, "item", "P-1", "confirm")
    assert err.role == "inspection_team"
    assert "team 'team-2' does not inspect unit U-1 ('team-1' does)" in err.reason
    _denied(w, stranger_team, "item", "P-9", "record", {"unit_id": "U-1", "description": "越组"})
    _denied(w, stranger_team, "unit", "U-1", "leave_site")
    w.do("item", "P-1", "confirm", actor=w.team_actor("U-1"))
    assert w.item_state("P-1") == "confirmed"


def test_role_not_in_the_transition_is_refused_with_the_allowed_roles() -> None:
    w = World()
    w.open(approve=False)
    err = _denied(w, w.cast.office, "round", w.round_id, "approve")
    assert err.allowed_roles == ("leading_group", "secretary_meeting")
    assert err.role == "inspection_office"
    assert err.event == "approve"
    w.round("approve", actor=w.cast.secretary)
    assert w.round_state() == "mobilize"


# -- who verifies is a policy -------------------------------------------------------------------
def test_inspection_office_verifies_under_joint_supervision_only() -> None:
    default = World()
    _submitted(default)
    err = _denied(default, default.cast.office, "item", "P-1", "verify")
    assert err.allowed_roles == ("supervision_office",)

    joint = World(policy=RolePolicy.joint_supervision())
    _submitted(joint)
    joint.do("item", "P-1", "verify", actor=joint.cast.office)
    joint.do("item", "P-1", "close", actor=joint.cast.discipline)
    assert joint.item_state("P-1") == "closed"
    err = _denied(joint, joint.cast.supervision, "item", "P-2", "withdraw", reason="x")
    assert err.allowed_roles == (
        "discipline_commission",
        "inspection_office",
        "organization_department",
    )


def test_three_party_policy_lets_the_team_verify_its_units_items() -> None:
    w = World(policy=RolePolicy.three_party())
    _submitted(w)
    _denied(w, w.cast.supervision, "item", "P-1", "verify")
    _denied(w, w.team_actor("U-2"), "item", "P-1", "verify")  # not its unit
    w.do("item", "P-1", "verify", actor=w.team_actor("U-1"))
    w.do("item", "P-1", "close", actor=w.cast.office)
    assert w.item_state("P-1") == "closed"
    assert w.state.items["P-1"].verification is not None
    assert w.state.items["P-1"].verification.by == w.team_actor("U-1")


def test_policy_also_decides_who_reviews_plans() -> None:
    w = World(policy=RolePolicy.joint_supervision())
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1", approve=False)
    _denied(w, w.cast.supervision, "unit", "U-1", "approve_plan")
    w.do("unit", "U-1", "approve_plan", actor=w.cast.organization_dept)
    assert w.unit_state("U-1") == "rectifying"


# -- automatic events -------------------------------------------------------------------------
@pytest.mark.parametrize("actor_name", ["team", "office", "supervision"])
def test_automatic_events_cannot_be_fired_by_a_command(actor_name: str) -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1"]})
    w.do("item", "P-1", "confirm")
    actor = {
        "team": w.team_actor("U-1"),
        "office": w.cast.office,
        "supervision": w.cast.supervision,
    }[actor_name]
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand, match="fired by the engine"):
        w.do("item", "P-1", "feed_back", actor=actor)
    assert fingerprint(w.engine) == before
    assert w.item_state("P-1") == "confirmed"


def test_automatic_round_reopen_cannot_be_commanded() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    w.finish("P-1")
    w.close_round(["U-1"])
    with pytest.raises(InvalidCommand, match="fired by the engine"):
        w.round("reopen", actor=w.cast.office)
    assert w.round_state() == "closed"


# -- allowed_events ---------------------------------------------------------------------------
def test_allowed_events_for_a_claimed_item() -> None:
    w = World()
    w.to_feedback({"U-1": ["P-1"], "U-2": ["Q-1"]})
    w.do("item", "P-1", "claim")

    def allowed(actor: Actor) -> set[str]:
        return set(w.engine.allowed_events(actor, w.round_id, "item", "P-1"))

    assert allowed(w.unit_actor("U-1")) == {"refine"}
    assert allowed(w.cast.supervision) == {"refine", "withdraw"}
    assert allowed(w.cast.office) == {"refine"}
    assert allowed(w.unit_actor("U-2")) == set()
    assert allowed(w.cast.discipline) == set()
    assert allowed(w.team_actor("U-1")) == set()
    inside = World.actor(Role.SUPERVISION_OFFICE, "org-1")
    assert allowed(inside) == set()  # its own organization's item: it supervises nothing


def test_allowed_events_follow_the_state() -> None:
    w = World()
    _submitted(w)
    events = w.engine.allowed_events
    assert set(events(w.cast.supervision, w.round_id, "item", "P-1")) == {
        "reject",
        "verify",
        "withdraw",
    }
    assert events(w.unit_actor("U-1"), w.round_id, "item", "P-1") == ()
    assert set(events(w.unit_actor("U-1"), w.round_id, "item", "P-2")) == {"submit"}
    assert set(events(w.cast.supervision, w.round_id, "item", "P-2")) == {
        "mark_long_term",
        "withdraw",
    }
    # allowed_events does not run guards (they depend on the payload): publish is
    # offered to the office, and refused when fired while units are still rectifying
    assert "publish" in events(w.cast.office, w.round_id, "round", w.round_id)
    with pytest.raises(GuardRejected):
        w.round("publish")
    unit_events = events(w.unit_actor("U-1"), w.round_id, "unit", "U-1")
    assert "report_rectification" in unit_events
    assert "approve_plan" not in unit_events
    assert events(w.unit_actor("U-2"), w.round_id, "unit", "U-1") == ()
    assert "report_rectification" not in events(w.cast.supervision, w.round_id, "unit", "U-1")
