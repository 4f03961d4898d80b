"""Events: immutable, JSON round-trip, UTC timestamps, a hash chain that names the
first bad event (issue 2, item 7)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    ChainReport,
    Engine,
    Event,
    ManualClock,
    Role,
    genesis_hash,
    verify_chain,
)
from xuncha_flow._events import seal
from xuncha_flow.testing import RoundDriver

OTHER = Actor(id="intruder", role=Role.INSPECTION_OFFICE, organization="xcb")


def make_stream(round_id: str, items: int = 3) -> list[Event]:
    """A real round's events: opened, one unit, on site, ``items`` problems recorded."""
    clock = ManualClock(datetime(2026, 3, 2, 10, tzinfo=DEFAULT_TIMEZONE))
    counter = itertools.count(1)
    engine = Engine(clock=clock, ids=lambda: f"{round_id}-ev-{next(counter):03d}")
    drv = RoundDriver(engine, round_id)
    drv.round("open", {"name": "测试轮次", "level": "county", "theme": "营商环境"})
    drv.do(
        "unit",
        "U-1",
        "add",
        {"name": "青山镇党委", "organization_id": "org-town", "team_id": "team-1"},
    )
    drv.round("approve")
    clock.advance(days=7)
    drv.round("launch", {"petition_closing_date": "2026-04-10"})
    for n in range(1, items + 1):
        clock.advance(hours=3)
        drv.do(
            "item",
            f"P-{n}",
            "record",
            {"unit_id": "U-1", "description": f"问题 {n}", "amount_involved": "1234.50"},
        )
    drv.do("item", "P-1", "withdraw", reason="经核实不属实")
    return list(engine.log.read(round_id))


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return make_stream("R-1")


@pytest.fixture(scope="module")
def other_stream() -> list[Event]:
    return make_stream("R-2")


def fields(event: Event) -> dict[str, Any]:
    return event.model_dump(exclude={"hash"})


# -- the event model ------------------------------------------------------------------------
def test_stream_is_real(events: list[Event]) -> None:
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 9  # open, add, approve, launch, enter (automatic), 3 x record, withdraw
    assert events[0].prev_hash == genesis_hash("R-1")
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert [e.type for e in events[:5]] == [
        "round.open",
        "unit.add",
        "round.approve",
        "round.launch",
        "unit.enter",
    ]
    assert events[4].automatic
    assert not events[3].automatic
    assert events[4].command_id == events[3].command_id
    assert events[0].from_state is None
    assert events[0].to_state == "prepare"
    assert events[-1].reason == "经核实不属实"


def test_json_round_trip(events: list[Event]) -> None:
    for e in events:
        text = e.model_dump_json()
        again = Event.model_validate_json(text)
        assert again == e
        assert again.hash == e.hash
        assert again.computed_hash() == again.hash
        assert again.canonical() == e.canonical()
        # and through plain JSON data, as a store would keep it
        assert Event.model_validate(json.loads(json.dumps(e.model_dump(mode="json")))) == e


def test_timestamps_are_stored_in_utc(events: list[Event]) -> None:
    first = events[0]
    assert first.timestamp == datetime(2026, 3, 2, 2, tzinfo=UTC)
    assert first.timestamp.utcoffset() == timedelta(0)
    assert first.timestamp.hour == 2  # 10:00 in Beijing
    assert '"timestamp":"2026-03-02T02:00:00Z"' in first.model_dump_json()
    assert all(e.timestamp.utcoffset() == timedelta(0) for e in events)


@pytest.mark.parametrize(
    "zone",
    [timezone(timedelta(hours=8)), ZoneInfo("America/New_York"), ZoneInfo("Asia/Shanghai"), UTC],
    ids=str,
)
def test_hash_does_not_depend_on_the_zone_given(events: list[Event], zone: Any) -> None:
    e = events[3]
    shifted = seal({**fields(e), "timestamp": e.timestamp.astimezone(zone)})
    assert shifted.timestamp.utcoffset() == timedelta(0)
    assert shifted.timestamp == e.timestamp
    assert shifted.hash == e.hash
    again = Event.model_validate_json(shifted.model_dump_json())
    assert again.hash == e.hash == again.computed_hash()


def test_naive_timestamps_are_refused(events: list[Event]) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        seal({**fields(events[0]), "timestamp": datetime(2026, 3, 2, 10)})


def test_payload_key_order_does_not_change_the_hash(events: list[Event]) -> None:
    e = events[0]
    flipped = dict(reversed(list(e.payload.items())))
    assert list(flipped) != list(e.payload)
    assert seal({**fields(e), "payload": flipped}).hash == e.hash


CHANGES: dict[str, Any] = {
    "id": "forged",
    "stream": "R-9",
    "version": 99,
    "type": "item.close",
    "subject": "P-9",
    "actor": OTHER,
    "timestamp": datetime(2026, 3, 2, 2, 0, 1, tzinfo=UTC),
    "from_state": "found",
    "to_state": "closed",
    "payload": {"unit_id": "U-2"},
    "reason": "改写",
    "attachments": ("ev/forged.pdf",),
    "command_id": "cmd-forged",
    "automatic": True,
    "definition": "problem-item@1#000000000000",
    "prev_hash": "0" * 64,
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_the_hash_covers_every_field(events: list[Event], field: str) -> None:
    assert set(CHANGES) == set(Event.model_fields) - {"hash"}
    e = events[5]
    changed = e.model_copy(update={field: CHANGES[field]})
    assert getattr(changed, field) != getattr(e, field)
    assert changed.computed_hash() != e.hash
    assert verify_chain("R-1", [*events[:5], changed, *events[6:]]).bad_version == 6


def test_events_are_immutable_and_strict(events: list[Event]) -> None:
    e = events[0]
    with pytest.raises(ValidationError, match="frozen"):
        e.to_state = "closed"  # type: ignore[misc]
    data = e.model_dump(mode="json")
    with pytest.raises(ValidationError, match="extra"):
        Event.model_validate({**data, "signature": "x"})
    with pytest.raises(ValidationError):
        Event.model_validate({**data, "type": "open"})  # no subject kind
    with pytest.raises(ValidationError):
        Event.model_validate({**data, "version": 0})
    with pytest.raises(ValidationError):
        Event.model_validate({**data, "hash": "not-a-hash"})


def test_event_accessors(events: list[Event]) -> None:
    record = events[5]
    assert record.kind == "item"
    assert record.event == "record"
    assert record.role == "inspection_team"
    assert record.actor.organization == "team-1"
    assert "hash" not in json.loads(record.canonical())


def test_genesis_hash() -> None:
    assert genesis_hash("R-1") == genesis_hash("R-1")
    assert genesis_hash("R-1") != genesis_hash("R-2")
    assert len(genesis_hash("R-1")) == 64
    assert int(genesis_hash("R-1"), 16) >= 0


# -- verify_chain -----------------------------------------------------------------------------
def test_an_intact_chain_verifies(events: list[Event]) -> None:
    report = verify_chain("R-1", events)
    assert isinstance(report, ChainReport)
    assert report.ok
    assert bool(report)
    assert report.checked == len(events)
    assert report.head == events[-1].hash
    assert report.bad_version is None
    assert report.bad_event_id is None
    empty = verify_chain("R-1", [])
    assert empty.ok
    assert empty.checked == 0
    assert empty.head == genesis_hash("R-1")


def bad(report: ChainReport, version: int, event_id: str | None, problem: str) -> None:
    assert not report.ok
    assert not report
    assert report.bad_version == version
    assert report.bad_event_id == event_id
    assert problem in report.problem
    assert report.problem.startswith(f"event {version} ")
    assert report.checked == version - 1


def test_modified_payload(events: list[Event]) -> None:
    chain = list(events)
    target = chain[5]
    chain[5] = target.model_copy(update={"payload": {**target.payload, "amount_involved": "0.00"}})
    report = verify_chain("R-1", chain)
    bad(report, 6, target.id, "content does not match its hash (modified)")
    assert report.head == events[4].hash


def test_modified_actor(events: list[Event]) -> None:
    chain = list(events)
    chain[2] = chain[2].model_copy(update={"actor": OTHER})
    bad(verify_chain("R-1", chain), 3, events[2].id, "modified")


def test_modified_and_resealed_event_breaks_the_next_link(events: list[Event]) -> None:
    chain = list(events)
    chain[2] = seal({**fields(chain[2]), "actor": OTHER})
    assert chain[2].computed_hash() == chain[2].hash
    bad(verify_chain("R-1", chain), 4, events[3].id, "does not link to the previous event")


def test_deleted_middle_event(events: list[Event]) -> None:
    chain = [e for e in events if e.version != 4]
    bad(verify_chain("R-1", chain), 4, events[4].id, "has version 5 where 4 was expected")


def test_inserted_event(events: list[Event]) -> None:
    forged = seal(
        {
            **fields(events[5]),
            "id": "forged",
            "subject": "P-99",
            "version": 6,
            "prev_hash": events[4].hash,
        }
    )
    chain = [*events[:5], forged, *events[5:]]
    # the forgery itself is sealed and linked; the event it displaced gives it away
    bad(verify_chain("R-1", chain), 7, events[5].id, "has version 6 where 7 was expected")
    careless = [*events[:5], events[7], *events[5:]]
    bad(verify_chain("R-1", careless), 6, events[7].id, "has version 8 where 6 was expected")


def test_swapped_events(events: list[Event]) -> None:
    chain = list(events)
    chain[5], chain[6] = chain[6], chain[5]
    bad(verify_chain("R-1", chain), 6, events[6].id, "has version 7 where 6 was expected")


def test_event_moved_from_another_stream(events: list[Event], other_stream: list[Event]) -> None:
    chain = list(events)
    chain[5] = other_stream[5]
    bad(verify_chain("R-1", chain), 6, other_stream[5].id, "belongs to stream 'R-2'")


def test_event_relabelled_to_another_stream(other_stream: list[Event]) -> None:
    # an event resealed under the stream id R-1 still chains to R-2's genesis
    moved = seal({**fields(other_stream[0]), "stream": "R-1"})
    bad(verify_chain("R-1", [moved]), 1, moved.id, "does not link to the previous event")


def test_truncated_tail_is_seen_only_against_the_head(events: list[Event]) -> None:
    report = verify_chain("R-1", events[:-2])
    assert report.ok  # the events alone cannot show it ...
    assert report.checked == len(events) - 2
    assert report.head != events[-1].hash  # ... the head a store keeps does
    assert report.head == events[-3].hash


def test_first_bad_event_is_named_when_there_are_several(events: list[Event]) -> None:
    chain = list(events)
    chain[7] = chain[7].model_copy(update={"reason": "x"})
    chain[3] = chain[3].model_copy(update={"reason": "y"})
    bad(verify_chain("R-1", chain), 4, events[3].id, "modified")
