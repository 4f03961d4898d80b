"""Host hooks and atomic commands (issue 2 item 6), in the order ``_hooks.py`` documents:
before hooks (registration order, old state, may veto) → events applied → after hooks
(all events, new state, inside the unit of work) → one atomic append."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from helpers import ROUND, World, fingerprint
from xuncha_flow import (
    AfterContext,
    BeforeContext,
    Command,
    ConcurrencyConflict,
    Event,
    GuardRejected,
    HookFailed,
    Hooks,
    InMemoryEventLog,
    InvalidCommand,
    PermissionDenied,
    Vetoed,
)


def _at_feedback_day(hooks: Hooks | None = None, log: InMemoryEventLog | None = None) -> World:
    """U-1 with P-1 and P-2 confirmed, report decided: feedback is next."""
    w = World(hooks=hooks, log=log)
    w.to_onsite({"U-1": ["P-1", "P-2"]})
    w.confirm_found("U-1")
    w.leave("U-1")
    w.decide("U-1")
    w.move_to(w.feedback_day)
    return w


def _feedback(w: World, command_id: str = "cmd-feedback") -> tuple[Event, ...]:
    return w.engine.fire(
        w.team_actor("U-1"),
        ROUND,
        "unit",
        "U-1",
        "deliver_feedback",
        {"delivered_on": w.feedback_day.isoformat()},
        command_id=command_id,
    )


FEEDBACK_TYPES = ["unit.deliver_feedback", "item.feed_back", "item.feed_back"]


# -- before hooks --------------------------------------------------------------------------
def test_before_hooks_run_in_order_before_any_change() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    seen: list[tuple[Any, ...]] = []
    version = w.state.version

    def first(ctx: BeforeContext) -> None:
        seen.append(
            (
                "first",
                ctx.type,
                ctx.from_state,
                ctx.to_state,
                ctx.command.subject,
                ctx.state.units["U-1"].state,
                ctx.state.items["P-1"].state,
                ctx.state.version,
            )
        )

    def second(ctx: BeforeContext) -> None:
        seen.append(("second", ctx.type))

    hooks.before(first)
    hooks.before(second)
    _feedback(w)
    assert seen == [
        (
            "first",
            "unit.deliver_feedback",
            "report_decided",
            "fed_back",
            "U-1",
            "report_decided",  # the old state
            "confirmed",
            version,
        ),
        ("second", "unit.deliver_feedback"),
    ]
    assert w.unit_state("U-1") == "fed_back"


def test_a_veto_changes_nothing_and_stops_later_hooks() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    calls: list[str] = []

    def veto(ctx: BeforeContext) -> None:
        calls.append("veto")
        raise Vetoed("反馈稿未经审签", hook="approval-check")

    hooks.before(veto)
    hooks.before(lambda ctx: calls.append("later"))
    hooks.after(lambda ctx: calls.append("after"))
    before = fingerprint(w.engine)
    with pytest.raises(Vetoed) as refused:
        _feedback(w)
    assert refused.value.reason == "反馈稿未经审签"
    assert refused.value.hook == "approval-check"
    assert refused.value.phase == "before"
    assert calls == ["veto"]
    assert fingerprint(w.engine) == before
    assert w.unit_state("U-1") == "report_decided"
    assert "cmd-feedback" not in w.state.commands


def test_a_before_hook_raising_is_wrapped_in_hook_failed() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    boom = RuntimeError("档案系统不可用")

    def broken(ctx: BeforeContext) -> None:
        raise boom

    hooks.before(broken)
    before = fingerprint(w.engine)
    with pytest.raises(HookFailed) as refused:
        _feedback(w)
    err = refused.value
    assert not isinstance(err, Vetoed)
    assert err.__cause__ is boom
    assert err.phase == "before"
    assert "broken" in err.hook
    assert "RuntimeError: 档案系统不可用" in str(err)
    assert fingerprint(w.engine) == before


def test_before_hooks_do_not_run_for_refused_commands() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    calls: list[str] = []
    hooks.before(lambda ctx: calls.append(ctx.type))
    with pytest.raises(InvalidCommand):  # feedback in the future
        w.do("unit", "U-1", "deliver_feedback", {"delivered_on": "2099-01-01"})
    with pytest.raises(GuardRejected):  # feedback before the team went on site
        w.do("unit", "U-1", "deliver_feedback", {"delivered_on": "2026-03-01"})
    with pytest.raises(PermissionDenied):
        w.do(
            "unit",
            "U-1",
            "deliver_feedback",
            {"delivered_on": w.feedback_day.isoformat()},
            actor=w.unit_actor("U-1"),
        )
    assert calls == []


# -- after hooks ---------------------------------------------------------------------------
def test_after_hooks_see_every_event_of_the_command_and_the_new_state() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    seen: list[tuple[Any, ...]] = []

    def after(ctx: AfterContext) -> None:
        seen.append(
            (
                [e.type for e in ctx.events],
                ctx.state.units["U-1"].state,
                ctx.state.items["P-1"].state,
                ctx.state.version,
                ctx.command.command_id,
            )
        )

    hooks.after(after)
    hooks.after(lambda ctx: seen.append(("second",)))
    version = w.state.version
    events = _feedback(w)
    assert seen == [
        (FEEDBACK_TYPES, "fed_back", "fed_back", version + 3, "cmd-feedback"),
        ("second",),
    ]
    assert [e.type for e in events] == FEEDBACK_TYPES


def test_an_after_hook_raising_rolls_everything_back() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    fail = [True]
    saw_new_state: list[str] = []

    def flaky(ctx: AfterContext) -> None:
        saw_new_state.append(ctx.state.units["U-1"].state)
        if fail[0]:
            raise OSError("消息队列写入失败")

    hooks.after(flaky)
    before = fingerprint(w.engine)
    log_before = w.events()
    with pytest.raises(HookFailed) as refused:
        _feedback(w)
    assert isinstance(refused.value.__cause__, OSError)
    assert refused.value.phase == "after"
    assert saw_new_state == ["fed_back"]  # it ran after the change ...
    assert fingerprint(w.engine) == before  # ... which was undone exactly
    assert w.events() == log_before
    assert w.engine.replay(ROUND) == w.engine.state(ROUND)
    assert w.unit_state("U-1") == "report_decided"
    assert {w.item_state(i) for i in ("P-1", "P-2")} == {"confirmed"}
    assert w.state.units["U-1"].feedback_on is None
    assert "cmd-feedback" not in w.state.commands

    # the same command now succeeds
    fail[0] = False
    events = _feedback(w)
    assert [e.type for e in events] == FEEDBACK_TYPES
    assert w.unit_state("U-1") == "fed_back"
    assert w.engine.replay(ROUND) == w.state
    assert w.engine.log.verify().ok


def test_rollback_after_a_hook_failure_also_undoes_created_records() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    w.feed_back("U-1")

    def refuse(ctx: AfterContext) -> None:
        raise ValueError("no")

    hooks.after(refuse, types=["item.refine"])
    before = fingerprint(w.engine)
    with pytest.raises(HookFailed):
        w.do(
            "item",
            "P-1",
            "refine",
            {
                "children": [
                    {"id": "P-1-1", "description": "a"},
                    {"id": "P-1-2", "description": "b"},
                ]
            },
        )
    assert fingerprint(w.engine) == before
    assert "P-1-1" not in w.state.items
    assert w.state.units["U-1"].item_ids == ("P-1", "P-2")
    assert w.engine.replay(ROUND) == w.state


# -- filtering and preview -----------------------------------------------------------------
def test_hooks_filtered_by_event_type() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    calls: list[str] = []
    hooks.before(lambda ctx: calls.append("before:item.close"), types=["item.close"])
    hooks.before(
        lambda ctx: calls.append("before:unit.deliver_feedback"), types={"unit.deliver_feedback"}
    )
    # an after hook matches the command's follow-up events too
    hooks.after(lambda ctx: calls.append("after:item.feed_back"), types=["item.feed_back"])

    @hooks.on("item.close")
    def on_close(ctx: AfterContext) -> None:
        calls.append("after:item.close")

    assert len(hooks) == 4
    _feedback(w)
    assert calls == ["before:unit.deliver_feedback", "after:item.feed_back"]
    calls.clear()
    w.do("item", "P-1", "claim")
    assert calls == []


def test_before_hook_filter_looks_at_the_commands_own_event_only() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    calls: list[str] = []
    hooks.before(lambda ctx: calls.append("before"), types=["item.feed_back"])
    _feedback(w)
    assert calls == []


def test_hooks_do_not_run_for_preview() -> None:
    hooks = Hooks()
    w = _at_feedback_day(hooks)
    calls: list[str] = []
    hooks.before(lambda ctx: calls.append("before"))
    hooks.after(lambda ctx: calls.append("after"))
    before = fingerprint(w.engine)
    plan = w.engine.preview(
        Command(
            command_id="preview-1",
            round_id=ROUND,
            kind="unit",
            subject="U-1",
            event="deliver_feedback",
            actor=w.team_actor("U-1"),
            payload={"delivered_on": w.feedback_day.isoformat()},
        )
    )
    assert (plan.from_state, plan.to_state) == ("report_decided", "fed_back")
    assert calls == []
    assert fingerprint(w.engine) == before


# -- concurrency ---------------------------------------------------------------------------
class FlakyLog(InMemoryEventLog):
    """Refuses the next ``failures`` appends as if another writer had been first."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.attempts = 0

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise ConcurrencyConflict(stream, expected_version, expected_version + 1)
        super().append(stream, expected_version, events)


def _feedback_command(w: World, command_id: str = "cmd-feedback") -> dict[str, Any]:
    return {
        "command_id": command_id,
        "round_id": ROUND,
        "kind": "unit",
        "subject": "U-1",
        "event": "deliver_feedback",
        "actor": w.team_actor("U-1"),
        "payload": {"delivered_on": w.feedback_day.isoformat()},
    }


def test_a_conflict_at_append_rolls_back_and_a_retry_succeeds() -> None:
    log = FlakyLog()
    hooks = Hooks()
    after_calls: list[int] = []
    hooks.after(lambda ctx: after_calls.append(len(ctx.events)))
    w = _at_feedback_day(hooks, log)
    after_calls.clear()
    before = fingerprint(w.engine)

    log.failures = 1
    with pytest.raises(ConcurrencyConflict):
        w.engine.execute(_feedback_command(w))
    assert fingerprint(w.engine) == before
    assert w.unit_state("U-1") == "report_decided"
    assert w.engine.replay(ROUND) == w.state

    log.failures = 1
    attempts = log.attempts
    events = w.engine.execute(_feedback_command(w), retries=1)
    assert log.attempts == attempts + 2
    assert [e.type for e in events] == FEEDBACK_TYPES
    assert w.unit_state("U-1") == "fed_back"
    assert w.engine.replay(ROUND) == w.state
    assert w.engine.log.verify().ok
    assert after_calls == [3, 3, 3]  # the hook ran in every attempt, inside its unit of work


def test_a_stale_engine_reloads_before_deciding() -> None:
    """Another engine appended to the round since this one loaded it: the command
    is decided on the current facts (reloaded from the log), not refused on old ones."""
    log = InMemoryEventLog()
    w = _at_feedback_day(log=log)
    other = World(log=log, id_prefix="other")
    other.clock.set(w.clock.now())
    assert other.state == w.state  # both have the round loaded
    other.do(
        "lead",
        "L-1",
        "transfer",
        {
            "item_ids": ["P-1"],
            "receiver": "discipline_commission",
            "receiver_org": "jw",
            "summary": "线索",
            "transferred_on": other.clock.today().isoformat(),
        },
    )
    events = w.engine.execute(_feedback_command(w))
    assert [e.type for e in events] == FEEDBACK_TYPES
    assert events[0].version == log.version(ROUND) - len(events) + 1
    assert "L-1" in w.state.leads
    assert log.verify().ok
    assert w.engine.replay(ROUND) == w.state


class RacingLog(InMemoryEventLog):
    """A log where another writer appends just before our next append: the race
    that optimistic concurrency exists for."""

    def __init__(self) -> None:
        super().__init__()
        self.race: Any = None

    def append(self, stream: str, expected_version: int, events: Any) -> None:
        race, self.race = self.race, None
        if race is not None:
            race()
        super().append(stream, expected_version, events)


def test_a_writer_racing_in_between_causes_a_conflict_then_a_reload() -> None:
    log = RacingLog()
    w = _at_feedback_day(log=log)
    other = World(log=log, id_prefix="other")
    other.clock.set(w.clock.now())
    other.state  # loads  # noqa: B018
    before = fingerprint(w.engine)
    log.race = lambda: other.do(
        "lead",
        "L-1",
        "transfer",
        {
            "item_ids": ["P-1"],
            "receiver": "discipline_commission",
            "receiver_org": "jw",
            "summary": "线索",
            "transferred_on": other.clock.today().isoformat(),
        },
    )
    with pytest.raises(ConcurrencyConflict) as conflict:
        w.engine.execute(_feedback_command(w))
    assert conflict.value.expected == before[1]
    assert log.version(ROUND) == before[1] + 1  # only the other writer's event was written
    assert w.state == other.state  # the stale state was dropped and reloaded
    assert w.unit_state("U-1") == "report_decided"

    # with retries the command is decided again on the reloaded state and succeeds
    log.race = lambda: other.do("lead", "L-1", "receive")
    events = w.engine.execute(_feedback_command(w, "cmd-retry"), retries=1)
    assert [e.type for e in events] == FEEDBACK_TYPES
    assert log.verify().ok
    assert w.engine.replay(ROUND) == w.state
    assert w.state.leads["L-1"].state == "received"


@pytest.mark.parametrize("phase", ["before", "after"])
def test_a_hook_firing_a_command_on_its_own_round_is_refused(phase: str) -> None:
    """The round's lock is re-entrant for its thread: a nested command would
    interleave with the unit of work the hook runs in, so it is refused and the
    outer command changes nothing."""
    hooks = Hooks()
    w = _at_feedback_day(hooks=hooks)

    def nested(ctx: Any) -> None:
        w.do("item", "P-1", "withdraw", reason="不属实")

    if phase == "before":
        hooks.before(nested)
    else:
        hooks.after(nested)
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand, match="hook may not fire commands"):
        _feedback(w)
    assert fingerprint(w.engine) == before
    assert w.engine.replay(ROUND) == w.state
