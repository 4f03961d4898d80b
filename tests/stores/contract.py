"""The contract every event store passes, written once.

:class:`StoreContract` is subclassed by each adapter's test module
(``test_memory.py``, ``test_sqlite.py``, ``test_postgres.py``), which only says
how to open a store; every behaviour test lives here, so all stores pass the same
tests. :class:`SqlContract` adds what only a database has: tampering with raw
SQL, a host's transaction, and the schema's upgrade path.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    ConcurrencyConflict,
    Engine,
    Event,
    EventLog,
    IntegrityError,
    Process,
    Role,
    replay,
)
from xuncha_flow._events import genesis_hash, seal
from xuncha_flow.stores import SCHEMA_VERSION, SqlEventLog
from xuncha_flow.stores._schema import Tables, upgrade
from xuncha_flow.testing import Cast, ManualClock, RoundDriver

START = datetime(2026, 3, 2, 9, tzinfo=DEFAULT_TIMEZONE)
ACTOR = Actor(id="xcb-staff", role=Role.INSPECTION_OFFICE, organization="xcb")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

OpenStore = Callable[[], EventLog]


# -- building blocks -----------------------------------------------------------------
def make_events(
    stream: str,
    count: int,
    *,
    after: int = 0,
    prev: str | None = None,
    command: str = "cmd",
    tag: str = "",
) -> list[Event]:
    """``count`` sealed events continuing ``stream`` after version ``after``."""
    link = prev if prev is not None else genesis_hash(stream)
    out = []
    for version in range(after + 1, after + count + 1):
        event = seal(
            {
                "id": f"{stream}-{version}{tag}",
                "stream": stream,
                "version": version,
                "type": "item.record",
                "subject": f"P-{version}",
                "actor": ACTOR,
                "timestamp": START + timedelta(minutes=version),
                "from_state": None,
                "to_state": "found",
                "payload": {"n": version, "description": "问题描述", "tag": tag},
                "command_id": f"{command}{tag}",
                "definition": "test@1",
                "prev_hash": link,
            }
        )
        link = event.hash
        out.append(event)
    return out


def engine_on(store: EventLog, name: str = "A") -> Engine:
    """An engine on ``store`` with a manual clock and event ids unique to ``name``."""
    counter = itertools.count(1)
    return Engine(clock=ManualClock(START), log=store, ids=lambda: f"{name}-ev-{next(counter)}")


def open_round(engine: Engine, round_id: str, units: Sequence[str] = ("U-1",)) -> None:
    """Open a round with ``units`` and take it on site, where items are recorded."""
    drv = RoundDriver(engine, round_id)
    drv.round("open", {"name": "测试轮次", "level": "county", "kind": "regular"})
    for unit in units:
        drv.do(
            "unit",
            unit,
            "add",
            {"name": f"{unit} 党组", "organization_id": f"org-{unit}", "team_id": "team-1"},
        )
    drv.round("approve")
    drv.round("launch")


def record_item(
    engine: Engine, round_id: str, unit: str, item: str, command_id: str, *, retries: int = 0
) -> tuple[Event, ...]:
    return engine.execute(
        {
            "command_id": command_id,
            "round_id": round_id,
            "kind": "item",
            "subject": item,
            "event": "record",
            "actor": Cast().team("team-1"),
            "payload": {"unit_id": unit, "description": f"问题 {item}"},
        },
        retries=retries,
    )


@functools.cache
def simulation() -> ModuleType:
    """``examples/simulate_round.py``, imported once."""
    spec = importlib.util.spec_from_file_location("simulate_round", EXAMPLES / "simulate_round.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("simulate_round", module)
    spec.loader.exec_module(module)
    return module


def simulate_on(store: EventLog) -> tuple[Engine, str]:
    """Run the example's whole simulated round through ``Engine(log=store)``."""
    sim = simulation()
    engine, _ = sim.simulate(log=store)
    assert engine.log is store
    return engine, str(sim.ROUND)


class StoreContract:
    """Behaviour every :class:`~xuncha_flow.EventLog` adapter must have.

    A subclass overrides the ``open_store`` fixture: a callable that opens a *new*
    store object on the test's database each time it is called (for the
    in-memory log, the same object)."""

    @pytest.fixture
    def open_store(self) -> OpenStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, open_store: OpenStore) -> EventLog:
        return open_store()

    # -- append / read / version / streams -------------------------------------------
    def test_a_new_store_is_empty(self, store: EventLog) -> None:
        assert store.streams() == []
        assert store.version("R-1") == 0
        assert list(store.read("R-1")) == []
        report = store.verify()
        assert report.ok
        assert report.events == 0

    def test_appended_events_read_back_equal_and_in_order(self, store: EventLog) -> None:
        first = make_events("R-1", 3)
        more = make_events("R-1", 2, after=3, prev=first[-1].hash, command="cmd2")
        store.append("R-1", 0, first)
        store.append("R-1", 3, more)
        assert list(store.read("R-1")) == first + more
        assert store.version("R-1") == 5
        assert [e.version for e in store.read("R-1", after=2)] == [3, 4, 5]
        assert list(store.read("R-1", after=5)) == []
        assert list(store.read("R-1", after=9)) == []
        assert list(store.read("R-1", after=-1)) == first + more

    def test_streams_are_listed_in_creation_order(self, store: EventLog) -> None:
        for name in ("R-b", "R-a", "R-c"):
            store.append(name, 0, make_events(name, 1))
        b = list(store.read("R-b"))
        store.append("R-b", 1, make_events("R-b", 1, after=1, prev=b[-1].hash, command="x"))
        assert store.streams() == ["R-b", "R-a", "R-c"]
        assert [store.version(s) for s in store.streams()] == [2, 1, 1]

    def test_events_with_chinese_text_and_every_field_survive(self, store: EventLog) -> None:
        event = seal(
            {
                "id": "ev-中文",
                "stream": "R-1",
                "version": 1,
                "type": "round.open",
                "subject": "R-1",
                "actor": ACTOR,
                "timestamp": START,
                "from_state": None,
                "to_state": "prepare",
                "payload": {"name": "十五届县委第三轮巡察", "n": [1, 2.5, None, True], "o": {}},
                "reason": "理由：“引号”与 \\ 反斜杠",
                "attachments": ("evidence/a.pdf", "证据/b.pdf"),
                "command_id": "c-1",
                "automatic": False,
                "definition": "round@1",
                "prev_hash": genesis_hash("R-1"),
            }
        )
        store.append("R-1", 0, [event])
        (back,) = store.read("R-1")
        assert back == event
        assert back.computed_hash() == event.hash

    # -- optimistic concurrency ------------------------------------------------------
    def test_a_stale_writer_gets_a_conflict_and_writes_nothing(self, store: EventLog) -> None:
        base = make_events("R-1", 2)
        store.append("R-1", 0, base[:1])
        store.append("R-1", 1, base[1:])
        # a writer that read the stream at version 1 and now appends versions 2 and 3
        stale = make_events("R-1", 2, after=1, prev=base[0].hash, tag="-stale")
        with pytest.raises(ConcurrencyConflict) as err:
            store.append("R-1", 1, stale)
        assert (err.value.stream, err.value.expected) == ("R-1", 1)
        assert err.value.actual in (2, None)
        assert list(store.read("R-1")) == base
        assert store.version("R-1") == 2
        assert store.verify().ok

    def test_two_creators_of_one_stream_one_wins(self, store: EventLog) -> None:
        mine = make_events("R-1", 3, tag="-a")
        theirs = make_events("R-1", 1, tag="-b")
        store.append("R-1", 0, mine)
        with pytest.raises(ConcurrencyConflict):
            store.append("R-1", 0, theirs)
        assert list(store.read("R-1")) == mine
        assert store.streams() == ["R-1"]

    def test_a_writer_ahead_of_the_stream_gets_a_conflict(self, store: EventLog) -> None:
        events = make_events("R-1", 4)
        store.append("R-1", 0, events[:2])
        with pytest.raises(ConcurrencyConflict):
            store.append("R-1", 3, events[3:])
        assert store.version("R-1") == 2

    def test_an_empty_batch_checks_the_version_only(self, store: EventLog) -> None:
        store.append("R-1", 0, [])
        assert store.version("R-1") == 0
        store.append("R-1", 0, make_events("R-1", 1))
        store.append("R-1", 1, [])
        with pytest.raises(ConcurrencyConflict):
            store.append("R-1", 0, [])
        assert store.version("R-1") == 1

    @pytest.mark.parametrize(
        "fault", ["gap", "wrong_link", "other_stream", "not_from_genesis", "bad_first_version"]
    )
    def test_a_batch_that_does_not_continue_the_chain_is_refused(
        self, store: EventLog, fault: str
    ) -> None:
        head = make_events("R-1", 2)
        store.append("R-1", 0, head)
        nxt = make_events("R-1", 3, after=2, prev=head[-1].hash, command="n")
        expected = 2
        stream = "R-1"
        if fault == "gap":
            batch = [nxt[0], nxt[2]]
        elif fault == "wrong_link":
            batch = make_events("R-1", 2, after=2, prev=head[0].hash, command="n")
        elif fault == "other_stream":
            stream, expected = "R-2", 0
            batch = make_events("R-1", 1, command="n")
        elif fault == "not_from_genesis":
            stream, expected = "R-2", 0
            batch = make_events("R-2", 1, prev=head[-1].hash)
        else:
            batch = make_events("R-1", 1, after=3, prev=head[-1].hash, command="n")
        with pytest.raises(IntegrityError):
            store.append(stream, expected, batch)
        assert list(store.read("R-1")) == head
        assert store.version("R-2") == 0
        assert store.streams() == ["R-1"]

    # -- reopening, engines, replay --------------------------------------------------
    def test_a_reopened_store_sees_the_same_log(self, open_store: OpenStore) -> None:
        first = open_store()
        events = make_events("R-1", 5)
        first.append("R-1", 0, events)
        again = open_store()
        assert list(again.read("R-1")) == events
        assert again.streams() == ["R-1"]
        assert again.verify().ok

    def test_commands_are_idempotent_over_the_store(self, open_store: OpenStore) -> None:
        store = open_store()
        engine = engine_on(store)
        open_round(engine, "R-1")
        events = record_item(engine, "R-1", "U-1", "P-1", "cmd-p1")
        version = store.version("R-1")
        assert record_item(engine, "R-1", "U-1", "P-1", "cmd-p1") == events
        assert store.version("R-1") == version
        # after a restart, on a new store object: still applied once
        later = engine_on(open_store(), "B")
        assert record_item(later, "R-1", "U-1", "P-1", "cmd-p1") == events
        assert later.log.version("R-1") == version
        assert [e.command_id for e in later.log.read("R-1")].count("cmd-p1") == 1

    def test_a_stale_engine_reloads_then_a_racing_writer_conflicts(
        self, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        a = engine_on(open_store(), "A")
        open_round(a, "R-1")
        b = engine_on(open_store(), "B")
        assert b.state("R-1").version == a.state("R-1").version  # b has the round cached
        record_item(a, "R-1", "U-1", "P-a", "cmd-a")
        record_item(b, "R-1", "U-1", "P-b", "cmd-b")  # b reloads before deciding
        assert set(b.state("R-1").items) == {"P-a", "P-b"}
        # a writer that appends between b's decision and b's append: a conflict
        # (the in-memory store is one object shared by both engines: the racer's own
        # append goes straight through)
        append = b.log.append

        def race(item: str, command: str) -> None:
            def racing(stream: str, expected: int, events: Any) -> None:
                monkeypatch.setattr(b.log, "append", append)
                record_item(a, "R-1", "U-1", item, command)
                append(stream, expected, events)

            monkeypatch.setattr(b.log, "append", racing)

        race("P-c", "cmd-c")
        version = a.log.version("R-1") + 1  # after the racer's item
        with pytest.raises(ConcurrencyConflict):
            record_item(b, "R-1", "U-1", "P-e", "cmd-e")
        assert a.log.version("R-1") == version  # nothing of b's command was written
        race("P-d", "cmd-d")
        record_item(b, "R-1", "U-1", "P-e", "cmd-e", retries=1)
        assert set(b.state("R-1").items) == {"P-a", "P-b", "P-c", "P-d", "P-e"}
        assert b.state("R-1") == replay("R-1", b.log.read("R-1"), [Process.standard()])

    def test_a_whole_round_reopens_and_replays_to_the_live_state(
        self, open_store: OpenStore
    ) -> None:
        store = open_store()
        engine, round_id = simulate_on(store)
        live = engine.state(round_id)
        assert live.round is not None
        assert live.round.state == "closed"
        reopened = open_store()
        events = list(reopened.read(round_id))
        assert len(events) == live.version
        assert replay(round_id, events, [engine.process]) == live
        fresh = Engine(clock=ManualClock(START), log=reopened, process=engine.process)
        assert fresh.state(round_id) == live
        report = reopened.verify()
        assert report.ok, report.first_bad
        assert report.events == live.version


# -- SQL stores ----------------------------------------------------------------------
Raw = Callable[..., Any]


def _indexes(db: sa.Engine, tables: Tables) -> set[str]:
    with db.connect() as conn:
        found = sa.inspect(conn).get_indexes(tables.events.name, tables.schema)
    return {str(i["name"]) for i in found}


class SqlContract(StoreContract):
    """What only a database store has. A subclass provides the ``db`` fixture (an
    Engine on the test's database) and ``options`` (``schema`` / ``prefix`` for
    :class:`SqlEventLog`); ``open_store`` defaults to ``SqlEventLog(db, **options)``."""

    @pytest.fixture
    def db(self) -> sa.Engine:
        raise NotImplementedError

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def open_store(self, db: sa.Engine, options: dict[str, Any]) -> OpenStore:
        return lambda: SqlEventLog(db, **options)

    @pytest.fixture
    def tables(self, options: dict[str, Any]) -> Tables:
        return Tables.build(options.get("prefix", "xuncha_"), options.get("schema"))

    @pytest.fixture
    def raw(self, db: sa.Engine, tables: Tables) -> Raw:
        """Run raw SQL on the tables, outside the store: ``{events}`` and ``{streams}``
        stand for their qualified names."""
        fmt = db.dialect.identifier_preparer.format_table
        names = {"events": fmt(tables.events), "streams": fmt(tables.streams)}

        def run(statement: str, **params: Any) -> Any:
            with db.begin() as conn:
                result = conn.execute(sa.text(statement.format(**names)), params)
                return result.all() if result.returns_rows else result.rowcount

        return run

    # -- tampering -------------------------------------------------------------------
    @pytest.fixture
    def tampered(self, store: EventLog) -> list[Event]:
        """A clean stream ``OK`` and, after it, stream ``T`` of six events in three
        commands; the tests change ``T`` behind the store's back."""
        store.append("OK", 0, make_events("OK", 2))
        events = make_events("T", 2)
        for n in (2, 4):
            events += make_events("T", 2, after=n, prev=events[-1].hash, command=f"c{n}")
        for n in (0, 2, 4):
            store.append("T", n, events[n : n + 2])
        assert store.verify().ok
        return events

    def _bad(self, store: EventLog, version: int, words: str) -> None:
        report = store.verify()
        assert not report.ok
        bad = report.first_bad
        assert bad is not None
        assert (bad.stream, bad.bad_version) == ("T", version), bad.problem
        assert words in bad.problem
        assert [r.stream for r in report.streams if not r.ok] == ["T"]

    def _unreadable(self, store: EventLog, version: int) -> None:
        with pytest.raises(IntegrityError) as err:
            list(store.read("T"))
        assert (err.value.stream, err.value.version) == ("T", version)

    def test_a_modified_payload_is_named(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw(
            "UPDATE {events} SET body = REPLACE(body, '问题描述', '已整改') WHERE version = 3"
            " AND stream = 'T'"
        )
        self._bad(store, 3, "modified")
        assert store.verify().first_bad.bad_event_id == tampered[2].id  # type: ignore[union-attr]
        self._unreadable(store, 3)
        assert list(store.read("OK")) == make_events("OK", 2)

    def test_a_row_that_is_not_json_is_named(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw("UPDATE {events} SET body = '{{not json' WHERE stream = 'T' AND version = 4")
        self._bad(store, 4, "cannot be read")
        self._unreadable(store, 4)

    def test_a_field_that_fails_validation_is_named(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw(
            'UPDATE {events} SET body = REPLACE(body, \'"type":"item.record"\', '
            "'\"type\":\"NOT A TYPE\"') WHERE stream = 'T' AND version = 2"
        )
        self._bad(store, 2, "cannot be read")
        self._unreadable(store, 2)

    def test_a_changed_hash_column_is_named(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw("UPDATE {events} SET hash = :h WHERE stream = 'T' AND version = 5", h="0" * 64)
        self._bad(store, 5, "modified")

    def test_a_deleted_middle_row_is_named(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw("DELETE FROM {events} WHERE stream = 'T' AND version = 3")
        self._bad(store, 3, "missing")
        self._unreadable(store, 3)

    def test_a_deleted_last_row_shows_against_the_head(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw("DELETE FROM {events} WHERE stream = 'T' AND version = 6")
        self._bad(store, 6, "deleted tail")
        self._unreadable(store, 6)
        assert store.version("T") == 6

    def test_a_replaced_last_event_shows_against_the_head(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        forged = make_events("T", 1, after=5, prev=tampered[4].hash, command="c4", tag="-f")[0]
        row = SqlEventLog._row(forged)
        raw(
            "UPDATE {events} SET body = :body, hash = :hash, id = :id "
            "WHERE stream = 'T' AND version = 6",
            body=row["body"],
            hash=row["hash"],
            id=row["id"],
        )
        self._bad(store, 6, "head")
        self._unreadable(store, 6)

    def test_a_resealed_middle_event_breaks_the_next_link(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        """A forger who recomputes a changed event's hash is caught by the next event,
        whose ``prev_hash`` still names the original."""
        forged = make_events("T", 1, after=2, prev=tampered[1].hash, command="c2", tag="-f")[0]
        row = SqlEventLog._row(forged)
        raw(
            "UPDATE {events} SET body = :body, hash = :hash, id = :id "
            "WHERE stream = 'T' AND version = 3",
            body=row["body"],
            hash=row["hash"],
            id=row["id"],
        )
        self._bad(store, 4, "does not link")
        self._unreadable(store, 4)

    def test_a_modified_head_is_named(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw("UPDATE {streams} SET head = :h WHERE stream = 'T'", h="1" * 64)
        self._bad(store, 6, "head")

    def test_swapped_rows_are_named(self, store: EventLog, tampered: list[Event], raw: Raw) -> None:
        for old, new in ((2, 1000), (4, 2), (1000, 4)):
            raw(
                "UPDATE {events} SET version = :new WHERE stream = 'T' AND version = :old",
                old=old,
                new=new,
            )
        self._bad(store, 2, "moved")
        self._unreadable(store, 2)

    def test_a_forged_row_after_the_head_is_named_and_not_loaded(
        self, store: EventLog, tampered: list[Event], db: sa.Engine, tables: Tables
    ) -> None:
        forged = make_events("T", 1, after=6, prev=tampered[-1].hash, command="x")[0]
        with db.begin() as conn:
            conn.execute(tables.events.insert(), [SqlEventLog._row(forged)])
        self._bad(store, 7, "inserted")
        assert store.verify().first_bad.bad_event_id == forged.id  # type: ignore[union-attr]
        assert list(store.read("T")) == tampered
        assert store.version("T") == 6

    def test_a_forged_stream_without_a_head_is_named(
        self, store: EventLog, tampered: list[Event], db: sa.Engine, tables: Tables
    ) -> None:
        with db.begin() as conn:
            conn.execute(tables.events.insert(), [SqlEventLog._row(make_events("GHOST", 1)[0])])
        report = store.verify()
        assert [(r.stream, r.bad_version) for r in report.streams if not r.ok] == [("GHOST", 1)]
        assert "no head" in report.streams[-1].problem
        assert store.streams() == ["OK", "T"]
        assert not store.verify("GHOST").ok

    def test_an_engine_refuses_to_load_a_tampered_round(
        self, open_store: OpenStore, raw: Raw
    ) -> None:
        engine = engine_on(open_store())
        open_round(engine, "R-1")
        record_item(engine, "R-1", "U-1", "P-1", "cmd-1")
        raw("UPDATE {events} SET body = REPLACE(body, 'P-1', 'P-9') WHERE version = 6")
        with pytest.raises(IntegrityError) as err:
            engine_on(open_store(), "B").state("R-1")
        assert (err.value.stream, err.value.version) == ("R-1", 6)

    # -- a host's transaction --------------------------------------------------------
    @pytest.fixture
    def notes(
        self, db: sa.Engine, options: dict[str, Any], open_store: OpenStore
    ) -> Iterator[sa.Table]:
        """A host's own table in the same database (created after the store's)."""
        open_store()
        table = sa.Table(
            "host_notes",
            sa.MetaData(schema=options.get("schema")),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("text", sa.String(100)),
        )
        with db.begin() as conn:
            table.create(conn)
        yield table
        with db.begin() as conn:
            table.drop(conn)

    def test_events_appended_in_a_host_transaction_roll_back_with_it(
        self, db: sa.Engine, options: dict[str, Any], notes: sa.Table, open_store: OpenStore
    ) -> None:
        open_store()  # tables exist before the host's transaction
        events = make_events("R-1", 3)
        with db.connect() as conn:
            tx = conn.begin()
            conn.execute(notes.insert().values(id=1, text="host row before"))
            hosted = SqlEventLog(conn, **options)
            hosted.append("R-1", 0, events)
            conn.execute(notes.insert().values(id=2, text="host row after"))
            assert list(hosted.read("R-1")) == events  # visible inside the transaction
            tx.rollback()
        outside = open_store()
        assert outside.version("R-1") == 0
        assert outside.streams() == []
        with db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(notes)).scalar() == 0

    def test_events_commit_with_the_host_and_not_before(
        self, db: sa.Engine, options: dict[str, Any], notes: sa.Table, open_store: OpenStore
    ) -> None:
        outside = open_store()
        with db.connect() as conn:
            tx = conn.begin()
            engine = engine_on(SqlEventLog(conn, **options))
            open_round(engine, "R-1")
            conn.execute(notes.insert().values(id=1, text="round opened"))
            assert conn.in_transaction()
            assert outside.version("R-1") == 0  # the store did not commit the host's work
            written = engine.state("R-1").version
            tx.commit()
        assert outside.version("R-1") == written
        assert outside.verify().ok
        with db.connect() as conn:
            assert conn.execute(sa.select(notes.c.text)).scalars().all() == ["round opened"]

    def test_a_conflict_in_a_host_transaction_undoes_only_the_append(
        self, db: sa.Engine, options: dict[str, Any], notes: sa.Table, open_store: OpenStore
    ) -> None:
        store = open_store()
        base = make_events("R-1", 2)
        store.append("R-1", 0, base)
        with db.connect() as conn, conn.begin():
            conn.execute(notes.insert().values(id=1, text="kept"))
            hosted = SqlEventLog(conn, **options)
            with pytest.raises(ConcurrencyConflict):
                hosted.append("R-1", 1, make_events("R-1", 2, after=1, prev=base[0].hash, tag="s"))
            with pytest.raises(ConcurrencyConflict):
                hosted.append("R-1", 0, make_events("R-1", 1, tag="t"))
            more = make_events("R-1", 1, after=2, prev=base[-1].hash, command="m")
            hosted.append("R-1", 2, more)  # the transaction is still usable
        assert list(store.read("R-1")) == base + more
        with db.connect() as conn:
            assert conn.execute(sa.select(notes.c.text)).scalars().all() == ["kept"]

    def test_a_connection_outside_a_transaction_commits_its_own(
        self, db: sa.Engine, options: dict[str, Any], open_store: OpenStore
    ) -> None:
        open_store()
        events = make_events("R-1", 2)
        with db.connect() as conn:
            hosted = SqlEventLog(conn, **options)
            hosted.append("R-1", 0, events)
            assert not conn.in_transaction()
        assert list(open_store().read("R-1")) == events

    # -- schema ----------------------------------------------------------------------
    def test_the_schema_version_is_recorded(
        self, store: SqlEventLog, db: sa.Engine, tables: Tables
    ) -> None:
        assert store.schema_version() == SCHEMA_VERSION
        with db.connect() as conn:
            rows = conn.execute(
                sa.select(tables.versions.c.version).order_by(tables.versions.c.version)
            ).scalars()
            assert list(rows) == list(range(1, SCHEMA_VERSION + 1))
        assert store.upgrade() == ()  # opening again changes nothing

    def test_a_version_1_database_is_upgraded_in_place(
        self, db: sa.Engine, options: dict[str, Any], tables: Tables
    ) -> None:
        with db.begin() as conn:
            assert upgrade(conn, tables, target=1) == (1,)
            events = make_events("R-1", 3)
            conn.execute(
                tables.streams.insert().values(
                    stream="R-1", version=3, head=events[-1].hash, created=START
                )
            )
            conn.execute(tables.events.insert(), [SqlEventLog._row(e) for e in events])
        with pytest.raises(IntegrityError, match="version 1"):
            SqlEventLog(db, create=False, **options)
        index = f"{tables.prefix}events_command_id"
        assert index not in _indexes(db, tables)
        store = SqlEventLog(db, **options)
        assert store.schema_version() == SCHEMA_VERSION == 2
        with db.connect() as conn:
            applied = conn.execute(sa.select(tables.versions.c.version)).scalars().all()
        assert index in _indexes(db, tables)
        assert sorted(applied) == [1, 2]
        assert list(store.read("R-1")) == events
        assert store.verify().ok
        assert SqlEventLog(db, create=False, **options).version("R-1") == 3

    def test_a_newer_schema_is_refused(
        self, store: SqlEventLog, db: sa.Engine, options: dict[str, Any], tables: Tables
    ) -> None:
        with db.begin() as conn:
            conn.execute(tables.versions.insert().values(version=99, description="future"))
        with pytest.raises(IntegrityError, match="99"):
            SqlEventLog(db, **options)

    def test_without_create_an_empty_database_is_refused(
        self, db: sa.Engine, options: dict[str, Any]
    ) -> None:
        with pytest.raises(IntegrityError, match="version 0"):
            SqlEventLog(db, create=False, **options)
