"""Definitions compiled onto ``transitions`` (issue 2, item 2).

One shared ``transitions.Machine`` per definition, ``auto_transitions=False``,
subjects never registered on it; conditional branches take the first transition
whose guards pass; refusals are typed and itemised.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from helpers import open_on_site
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    Definition,
    Engine,
    GuardRejected,
    InvalidCommand,
    ManualClock,
    Process,
    Role,
    RuleViolation,
    TransitionNotAllowed,
    snapshot,
)
from xuncha_flow._machine import CompiledMachine
from xuncha_flow.testing import RoundDriver

ROUND = "R-1"
TEAM = Actor(id="team-1-leader", role=Role.INSPECTION_TEAM, organization="team-1")


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=DEFAULT_TIMEZONE)


def new_engine(process: Process | None = None) -> tuple[Engine, ManualClock]:
    clock = ManualClock(at(3, 2))
    counter = itertools.count(1)
    engine = Engine(clock=clock, process=process, ids=lambda: f"ev-{next(counter):05d}")
    return engine, clock


def on_site(engine: Engine, clock: ManualClock) -> RoundDriver:
    """A round with one unit U-1 (org-edu, team-1), its team on site."""
    return open_on_site(engine, clock, ROUND)


def to_rectifying(drv: RoundDriver, clock: ManualClock, items: list[str]) -> None:
    """Record ``items``, feed them back, plan one measure each, approve the plan."""
    for item in items:
        drv.do("item", item, "record", {"unit_id": "U-1", "description": f"问题 {item}"})
        drv.do("item", item, "confirm")
    drv.do("unit", "U-1", "leave_site")
    drv.round("conclude_onsite")
    drv.do("unit", "U-1", "decide_report")
    drv.round("conclude_report")
    clock.set(at(5, 15))
    drv.do("unit", "U-1", "deliver_feedback", {"delivered_on": "2026-05-15"})
    drv.round("start_rectification")
    for item in items:
        drv.do("item", item, "claim")
        drv.do(
            "measure",
            f"M-{item}",
            "add",
            {
                "item_id": item,
                "text": "整改措施",
                "responsible_leader": "leader",
                "responsible_person": "person",
                "due_date": "2026-06-30",
            },
        )
    drv.do("unit", "U-1", "submit_plan")
    drv.do("unit", "U-1", "approve_plan")
    clock.set(at(6, 20))


def finish_measure(drv: RoundDriver, item: str) -> None:
    drv.do("measure", f"M-{item}", "start")
    drv.do("measure", f"M-{item}", "complete", {"done_on": "2026-06-19"})


def item_state(engine: Engine, item: str) -> str:
    return engine.state(ROUND).items[item].state


# -- the shared machine -------------------------------------------------------------------
def test_machines_have_no_auto_transitions() -> None:
    process = Process.standard()
    for kind, compiled in process.machines.items():
        machine = compiled.machine
        assert machine.auto_transitions is False
        triggers = set(machine.events)
        assert not [t for t in triggers if t.startswith("to_")], kind
        d = compiled.definition
        # exactly the declared events that have transitions (creation is not one)
        assert triggers == {d.event(t.event).stored for t in d.transitions}
        for s in d.states:
            assert not [t for t in machine.get_triggers(s.stored) if t.startswith("to_")]


def test_to_state_triggers_cannot_be_fired() -> None:
    engine, clock = new_engine()
    drv = on_site(engine, clock)
    drv.do("item", "P-1", "record", {"unit_id": "U-1", "description": "问题"})
    before = engine.log.version(ROUND)
    for event in ("to_closed", "to_verified"):
        with pytest.raises(InvalidCommand, match=f"unknown event '{event}'"):
            engine.fire(TEAM, ROUND, "item", "P-1", event)
    assert item_state(engine, "P-1") == "found"
    assert engine.log.version(ROUND) == before
    item = engine.process.machines["item"].machine
    assert "to_closed" not in item.events
    with pytest.raises(KeyError):
        item.events["to_closed"]


def test_no_model_is_ever_registered() -> None:
    engine, clock = new_engine()
    on_site(engine, clock)
    machines = engine.process.machines
    assert all(m.machine.models == [] for m in machines.values())
    n = 3000
    for k in range(n):
        engine.fire(
            TEAM, ROUND, "item", f"P-{k}", "record", {"unit_id": "U-1", "description": "问题"}
        )
        engine.fire(TEAM, ROUND, "item", f"P-{k}", "confirm")
    state = engine.state(ROUND)
    assert sum(1 for i in state.items.values() if i.state == "confirmed") == n
    for kind, compiled in machines.items():
        assert compiled.machine.models == [], kind


def test_firing_on_the_compiled_machine_registers_nothing() -> None:
    compiled = Process.standard().machines["item"]
    machine = compiled.machine
    before = {name: len(event.transitions) for name, event in machine.events.items()}
    for k in range(10_000):
        spec, dest = compiled.fire(f"item P-{k}", "found", "confirm", ctx=None)
        assert dest == "confirmed"
    assert spec.event == "confirm"
    assert machine.models == []
    assert {name: len(event.transitions) for name, event in machine.events.items()} == before


# -- conditional branches -----------------------------------------------------------------
def test_reject_returns_an_item_to_where_it_was_submitted_from() -> None:
    engine, clock = new_engine()
    drv = on_site(engine, clock)
    # an immediate fix (立行立改), rejected while on site
    drv.do("item", "P-IM", "record", {"unit_id": "U-1", "description": "立行立改问题"})
    drv.do("item", "P-IM", "order_immediate_fix")
    drv.do("item", "P-IM", "submit", attachments=["ev/im.pdf"])
    assert item_state(engine, "P-IM") == "submitted"
    drv.do("item", "P-IM", "reject", reason="未整改到位")
    assert item_state(engine, "P-IM") == "immediate"
    drv.do("item", "P-IM", "submit", attachments=["ev/im-2.pdf"])
    drv.do("item", "P-IM", "verify")
    drv.do("item", "P-IM", "close")

    to_rectifying(drv, clock, ["P-1", "P-LT"])
    # an ordinary item
    finish_measure(drv, "P-1")
    drv.do("item", "P-1", "submit", attachments=["ev/1.pdf"])
    (event,) = drv.do("item", "P-1", "reject", reason="佐证材料不足")
    assert (event.from_state, event.to_state) == ("submitted", "rectifying")
    assert item_state(engine, "P-1") == "rectifying"
    # a long-term item (长期整改)
    finish_measure(drv, "P-LT")
    drv.do(
        "item", "P-LT", "mark_long_term", {"milestones": [{"title": "一期", "due": "2026-12-31"}]}
    )
    drv.do("item", "P-LT", "complete_milestone", {"title": "一期", "done_on": "2026-06-20"})
    drv.do("item", "P-LT", "submit", attachments=["ev/lt.pdf"])
    (event,) = drv.do("item", "P-LT", "reject", reason="阶段目标未达成")
    assert (event.from_state, event.to_state) == ("submitted", "long_term")
    assert item_state(engine, "P-LT") == "long_term"

    state = engine.state(ROUND)
    assert [len(state.items[i].rejections) for i in ("P-IM", "P-1", "P-LT")] == [1, 1, 1]
    assert engine.replay(ROUND) == state


# -- refusals -----------------------------------------------------------------------------
def test_transition_not_allowed_lists_the_possible_events() -> None:
    engine, clock = new_engine()
    drv = on_site(engine, clock)
    drv.do("item", "P-1", "record", {"unit_id": "U-1", "description": "问题"})
    before = snapshot(engine.state(ROUND))
    with pytest.raises(TransitionNotAllowed) as info:
        drv.do("item", "P-1", "close")
    exc = info.value
    assert exc.subject == "item P-1"
    assert exc.state == "found"
    assert exc.event == "close"
    assert exc.allowed == ("confirm", "order_immediate_fix", "withdraw")
    assert "possible now: confirm, order_immediate_fix, withdraw" in str(exc)
    assert snapshot(engine.state(ROUND)) == before

    drv.do("item", "P-1", "confirm")
    with pytest.raises(TransitionNotAllowed) as info:
        drv.do("item", "P-1", "claim")
    # feed_back leaves "confirmed" too, but it is fired by the engine, not by a command
    assert info.value.allowed == ("withdraw",)


def test_compiled_machine_names_every_event_out_of_the_state() -> None:
    compiled = Process.standard().machines["item"]
    with pytest.raises(TransitionNotAllowed) as info:
        compiled.fire("item X", "confirmed", "close", ctx=None)
    assert info.value.allowed == ("feed_back", "withdraw")
    with pytest.raises(TransitionNotAllowed) as info:
        compiled.fire("item X", "withdrawn", "reopen", ctx=None)
    assert info.value.allowed == ()
    assert "possible now" not in str(info.value)
    assert compiled.triggers("found") == ("confirm", "order_immediate_fix", "withdraw")


def test_automatic_events_are_not_commands() -> None:
    engine, clock = new_engine()
    drv = on_site(engine, clock)
    drv.do("item", "P-1", "record", {"unit_id": "U-1", "description": "问题"})
    drv.do("item", "P-1", "confirm")
    with pytest.raises(InvalidCommand, match="fired by the engine"):
        drv.do("item", "P-1", "feed_back", actor=TEAM)
    assert item_state(engine, "P-1") == "confirmed"


def test_guard_rejected_collects_every_guard_of_the_transition() -> None:
    engine, clock = new_engine()
    drv = on_site(engine, clock)
    to_rectifying(drv, clock, ["P-1"])
    drv.do(
        "item",
        "P-1",
        "mark_long_term",
        {"milestones": [{"title": "一期", "due": "2026-12-31"}]},
    )
    before = snapshot(engine.state(ROUND))
    length = engine.log.version(ROUND)
    with pytest.raises(GuardRejected) as info:
        drv.do("item", "P-1", "submit")  # no evidence, measure not done, milestone pending
    exc = info.value
    assert exc.rules == ("evidence_attached", "measures_done", "milestones_done")
    assert exc.subject == "item P-1"
    assert exc.event == "submit"
    measures = next(v for v in exc.violations if v.rule == "measures_done")
    assert measures.subjects == ("M-P-1",)
    assert "1 milestone not done: 一期" in str(exc)
    assert snapshot(engine.state(ROUND)) == before
    assert engine.log.version(ROUND) == length


# -- the compiler on a hand-written definition --------------------------------------------
def branching() -> Definition:
    role = ["inspection_office"]
    return Definition.build(
        {
            "kind": "thing",
            "name": "thing",
            "version": "1",
            "states": [
                {"name": "draft", "label": "草稿", "initial": True},
                {"name": "fast", "label": "快速", "rank": 1},
                {"name": "slow", "label": "普通", "rank": 1},
                {"name": "done", "label": "办结", "rank": 2, "terminal": True},
            ],
            "events": [
                {"name": "create", "label": "创建"},
                {"name": "route", "label": "分流"},
                {"name": "finish", "label": "办结"},
            ],
            "create": {"event": "create", "roles": role},
            "transitions": [
                {"event": "route", "source": "draft", "dest": "fast", "roles": role,
                 "guards": ["small", "urgent"]},
                {"event": "route", "source": "draft", "dest": "slow", "roles": role,
                 "guards": ["known"]},
                {"event": "finish", "source": ["fast", "slow"], "dest": "done", "roles": role,
                 "guards": ["small", "urgent", "known"]},
            ],
        },
        guards={"small", "urgent", "known"},
    )  # fmt: skip


def _flag(name: str) -> Any:
    def guard(ctx: dict[str, bool]) -> Iterator[RuleViolation]:
        if not ctx[name]:
            yield RuleViolation(name, f"not {name}", ("T-1",))

    return guard


GUARDS = {"small": _flag("small"), "urgent": _flag("urgent"), "known": _flag("known")}


def test_first_branch_whose_guards_pass_is_taken() -> None:
    compiled = CompiledMachine(branching(), GUARDS)
    spec, dest = compiled.fire("T-1", "draft", "route", {"small": 1, "urgent": 1, "known": 1})
    assert (dest, spec.dest) == ("fast", "fast")
    spec, dest = compiled.fire("T-1", "draft", "route", {"small": 0, "urgent": 1, "known": 1})
    assert (dest, spec.dest) == ("slow", "slow")
    assert compiled.machine.models == []


def test_violations_of_all_branches_and_all_guards_are_collected() -> None:
    compiled = CompiledMachine(branching(), GUARDS)
    with pytest.raises(GuardRejected) as info:
        compiled.fire("T-1", "draft", "route", {"small": 0, "urgent": 0, "known": 0})
    assert info.value.rules == ("small", "urgent", "known")
    with pytest.raises(GuardRejected) as info:
        compiled.fire("T-1", "fast", "finish", {"small": 0, "urgent": 1, "known": 0})
    assert info.value.rules == ("small", "known")
    assert info.value.violations[0].subjects == ("T-1",)
    assert str(info.value) == "T-1: 'finish' refused: not small; not known"
    spec, dest = compiled.fire("T-1", "slow", "finish", {"small": 1, "urgent": 1, "known": 1})
    assert dest == "done"
    assert spec.guards == ("small", "urgent", "known")


def test_stored_values_drive_the_shared_machine() -> None:
    data = branching().to_data()
    for s in data["states"]:
        s["value"] = f"S_{s['name']}".lower()
    compiled = CompiledMachine(Definition.build(data, guards=set(GUARDS)), GUARDS)
    assert set(compiled.machine.states) == {"s_draft", "s_fast", "s_slow", "s_done"}
    # callers speak identifiers in and out
    _, dest = compiled.fire("T-1", "draft", "route", {"small": 1, "urgent": 1, "known": 1})
    assert dest == "fast"
    assert compiled.triggers("fast") == ("finish",)
