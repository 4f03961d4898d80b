"""Projections (SQL stores only): written with the events, equal to the engine's
state, rebuildable from the log, and queried without loading rounds.

Every test runs on a SQLite file and on PostgreSQL. The check is always the same:
each view row equals what the engine's state (the fold of the log by the engine)
says about that subject, for every unit, item, measure and deadline.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from deadline_helpers import SH, DWorld
from xuncha_flow import DeadlinePolicy, Engine, Event, Process, replay
from xuncha_flow._model import RoundState
from xuncha_flow.stores import SqlEventLog, sqlite_engine

from .conftest import PG_URL
from .contract import simulation

OpenLog = Callable[..., SqlEventLog]


@pytest.fixture(params=["sqlite", "postgres"])
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenLog]:
    """Opens a store (``cls``, SqlEventLog by default) on the test's database."""
    if request.param == "sqlite":
        db = sqlite_engine(tmp_path / "views.db")
        options: dict[str, Any] = {}
    else:
        options = {"schema": request.getfixturevalue("pg_schema")}
        db = sa.create_engine(PG_URL)

    def open_(cls: type[SqlEventLog] = SqlEventLog) -> SqlEventLog:
        return cls(db, **options)

    yield open_
    db.dispose()


# -- what the engine says ----------------------------------------------------------------
def _unit_of(state: RoundState, kind: str, subject: str) -> str | None:
    if kind == "unit":
        return subject
    if kind == "item":
        return state.items[subject].unit_id
    if kind == "measure":
        return state.items[state.measures[subject].item_id].unit_id
    return None


def expected(state: RoundState) -> dict[str, dict[str, tuple[Any, ...]]]:
    """The view rows of one round, as the engine's state has them."""
    s = state.stream
    return {
        "units": {u.id: (s, u.name, u.organization_id, u.state) for u in state.units.values()},
        "items": {
            i.id: (
                s,
                i.unit_id,
                state.units[i.unit_id].organization_id,
                i.parent_id,
                i.state,
                i.description,
            )
            for i in state.items.values()
        },
        "measures": {
            m.id: (
                s,
                m.item_id,
                state.items[m.item_id].unit_id,
                m.state,
                m.text,
                m.responsible_leader,
                m.responsible_person,
                m.due_date,
            )
            for m in state.measures.values()
        },
        "deadlines": {
            d.id: (
                s,
                d.rule,
                d.subject_kind,
                d.subject,
                _unit_of(state, d.subject_kind, d.subject),
                d.state,
                d.due,
                d.due_at,
                d.paused_at,
                d.generation,
            )
            for d in state.deadlines.values()
        },
    }


def projected(log: SqlEventLog, stream: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    """The view rows of one round, as the store has them."""
    return {
        "units": {
            u.id: (u.stream, u.name, u.organization_id, u.state) for u in log.units(stream=stream)
        },
        "items": {
            i.id: (i.stream, i.unit_id, i.organization_id, i.parent_id, i.state, i.description)
            for i in log.items(stream=stream)
        },
        "measures": {
            m.id: (
                m.stream,
                m.item_id,
                m.unit_id,
                m.state,
                m.text,
                m.responsible_leader,
                m.responsible_person,
                m.due_date,
            )
            for m in log.measures(stream=stream)
        },
        "deadlines": {
            d.id: (
                d.stream,
                d.rule,
                d.subject_kind,
                d.subject,
                d.unit_id,
                d.state,
                d.due,
                d.due_at,
                d.paused_at,
                d.generation,
            )
            for d in log.deadlines(stream=stream)
        },
    }


def assert_agrees(log: SqlEventLog, state: RoundState) -> None:
    want, got = expected(state), projected(log, state.stream)
    for view in want:
        assert got[view] == want[view], view


def everything(log: SqlEventLog) -> tuple[list[Any], ...]:
    return (log.units(), log.items(), log.measures(), log.deadlines())


class CheckedLog(SqlEventLog):
    """After every ``every``-th write and every sweep, checks the projections of the
    round written against the replay of its log: the views, and the overdue list,
    agree with the engine's fold all along."""

    every = 40
    processes: Sequence[Process] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0
        self.checks = 0
        self.overdue_seen = 0

    def record(
        self, stream: str, expected_version: int, events: Sequence[Event], **due: Any
    ) -> None:
        super().record(stream, expected_version, events, **due)
        self.writes += 1
        swept = any(e.type == "deadline.escalate" for e in events)
        if events and (swept or self.writes % self.every == 0):
            state = replay(stream, self.read(stream), self.processes)
            assert_agrees(self, state)
            at = events[-1].timestamp
            late = sorted(
                (d.due_at, d.id)
                for d in state.deadlines.values()
                if d.state == "running" and d.due_at <= at
            )
            assert [d.id for d in self.overdue(at, stream=stream)] == [i for _, i in late]
            self.checks += 1
            self.overdue_seen += len(late)


# -- tests -------------------------------------------------------------------------------
def test_the_projections_agree_with_the_engine_all_through_a_simulated_round(
    open_log: OpenLog,
) -> None:
    sim = simulation()
    CheckedLog.processes = [
        Process.standard(deadlines=DeadlinePolicy.standard()),
    ]
    log = open_log(CheckedLog)
    assert isinstance(log, CheckedLog)
    engine, _ = sim.simulate(log=log)
    round_id = str(sim.ROUND)
    state = engine.state(round_id)
    assert log.checks >= 10  # checked along the way, not only at the end
    assert log.overdue_seen > 0  # and overdue lists were among what was checked
    assert_agrees(log, state)
    assert len(log.items(stream=round_id)) == len(state.items) > 50
    assert any(i.parent_id for i in log.items())  # the refined item's children
    # overdue lists equal the engine's, at several times of the round
    assert state.round is not None
    for day in (date(2026, 6, 1), date(2026, 7, 20), date(2026, 9, 1), date(2027, 3, 1)):
        at = datetime(day.year, day.month, day.day, tzinfo=SH)
        ours = [(d.stream, d.id) for d in log.overdue(at)]
        assert ours == [(r, d.id) for r, d in engine.overdue(at)]


def test_a_rebuilt_projection_equals_the_live_one(open_log: OpenLog) -> None:
    log = open_log()
    sim = simulation()
    engine, _ = sim.simulate(log=log)
    live = everything(log)
    assert all(live)
    total = sum(log.version(s) for s in log.streams())
    assert log.rebuild_projections() == total
    assert everything(log) == live
    # views damaged behind the store's back are rebuilt from the log
    db = log.bind
    assert isinstance(db, sa.Engine)
    with db.begin() as conn:
        conn.execute(sa.delete(log.tables.items))
        conn.execute(sa.update(log.tables.measures).values(state="done", responsible_person=None))
    assert everything(log) != live
    assert open_log().rebuild_projections() == total
    assert everything(log) == live
    assert_agrees(log, engine.state(str(sim.ROUND)))


def test_revisions_refinements_pauses_and_extensions_are_projected(open_log: OpenLog) -> None:
    log = open_log()
    w = DWorld(log=log)
    w.to_feedback({"U-1": ["P-1", "P-2", "P-3"], "U-2": ["P-4"]})
    assert_agrees(log, w.state)
    w.do("item", "P-1", "claim")
    w.do(
        "item",
        "P-3",
        "refine",
        {
            "children": [
                {"id": "P-3a", "description": "细化一"},
                {"id": "P-3b", "description": "二"},
            ]
        },
    )
    assert_agrees(log, w.state)
    assert {i.id: i.parent_id for i in log.items(stream=w.round_id) if i.parent_id} == {
        "P-3a": "P-3",
        "P-3b": "P-3",
    }
    w.claim_all("U-1")
    w.claim_all("U-2")
    for item in ("P-1", "P-2", "P-3a", "P-3b", "P-4"):
        w.add_measure(item)
    later = w.feedback_day + timedelta(days=50)
    w.do(
        "measure",
        "M-P-2-1",
        "revise",
        {"responsible_person": "person-2", "due_date": later.isoformat(), "text": "改"},
    )
    assert_agrees(log, w.state)
    for unit in ("U-1", "U-2"):
        w.do("unit", unit, "submit_plan")
        w.do("unit", unit, "approve_plan")
    assert_agrees(log, w.state)
    paused = "measure_due:M-P-1-1"
    w.move_to(w.feedback_day + timedelta(days=20))
    w.do("deadline", paused, "pause", reason="客观原因暂停")
    assert_agrees(log, w.state)
    w.move_to(w.feedback_day + timedelta(days=23), hour=15)
    w.do("deadline", paused, "resume", reason="恢复")
    assert_agrees(log, w.state)
    # paused 3 days and 5 hours: the deadline moves 4 days (a part day counts)
    assert w.deadline(paused).due == w.deadline(paused).original_due + timedelta(days=4)
    extended = "measure_due:M-P-4-1"
    w.extend(extended, w.deadline(extended).due + timedelta(days=30))
    assert_agrees(log, w.state)
    assert [d.generation for d in log.deadlines() if d.id == extended] == [2]
    report = w.sweep_at(datetime(2026, 7, 20, tzinfo=SH))
    assert report.overdue
    w.do_measures("P-1")
    w.finish("P-1")
    assert_agrees(log, w.state)
    for at in (datetime(2026, 6, 27, tzinfo=SH), datetime(2026, 8, 1, tzinfo=SH)):
        assert [d.id for d in log.overdue(at)] == [d.id for _, d in w.engine.overdue(at)]
        assert [d.id for d in log.overdue(at, unit="U-2")] == [
            d.id
            for _, d in w.engine.overdue(at)
            if _unit_of(w.state, d.subject_kind, d.subject) == "U-2"
        ]
    # a fresh store object and a rebuild see the same
    before = everything(log)
    again = open_log()
    assert everything(again) == before
    again.rebuild_projections()
    assert everything(again) == before


def test_queries_filter_by_round_unit_state_person_and_due_date(open_log: OpenLog) -> None:
    log = open_log()
    a = DWorld(
        round_id="R-A", log=log, units={"U-1": ("org-1", "team-1"), "U-2": ("org-3", "team-1")}
    )
    b = DWorld(
        round_id="R-B",
        engine=a.engine,
        clock=a.clock,
        start=a.clock.now(),
        units={"U-1": ("org-2", "team-1"), "U-2": ("org-3", "team-1")},
    )
    worlds = [a, b]
    for w in worlds:
        w.to_feedback({"U-1": ["P-1", "P-2"], "U-2": ["P-3"]})
        w.claim_all("U-1")
        w.claim_all("U-2")
        for n, item in enumerate(("P-1", "P-2", "P-3")):
            person = "person-x" if item != "P-2" else "person-y"
            due = w.feedback_day + timedelta(days=30 + 10 * n)
            w.add_measure(item, due=due, responsible_person=person)
    a.do("unit", "U-1", "submit_plan")
    a.do("unit", "U-1", "approve_plan")

    assert [i.id for i in log.items(stream="R-A")] == ["P-1", "P-2", "P-3"]
    assert [(i.stream, i.id) for i in log.items(unit="U-1")] == [
        ("R-A", "P-1"),
        ("R-A", "P-2"),
        ("R-B", "P-1"),
        ("R-B", "P-2"),
    ]
    assert [(i.stream, i.id) for i in log.items(organization="org-3")] == [
        ("R-A", "P-3"),
        ("R-B", "P-3"),
    ]
    assert [(i.stream, i.id) for i in log.items(state="rectifying")] == [
        ("R-A", "P-1"),
        ("R-A", "P-2"),
    ]
    assert len(log.items(state=["rectifying", "claimed"])) == 6
    assert [(i.stream, i.id) for i in log.items(responsible_person="person-y")] == [
        ("R-A", "P-2"),
        ("R-B", "P-2"),
    ]
    cutoff = a.feedback_day + timedelta(days=40)  # P-1's measures (day 30) only
    assert [(i.stream, i.id) for i in log.items(due_before=cutoff)] == [
        ("R-A", "P-1"),
        ("R-B", "P-1"),
    ]
    mine = log.measures(responsible_person="person-x")
    assert [(m.stream, m.id) for m in mine] == [
        ("R-A", "M-P-1-1"),
        ("R-B", "M-P-1-1"),
        ("R-A", "M-P-3-1"),
        ("R-B", "M-P-3-1"),
    ]  # earliest due first
    assert all(m.due_date is not None for m in mine)
    assert [m.id for m in log.measures(responsible_person="person-x", due_before=cutoff)] == [
        "M-P-1-1",
        "M-P-1-1",
    ]
    assert [m.id for m in log.measures(stream="R-B", item="P-3")] == ["M-P-3-1"]
    assert [m.id for m in log.measures(stream="R-A", unit="U-1", state="in_progress")] == []
    assert len(log.measures(stream="R-A", unit="U-1", state="planned")) == 2
    assert [u.id for u in log.units(organization="org-1")] == ["U-1"]
    assert [(u.stream, u.state) for u in log.units(state="rectifying")] == [("R-A", "rectifying")]
    running = log.deadlines(state="running")
    assert {d.stream for d in running} == {"R-A", "R-B"}
    assert [d.due_at for d in running] == sorted(d.due_at for d in running)
    assert all(d.due_at.tzinfo is not None for d in running)
    far = datetime(2030, 1, 1, tzinfo=SH)
    assert {(d.stream, d.id) for d in log.overdue(far)} == {(d.stream, d.id) for d in running}
    assert {d.stream for d in log.overdue(far, stream="R-B")} == {"R-B"}
    for w in worlds:
        assert_agrees(log, w.state)
    with pytest.raises(ValueError, match="timezone-aware"):
        log.overdue(datetime(2030, 1, 1))


def test_the_views_are_written_in_the_events_transaction(open_log: OpenLog) -> None:
    """A host's rollback takes the view rows with the events; a conflict writes none."""
    log = open_log()
    w = DWorld(log=log)
    w.to_feedback({"U-1": ["P-1"]})
    before = everything(log)
    engine = log.bind
    assert isinstance(engine, sa.Engine)
    with engine.connect() as conn:
        tx = conn.begin()
        hosted = SqlEventLog(conn, schema=log.tables.schema)
        counter = itertools.count()
        other = Engine(
            clock=w.clock, log=hosted, process=w.engine.process, ids=lambda: f"h-{next(counter)}"
        )
        other.fire(w.cast.unit("org-1"), w.round_id, "item", "P-1", "claim")
        assert [i.state for i in hosted.items()] == ["claimed"]
        tx.rollback()
    assert everything(log) == before
    assert_agrees(log, w.state)
