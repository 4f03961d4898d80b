"""Schemas: pydantic models for every record, command and event, JSON round-trip,
exported JSON Schema; bad input refused with a located error and no change
(issue 2, item 8)."""

from __future__ import annotations

import itertools
import json
import runpy
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from helpers import open_on_site
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    Command,
    DefinitionData,
    Engine,
    Event,
    GuardRejected,
    InvalidCommand,
    ItemRecord,
    LeadRecord,
    ManualClock,
    MeasureRecord,
    NotFound,
    OutcomeFigures,
    Role,
    RoundRecord,
    RoundSnapshot,
    UnitRecord,
    json_schemas,
    outcome_figures,
    parse_command,
    snapshot,
)
from xuncha_flow.payloads import PAYLOADS
from xuncha_flow.testing import RoundDriver

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "simulate_round.py"
ROUND = "R-1"
TEAM = Actor(id="team-1-leader", role=Role.INSPECTION_TEAM, organization="team-1")
UNIT = Actor(id="edu-secretary", role=Role.INSPECTED_ORGANIZATION, organization="org-edu")
OFFICE = Actor(id="xcb-staff", role=Role.INSPECTION_OFFICE, organization="xcb")

MODELS: dict[str, type[BaseModel]] = {
    "Actor": Actor,
    "Command": Command,
    "Event": Event,
    "DefinitionData": DefinitionData,
    "RoundRecord": RoundRecord,
    "UnitRecord": UnitRecord,
    "ItemRecord": ItemRecord,
    "MeasureRecord": MeasureRecord,
    "LeadRecord": LeadRecord,
    "RoundSnapshot": RoundSnapshot,
    "OutcomeFigures": OutcomeFigures,
}


# -- a real round -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLE), run_name="simulate_round_under_test")


@pytest.fixture(scope="module")
def simulated(example: dict[str, Any]) -> tuple[Engine, OutcomeFigures]:
    engine, figures = example["simulate"]()
    return engine, figures


@pytest.fixture(scope="module")
def round_id(example: dict[str, Any]) -> str:
    return str(example["ROUND"])


# -- json_schemas -------------------------------------------------------------------------
def test_every_model_has_a_schema() -> None:
    schemas = json_schemas()
    for name, model in MODELS.items():
        assert name in schemas, name
        assert schemas[name] == model.model_json_schema()
    payloads = {k for k in schemas if k.startswith("payload:")}
    assert payloads == {f"payload:{kind}.{event}" for kind, event in PAYLOADS}
    for (kind, event), model in PAYLOADS.items():
        assert schemas[f"payload:{kind}.{event}"] == model.model_json_schema()
    json.dumps(schemas, ensure_ascii=False)  # plain JSON all the way down


def test_schemas_describe_the_fields_and_forbid_others() -> None:
    schemas = json_schemas()
    for name, model in MODELS.items():
        schema = schemas[name]
        assert schema["type"] == "object"
        assert set(schema["properties"]) == set(model.model_fields), name
        assert schema.get("additionalProperties") is False, name
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert set(schema.get("required", ())) == required, name
    event = schemas["Event"]
    assert event["properties"]["timestamp"]["format"] == "date-time"
    assert {"type": "null"} in event["properties"]["from_state"]["anyOf"]  # None on creation
    record = schemas["payload:item.record"]["properties"]
    assert record["source"] == {"$ref": "#/$defs/ItemSource", "default": "other"}
    assert set(schemas["payload:item.record"]["required"]) == {"unit_id", "description"}


def test_json_of_real_instances_matches_the_schema(
    simulated: tuple[Engine, OutcomeFigures], round_id: str
) -> None:
    engine, figures = simulated
    schemas = json_schemas()
    snap = snapshot(engine.state(round_id))
    samples = {
        "Event": next(engine.log.read(round_id)),
        "RoundSnapshot": snap,
        "RoundRecord": snap.round,
        "ItemRecord": snap.items[0],
        "OutcomeFigures": figures,
        "Actor": TEAM,
    }
    for name, instance in samples.items():
        data = json.loads(instance.model_dump_json())
        schema = schemas[name]
        assert set(schema["required"]) <= set(data) <= set(schema["properties"]), name


# -- round trips on a real round ----------------------------------------------------------
def test_snapshot_round_trips(simulated: tuple[Engine, OutcomeFigures], round_id: str) -> None:
    engine, _ = simulated
    snap = snapshot(engine.state(round_id))
    assert len(snap.items) > 150
    assert len(snap.leads) == 3
    assert len(snap.units) == 5
    assert RoundSnapshot.model_validate_json(snap.model_dump_json()) == snap
    assert RoundRecord.model_validate_json(snap.round.model_dump_json()) == snap.round
    groups: list[tuple[type[BaseModel], tuple[BaseModel, ...]]] = [
        (UnitRecord, snap.units),
        (ItemRecord, snap.items),
        (MeasureRecord, snap.measures),
        (LeadRecord, snap.leads),
    ]
    for model, records in groups:
        assert records
        for record in records:
            assert model.model_validate_json(record.model_dump_json()) == record


def test_snapshot_carries_the_rich_records(
    simulated: tuple[Engine, OutcomeFigures], round_id: str
) -> None:
    engine, _ = simulated
    snap = RoundSnapshot.model_validate_json(snapshot(engine.state(round_id)).model_dump_json())
    by_id = {i.id: i for i in snap.items}
    rejected = by_id["U-HEALTH-P04"]
    assert rejected.rejections[0].reason == "佐证材料不足，二次整改"
    assert rejected.submission is not None
    assert rejected.submission.evidence
    assert rejected.verification is not None
    assert rejected.verification.by.role is Role.SUPERVISION_OFFICE
    assert by_id["U-CITYINV-P07"].milestones[0].title == "完成资产清查"
    assert by_id["U-TOWN-P05"].children == tuple(f"U-TOWN-P05-{k}" for k in (1, 2, 3))
    assert isinstance(rejected.amount_recovered, Decimal)
    assert snap.round.opened_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_every_event_round_trips(simulated: tuple[Engine, OutcomeFigures], round_id: str) -> None:
    engine, _ = simulated
    events = list(engine.log.read(round_id))
    assert len(events) > 2000
    for e in events:
        again = Event.model_validate_json(e.model_dump_json())
        assert again == e
        assert again.computed_hash() == e.hash


def test_figures_round_trip(simulated: tuple[Engine, OutcomeFigures], round_id: str) -> None:
    engine, figures = simulated
    assert figures == outcome_figures(engine.state(round_id))
    again = OutcomeFigures.model_validate_json(figures.model_dump_json())
    assert again == figures
    assert again.units == figures.units
    assert again.economic_losses_recovered == figures.economic_losses_recovered
    assert again.completion_rate == figures.completion_rate


def test_definition_data_round_trips(simulated: tuple[Engine, OutcomeFigures]) -> None:
    engine, _ = simulated
    for definition in engine.process.definitions.values():
        data = definition.data
        assert DefinitionData.model_validate_json(data.model_dump_json()) == data


def commands_of(engine: Engine, round_id: str) -> Iterator[tuple[Command, datetime]]:
    """The commands that made the round, rebuilt from its log, with their times."""
    process = engine.process_of(round_id)
    for e in engine.log.read(round_id):
        if e.automatic:
            continue
        payload = dict(e.payload)
        if e.type == "round.open":
            payload.pop("definitions")
        yield (
            Command(
                command_id=e.command_id,
                round_id=e.stream,
                kind=e.kind,
                subject=e.subject,
                event=process.definition(e.kind).event_by_value(e.event).name,
                actor=e.actor,
                payload=payload,
                reason=e.reason,
                attachments=e.attachments,
            ),
            e.timestamp,
        )


def test_commands_round_trip(simulated: tuple[Engine, OutcomeFigures], round_id: str) -> None:
    engine, _ = simulated
    n = 0
    for command, _when in commands_of(engine, round_id):
        text = command.model_dump_json()
        assert parse_command(text) == command
        assert parse_command(text.encode()) == command
        assert parse_command(json.loads(text)) == command
        assert Command.model_validate_json(text) == command
        n += 1
    assert n > 1000


def test_json_commands_rebuild_the_log(engine: Engine) -> None:
    unit = Actor(id="edu-secretary", role=Role.INSPECTED_ORGANIZATION, organization="org-edu")
    engine.fire(
        unit,
        ROUND,
        "item",
        "P-IM",
        "submit",
        {"amount_recovered": "12.30"},
        attachments=["ev/a.pdf", "ev/b.pdf"],
    )
    jdb = Actor(id="jdb-staff", role=Role.SUPERVISION_OFFICE, organization="jdb")
    engine.fire(jdb, ROUND, "item", "P-IM", "reject", reason="佐证材料不足")
    events = list(engine.log.read(ROUND))
    clock = ManualClock(events[0].timestamp.astimezone(DEFAULT_TIMEZONE))
    ids = iter(e.id for e in events)
    again = Engine(clock=clock, process=engine.process, ids=lambda: next(ids))
    for command, when in commands_of(engine, ROUND):
        clock.set(when)
        again.execute(command.model_dump_json())
    # the JSON commands alone rebuild the very same log, hash for hash
    assert list(again.log.read(ROUND)) == events
    assert again.state(ROUND) == engine.state(ROUND)
    assert events[-1].reason == "佐证材料不足"
    assert events[-2].attachments == ("ev/a.pdf", "ev/b.pdf")


def test_actor_round_trips() -> None:
    for actor in (TEAM, UNIT, OFFICE):
        assert Actor.model_validate_json(actor.model_dump_json()) == actor
    assert (
        Actor.model_validate({"id": " a ", "role": "supervision_office", "organization": "jdb"}).id
        == "a"
    )


# -- bad input ----------------------------------------------------------------------------
def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=DEFAULT_TIMEZONE)


@pytest.fixture
def engine() -> Engine:
    """A round on site: one unit U-1 (org-edu, team-1), item P-1 found, P-IM an
    immediate fix."""
    clock = ManualClock(at(3, 2))
    counter = itertools.count(1)
    eng = Engine(clock=clock, ids=lambda: f"ev-{next(counter):04d}")
    drv = open_on_site(eng, clock, ROUND)
    drv.do("item", "P-1", "record", {"unit_id": "U-1", "description": "问题一"})
    drv.do("item", "P-IM", "record", {"unit_id": "U-1", "description": "立行立改"})
    drv.do("item", "P-IM", "order_immediate_fix")
    return eng


def command(**changes: Any) -> dict[str, Any]:
    """A valid command (record item P-9), as JSON data, with ``changes``."""
    data: dict[str, Any] = {
        "command_id": "cmd-bad",
        "round_id": ROUND,
        "kind": "item",
        "subject": "P-9",
        "event": "record",
        "actor": TEAM.model_dump(mode="json"),
        "payload": {"unit_id": "U-1", "description": "问题", "amount_involved": "10.00"},
    }
    data.update(changes)
    return data


def payload(**changes: Any) -> dict[str, Any]:
    return {**command()["payload"], **changes}


def unchanged(engine: Engine, attempt: Any, error: type[Exception] = InvalidCommand) -> Any:
    """Run ``attempt``, expect ``error``, and check that nothing changed."""
    state = engine.state(ROUND)
    before = (snapshot(state), state.version, state.head, engine.log.version(ROUND))
    length = len(engine.log)  # type: ignore[arg-type]
    with pytest.raises(error) as info:
        attempt()
    state = engine.state(ROUND)
    assert (snapshot(state), state.version, state.head, engine.log.version(ROUND)) == before
    assert len(engine.log) == length  # type: ignore[arg-type]
    assert engine.replay(ROUND) == state
    return info.value


def locs(exc: InvalidCommand) -> list[tuple[Any, ...]]:
    assert exc.errors, "no located error"
    for e in exc.errors:
        assert set(e) >= {"loc", "msg", "type"}
    return [tuple(e["loc"]) for e in exc.errors]


def test_the_valid_command_is_accepted(engine: Engine) -> None:
    # the baseline every bad variant below departs from
    (event,) = engine.execute(json.dumps(command()))
    assert event.type == "item.record"
    assert engine.state(ROUND).items["P-9"].amount_involved == Decimal("10.00")


@pytest.mark.parametrize(
    "text",
    ['{"command_id": "c-1", "round_id": ', "", "not json", b"\xff\xfe{}", "[1, 2]", "null"],
    ids=["truncated", "empty", "words", "not-utf8", "array", "null"],
)
def test_malformed_json(engine: Engine, text: str | bytes) -> None:
    exc = unchanged(engine, lambda: engine.execute(text))
    assert locs(exc) == [()]
    assert exc.errors[0]["type"] in {"json_invalid", "model_type"}
    assert str(exc).startswith("invalid command: ")


BAD_COMMANDS: dict[str, tuple[dict[str, Any], tuple[Any, ...], str]] = {
    "unknown kind": (command(kind="team"), ("kind",), "literal_error"),
    "event not an identifier": (command(event="Close!"), ("event",), "string_pattern_mismatch"),
    "round id with a slash": (command(round_id="R/1"), ("round_id",), "id_invalid"),
    "missing actor": (
        {k: v for k, v in command().items() if k != "actor"},
        ("actor",),
        "missing",
    ),
    "unknown role": (
        command(actor={**TEAM.model_dump(mode="json"), "role": "chief"}),
        ("actor", "role"),
        "enum",
    ),
    "extra command field": (command(priority="high"), ("priority",), "extra_forbidden"),
    "extra actor field": (
        command(actor={**TEAM.model_dump(mode="json"), "nickname": "x"}),
        ("actor", "nickname"),
        "extra_forbidden",
    ),
    "payload not an object": (command(payload=[1, 2]), ("payload",), "dict_type"),
    "attachments not a list": (command(attachments=5), ("attachments",), "tuple_type"),
    "wrong payload type": (
        command(payload=payload(unit_id=123)),
        ("payload", "unit_id"),
        "string_type",
    ),
    "not a number": (
        command(payload=payload(amount_involved="lots")),
        ("payload", "amount_involved"),
        "decimal_parsing",
    ),
    "not a boolean": (
        command(payload=payload(common="maybe")),
        ("payload", "common"),
        "bool_parsing",
    ),
    "unknown enum value": (
        command(payload=payload(source="rumour")),
        ("payload", "source"),
        "enum",
    ),
    "extra payload field": (
        command(payload=payload(colour="red")),
        ("payload", "colour"),
        "extra_forbidden",
    ),
    "missing payload field": (
        command(payload={"unit_id": "U-1"}),
        ("payload", "description"),
        "missing",
    ),
    "negative amount": (
        command(payload=payload(amount_involved="-0.01")),
        ("payload", "amount_involved"),
        "greater_than_equal",
    ),
    "fractions of a fen": (
        command(payload=payload(amount_involved="1.005")),
        ("payload", "amount_involved"),
        "decimal_max_places",
    ),
    "negative amount recovered": (
        command(
            subject="P-IM",
            event="submit",
            actor=UNIT.model_dump(mode="json"),
            payload={"amount_recovered": -5},
            attachments=["ev/x.pdf"],
        ),
        ("payload", "amount_recovered"),
        "greater_than_equal",
    ),
    "negative head count": (
        command(
            subject="P-IM",
            event="submit",
            actor=UNIT.model_dump(mode="json"),
            payload={"people_held_accountable": -1},
            attachments=["ev/x.pdf"],
        ),
        ("payload", "people_held_accountable"),
        "greater_than_equal",
    ),
    "impossible date": (
        command(
            kind="unit",
            subject="U-1",
            event="deliver_feedback",
            payload={"delivered_on": "2026-02-30"},
        ),
        ("payload", "delivered_on"),
        "date_from_datetime_parsing",
    ),
    "not a date": (
        command(
            kind="lead",
            subject="L-1",
            event="transfer",
            actor=OFFICE.model_dump(mode="json"),
            payload={
                "receiver": "discipline_commission",
                "receiver_org": "jw",
                "summary": "线索",
                "transferred_on": "next week",
            },
        ),
        ("payload", "transferred_on"),
        "date_from_datetime_parsing",
    ),
    "score over 100": (
        command(
            kind="unit",
            subject="U-1",
            event="evaluate",
            actor=OFFICE.model_dump(mode="json"),
            payload={"score": 100.5, "grade": "good"},
        ),
        ("payload", "score"),
        "less_than_equal",
    ),
    "refinement into one child": (
        command(
            subject="P-1", event="refine", payload={"children": [{"id": "C", "description": "x"}]}
        ),
        ("payload", "children"),
        "too_short",
    ),
}


@pytest.mark.parametrize("case", list(BAD_COMMANDS))
def test_bad_command_is_located_and_changes_nothing(engine: Engine, case: str) -> None:
    data, loc, kind = BAD_COMMANDS[case]
    for form in (data, json.dumps(data), json.dumps(data).encode()):
        exc = unchanged(engine, lambda form=form: engine.execute(form))
        assert loc in locs(exc), (case, exc.errors)
        assert kind in {e["type"] for e in exc.errors}
    with pytest.raises(InvalidCommand):
        engine.preview(data)


def test_impossible_date_through_fire(engine: Engine) -> None:
    exc = unchanged(
        engine,
        lambda: engine.fire(
            TEAM, ROUND, "unit", "U-1", "deliver_feedback", {"delivered_on": "2026-02-30"}
        ),
    )
    assert locs(exc) == [("payload", "delivered_on")]
    assert engine.state(ROUND).units["U-1"].feedback_on is None


def test_on_site_window_ending_before_it_starts(engine: Engine) -> None:
    add = {
        "name": "县卫健局党组",
        "organization_id": "org-health",
        "onsite_start": "2026-04-17",
        "onsite_end": "2026-03-09",
    }
    exc = unchanged(engine, lambda: engine.fire(OFFICE, ROUND, "unit", "U-2", "add", add))
    assert locs(exc) == [("payload",)]
    assert "the on-site period ends (2026-03-09) before it starts (2026-04-17)" in str(exc)
    assert "U-2" not in engine.state(ROUND).units


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"kind": "linked"}, "a linked round needs parent_round_id"),
        ({"kind": "lookback"}, "names the rounds it looks back on"),
        ({"kind": "regular", "lookback_of": ["R-0"]}, "only a look-back round has lookback_of"),
        ({"planned_start": "2026-09-01", "planned_end": "2026-03-01"}, "the round ends"),
        ({"level": "township"}, "Input should be"),
    ],
    ids=[
        "linked-without-parent",
        "lookback-without-rounds",
        "lookback-of-regular",
        "window",
        "level",
    ],
)
def test_bad_round_is_not_opened(extra: dict[str, Any], message: str) -> None:
    counter = itertools.count(1)
    eng = Engine(clock=ManualClock(at(3, 2)), ids=lambda: f"ev-{next(counter)}")
    data = {"name": "联动巡察", "level": "city", **extra}
    with pytest.raises(InvalidCommand, match=message) as info:
        eng.fire(OFFICE, "R-LINK", "round", "R-LINK", "open", data)
    assert locs(info.value)[0][0] == "payload"
    assert eng.log.version("R-LINK") == 0
    assert eng.rounds() == []
    with pytest.raises(NotFound):
        eng.state("R-LINK")
    # with the parent the linked round opens
    if extra == {"kind": "linked"}:
        eng.fire(OFFICE, "R-LINK", "round", "R-LINK", "open", {**data, "parent_round_id": "R-0"})
        assert eng.state("R-LINK").round.parent_round_id == "R-0"  # type: ignore[union-attr]


def test_unknown_event(engine: Engine) -> None:
    exc = unchanged(engine, lambda: engine.execute(command(subject="P-1", event="teleport")))
    assert "unknown event 'teleport' for a item" in str(exc)
    assert "confirm" in str(exc)  # the known events are listed


@pytest.mark.parametrize("reason", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_missing_reason_where_one_is_required(engine: Engine, reason: str | None) -> None:
    exc = unchanged(
        engine,
        lambda: engine.fire(TEAM, ROUND, "item", "P-1", "withdraw", reason=reason),
    )
    assert "item.withdraw requires a reason" in str(exc)
    assert engine.state(ROUND).items["P-1"].state == "found"
    engine.fire(TEAM, ROUND, "item", "P-1", "withdraw", reason="经核实不属实")
    assert engine.state(ROUND).items["P-1"].state == "withdrawn"


def test_submission_without_evidence(engine: Engine) -> None:
    exc = unchanged(
        engine,
        lambda: engine.fire(UNIT, ROUND, "item", "P-IM", "submit", {"summary": "已整改"}),
        GuardRejected,
    )
    assert exc.rules == ("evidence_attached",)
    assert "needs evidence" in str(exc)
    assert engine.state(ROUND).items["P-IM"].state == "immediate"
    engine.fire(
        UNIT, ROUND, "item", "P-IM", "submit", {"summary": "已整改"}, attachments=["ev/1.pdf"]
    )
    assert engine.state(ROUND).items["P-IM"].state == "submitted"


def test_payload_instances_are_accepted_by_fire(engine: Engine) -> None:
    from xuncha_flow.payloads import ItemSource, RecordItem

    good = RecordItem(unit_id="U-1", description="问题", source=ItemSource.PETITION)
    (event,) = engine.fire(TEAM, ROUND, "item", "P-2", "record", good)
    assert event.payload["source"] == "petition"
    assert event.payload["amount_involved"] == "0"


# -- errors locate the field -------------------------------------------------------
_TEAM = Actor(id="team-1-leader", role=Role.INSPECTION_TEAM, organization="team-1")


def _on_site() -> Engine:
    clock = ManualClock(datetime(2026, 3, 2, 10, tzinfo=DEFAULT_TIMEZONE))
    n = itertools.count(1)
    engine = Engine(clock=clock, ids=lambda: f"ev-{next(n)}")
    drv = RoundDriver(engine, "R-1")
    drv.round("open", {"name": "测试轮次", "level": "county"})
    drv.do("unit", "U-1", "add", {"name": "x", "organization_id": "org-edu", "team_id": "team-1"})
    drv.round("approve")
    drv.round("launch")
    drv.do("item", "P-1", "record", {"unit_id": "U-1", "description": "问题"})
    return engine


def test_unknown_event_error_locates_the_event_field() -> None:
    engine = _on_site()
    with pytest.raises(InvalidCommand) as info:
        engine.fire(_TEAM, "R-1", "item", "P-1", "teleport")
    assert [tuple(e["loc"]) for e in info.value.errors] == [("event",)]


def test_missing_reason_error_locates_the_reason_field() -> None:
    engine = _on_site()
    with pytest.raises(InvalidCommand) as info:
        engine.fire(_TEAM, "R-1", "item", "P-1", "withdraw")
    assert [tuple(e["loc"]) for e in info.value.errors] == [("reason",)]
