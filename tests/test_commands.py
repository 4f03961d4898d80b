"""Commands: idempotency by command id, preview, and what every event carries
(issue 2 items 6 and 7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from helpers import ROUND, World, fingerprint
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Command,
    InvalidCommand,
    Plan,
    Role,
    TransitionNotAllowed,
)

LONG_AGO = datetime(1999, 1, 4, 9, 30, tzinfo=DEFAULT_TIMEZONE)


def _onsite(start: datetime | None = None) -> World:
    w = World(start=start) if start is not None else World()
    w.to_onsite({"U-1": ["P-1", "P-2"]})
    return w


def _confirm(w: World, item_id: str, command_id: str) -> Command:
    return Command(
        command_id=command_id,
        round_id=ROUND,
        kind="item",
        subject=item_id,
        event="confirm",
        actor=w.team_actor("U-1"),
    )


# -- idempotency ---------------------------------------------------------------------------
def test_the_same_command_twice_is_applied_once() -> None:
    w = _onsite()
    cmd = _confirm(w, "P-1", "client-42")
    first = w.engine.execute(cmd)
    after_first = fingerprint(w.engine)
    second = w.engine.execute(cmd)
    assert second == first
    assert fingerprint(w.engine) == after_first
    # also when re-sent as JSON, e.g. after a lost reply
    third = w.engine.execute(cmd.model_dump_json())
    assert third == first
    assert fingerprint(w.engine) == after_first
    assert w.state.commands["client-42"] == (first[0].version, first[-1].version)


def test_a_repeated_command_returns_all_its_events_also_after_a_reload() -> None:
    w = World()
    w.to_onsite({"U-1": ["P-1", "P-2"]})
    w.confirm_found("U-1")
    w.leave("U-1")
    w.decide("U-1")
    w.move_to(w.feedback_day)
    cmd = Command(
        command_id="feedback-1",
        round_id=ROUND,
        kind="unit",
        subject="U-1",
        event="deliver_feedback",
        actor=w.team_actor("U-1"),
        payload={"delivered_on": w.feedback_day.isoformat()},
    )
    first = w.engine.execute(cmd)
    assert len(first) == 3
    version = w.state.version
    w.engine.forget(ROUND)  # the next use replays the log
    assert w.engine.execute(cmd) == first
    assert w.state.version == version
    assert w.engine.log.version(ROUND) == version


def test_a_different_command_reusing_a_command_id_is_refused() -> None:
    w = _onsite()
    w.engine.execute(_confirm(w, "P-1", "client-7"))
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand, match="already used for another command"):
        w.engine.execute(_confirm(w, "P-2", "client-7"))
    other_actor = Command(
        command_id="client-7",
        round_id=ROUND,
        kind="item",
        subject="P-1",
        event="confirm",
        actor=w.cast.office,
    )
    with pytest.raises(InvalidCommand, match="already used"):
        w.engine.execute(other_actor)
    assert fingerprint(w.engine) == before
    assert w.item_state("P-2") == "found"


def test_regression_a_reused_command_id_with_another_event_or_payload_is_refused() -> None:
    """A command id reused for another event, payload, reason or attachments on the
    same subject by the same actor used to be taken for a retry and silently dropped."""
    w = _onsite()
    team = w.team_actor("U-1")
    w.engine.fire(team, ROUND, "item", "P-1", "confirm", command_id="c-1")
    before = fingerprint(w.engine)
    again = w.engine.fire(team, ROUND, "item", "P-1", "confirm", command_id="c-1")
    assert [e.type for e in again] == ["item.confirm"]
    with pytest.raises(InvalidCommand, match="already used for another command"):
        w.engine.fire(team, ROUND, "item", "P-1", "withdraw", reason="不属实", command_id="c-1")
    with pytest.raises(InvalidCommand, match="already used for another command"):
        w.engine.fire(team, ROUND, "item", "P-1", "confirm", reason="changed", command_id="c-1")
    assert fingerprint(w.engine) == before
    assert w.item_state("P-1") == "confirmed"


def test_a_refused_command_can_be_sent_again_with_its_id() -> None:
    w = _onsite()
    w.do("item", "P-1", "confirm")
    cmd = Command(
        command_id="client-9",
        round_id=ROUND,
        kind="item",
        subject="P-2",
        event="withdraw",
        actor=w.team_actor("U-1"),
    )
    with pytest.raises(InvalidCommand, match="requires a reason"):
        w.engine.execute(cmd)
    assert "client-9" not in w.state.commands
    fixed = cmd.model_copy(update={"reason": "不属实"})
    events = w.engine.execute(fixed)
    assert events[0].reason == "不属实"
    assert w.item_state("P-2") == "withdrawn"


# -- preview -------------------------------------------------------------------------------
def test_preview_returns_the_plan_and_changes_nothing() -> None:
    w = _onsite()
    before = fingerprint(w.engine)
    plan = w.engine.preview(_confirm(w, "P-1", "pv-1"))
    assert isinstance(plan, Plan)
    assert (plan.kind, plan.subject, plan.event) == ("item", "P-1", "confirm")
    assert (plan.from_state, plan.to_state) == ("found", "confirmed")
    assert plan.type == "item.confirm"
    assert fingerprint(w.engine) == before
    assert "pv-1" not in w.state.commands
    # the previewed command is then executed for real under the same id
    events = w.engine.execute(_confirm(w, "P-1", "pv-1"))
    assert (events[0].from_state, events[0].to_state) == (plan.from_state, plan.to_state)


def test_preview_of_a_creation_and_of_a_refused_command() -> None:
    w = _onsite()
    plan = w.engine.preview(
        {
            "command_id": "pv-2",
            "round_id": ROUND,
            "kind": "item",
            "subject": "P-9",
            "event": "record",
            "actor": w.team_actor("U-1"),
            "payload": {"unit_id": "U-1", "description": "新问题"},
        }
    )
    assert (plan.from_state, plan.to_state) == (None, "found")
    assert plan.payload["unit_id"] == "U-1"
    assert "P-9" not in w.state.items
    before = fingerprint(w.engine)
    with pytest.raises(TransitionNotAllowed):
        w.engine.preview(
            {
                "command_id": "pv-3",
                "round_id": ROUND,
                "kind": "item",
                "subject": "P-1",
                "event": "claim",
                "actor": w.unit_actor("U-1"),
            }
        )
    assert fingerprint(w.engine) == before


# -- what events carry ---------------------------------------------------------------------
def test_events_carry_actor_role_clock_time_states_definition_reason_attachments() -> None:
    w = _onsite(LONG_AGO)
    assert w.clock.now().year == 1999
    w.do("item", "P-1", "order_immediate_fix")
    w.clock.advance(hours=5)
    submitted_at = w.clock.now()
    events = w.do(
        "item",
        "P-1",
        "submit",
        {"summary": "已当场整改"},
        reason="现场整改完毕",
        attachments=["file:receipt-1", "file:photo-2"],
    )
    (event,) = events
    assert event.type == "item.submit"
    assert event.actor == w.unit_actor("U-1")
    assert event.role == "inspected_organization"
    assert event.actor.role is Role.INSPECTED_ORGANIZATION
    assert event.timestamp == submitted_at  # the injected clock, not the wall clock
    assert event.timestamp.year == 1999
    assert event.timestamp.tzinfo is UTC  # stored in UTC
    assert (event.from_state, event.to_state) == ("immediate", "submitted")
    assert event.definition == w.engine.process.version_ids["item"]
    assert event.reason == "现场整改完毕"
    assert event.attachments == ("file:receipt-1", "file:photo-2")
    assert event.payload["summary"] == "已当场整改"
    assert event.stream == ROUND
    assert event.subject == "P-1"
    assert not event.automatic
    assert event.computed_hash() == event.hash

    # the item keeps the evidence references
    submission = w.state.items["P-1"].submission
    assert submission is not None
    assert submission.evidence == ("file:receipt-1", "file:photo-2")
    assert submission.at == submitted_at


def test_every_event_of_a_run_is_stamped_by_the_clock_and_pinned_to_its_definition() -> None:
    w = World(start=LONG_AGO)
    w.to_feedback({"U-1": ["P-1"]})
    w.plan("U-1")
    w.finish("P-1")
    events = w.events()
    version_ids = w.engine.process.version_ids
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    for event in events:
        assert LONG_AGO <= event.timestamp <= w.clock.now()
        assert event.definition == version_ids[event.kind]
    creations = {e.type for e in events if e.from_state is None}
    assert creations == {"round.open", "unit.add", "item.record", "measure.add"}
    assert w.state.round is not None
    assert dict(w.state.round.definitions) == version_ids
    kinds = {e.kind for e in events}
    assert kinds == {"round", "unit", "item", "measure"}


def test_automatic_events_carry_the_commands_actor_but_not_its_reason_or_attachments() -> None:
    w = _onsite()
    w.confirm_found("U-1")
    w.leave("U-1")
    w.decide("U-1")
    w.move_to(w.feedback_day)
    events = w.do(
        "unit",
        "U-1",
        "deliver_feedback",
        {"delivered_on": w.feedback_day.isoformat(), "mode": "one_to_one"},
        reason="集体反馈后一对一反馈",
        attachments=["file:feedback-minutes"],
    )
    main, *follow = events
    assert main.reason == "集体反馈后一对一反馈"
    assert main.attachments == ("file:feedback-minutes",)
    assert main.payload == {"delivered_on": w.feedback_day.isoformat(), "mode": "one_to_one"}
    assert [(e.type, e.from_state, e.to_state) for e in follow] == [
        ("item.feed_back", "confirmed", "fed_back"),
        ("item.feed_back", "confirmed", "fed_back"),
    ]
    for event in follow:
        assert event.automatic
        assert event.actor == main.actor
        assert event.command_id == main.command_id
        assert event.timestamp == main.timestamp
        assert event.reason is None
        assert event.attachments == ()
        assert event.definition == w.engine.process.version_ids["item"]
    assert [e.version for e in events] == [main.version, main.version + 1, main.version + 2]
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]


def test_events_round_trip_through_json() -> None:
    w = _onsite()
    (event,) = w.do("item", "P-1", "confirm")
    again = type(event).model_validate_json(event.model_dump_json())
    assert again == event
    assert json.loads(event.model_dump_json())["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    ("kind", "event", "subject"),
    [("deadline", "open", "rectification_plan:U-1"), ("recommendation", "recommend", "x@y")],
)
def test_subjects_the_engine_creates_cannot_be_created_by_a_command(
    kind: str, event: str, subject: str
) -> None:
    w = _onsite()
    before = fingerprint(w.engine)
    with pytest.raises(InvalidCommand, match="by the engine, not by a command"):
        w.engine.fire(w.cast.supervision, ROUND, kind, subject, event)
    assert fingerprint(w.engine) == before
