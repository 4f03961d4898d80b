"""Process definitions are data, checked when built (issue 2, item 2).

Each check of :func:`Definition.build` is exercised twice where it makes sense: by
mutating a copy of the real built-in data and on small hand-written definitions.
A bad definition is refused with one :class:`InvalidDefinition` that lists every
problem and names the offending states.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from typing import Any

import pytest

from helpers import open_on_site
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Definition,
    DefinitionData,
    Engine,
    Event,
    InvalidDefinition,
    ManualClock,
    Process,
    Role,
    RolePolicy,
    XunchaError,
)
from xuncha_flow._builtin import builtin_definitions
from xuncha_flow._rules import GUARDS

POLICIES = (
    RolePolicy.supervision_office(),
    RolePolicy.joint_supervision(),
    RolePolicy.three_party(),
)
KINDS = ("round", "unit", "item", "measure", "lead")


def builtin(kind: str, policy: RolePolicy | None = None) -> dict[str, Any]:
    """A private, mutable copy of a built-in definition's data."""
    data = builtin_definitions(policy or RolePolicy.supervision_office())[kind]
    return copy.deepcopy(data)


def refused(data: Any, guards: Any = GUARDS) -> InvalidDefinition:
    with pytest.raises(InvalidDefinition) as info:
        Definition.build(data, guards=guards)
    return info.value


def transition(data: dict[str, Any], event: str, source: str | None = None) -> dict[str, Any]:
    """The (first) transition of ``event`` (out of ``source``) in ``data``."""
    for t in data["transitions"]:
        if t["event"] == event and (source is None or source in t["source"]):
            return t  # type: ignore[no-any-return]
    raise AssertionError(f"no transition {event} from {source}")


def state(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["states"] if s["name"] == name)


def tiny(**changes: Any) -> dict[str, Any]:
    """A minimal valid definition: draft -> open -> done, created by "create"."""
    data: dict[str, Any] = {
        "kind": "thing",
        "name": "thing",
        "version": "1",
        "states": [
            {"name": "draft", "label": "草稿", "initial": True, "rank": 0},
            {"name": "open", "label": "办理中", "rank": 1},
            {"name": "done", "label": "办结", "terminal": True, "rank": 2},
        ],
        "events": [
            {"name": "create", "label": "创建"},
            {"name": "start", "label": "开始"},
            {"name": "finish", "label": "办结"},
        ],
        "create": {"event": "create", "roles": ["inspection_office"]},
        "transitions": [
            {
                "event": "start",
                "source": "draft",
                "dest": "open",
                "roles": ["inspection_office"],
            },
            {
                "event": "finish",
                "source": "open",
                "dest": "done",
                "roles": ["inspection_office"],
            },
        ],
    }
    data.update(changes)
    return data


# -- the valid ones -----------------------------------------------------------------------
def test_tiny_definition_builds() -> None:
    d = Definition.build(tiny())
    assert d.initial.name == "draft"
    assert [s.name for s in d.states if s.terminal] == ["done"]
    assert d.events_from("draft") == ("start",)
    assert d.candidates("finish", "open")[0].dest == "done"
    assert d.candidates("finish", "draft") == ()


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_builtin_definitions_build_for_every_policy(policy: RolePolicy) -> None:
    data = builtin_definitions(policy)
    assert set(KINDS) <= set(data)
    for kind, raw in data.items():
        d = Definition.build(raw, guards=GUARDS)
        assert d.kind == kind
        assert sum(1 for s in d.states if s.initial) == 1
        assert any(s.terminal for s in d.states)
    process = Process.standard(policy)
    assert process.policy == policy
    assert set(KINDS) <= set(process.definitions)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_builtin_verifier_roles_follow_the_policy(policy: RolePolicy) -> None:
    item = Definition.build(builtin("item", policy), guards=GUARDS)
    for event in ("verify", "close", "reject"):
        spec = item.candidates(event, "submitted" if event != "close" else "verified")[0]
        assert spec.roles == policy.verifiers
        assert spec.independent
        assert Role.INSPECTED_ORGANIZATION not in spec.roles


def test_policies_differ_only_where_verification_matters() -> None:
    ids = [Process.standard(p).version_ids for p in POLICIES]
    # the lead track does not depend on who verifies items ...
    assert len({i["lead"] for i in ids}) == 1
    # ... the item track does
    assert len({i["item"] for i in ids}) == len(POLICIES)


# -- the checks, on the real data ---------------------------------------------------------
def test_zero_initial_states() -> None:
    data = builtin("item")
    state(data, "found")["initial"] = False
    exc = refused(data)
    assert exc.problems == ("exactly one initial state is required, found 0",)
    assert exc.states == ()
    assert exc.definition == "problem-item"


def test_two_initial_states() -> None:
    data = builtin("item")
    state(data, "confirmed")["initial"] = True
    exc = refused(data)
    assert exc.problems == ("exactly one initial state is required, found 2",)
    assert exc.states == ("confirmed", "found")


def test_two_initial_states_tiny() -> None:
    data = tiny()
    data["states"][1]["initial"] = True
    exc = refused(data)
    assert exc.states == ("draft", "open")
    assert "found 2" in exc.problems[0]


def test_transition_out_of_a_terminal_state() -> None:
    data = builtin("item")
    # a look-back may reopen a closed item, but never a withdrawn one (terminal)
    transition(data, "reopen", "closed")["source"] = ["closed", "withdrawn"]
    exc = refused(data)
    assert exc.problems == ("transition 'reopen' leaves terminal state 'withdrawn'",)
    assert exc.states == ("withdrawn",)


def test_transition_out_of_a_terminal_state_tiny() -> None:
    data = tiny()
    data["transitions"].append(
        {
            "event": "start",
            "source": "done",
            "dest": "open",
            "roles": ["inspection_office"],
            "backward": True,
        }
    )
    exc = refused(data)
    assert exc.problems == ("transition 'start' leaves terminal state 'done'",)
    assert exc.states == ("done",)


def test_unreachable_state() -> None:
    data = builtin("item")
    data["states"].append({"name": "orphan", "label": "孤立", "rank": 1})
    transition(data, "withdraw", "found")["source"].append("orphan")
    exc = refused(data)
    assert exc.problems == ("unreachable states ['orphan']",)
    assert exc.states == ("orphan",)


def test_unreachable_state_tiny() -> None:
    data = tiny()
    data["states"].append({"name": "side", "label": "旁支", "rank": 1})
    data["transitions"].append(
        {"event": "finish", "source": "side", "dest": "done", "roles": ["inspection_office"]}
    )
    exc = refused(data)
    assert exc.problems == ("unreachable states ['side']",)
    assert exc.states == ("side",)


def test_dead_end_state() -> None:
    data = builtin("item")
    data["states"].append({"name": "parked", "label": "搁置", "rank": 4})
    data["events"].append({"name": "park", "label": "搁置"})
    data["transitions"].append(
        {"event": "park", "source": ["claimed"], "dest": "parked", "roles": ["inspection_office"]}
    )
    exc = refused(data)
    assert exc.problems == (
        "dead-end states ['parked'] (not terminal, no way out)",
        "no terminal state is reachable from ['parked']",
    )
    assert exc.states == ("parked",)


def test_dead_end_state_tiny() -> None:
    data = tiny()
    data["transitions"].pop()  # nothing leaves "open" any more
    exc = refused(data)
    assert "dead-end states ['open'] (not terminal, no way out)" in exc.problems
    assert "event 'finish' is declared but never used" in exc.problems
    assert "unreachable states ['done']" in exc.problems
    assert "no terminal state is reachable from ['draft', 'open']" in exc.problems
    assert exc.states == ("done", "draft", "open")


def test_cycle_without_exit() -> None:
    data = builtin("item")
    data["states"] += [
        {"name": "loop_a", "label": "循环甲", "rank": 4},
        {"name": "loop_b", "label": "循环乙", "rank": 4},
    ]
    data["events"].append({"name": "spin", "label": "空转"})
    office = ["inspection_office"]
    data["transitions"] += [
        {"event": "spin", "source": ["claimed"], "dest": "loop_a", "roles": office},
        {"event": "spin", "source": ["loop_a"], "dest": "loop_b", "roles": office},
        {"event": "spin", "source": ["loop_b"], "dest": "loop_a", "roles": office},
    ]
    exc = refused(data)
    # no dead end (each state of the loop has a way out), yet no terminal is reachable
    assert exc.problems == ("no terminal state is reachable from ['loop_a', 'loop_b']",)
    assert exc.states == ("loop_a", "loop_b")


def test_no_terminal_state_at_all() -> None:
    data = tiny()
    data["states"][2]["terminal"] = False
    data["transitions"].append(
        {
            "event": "start",
            "source": "done",
            "dest": "open",
            "roles": ["inspection_office"],
            "backward": True,
        }
    )
    exc = refused(data)
    assert exc.problems == ("no terminal state",)


def test_unknown_guard_on_a_transition() -> None:
    data = builtin("item")
    transition(data, "claim")["guards"] = ["signed_by_head"]
    exc = refused(data)
    assert exc.problems == ("transition 'claim' names unknown guard 'signed_by_head'",)
    assert set(exc.states) <= {"fed_back"}


def test_unknown_guard_on_the_creation_spec() -> None:
    data = builtin("lead")
    data["create"]["guards"].append("lead_is_serious")
    exc = refused(data)
    assert exc.problems == ("creation event 'transfer' names unknown guard 'lead_is_serious'",)


def test_guards_are_checked_against_the_registry_given() -> None:
    # the built-in item definition is only valid with a registry that knows its guards
    exc = refused(builtin("item"), guards=())
    assert "transition 'submit' names unknown guard 'evidence_attached'" in exc.problems
    assert "creation event 'record' names unknown guard 'unit_inspecting'" in exc.problems


def test_unknown_role_on_a_transition() -> None:
    data = builtin("item")
    transition(data, "claim")["roles"] = ["inspected_organization", "head_of_unit"]
    exc = refused(data)
    assert len(exc.problems) == 1
    index = data["transitions"].index(transition(data, "claim"))
    assert exc.problems[0].startswith(f"transitions.{index}.roles.")
    assert "inspected_organization" in exc.problems[0]  # the message lists the known roles
    assert isinstance(exc.__cause__, Exception)


def test_unknown_role_on_the_creation_spec() -> None:
    data = builtin("measure")
    data["create"]["roles"] = ["rectification_team"]
    exc = refused(data)
    assert len(exc.problems) == 1
    assert exc.problems[0].startswith("create.roles.0: ")


def test_empty_role_set_is_refused() -> None:
    data = tiny()
    data["transitions"][0]["roles"] = []
    exc = refused(data)
    assert exc.problems[0].startswith("transitions.0.roles: ")


def test_step_back_not_marked_backward() -> None:
    data = builtin("item")
    del transition(data, "unplan")["backward"]
    exc = refused(data)
    assert exc.problems == (
        "transition 'unplan' moves back from 'planned' to 'claimed' but is not marked backward",
    )
    assert exc.states == ("claimed", "planned")


def test_backward_mark_on_a_forward_step() -> None:
    data = builtin("item")
    transition(data, "claim")["backward"] = True
    exc = refused(data)
    assert exc.problems == (
        "transition 'claim' is marked backward but does not move back from 'fed_back'",
    )
    assert exc.states == ("fed_back",)


def test_backward_mark_on_a_same_rank_step() -> None:
    data = builtin("item")  # immediate and confirmed share rank 1
    transition(data, "include_in_report")["backward"] = True
    exc = refused(data)
    assert exc.problems == (
        "transition 'include_in_report' is marked backward but does not move back from 'immediate'",
    )
    assert exc.states == ("immediate",)


def test_duplicate_state_name() -> None:
    data = builtin("item")
    data["states"].append({"name": "claimed", "label": "重复", "rank": 3})
    exc = refused(data)
    assert exc.problems == ("duplicate state name 'claimed'", "duplicate state value 'claimed'")


def test_duplicate_state_value() -> None:
    data = builtin("item")
    state(data, "planned")["value"] = "claimed"
    exc = refused(data)
    assert exc.problems == ("duplicate state value 'claimed'",)


def test_duplicate_event_name_and_value() -> None:
    data = tiny()
    data["events"].append({"name": "start", "label": "再次开始"})
    data["events"].append({"name": "begin", "label": "开始", "value": "finish"})
    data["transitions"].append(
        {"event": "begin", "source": "draft", "dest": "open", "roles": ["inspection_office"]}
    )
    exc = refused(data)
    assert exc.problems == (
        "duplicate event name 'start'",
        "duplicate event value 'start'",
        "duplicate event value 'finish'",
    )


def test_undeclared_event_on_a_transition() -> None:
    data = builtin("item")
    data["transitions"].append(
        {"event": "teleport", "source": ["claimed"], "dest": "planned", "roles": ["leading_group"]}
    )
    exc = refused(data)
    assert exc.problems == ("transition 'teleport' uses undeclared event",)


def test_undeclared_creation_event() -> None:
    data = builtin("item")
    data["create"]["event"] = "conjure"
    exc = refused(data)
    assert exc.problems == (
        "creation event 'conjure' is not declared",
        "event 'record' is declared but never used",
    )


def test_declared_but_unused_event() -> None:
    data = builtin("lead")
    data["events"].append({"name": "escalate", "label": "升级督办"})
    exc = refused(data)
    assert exc.problems == ("event 'escalate' is declared but never used",)
    assert exc.states == ()


def test_transition_naming_unknown_states() -> None:
    data = builtin("measure")
    data["transitions"].append(
        {"event": "drop", "source": ["paused"], "dest": "nowhere", "roles": ["supervision_office"]}
    )
    exc = refused(data)
    assert exc.problems == ("transition 'drop' names unknown states ['nowhere', 'paused']",)
    assert exc.states == ("nowhere", "paused")


def test_branches_of_one_event_must_agree_on_roles() -> None:
    data = builtin("item")
    reject = [t for t in data["transitions"] if t["event"] == "reject"]
    reject[1]["roles"] = ["inspection_office"]
    exc = refused(data)
    assert exc.problems == (
        "transition 'reject' from 'submitted': branches of one event disagree on roles",
    )
    assert exc.states == ("submitted",)


def test_malformed_data_is_one_invalid_definition() -> None:
    data = tiny()
    del data["states"]
    data["colour"] = "red"
    exc = refused(data)
    assert exc.definition == "thing"
    assert sorted(p.split(":")[0] for p in exc.problems) == ["colour", "states"]
    with pytest.raises(InvalidDefinition, match="'\\?'"):
        Definition.build(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_every_problem_is_reported_in_one_error() -> None:
    data = builtin("item")
    state(data, "found")["initial"] = False
    state(data, "confirmed")["initial"] = True  # still one initial: the wrong one
    transition(data, "claim")["guards"] = ["nobody_knows"]
    data["events"].append({"name": "idle", "label": "闲置"})
    del transition(data, "unplan")["backward"]
    exc = refused(data)
    assert isinstance(exc, XunchaError)
    assert isinstance(exc, ValueError)
    assert "unreachable states ['found']" in exc.problems
    assert "transition 'claim' names unknown guard 'nobody_knows'" in exc.problems
    assert "event 'idle' is declared but never used" in exc.problems
    assert any("'unplan' moves back" in p for p in exc.problems)
    assert exc.states == ("claimed", "fed_back", "found", "planned")
    assert len(exc.problems) == 4
    assert all(p in str(exc) for p in exc.problems)


# -- identity: data, fingerprint, version id ----------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_to_data_round_trips_the_data(kind: str) -> None:
    d = Definition.build(builtin(kind), guards=GUARDS)
    text = json.dumps(d.to_data(), ensure_ascii=False)
    again = Definition.build(json.loads(text), guards=GUARDS)
    assert again.data == d.data
    assert again.kind == d.kind
    assert again.name == d.name
    # a DefinitionData instance is accepted as is
    assert Definition.build(d.data, guards=GUARDS).data == d.data


def test_version_id_shape() -> None:
    d = Definition.build(builtin("item"), guards=GUARDS)
    assert re.fullmatch(r"problem-item@2#[0-9a-f]{12}", d.version_id)
    assert d.version_id.endswith(d.fingerprint[:12])
    assert len(d.fingerprint) == 64
    assert repr(d) == f"<Definition {d.version_id}>"


def test_same_data_same_fingerprint() -> None:
    a = Definition.build(builtin("item"), guards=GUARDS)
    b = Definition.build(builtin("item"), guards=GUARDS)
    assert a.fingerprint == b.fingerprint
    assert a.version_id == b.version_id


@pytest.mark.parametrize(
    "change",
    [
        lambda d: state(d, "claimed").update(label="已认领（签字）"),
        lambda d: state(d, "closed").update(value="cleared"),
        lambda d: transition(d, "claim")["guards"].append("evidence_attached"),
        lambda d: transition(d, "verify").update(roles=["inspection_office"]),
        lambda d: d.update(version="3"),
    ],
    ids=["label", "stored-value", "guard", "roles", "version"],
)
def test_version_id_changes_when_the_data_changes(change: Any) -> None:
    base = Definition.build(builtin("item"), guards=GUARDS)
    data = builtin("item")
    change(data)
    changed = Definition.build(data, guards=GUARDS)
    assert changed.fingerprint != base.fingerprint
    assert changed.version_id != base.version_id


def test_version_string_is_part_of_the_version_id() -> None:
    data = builtin("lead")
    data["version"] = "2026.1"
    assert Definition.build(data, guards=GUARDS).version_id.startswith("lead@2026.1#")


# -- stored values are not identifiers ----------------------------------------------------
RENAMED = {"rectifying": "under_rectification", "submitted": "awaiting_check"}


def renamed_item(policy: RolePolicy | None = None) -> dict[str, Any]:
    """The item definition with new identifiers for two states, stored values kept."""
    data = builtin("item", policy)
    for s in data["states"]:
        if s["name"] in RENAMED:
            s["value"] = s["name"]
            s["name"] = RENAMED[s["name"]]
    for t in data["transitions"]:
        t["source"] = [RENAMED.get(s, s) for s in t["source"]]
        if t["dest"] is not None:
            t["dest"] = RENAMED.get(t["dest"], t["dest"])
    return data


def test_identifier_and_stored_value_are_separate() -> None:
    d = Definition.build(renamed_item(), guards=GUARDS)
    spec = d.state("under_rectification")
    assert spec.stored == "rectifying"
    assert d.state_by_value("rectifying").name == "under_rectification"
    assert d.state_by_value("submitted").name == "awaiting_check"
    with pytest.raises(KeyError):
        d.state("rectifying")
    with pytest.raises(KeyError):
        d.state_by_value("under_rectification")
    assert d.candidates("submit", "under_rectification")[0].dest == "awaiting_check"
    # the shared machine runs on stored values
    machine = Process.from_data(
        {**builtin_definitions(RolePolicy.supervision_office()), "item": renamed_item()}
    ).machines["item"]
    assert "rectifying" in machine.machine.states
    assert "under_rectification" not in machine.machine.states


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=DEFAULT_TIMEZONE)


def play(process: Process) -> tuple[Engine, list[Event]]:
    """A one-unit round through rectification, with a rejected submission."""
    clock = ManualClock(at(3, 2))
    counter = itertools.count(1)
    engine = Engine(clock=clock, process=process, ids=lambda: f"ev-{next(counter):04d}")
    drv = open_on_site(engine, clock, "R-1")
    for n in (1, 2):
        drv.do("item", f"P-{n}", "record", {"unit_id": "U-1", "description": f"问题 {n}"})
        drv.do("item", f"P-{n}", "confirm")
    drv.do("unit", "U-1", "leave_site")
    drv.round("conclude_onsite")
    drv.do("unit", "U-1", "decide_report")
    drv.round("conclude_report")
    clock.set(at(5, 15))
    drv.do("unit", "U-1", "deliver_feedback", {"delivered_on": "2026-05-15"})
    drv.round("start_rectification")
    for n in (1, 2):
        drv.do("item", f"P-{n}", "claim")
        drv.do(
            "measure",
            f"M-{n}",
            "add",
            {
                "item_id": f"P-{n}",
                "text": "整改措施",
                "responsible_leader": "leader",
                "responsible_person": "person",
                "due_date": "2026-06-30",
            },
        )
    drv.do("unit", "U-1", "submit_plan")
    drv.do("unit", "U-1", "approve_plan")
    clock.set(at(6, 20))
    for n in (1, 2):
        drv.do("measure", f"M-{n}", "start")
        drv.do("measure", f"M-{n}", "complete", {"done_on": "2026-06-19"})
        drv.do("item", f"P-{n}", "submit", attachments=[f"ev/P-{n}.pdf"])
    drv.do("item", "P-1", "reject", reason="佐证不足")
    drv.do("item", "P-1", "submit", attachments=["ev/P-1-v2.pdf"])
    for n in (1, 2):
        drv.do("item", f"P-{n}", "verify")
        drv.do("item", f"P-{n}", "close")
    return engine, list(engine.log.read("R-1"))


def test_stored_states_use_the_value_not_the_identifier() -> None:
    policy = RolePolicy.supervision_office()
    standard_engine, standard = play(Process.standard(policy))
    variant = Process.from_data(
        {**builtin_definitions(policy), "item": renamed_item(policy)}, policy=policy
    )
    variant_engine, renamed = play(variant)

    def stored(events: list[Event]) -> list[tuple[Any, ...]]:
        return [(e.type, e.subject, e.from_state, e.to_state) for e in events]

    assert stored(renamed) == stored(standard)
    assert len(renamed) > 30
    to_states = {e.to_state for e in renamed if e.kind == "item"}
    assert {"rectifying", "submitted", "closed"} <= to_states
    assert not to_states & set(RENAMED.values())
    # the variant is a different definition, recorded as such on its events
    item_version = variant.definitions["item"].version_id
    assert item_version != Process.standard(policy).definitions["item"].version_id
    assert {e.definition for e in renamed if e.kind == "item"} == {item_version}
    # records store values too, and replay under the variant reproduces the state
    state_ = variant_engine.state("R-1")
    assert {i.state for i in state_.items.values()} == {"closed"}
    assert len(state_.items["P-1"].rejections) == 1
    assert variant_engine.replay("R-1") == state_
    assert standard_engine.state("R-1").items.keys() == state_.items.keys()


# -- role policy --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "verifiers",
    [
        {Role.INSPECTED_ORGANIZATION},
        {Role.SUPERVISION_OFFICE, Role.INSPECTED_ORGANIZATION},
        {"inspection_office", "inspected_organization"},
    ],
)
def test_role_policy_refuses_the_inspected_organization_as_verifier(verifiers: Any) -> None:
    with pytest.raises(ValueError, match="inspected organization cannot verify"):
        RolePolicy(verifiers)


def test_role_policy_refuses_empty_and_unknown_roles() -> None:
    with pytest.raises(ValueError, match="may not be empty"):
        RolePolicy(frozenset())
    with pytest.raises(ValueError, match="chief_inspector"):
        RolePolicy({"chief_inspector"})


def test_role_policy_presets() -> None:
    assert RolePolicy.supervision_office().verifiers == {Role.SUPERVISION_OFFICE}
    assert RolePolicy.joint_supervision().verifiers == {
        Role.INSPECTION_OFFICE,
        Role.DISCIPLINE_COMMISSION,
        Role.ORGANIZATION_DEPARTMENT,
    }
    assert RolePolicy.three_party().verifiers == {Role.INSPECTION_OFFICE, Role.INSPECTION_TEAM}
    custom = RolePolicy({"supervision_office", "leading_group"})
    assert custom.verifiers == {Role.SUPERVISION_OFFICE, Role.LEADING_GROUP}
    assert custom.name == "custom"


def test_definition_data_is_immutable() -> None:
    d = Definition.build(builtin("lead"), guards=GUARDS)
    assert isinstance(d.data, DefinitionData)
    with pytest.raises(Exception, match="frozen"):
        d.data.states[0].name = "x"  # type: ignore[misc]


# -- regressions: fingerprints independent of the hash seed ----------------------
FINGERPRINT_KINDS = ("round", "unit", "item", "measure", "lead", "deadline", "recommendation")


@pytest.mark.parametrize("kind", FINGERPRINT_KINDS)
def test_regression_to_data_round_trips_fingerprint_and_version_id(kind: str) -> None:
    d = Definition.build(builtin_definitions(RolePolicy.supervision_office())[kind], guards=GUARDS)
    again = Definition.build(json.loads(json.dumps(d.to_data())), guards=GUARDS)
    assert again.data == d.data
    assert again.fingerprint == d.fingerprint
    assert again.version_id == d.version_id


def test_regression_role_order_in_the_data_does_not_change_the_fingerprint() -> None:
    data = builtin_definitions(RolePolicy.supervision_office())["lead"]
    flipped = json.loads(json.dumps(data))
    for t in flipped["transitions"]:
        t["roles"] = list(reversed(t["roles"]))
    a = Definition.build(data, guards=GUARDS)
    b = Definition.build(flipped, guards=GUARDS)
    assert a.data == b.data
    assert a.fingerprint == b.fingerprint


def test_regression_version_ids_are_the_same_in_every_interpreter() -> None:
    """Role sets used to be serialised in hash-seed order, so the same process had
    different version ids in different interpreters and rounds could not be replayed."""
    code = (
        "import json; from xuncha_flow import Process; "
        "print(json.dumps(Process.standard().version_ids, sort_keys=True))"
    )
    seen = set()
    for seed in range(6):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        seen.add(out.stdout)
    assert len(seen) == 1, seen


def _item_data() -> dict[str, Any]:
    return copy.deepcopy(builtin_definitions(RolePolicy.supervision_office())["item"])


def test_an_unknown_guard_names_the_source_state() -> None:
    data = _item_data()
    next(t for t in data["transitions"] if t["event"] == "claim")["guards"] = ["nope"]
    with pytest.raises(InvalidDefinition) as info:
        Definition.build(data, guards=GUARDS)
    assert info.value.states == ("fed_back",)


def test_a_duplicate_state_is_named() -> None:
    data = _item_data()
    data["states"].append({"name": "claimed", "label": "重复", "rank": 3})
    with pytest.raises(InvalidDefinition) as info:
        Definition.build(data, guards=GUARDS)
    assert info.value.states == ("claimed",)
