"""The contract every event store passes, written once.

:class:`StoreContract` is subclassed by each adapter's test module
(``test_memory.py``, ``test_sqlite.py``, ``test_postgres.py``), which only says
how to open a store; every behaviour test lives here, so all stores pass the same
tests. :class:`SqlContract` adds what only a database has: tampering with raw
SQL, a host's transaction, and the schema's upgrade path.

A ``test_regression_*`` test names something that passed unnoticed (or was
reported as the wrong error) before; its docstring says what.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from attrs import evolve as attrs_evolve

from deadline_helpers import DWorld, only_rules
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    Checkpoints,
    ConcurrencyConflict,
    DeadlinePolicy,
    DueEntry,
    DuplicateKey,
    Engine,
    Event,
    EventLog,
    HmacKey,
    Hooks,
    InvalidArgument,
    InvalidCommand,
    LimitExceeded,
    LogCorrupted,
    LogReport,
    Message,
    Process,
    Role,
    SchemaMismatch,
    SeparationOfDuties,
    make_checkpoints,
    replay,
)
from xuncha_flow._events import DEFAULT_HASH, genesis_hash, seal
from xuncha_flow._outbox import message_for
from xuncha_flow._snapshots import InMemorySnapshotStore, Snapshot, SnapshotStore, state_to_json
from xuncha_flow.stores import SCHEMA_VERSION, SqlEventLog, SqlSnapshotStore
from xuncha_flow.stores._projections import Projector, rung_rows
from xuncha_flow.stores._schema import Tables, UtcDateTime, _snapshots, upgrade
from xuncha_flow.testing import Cast, ManualClock, RoundDriver

START = datetime(2026, 3, 2, 9, tzinfo=DEFAULT_TIMEZONE)
KEY = HmacKey(b"snapshot-key-of-the-test-suite-32b", key_id="test-snapshots")
"""The key the tests' engines authenticate snapshots with."""
ACTOR = Actor(id="xcb-staff", role=Role.INSPECTION_OFFICE, organization="xcb")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

OpenStore = Callable[[], EventLog]
OpenSnapshots = Callable[[], SnapshotStore]
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
OFFICE = HmacKey.generate("office")
"""The key an office signs the tests' checkpoints with."""


# -- building blocks -----------------------------------------------------------------
def make_events(
    stream: str,
    count: int,
    *,
    after: int = 0,
    prev: str | None = None,
    command: str = "cmd",
    tag: str = "",
    algorithm: str = DEFAULT_HASH,
) -> list[Event]:
    """``count`` events continuing ``stream`` after version ``after``, sealed with the
    hash ``algorithm``."""
    link = prev if prev is not None else genesis_hash(stream, algorithm)
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
            },
            algorithm,
        )
        link = event.hash
        out.append(event)
    return out


def reseal_from(
    events: Sequence[Event], index: int, algorithm: str = DEFAULT_HASH, **changes: Any
) -> list[Event]:
    """``events`` with event ``index`` changed and it and every later event re-sealed,
    so the chain is consistent again: what a writer with access to the store can do."""
    out = list(events[:index])
    prev = out[-1].hash if out else genesis_hash(events[0].stream, algorithm)
    for n, event in enumerate(events[index:]):
        fields = event.model_dump(exclude={"hash"})
        if n == 0:
            fields.update(changes)
        event = seal({**fields, "prev_hash": prev}, algorithm)
        out.append(event)
        prev = event.hash
    return out


def note(event: Event, topic: str = "warning") -> Message:
    """The outbox message ``event`` makes on ``topic``."""
    return message_for(
        event, topic, {"round": event.stream, "n": event.version, "text": "整改通知"}
    )


class Tamper(ABC):
    """Changes a store behind its back, as someone with access to its storage can:
    for the in-memory log through its internals, for a SQL store with raw SQL."""

    @abstractmethod
    def replace(self, stream: str, events: Sequence[Event]) -> None:
        """Store exactly ``events`` as the stream, with its head moved to the last,
        and rebuild whatever the store derives from them (a careful forger)."""

    @abstractmethod
    def drop(self, stream: str) -> None:
        """Delete the stream and everything of it."""

    @abstractmethod
    def clear_due(self, stream: str) -> None:
        """Clear the stream's due time in the due index."""


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


class ReadCounter(EventLog):
    """Passes everything to ``inner`` and counts the events read, to see whether a
    load used a snapshot."""

    def __init__(self, inner: EventLog) -> None:
        self.inner = inner
        self.events_read = 0

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        self.inner.append(stream, expected_version, events)

    def record(
        self,
        stream: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        due: datetime | None = None,
        messages: Sequence[Message] = (),
    ) -> None:
        self.inner.record(stream, expected_version, events, due=due, messages=messages)

    def claim_messages(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[Message]:
        return self.inner.claim_messages(at, worker=worker, lease=lease, limit=limit)

    def ack(self, key: str, *, at: datetime) -> None:
        self.inner.ack(key, at=at)

    def fail(self, key: str, *, error: str, retry_at: datetime) -> None:
        self.inner.fail(key, error=error, retry_at=retry_at)

    def messages(self, *, stream: str | None = None, pending: bool | None = None) -> list[Message]:
        return self.inner.messages(stream=stream, pending=pending)

    def claim_due(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[str] | None:
        return self.inner.claim_due(at, worker=worker, lease=lease, limit=limit)

    def release(self, stream: str, *, due: datetime | None, worker: str) -> None:
        self.inner.release(stream, due=due, worker=worker)

    def due_entry(self, stream: str) -> DueEntry | None:
        return self.inner.due_entry(stream)

    def reset_due(self, stream: str, due: datetime | None) -> None:
        self.inner.reset_due(stream, due)

    def rebuild_index(self) -> int:
        return self.inner.rebuild_index()

    @property
    def hash_algorithm(self) -> str:
        return self.inner.hash_algorithm

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        events = list(self.inner.read(stream, after))
        self.events_read += len(events)
        return iter(events)

    def streams(self) -> list[str]:
        return self.inner.streams()

    def version(self, stream: str) -> int:
        return self.inner.version(stream)

    def verify(
        self, stream: str | None = None, *, checkpoints: Checkpoints | None = None
    ) -> LogReport:
        return self.inner.verify(stream, checkpoints=checkpoints)


def more_events(store: EventLog, stream: str, count: int, command: str) -> list[Event]:
    """``count`` events continuing ``stream`` as it is in ``store``."""
    head = list(store.read(stream))
    return make_events(
        stream, count, after=len(head), prev=head[-1].hash if head else None, command=command
    )


def snapshotted_round(
    store: EventLog, snapshots: SnapshotStore, items: int = 7
) -> tuple[Engine, Snapshot]:
    """A round of ``5 + items`` events on an engine saving a snapshot every 5
    events; the round's latest snapshot lies before its last event."""
    engine = engine_on(store)
    engine.snapshots, engine.snapshot_key, engine.snapshot_every = snapshots, KEY, 5
    open_round(engine, "R-1")
    for k in range(items):
        record_item(engine, "R-1", "U-1", f"P-{k}", f"cmd-{k}")
    snap = snapshots.latest("R-1")
    assert snap is not None
    assert snap.authentic(KEY)
    assert 0 < snap.version < engine.state("R-1").version
    return engine, snap


def swept_round(log: EventLog | None = None) -> DWorld:
    """A round (measure deadlines only) whose measure's ladder fired green, yellow
    and red on a sweep at its due time."""
    w = DWorld(only_rules(DeadlinePolicy.standard(), "measure_due"), log=log)
    w.planned({"U-1": ["P-1"]})
    w.clock.set(w.deadline("measure_due:M-P-1-1").due_at)
    assert len(w.engine.sweep().overdue) == 1
    return w


KEYED_CALLS: dict[str, Callable[[EventLog, str], object]] = {
    "read": lambda s, k: list(s.read(k)),
    "version": lambda s, k: s.version(k),
    "append": lambda s, k: s.append(k, 0, []),
    "record": lambda s, k: s.record(k, 0, [], due=None),
    "verify": lambda s, k: s.verify(k),
    "due_entry": lambda s, k: s.due_entry(k),
    "reset_due": lambda s, k: s.reset_due(k, START),
    "release": lambda s, k: s.release(k, due=None, worker="w"),
    "release_by": lambda s, k: s.release("R-1", due=None, worker=k),
    "claim_due_by": lambda s, k: s.claim_due(START, worker=k, lease=HOUR),
    "claim_messages_by": lambda s, k: s.claim_messages(START, worker=k, lease=HOUR),
    "ack": lambda s, k: s.ack(k, at=START),
    "fail": lambda s, k: s.fail(k, error="e", retry_at=START),
    "messages_of": lambda s, k: s.messages(stream=k),
}
"""Every call of the port that takes a stream id, worker name or message key, with
``k`` in its place."""


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

    @pytest.fixture
    def open_snapshots(self) -> OpenSnapshots:
        """Opens a snapshot store on the test's database (in memory: the same one)."""
        snaps = InMemorySnapshotStore()
        return lambda: snaps

    @pytest.fixture
    def open_hashed(self) -> Callable[[str | None], EventLog]:
        """Opens a store on the test's database with ``hash_algorithm`` (None: the
        argument not given). For the in-memory log, a new log."""
        raise NotImplementedError

    @pytest.fixture
    def tamper(self) -> Tamper:
        """Changes the test's store behind its back (see :class:`Tamper`)."""
        raise NotImplementedError

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
        with pytest.raises(LogCorrupted):
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
        # (the engine writes through ``record``: the append with its due time)
        write = b.log.record

        def race(item: str, command: str) -> None:
            def racing(stream: str, expected: int, events: Any, **due: Any) -> None:
                monkeypatch.setattr(b.log, "record", write)
                record_item(a, "R-1", "U-1", item, command)
                write(stream, expected, events, **due)

            monkeypatch.setattr(b.log, "record", racing)

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

    # -- the due index: sweeps shared between workers --------------------------------
    def test_the_due_index_leases_streams_to_one_worker_at_a_time(self, store: EventLog) -> None:
        for stream, hours in (("R-a", 2), ("R-b", 1), ("R-c", 30)):
            store.record(stream, 0, make_events(stream, 2), due=START + hours * HOUR)
        lease = timedelta(minutes=5)
        now = START + 3 * HOUR
        assert store.claim_due(now, worker="w1", lease=lease) == ["R-b", "R-a"]  # earliest first
        assert store.claim_due(now, worker="w2", lease=lease) == []  # leased to w1
        assert store.claim_due(now, worker="w1", lease=lease, limit=1) == ["R-b"]  # w1's again
        store.release("R-a", due=None, worker="w1")  # nothing pending there any more
        later = now + timedelta(minutes=6)  # w1's lease on R-b lapsed: a crashed worker
        assert store.claim_due(later, worker="w2", lease=lease) == ["R-b"]
        store.release("R-b", due=later + DAY, worker="w1")  # not w1's any more: ignored
        assert store.claim_due(later, worker="w3", lease=lease) == []  # still w2's
        assert store.claim_due(START + 2 * DAY, worker="w3", lease=lease) == ["R-b", "R-c"]
        assert store.claim_due(START + 2 * DAY, worker="w4", lease=lease, limit=0) == []

    def test_recording_sets_the_next_due_time_and_ends_the_lease(self, store: EventLog) -> None:
        store.record("R-1", 0, make_events("R-1", 2), due=START)
        assert store.claim_due(START, worker="w1", lease=HOUR) == ["R-1"]
        assert store.claim_due(START, worker="w2", lease=HOUR) == []
        store.record("R-1", 2, more_events(store, "R-1", 1, "sweep"), due=START + DAY)
        # the lease ended with the append: the stream is due again at its new time,
        # for any worker, while w1's lease would still run
        assert store.claim_due(START + 30 * timedelta(minutes=1), worker="w2", lease=HOUR) == []
        assert store.claim_due(START + DAY, worker="w2", lease=HOUR) == ["R-1"]
        store.record("R-1", 3, more_events(store, "R-1", 1, "c"), due=None)  # nothing pending
        assert store.claim_due(START + 999 * DAY, worker="w3", lease=HOUR) == []
        assert store.version("R-1") == 4
        # an empty batch notes the due time of the stream as it is
        store.record("R-1", 4, [], due=START + 2 * DAY)
        assert store.claim_due(START + 2 * DAY, worker="w3", lease=HOUR) == ["R-1"]
        with pytest.raises(ConcurrencyConflict):
            store.record("R-1", 3, [], due=None)
        assert store.claim_due(START + 2 * DAY, worker="w4", lease=HOUR) == []  # still w3's
        assert store.version("R-1") == 4

    def test_a_conflicting_record_changes_neither_events_nor_due_index(
        self, store: EventLog
    ) -> None:
        events = make_events("R-1", 2)
        store.record("R-1", 0, events, due=START)
        assert store.claim_due(START, worker="w1", lease=HOUR) == ["R-1"]
        stale = make_events("R-1", 1, after=1, prev=events[0].hash, tag="-stale")
        with pytest.raises(ConcurrencyConflict):
            store.record("R-1", 1, stale, due=None)
        with pytest.raises(ConcurrencyConflict):
            store.record("R-1", 0, make_events("R-1", 1, tag="-again"), due=None)
        assert list(store.read("R-1")) == events
        assert store.claim_due(START, worker="w2", lease=HOUR) == []  # still leased to w1
        assert store.claim_due(START, worker="w1", lease=HOUR) == ["R-1"]  # and still due

    def test_a_plain_append_leaves_the_due_index_alone(self, store: EventLog) -> None:
        store.record("R-1", 0, make_events("R-1", 1), due=START + HOUR)
        store.append("R-1", 1, more_events(store, "R-1", 2, "host"))
        store.append("R-2", 0, make_events("R-2", 1))  # never recorded: never due
        assert store.claim_due(START, worker="w", lease=HOUR) == []
        assert store.claim_due(START + HOUR, worker="w", lease=HOUR) == ["R-1"]
        store.release("R-1", due=START + DAY, worker="w")
        assert store.claim_due(START + DAY, worker="x", lease=HOUR) == ["R-1"]

    def test_a_sweeping_engine_skips_rounds_leased_to_another(self, open_store: OpenStore) -> None:
        """Two engines on two store objects: while one sweeps a round (its hook is
        running), the other finds the round leased and sweeps nothing; each rung is
        recorded once and the second engine, later, finds nothing left."""
        hooks = Hooks()
        w = DWorld(
            only_rules(DeadlinePolicy.standard(), "measure_due"), log=open_store(), hooks=hooks
        )
        w.planned({"U-1": ["P-1"]})
        other = Engine(
            clock=w.clock, log=open_store(), process=w.engine.process, ids=lambda: "never"
        )
        meanwhile: list[tuple[Event, ...]] = []
        hooks.on_overdue(lambda event, ctx: meanwhile.append(other.sweep().events))
        deadline = "measure_due:M-P-1-1"
        w.clock.set(w.deadline(deadline).due_at)
        report = w.engine.sweep()
        assert [(e.subject, e.payload["rung"]) for e in report.events if e.kind == "deadline"] == [
            (deadline, "green"),
            (deadline, "yellow"),
            (deadline, "red"),
        ]
        assert meanwhile == [()]  # the round was leased to the first engine
        assert other.sweep().events == ()  # and it is done
        assert w.log_firings() == [(deadline, "green"), (deadline, "yellow"), (deadline, "red")]
        assert other.state(w.round_id) == w.engine.replay(w.round_id)

    # -- refused commands ------------------------------------------------------------
    def test_refused_commands_write_nothing(self, open_store: OpenStore) -> None:
        """Separation of duties, ids, caps and values are the engine's, but every
        store must end up with nothing of a refused command: no event, no message."""
        store = open_store()
        engine = engine_on(store)
        open_round(engine, "R-1")
        record_item(engine, "R-1", "U-1", "P-1", "cmd-p1")
        version = store.version("R-1")
        own_office = Actor(id="insider", role=Role.INSPECTION_OFFICE, organization="ORG-u-1")
        team = Cast().team("team-1")
        base = {"round_id": "R-1", "kind": "item", "subject": "P-1", "actor": team}
        refused: list[tuple[dict[str, Any], type[Exception]]] = [
            ({**base, "event": "withdraw", "actor": own_office}, SeparationOfDuties),
            ({**base, "event": "confirm", "subject": "P#1"}, InvalidCommand),
            ({**base, "event": "confirm", "reason": "原因\x00"}, InvalidCommand),
            (
                {
                    **base,
                    "subject": "P-2",
                    "event": "record",
                    "payload": {"unit_id": "U-1", "description": "长" * 300_000},
                },
                LimitExceeded,
            ),
        ]
        for n, (command, error) in enumerate(refused):
            with pytest.raises(error):
                engine.execute({**command, "command_id": f"refused-{n}"})
        assert store.version("R-1") == version
        assert store.messages() == []
        assert store.verify().ok
        record_item(engine, "R-1", "U-1", "P-2", "cmd-p2")  # and it goes on working
        assert store.version("R-1") == version + 1

    # -- snapshots -------------------------------------------------------------------
    def test_a_reopened_engine_loads_the_snapshot_and_the_tail(
        self, open_store: OpenStore, open_snapshots: OpenSnapshots
    ) -> None:
        engine, snap = snapshotted_round(open_store(), open_snapshots())
        live = engine.state("R-1")
        counting = ReadCounter(open_store())
        fresh = Engine(
            clock=ManualClock(START), log=counting, snapshots=open_snapshots(), snapshot_key=KEY
        )
        loaded = fresh.state("R-1")
        assert loaded == live
        # the snapshot's own event (its hash is checked) and the tail after it
        assert counting.events_read == 1 + live.version - snap.version
        assert loaded == replay("R-1", open_store().read("R-1"), [Process.standard()])
        record_item(fresh, "R-1", "U-1", "P-after", "cmd-after")  # and it goes on working
        assert fresh.state("R-1") == fresh.replay("R-1")

    def test_regression_an_edited_snapshot_cannot_change_who_may_act(
        self, open_store: OpenStore, open_snapshots: OpenSnapshots
    ) -> None:
        """A stored snapshot's body could be edited and its unkeyed digest recomputed:
        moving a unit to another organization let that unit's own office act on its
        items as if it were independent, and ``verify()`` still passed."""
        _, snap = snapshotted_round(open_store(), open_snapshots())
        body = snap.body.replace('"organization_id":"org-U-1"', '"organization_id":"org-X"')
        assert body != snap.body
        forged = attrs_evolve(snap, body=body, digest=hashlib.sha256(body.encode()).hexdigest())
        open_snapshots().save(forged)
        fresh = Engine(
            clock=ManualClock(START), log=open_store(), snapshots=open_snapshots(), snapshot_key=KEY
        )
        assert fresh.state("R-1").units["U-1"].organization_id == "org-U-1"  # replayed
        insider = Actor(id="u1-office", role=Role.INSPECTION_OFFICE, organization="org-U-1")
        version = open_store().version("R-1")
        with pytest.raises(SeparationOfDuties):
            fresh.fire(insider, "R-1", "item", "P-1", "withdraw", reason="不属实")
        assert open_store().version("R-1") == version
        report = fresh.verify()
        assert {(f.stream, f.kind, f.version) for f in report.findings} == {
            ("R-1", "snapshot", snap.version)
        }
        assert any("does not equal the replay" in f.message for f in report.findings)

    @pytest.mark.parametrize("damage", ["body", "head", "ahead"])
    def test_a_damaged_snapshot_is_ignored(
        self, open_store: OpenStore, open_snapshots: OpenSnapshots, damage: str
    ) -> None:
        engine, snap = snapshotted_round(open_store(), open_snapshots())
        live = engine.state("R-1")
        if damage == "body":  # the HMAC no longer matches
            bad = attrs_evolve(snap, body=snap.body.replace("P-1", "P-9"))
        elif damage == "head":  # not a point of the log's chain
            bad = attrs_evolve(snap, head="0" * 64)
        else:  # claims to be ahead of the log
            bad = attrs_evolve(snap, version=live.version + 3)
        open_snapshots().save(bad)
        assert open_snapshots().latest("R-1") == bad
        counting = ReadCounter(open_store())
        fresh = Engine(
            clock=ManualClock(START), log=counting, snapshots=open_snapshots(), snapshot_key=KEY
        )
        assert fresh.state("R-1") == live
        assert counting.events_read >= live.version  # replayed from the first event

    def test_an_older_snapshot_does_not_replace_a_newer_one(
        self, open_store: OpenStore, open_snapshots: OpenSnapshots
    ) -> None:
        _, snap = snapshotted_round(open_store(), open_snapshots())
        older = attrs_evolve(snap, version=snap.version - 1, body="{}")
        open_snapshots().save(older)
        assert open_snapshots().latest("R-1") == snap
        assert open_snapshots().latest("R-other") is None

    # -- bad input: refused up front, the same on every store ---------------------------
    @pytest.mark.parametrize("bad", ["R\x00-1", "R" * 321], ids=["nul", "too_long"])
    @pytest.mark.parametrize("call", sorted(KEYED_CALLS))
    def test_a_key_a_store_cannot_keep_is_refused_up_front(
        self, store: EventLog, call: str, bad: str
    ) -> None:
        """A NUL character or an over-long stream id, worker name or message key:
        PostgreSQL refused them with a driver error, SQLite kept them."""
        store.record("R-1", 0, make_events("R-1", 1), due=START, messages=[])
        with pytest.raises(InvalidArgument):
            KEYED_CALLS[call](store, bad)
        assert store.streams() == ["R-1"]
        assert store.version("R-1") == 1
        assert store.due_entry("R-1") == DueEntry(at=START)
        assert store.messages() == []

    def test_keys_up_to_their_limits_are_kept(self, store: EventLog) -> None:
        stream, worker = "流" * 200, "w" * 200
        (base,) = make_events("R-1", 1)
        event = seal(
            {
                **base.model_dump(exclude={"hash"}),
                "stream": stream,
                "id": "i" * 200,
                "subject": "s" * 200,
                "command_id": "c" * 200,
                "prev_hash": genesis_hash(stream),
            }
        )
        message = attrs_evolve(note(event), key="k" * 320)
        store.record(stream, 0, [event], due=START, messages=[message])
        assert list(store.read(stream)) == [event]
        assert store.claim_due(START, worker=worker, lease=HOUR) == [stream]
        assert store.claim_messages(START + DAY, worker=worker, lease=HOUR) == [
            attrs_evolve(message, attempts=1)
        ]
        store.ack(message.key, at=START + DAY)
        assert store.messages(stream=stream, pending=False)[0].delivered_at == START + DAY
        assert store.verify(stream).ok

    @pytest.mark.parametrize("field", ["stream", "id", "subject", "command_id"])
    def test_an_event_with_a_key_a_store_cannot_keep_is_refused(
        self, store: EventLog, field: str
    ) -> None:
        (good,) = make_events("R-1", 1)
        fields = good.model_dump(exclude={"hash"})
        for bad in ("x\x00y", "x" * 201):
            fields[field] = bad
            if field == "stream":
                fields["prev_hash"] = genesis_hash(bad)
            event = seal(fields)
            with pytest.raises(InvalidArgument, match=r"NUL|characters long"):
                store.append(event.stream, 0, [event])
        assert store.streams() == []

    def test_naive_times_are_refused(self, store: EventLog) -> None:
        events = make_events("R-1", 1)
        store.record("R-1", 0, events, due=START, messages=[note(events[0])])
        naive = datetime(2026, 3, 2, 9)
        key = note(events[0]).key
        more = more_events(store, "R-1", 1, "c")
        calls: list[Callable[[], object]] = [
            lambda: store.claim_due(naive, worker="w", lease=HOUR),
            lambda: store.record("R-1", 1, more, due=naive),
            lambda: store.record(
                "R-1", 1, more, messages=[attrs_evolve(note(more[0]), created_at=naive)]
            ),
            lambda: store.release("R-1", due=naive, worker="w"),
            lambda: store.reset_due("R-1", naive),
            lambda: store.claim_messages(naive, worker="w", lease=HOUR),
            lambda: store.ack(key, at=naive),
            lambda: store.fail(key, error="e", retry_at=naive),
        ]
        for call in calls:
            with pytest.raises(InvalidArgument, match="timezone-aware"):
                call()
        assert store.version("R-1") == 1
        assert store.due_entry("R-1") == DueEntry(at=START)
        assert store.due_entry("R-none") is None
        assert store.messages() == [note(events[0])]

    # -- one honest error tree ------------------------------------------------------
    def test_regression_an_event_id_used_twice_is_a_duplicate_key_not_a_conflict(
        self, store: EventLog
    ) -> None:
        """An event id already in the log (two id generators that collide) was
        reported by the SQL stores as a ConcurrencyConflict, which retrying can never
        resolve."""
        first = make_events("R-1", 2)
        store.record("R-1", 0, first, due=START)
        (fresh,) = make_events("R-2", 1)
        taken = seal({**fresh.model_dump(exclude={"hash"}), "id": first[1].id})
        with pytest.raises(DuplicateKey) as refused:
            store.record("R-2", 0, [taken], due=START, messages=[note(taken)])
        assert refused.value.constraint == "events.id"
        assert not isinstance(refused.value, ConcurrencyConflict)
        two = make_events("R-2", 2, tag="-x")
        for clash in (first[0].id, two[0].id):  # taken before, or twice in one batch
            second = seal({**two[1].model_dump(exclude={"hash"}), "id": clash})
            with pytest.raises(DuplicateKey) as refused:
                store.append("R-2", 0, [two[0], second])
            assert refused.value.constraint == "events.id"
        assert store.streams() == ["R-1"]  # nothing of any of these batches was written
        assert store.version("R-2") == 0
        assert store.due_entry("R-2") is None
        assert store.messages() == []
        assert list(store.read("R-1")) == first
        assert store.verify().ok

    def test_regression_engines_whose_ids_collide_are_not_retried_forever(
        self, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two engines whose id generators collide: the second's command was a
        ConcurrencyConflict on the SQL stores, so ``execute(retries=n)`` retried it
        in vain; it is a DuplicateKey now, raised at once, and nothing is written."""
        first = engine_on(open_store(), "same")
        open_round(first, "R-1")
        version = first.log.version("R-1")
        second = engine_on(open_store(), "same")  # its ids repeat the first engine's
        log = second.log
        calls: list[int] = []
        write = log.record

        def counting(*args: Any, **kwargs: Any) -> None:
            calls.append(1)
            write(*args, **kwargs)

        monkeypatch.setattr(log, "record", counting)
        with pytest.raises(DuplicateKey) as refused:
            record_item(second, "R-1", "U-1", "P-1", "cmd-p1", retries=5)
        assert refused.value.constraint == "events.id"
        assert len(calls) == 1  # not retried
        assert log.version("R-1") == version
        assert "P-1" not in first.state("R-1").items
        assert log.verify().ok

    # -- the hash algorithm -----------------------------------------------------------
    def test_an_sm3_log_chains_its_events_with_sm3(
        self, open_hashed: Callable[[str | None], EventLog]
    ) -> None:
        store = open_hashed("sm3")
        assert store.hash_algorithm == "sm3"
        engine = engine_on(store)
        assert engine.hash_algorithm == "sm3"
        open_round(engine, "R-1")
        record_item(engine, "R-1", "U-1", "P-1", "cmd-p1")
        events = list(store.read("R-1"))
        assert len(events) == engine.state("R-1").version > 5
        assert events[0].prev_hash == hashlib.new("sm3", b"xuncha_flow:genesis:R-1").hexdigest()
        for event in events:
            assert event.hash == hashlib.new("sm3", event.canonical()).hexdigest()
            assert event.hash != hashlib.sha256(event.canonical()).hexdigest()
        assert store.verify().ok
        assert engine.verify().ok
        assert engine.replay("R-1") == engine.state("R-1")

    def test_an_sm3_log_refuses_events_sealed_with_sha256(
        self, open_hashed: Callable[[str | None], EventLog]
    ) -> None:
        store = open_hashed("sm3")
        with pytest.raises(LogCorrupted, match="sm3 hash"):
            store.append("R-1", 0, make_events("R-1", 2))
        assert store.version("R-1") == 0
        sm3 = make_events("R-1", 2, algorithm="sm3")
        store.append("R-1", 0, sm3)
        sha = make_events("R-1", 1, after=2, prev=sm3[-1].hash, command="c")
        with pytest.raises(LogCorrupted, match="sm3 hash"):
            store.append("R-1", 2, sha)
        assert list(store.read("R-1")) == sm3
        assert store.verify().ok

    # -- the outbox -------------------------------------------------------------------
    def test_messages_are_kept_with_the_events_that_made_them(self, store: EventLog) -> None:
        events = make_events("R-1", 2)
        messages = [note(events[0]), note(events[1], "overdue")]
        store.record("R-1", 0, events, due=START, messages=messages)
        other = make_events("R-2", 1)
        store.record("R-2", 0, other, due=None, messages=[note(other[0], "decision")])
        assert store.messages(stream="R-1") == messages
        # oldest first: R-2's message was made at the time of R-1's first
        assert store.messages(pending=True) == [
            messages[0],
            note(other[0], "decision"),
            messages[1],
        ]
        assert store.messages(pending=False) == []
        assert store.messages(stream="R-3") == []

    def test_a_failed_append_leaves_no_message(self, store: EventLog) -> None:
        events = make_events("R-1", 2)
        store.record("R-1", 0, events, due=START, messages=[note(events[0])])
        stale = make_events("R-1", 1, after=1, prev=events[0].hash, tag="-stale")
        with pytest.raises(ConcurrencyConflict):
            store.record("R-1", 1, stale, due=None, messages=[note(stale[0])])
        again = make_events("R-1", 1, tag="-again")
        with pytest.raises(ConcurrencyConflict):
            store.record("R-1", 0, again, due=None, messages=[note(again[0])])
        assert store.messages() == [note(events[0])]
        assert store.claim_messages(START + DAY, worker="w", lease=HOUR) == [
            attrs_evolve(note(events[0]), attempts=1)
        ]

    def test_messages_are_leased_acknowledged_and_retried(self, store: EventLog) -> None:
        events = make_events("R-1", 2)
        first, second = note(events[0]), note(events[1], "overdue")
        store.record("R-1", 0, events, due=None, messages=[first, second])
        at, lease = START + HOUR, timedelta(minutes=5)
        assert store.claim_messages(at, worker="w1", lease=lease, limit=1) == [
            attrs_evolve(first, attempts=1)
        ]
        assert store.claim_messages(at, worker="w2", lease=lease) == [
            attrs_evolve(second, attempts=1)
        ]
        assert store.claim_messages(at + 4 * MINUTE, worker="w3", lease=lease) == []  # leased
        store.ack(second.key, at=at + MINUTE)
        store.fail(first.key, error="smtp: 连接超时", retry_at=at + 2 * HOUR)
        assert store.messages(pending=False) == [
            attrs_evolve(second, attempts=1, delivered_at=at + MINUTE)
        ]
        failed = attrs_evolve(first, attempts=1, last_error="smtp: 连接超时")
        assert store.messages(pending=True) == [failed]
        # not before its retry time, then once more, to one worker
        assert store.claim_messages(at + HOUR, worker="w3", lease=lease) == []
        assert store.claim_messages(at + 2 * HOUR, worker="w3", lease=lease) == [
            attrs_evolve(failed, attempts=2)
        ]
        assert store.claim_messages(at + 2 * HOUR, worker="w4", lease=lease) == []
        # w3 dies without a word: once its lease lapses another worker delivers it
        retaken = store.claim_messages(at + 2 * HOUR + lease, worker="w4", lease=lease)
        assert retaken == [attrs_evolve(failed, attempts=3)]
        store.ack(first.key, at=at + 3 * HOUR)
        store.fail(first.key, error="late", retry_at=at + 9 * HOUR)  # delivered stays delivered
        assert store.messages(pending=True) == []
        assert [m.delivered_at for m in store.messages(pending=False)] == [
            at + 3 * HOUR,
            at + MINUTE,
        ]
        assert store.claim_messages(at + DAY, worker="w5", lease=lease) == []

    def test_a_message_key_used_twice_is_refused_and_nothing_is_written(
        self, store: EventLog
    ) -> None:
        events = make_events("R-1", 1)
        store.record("R-1", 0, events, due=START, messages=[note(events[0])])
        more = more_events(store, "R-1", 2, "c2")
        reused = attrs_evolve(note(more[1]), key=note(events[0]).key)
        for messages in ([note(more[0]), reused], [note(more[0]), note(more[0])]):
            with pytest.raises(DuplicateKey) as refused:
                store.record("R-1", 1, more, due=START + DAY, messages=messages)
            assert refused.value.constraint == "outbox.key"
        assert store.version("R-1") == 1
        assert store.messages() == [note(events[0])]
        assert store.due_entry("R-1") == DueEntry(at=START)
        store.record("R-1", 1, more, due=START + DAY, messages=[note(more[0])])
        assert store.version("R-1") == 3

    # -- signed checkpoints -------------------------------------------------------------
    def _checkpointed(self, store: EventLog) -> tuple[Checkpoints, list[Event]]:
        """Rounds R-1 and R-2, and checkpoints of both signed by an office."""
        engine = engine_on(store)
        open_round(engine, "R-1")
        for k in range(3):
            record_item(engine, "R-1", "U-1", f"P-{k}", f"cmd-{k}")
        open_round(engine, "R-2")
        cps = make_checkpoints(store, OFFICE, at=START)
        assert [(c.stream, c.version) for c in cps.entries] == [
            ("R-1", store.version("R-1")),
            ("R-2", store.version("R-2")),
        ]
        assert store.verify(checkpoints=cps).ok
        return cps, list(store.read("R-1"))

    def _misses_checkpoint(self, store: EventLog, cps: Checkpoints, words: str) -> None:
        assert store.verify().ok  # the chains alone cannot tell
        report = store.verify(checkpoints=cps)
        assert not report.ok
        assert report.first_bad is not None
        assert report.first_bad.stream == "R-1"
        assert "no longer reaches its checkpoint" in report.first_bad.problem
        assert words in report.first_bad.problem
        assert [r.stream for r in report.streams if not r.ok] == ["R-1"]

    def test_regression_a_truncated_stream_misses_its_checkpoint(
        self, store: EventLog, tamper: Tamper
    ) -> None:
        """Deleting a stream's last events and moving its head back passed
        ``verify()``: nothing in the store says how long the stream was."""
        cps, events = self._checkpointed(store)
        tamper.replace("R-1", events[:-2])
        self._misses_checkpoint(store, cps, "truncated")

    def test_regression_a_rewritten_and_resealed_stream_misses_its_checkpoint(
        self, store: EventLog, tamper: Tamper
    ) -> None:
        """Rewriting one event and re-sealing it, every later event and the head
        passed ``verify()``: the rewritten chain is as consistent as the original."""
        cps, events = self._checkpointed(store)
        index = next(k for k, e in enumerate(events) if e.type == "item.record")
        payload = {**events[index].payload, "description": "无问题"}
        tamper.replace("R-1", reseal_from(events, index, store.hash_algorithm, payload=payload))
        self._misses_checkpoint(store, cps, "rewritten")
        report = store.verify(checkpoints=cps)
        assert report.first_bad is not None
        assert report.first_bad.bad_version == len(events)

    def test_a_deleted_stream_is_named_by_its_checkpoint(
        self, store: EventLog, tamper: Tamper
    ) -> None:
        cps, _ = self._checkpointed(store)
        tamper.drop("R-1")
        assert store.streams() == ["R-2"]
        self._misses_checkpoint(store, cps, "truncated")
        report = store.verify(checkpoints=cps)
        assert report.first_bad is not None
        assert report.first_bad.checked == 0
        assert not store.verify("R-1", checkpoints=cps).ok

    # -- the due index, judged by the engine ------------------------------------------
    def test_regression_a_cleared_due_time_is_found_and_repaired(
        self, open_store: OpenStore, tamper: Tamper
    ) -> None:
        """A due time cleared in the due index silently stopped every sweep of its
        round: its ladder never fired."""
        w = DWorld(only_rules(DeadlinePolicy.standard(), "measure_due"), log=open_store())
        w.planned({"U-1": ["P-1"]})
        entry = w.engine.log.due_entry(w.round_id)
        assert entry is not None
        assert entry.at is not None
        tamper.clear_due(w.round_id)
        assert w.engine.log.due_entry(w.round_id) == DueEntry()
        other = Engine(clock=w.clock, log=open_store(), process=w.engine.process)
        w.clock.set(w.deadline("measure_due:M-P-1-1").due_at)
        assert other.sweep().events == ()  # the round is hidden from sweeps
        report = other.verify()
        assert [(f.stream, f.kind) for f in report.findings] == [(w.round_id, "due_index")]
        assert "nothing due" in report.findings[0].message
        assert other.rebuild_indexes() == 1
        assert other.verify().ok
        assert len(other.sweep().overdue) == 1
        assert w.log_firings()[-3:] == [
            ("measure_due:M-P-1-1", r) for r in ("green", "yellow", "red")
        ]


# -- SQL stores ----------------------------------------------------------------------
Raw = Callable[..., Any]


class SqlTamper(Tamper):
    """Tampering with raw SQL on the test's database, outside any store object."""

    def __init__(self, db: sa.Engine, tables: Tables, options: dict[str, Any]) -> None:
        self.db, self.tables, self.options = db, tables, options

    def replace(self, stream: str, events: Sequence[Event]) -> None:
        t = self.tables
        with self.db.begin() as conn:
            conn.execute(sa.delete(t.events).where(t.events.c.stream == stream))
            conn.execute(t.events.insert(), [SqlEventLog._row(e) for e in events])
            conn.execute(
                sa.update(t.streams)
                .where(t.streams.c.stream == stream)
                .values(version=events[-1].version, head=events[-1].hash)
            )
        SqlEventLog(self.db, **self.options).rebuild_index()  # rungs and views to match

    def drop(self, stream: str) -> None:
        t = self.tables
        with self.db.begin() as conn:
            for table in (t.events, t.streams, t.rungs, t.outbox, t.snapshots, *t.views):
                conn.execute(sa.delete(table).where(table.c.stream == stream))

    def clear_due(self, stream: str) -> None:
        streams = self.tables.streams
        with self.db.begin() as conn:
            conn.execute(sa.update(streams).where(streams.c.stream == stream).values(due_at=None))


def overwrite(db: sa.Engine, tables: Tables, event: Event) -> None:
    """Store ``event`` in place of the row of its stream and version, every column."""
    events = tables.events
    with db.begin() as conn:
        conn.execute(
            sa.update(events)
            .where(events.c.stream == event.stream, events.c.version == event.version)
            .values(SqlEventLog._row(event))
        )


def _v5_snapshots(tables: Tables) -> sa.Table:
    """The snapshots table as schema version 5 made it: a bare digest, no key id."""
    return _snapshots(sa.MetaData(schema=tables.schema), tables.prefix)


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
    def open_snapshots(self, db: sa.Engine, options: dict[str, Any]) -> OpenSnapshots:
        return lambda: SqlSnapshotStore(db, **options)

    @pytest.fixture
    def open_hashed(
        self, db: sa.Engine, options: dict[str, Any]
    ) -> Callable[[str | None], EventLog]:
        def open_(algorithm: str | None) -> EventLog:
            if algorithm is None:
                return SqlEventLog(db, **options)
            return SqlEventLog(db, hash_algorithm=algorithm, **options)

        return open_

    @pytest.fixture
    def tables(self, options: dict[str, Any]) -> Tables:
        return Tables.build(options.get("prefix", "xuncha_"), options.get("schema"))

    @pytest.fixture
    def tamper(self, db: sa.Engine, tables: Tables, options: dict[str, Any]) -> Tamper:
        return SqlTamper(db, tables, options)

    @pytest.fixture
    def raw(self, db: sa.Engine, tables: Tables) -> Raw:
        """Run raw SQL on the tables, outside the store: ``{events}``, ``{streams}``,
        ``{rungs}``, ``{items}``, ... stand for their qualified names."""
        fmt = db.dialect.identifier_preparer.format_table
        names = {
            name: fmt(getattr(tables, name))
            for name in (
                "events",
                "streams",
                "snapshots",
                "rungs",
                "outbox",
                "meta",
                "units",
                "items",
                "measures",
                "deadlines",
            )
        }

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
        with pytest.raises(LogCorrupted) as err:
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
        self, store: EventLog, tampered: list[Event], db: sa.Engine, tables: Tables
    ) -> None:
        forged = make_events("T", 1, after=5, prev=tampered[4].hash, command="c4", tag="-f")[0]
        overwrite(db, tables, forged)  # every column, consistent with the forged body
        self._bad(store, 6, "head")
        self._unreadable(store, 6)

    def test_a_resealed_middle_event_breaks_the_next_link(
        self, store: EventLog, tampered: list[Event], db: sa.Engine, tables: Tables
    ) -> None:
        """A forger who recomputes a changed event's hash is caught by the next event,
        whose ``prev_hash`` still names the original."""
        forged = make_events("T", 1, after=2, prev=tampered[1].hash, command="c2", tag="-f")[0]
        overwrite(db, tables, forged)
        self._bad(store, 4, "does not link")
        self._unreadable(store, 4)

    def test_a_modified_head_is_named(
        self, store: EventLog, tampered: list[Event], raw: Raw
    ) -> None:
        raw("UPDATE {streams} SET head = :h WHERE stream = 'T'", h="1" * 64)
        self._bad(store, 6, "head")

    @pytest.mark.parametrize(
        ("column", "value"),
        [
            pytest.param("type", "item.close", id="type"),
            pytest.param("subject", "P-forged", id="subject"),
            pytest.param("command_id", "forged-command", id="command_id"),
            pytest.param("timestamp", START + 30 * DAY, id="timestamp"),
            pytest.param("prev_hash", "0" * 64, id="prev_hash"),
        ],
    )
    def test_regression_editing_a_column_of_an_event_row_is_detected(
        self,
        store: EventLog,
        tampered: list[Event],
        db: sa.Engine,
        tables: Tables,
        column: str,
        value: Any,
    ) -> None:
        """Only the ``id`` and ``hash`` columns were compared with the hashed body:
        an edited ``type``, ``subject``, ``command_id``, ``timestamp`` or
        ``prev_hash`` column passed ``verify()`` and was served to every SQL report
        on those columns."""
        events = tables.events
        with db.begin() as conn:
            conn.execute(
                sa.update(events)
                .where(events.c.stream == "T", events.c.version == 3)
                .values({column: value})
            )
        self._bad(store, 3, f"the {column} column of its row (modified)")
        assert store.verify().first_bad.bad_event_id == tampered[2].id  # type: ignore[union-attr]
        self._unreadable(store, 3)
        assert list(store.read("OK")) == make_events("OK", 2)

    def test_the_timestamp_column_is_compared_as_an_instant(
        self, store: EventLog, tampered: list[Event], db: sa.Engine, tables: Tables
    ) -> None:
        """The same instant written in another zone is the same time (PostgreSQL keeps
        the instant; SQLite keeps UTC without a zone, read back as UTC)."""
        events = tables.events
        moment = tampered[2].timestamp.astimezone(DEFAULT_TIMEZONE)
        if db.dialect.name == "sqlite":
            moment = moment.astimezone(UTC)  # what SQLite keeps: the UTC wall time
        with db.begin() as conn:
            conn.execute(
                sa.update(events)
                .where(events.c.stream == "T", events.c.version == 3)
                .values(timestamp=moment)
            )
        assert store.verify().ok
        assert list(store.read("T")) == tampered

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
        with pytest.raises(LogCorrupted) as err:
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
        """A database written before the due index, the fired-rung key, snapshots,
        projections, the outbox and the hash record: upgraded in place, its rounds
        made due once, its rungs keyed, its projections folded from the log, its
        hash recorded as SHA-256 (the only one there was)."""
        w = swept_round()
        events = w.events()
        with db.begin() as conn:
            assert upgrade(conn, tables, target=1) == (1,)
            conn.execute(
                tables.streams.insert().values(
                    stream=w.round_id, version=len(events), head=events[-1].hash, created=START
                )
            )
            conn.execute(tables.events.insert(), [SqlEventLog._row(e) for e in events])
        with pytest.raises(SchemaMismatch, match="version 1"):
            SqlEventLog(db, create=False, **options)
        index = f"{tables.prefix}events_command_id"
        assert index not in _indexes(db, tables)
        store = SqlEventLog(db, **options)
        assert store.schema_version() == SCHEMA_VERSION == 6
        with db.connect() as conn:
            applied = conn.execute(sa.select(tables.versions.c.version)).scalars().all()
            rungs = conn.execute(
                sa.select(tables.rungs.c.deadline, tables.rungs.c.rung).order_by(
                    tables.rungs.c.version
                )
            ).all()
        assert sorted(applied) == [1, 2, 3, 4, 5, 6]
        assert index in _indexes(db, tables)
        assert [tuple(r) for r in rungs] == w.log_firings()
        self._check_step_6(store, db, tables)
        assert list(store.read(w.round_id)) == events
        assert store.verify().ok
        # every round written before the due index is due once, for the first sweep
        assert store.due_entry(w.round_id) == DueEntry(datetime(1970, 1, 1, tzinfo=UTC))
        assert store.claim_due(START, worker="w", lease=HOUR) == [w.round_id]
        # the projections were folded from the log
        state = w.state
        assert {i.id: i.state for i in store.items()} == {
            k: v.state for k, v in state.items.items()
        }
        assert {d.id: d.state for d in store.deadlines()} == {
            k: v.state for k, v in state.deadlines.items()
        }
        assert SqlEventLog(db, create=False, **options).version(w.round_id) == len(events)
        # an engine sweeping the upgraded database finds the rungs already fired
        engine = Engine(clock=w.clock, log=store, process=w.engine.process)
        assert engine.sweep().events == ()
        entry = store.due_entry(w.round_id)
        assert entry is not None
        assert entry.worker is None  # released, with its real next due time
        assert engine.verify().ok

    @staticmethod
    def _check_step_6(store: SqlEventLog, db: sa.Engine, tables: Tables) -> None:
        """What step 6 adds: the hash record (SHA-256 for a log written before it),
        the outbox, and the key id of a snapshot's HMAC."""
        assert store.hash_algorithm == "sha256"
        with db.connect() as conn:
            meta = conn.execute(sa.select(tables.meta.c.key, tables.meta.c.value)).all()
            inspector = sa.inspect(conn)
            outbox = {c["name"] for c in inspector.get_columns(tables.outbox.name, tables.schema)}
            snaps = {c["name"] for c in inspector.get_columns(tables.snapshots.name, tables.schema)}
        assert [tuple(r) for r in meta] == [("hash_algorithm", "sha256")]
        assert outbox == {c.name for c in tables.outbox.columns}
        assert "key_id" in snaps
        assert store.messages() == []

    def test_a_version_5_database_is_upgraded_in_place(
        self,
        db: sa.Engine,
        options: dict[str, Any],
        tables: Tables,
        open_snapshots: OpenSnapshots,
    ) -> None:
        """A database written by the previous release, with events, rungs,
        projections, a due index and a snapshot with a bare digest: upgraded in
        place, its events still verify, and the old snapshot is ignored (it is not
        authenticated), then replaced by the next one."""
        w = swept_round()
        events, state = w.events(), w.state
        due = w.engine.log.due_entry(w.round_id)
        assert due is not None
        body = state_to_json(state)
        unkeyed = _v5_snapshots(tables)
        with db.begin() as conn:
            assert upgrade(conn, tables, target=5) == (1, 2, 3, 4, 5)
            conn.execute(
                tables.streams.insert().values(
                    stream=w.round_id,
                    version=len(events),
                    head=events[-1].hash,
                    created=START,
                    due_at=due.at,
                )
            )
            conn.execute(tables.events.insert(), [SqlEventLog._row(e) for e in events])
            conn.execute(tables.rungs.insert(), rung_rows(events))
            Projector(tables).rebuild(conn)
            conn.execute(
                unkeyed.insert().values(
                    stream=w.round_id,
                    version=state.version,
                    head=state.head,
                    digest=hashlib.sha256(body.encode()).hexdigest(),
                    body=body,
                )
            )
        with pytest.raises(SchemaMismatch, match="version 5"):
            SqlEventLog(db, create=False, **options)
        store = SqlEventLog(db, **options)
        assert store.upgrade() == ()  # done by opening it
        assert store.schema_version() == 6
        self._check_step_6(store, db, tables)
        assert list(store.read(w.round_id)) == events
        report = store.verify()
        assert report.ok, (report.first_bad, report.findings)
        assert report.events == len(events)
        old = open_snapshots().latest(w.round_id)
        assert old is not None
        assert (old.version, old.key_id, old.body) == (state.version, None, body)
        # an engine with the snapshot key replays rather than trust the old snapshot
        counting = ReadCounter(store)
        engine = Engine(
            clock=w.clock,
            log=counting,
            process=w.engine.process,
            snapshots=open_snapshots(),
            snapshot_key=KEY,
        )
        assert engine.state(w.round_id) == state
        assert counting.events_read == len(events)
        found = engine.verify()
        assert [(f.stream, f.kind, f.version) for f in found.findings] == [
            (w.round_id, "snapshot", state.version)
        ]
        assert "does not verify with the snapshot key" in found.findings[0].message
        assert all(r.ok for r in found.streams)
        open_snapshots().save(Snapshot.of(state, KEY))  # the next snapshot replaces it
        fresh = open_snapshots().latest(w.round_id)
        assert fresh is not None
        assert fresh.key_id == KEY.key_id
        assert fresh.authentic(KEY)
        assert engine.verify().ok

    def test_the_migrations_build_the_tables_the_store_uses(
        self, store: SqlEventLog, db: sa.Engine, tables: Tables
    ) -> None:
        with db.connect() as conn:
            inspector = sa.inspect(conn)
            for table in (
                *tables.views,
                tables.events,
                tables.streams,
                tables.rungs,
                tables.outbox,
                tables.meta,
                tables.snapshots,
            ):
                columns = {c["name"] for c in inspector.get_columns(table.name, tables.schema)}
                assert columns == {c.name for c in table.columns}, table.name
                indexes = {i["name"] for i in inspector.get_indexes(table.name, tables.schema)}
                assert {str(i.name) for i in table.indexes} <= indexes, table.name
            assert "key_id" in {c.name for c in tables.snapshots.columns}

    def test_a_newer_schema_is_refused(
        self, store: SqlEventLog, db: sa.Engine, options: dict[str, Any], tables: Tables
    ) -> None:
        with db.begin() as conn:
            conn.execute(tables.versions.insert().values(version=99, description="future"))
        with pytest.raises(SchemaMismatch, match="99"):
            SqlEventLog(db, **options)

    def test_without_create_an_empty_database_is_refused(
        self, db: sa.Engine, options: dict[str, Any]
    ) -> None:
        with pytest.raises(SchemaMismatch, match="version 0"):
            SqlEventLog(db, create=False, **options)

    # -- due index, snapshots and fired rungs in the database --------------------------
    def test_a_record_in_a_host_transaction_rolls_back_with_it(
        self, db: sa.Engine, options: dict[str, Any], open_store: OpenStore
    ) -> None:
        store = open_store()
        events = make_events("R-1", 2)
        store.record("R-1", 0, events, due=START)
        assert store.claim_due(START, worker="w1", lease=HOUR) == ["R-1"]
        with db.connect() as conn:
            tx = conn.begin()
            hosted = SqlEventLog(conn, **options)
            hosted.record("R-1", 2, more_events(hosted, "R-1", 1, "c"), due=START + DAY)
            assert hosted.claim_due(START + DAY, worker="w2", lease=HOUR) == ["R-1"]
            tx.rollback()
        assert list(store.read("R-1")) == events
        assert store.due_entry("R-1") == DueEntry(START, "w1", START + HOUR)  # as it was
        assert store.claim_due(START, worker="w1", lease=HOUR) == ["R-1"]

    def test_due_times_compare_as_instants_whatever_their_zone(self, store: SqlEventLog) -> None:
        store.record("R-east", 0, make_events("R-east", 1), due=START)  # 09:00 +08:00
        utc = START.astimezone(UTC) - timedelta(minutes=1)  # 00:59 UTC: a minute earlier
        store.record("R-utc", 0, make_events("R-utc", 1), due=utc)
        assert store.claim_due(utc, worker="w", lease=HOUR) == ["R-utc"]
        assert store.claim_due(START, worker="x", lease=HOUR) == ["R-east"]
        assert store.due_entry("R-east") == DueEntry(START, "x", START + HOUR)

    def test_a_claim_limit_shares_the_due_streams(
        self, db: sa.Engine, options: dict[str, Any], store: SqlEventLog
    ) -> None:
        for n in range(5):
            store.record(f"R-{n}", 0, make_events(f"R-{n}", 1), due=START + n * HOUR)
        first = SqlEventLog(db, claim_limit=2, **options)
        second = SqlEventLog(db, claim_limit=2, **options)
        at = START + DAY
        assert first.claim_due(at, worker="a", lease=HOUR) == ["R-0", "R-1"]
        assert second.claim_due(at, worker="b", lease=HOUR) == ["R-2", "R-3"]
        assert first.claim_due(at, worker="c", lease=HOUR, limit=9) == ["R-4"]
        with pytest.raises(InvalidArgument, match="claim_limit"):
            SqlEventLog(db, claim_limit=0, **options)

    def test_a_damaged_snapshot_row_is_ignored(
        self, open_store: OpenStore, open_snapshots: OpenSnapshots, raw: Raw
    ) -> None:
        engine, snap = snapshotted_round(open_store(), open_snapshots())
        live = engine.state("R-1")
        for statement in (
            "UPDATE {snapshots} SET body = REPLACE(body, 'P-1', 'P-9')",
            "UPDATE {snapshots} SET body = '{{not json', digest = :d",
        ):
            raw(statement, d=hashlib.sha256(b"{not json").hexdigest())
            counting = ReadCounter(open_store())
            fresh = Engine(
                clock=ManualClock(START), log=counting, snapshots=open_snapshots(), snapshot_key=KEY
            )
            assert fresh.state("R-1") == live
            assert counting.events_read >= live.version
        # the engine's next snapshot replaces the damaged row
        engine.snapshots, engine.snapshot_key = open_snapshots(), KEY
        for k in range(5):
            record_item(engine, "R-1", "U-1", f"P-more-{k}", f"cmd-more-{k}")
        fixed = open_snapshots().latest("R-1")
        assert fixed is not None
        assert fixed.authentic(KEY)
        assert fixed.version > snap.version

    def test_a_snapshot_saved_in_a_host_transaction_rolls_back_with_it(
        self, db: sa.Engine, options: dict[str, Any], open_store: OpenStore
    ) -> None:
        open_store()
        with db.connect() as conn:
            tx = conn.begin()
            hosted = SqlSnapshotStore(conn, **options)
            _, snap = snapshotted_round(SqlEventLog(conn, **options), hosted)
            assert hosted.latest("R-1") == snap  # visible inside the transaction
            tx.rollback()
        assert SqlSnapshotStore(db, **options).latest("R-1") is None
        assert open_store().version("R-1") == 0

    def test_a_rung_recorded_twice_is_refused_by_the_database(
        self, store: SqlEventLog, db: sa.Engine, tables: Tables
    ) -> None:
        w = swept_round(store)
        red = next(e for e in store.read(w.round_id) if e.payload.get("rung") == "red")
        head = list(store.read(w.round_id))[-1]
        forged = seal(
            {
                **red.model_dump(exclude={"hash"}),
                "id": "forged-red",
                "version": head.version + 1,
                "prev_hash": head.hash,
                "command_id": "forged",
            }
        )
        before = (store.items(), store.deadlines())
        with pytest.raises(DuplicateKey) as refused:
            store.append(w.round_id, head.version, [forged])  # chain-valid, but a rung again
        assert refused.value.constraint == "rungs"
        with pytest.raises(DuplicateKey):
            store.record(w.round_id, head.version, [forged], due=None)
        assert store.version(w.round_id) == head.version  # nothing of it was written
        assert (store.items(), store.deadlines()) == before
        with db.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(tables.rungs)).scalar()
        assert count == len(w.log_firings()) == 3
        # the same rung of the next generation (after an approved extension) is new
        deadline = "measure_due:M-P-1-1"
        w.extend(deadline, w.deadline(deadline).due + timedelta(days=30))
        w.sweep_at(w.deadline(deadline).due_at)
        assert w.log_firings()[3:] == [(deadline, "green"), (deadline, "yellow"), (deadline, "red")]
        with db.connect() as conn:
            rows = conn.execute(
                sa.select(tables.rungs.c.rung, tables.rungs.c.generation).order_by(
                    tables.rungs.c.version
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            (rung, generation) for generation in (1, 2) for rung in ("green", "yellow", "red")
        ]

    # -- the rung key and the projections against the log ---------------------------------
    def test_regression_a_stray_rung_row_is_found_and_removed(
        self, store: SqlEventLog, db: sa.Engine, tables: Tables
    ) -> None:
        """A fired-rung row with no ``deadline.escalate`` event behind it passed
        ``verify()`` and made every sweep of its round fail (as a conflict, retried in
        vain): the rung could never fire."""
        w = DWorld(only_rules(DeadlinePolicy.standard(), "measure_due"), log=store)
        w.planned({"U-1": ["P-1"]})
        deadline = "measure_due:M-P-1-1"
        version = store.version(w.round_id)
        with db.begin() as conn:
            conn.execute(
                tables.rungs.insert().values(
                    stream=w.round_id, deadline=deadline, rung="green", generation=1, version=3
                )
            )
        report = store.verify()
        assert all(r.ok for r in report.streams)
        assert [(f.stream, f.kind, f.version) for f in report.findings] == [
            (w.round_id, "rungs", 3)
        ]
        assert "no deadline.escalate event records" in report.findings[0].message
        assert "'green' of measure_due:M-P-1-1 (generation 1)" in report.findings[0].message
        w.clock.set(w.deadline(deadline).due_at)
        blocked = w.engine.sweep()  # the stray row blocks the round's rungs
        assert blocked.events == ()
        assert [s for s, _ in blocked.failed] == [w.round_id]
        assert "'rungs'" in blocked.failed[0][1]
        assert store.version(w.round_id) == version
        assert store.rebuild_index() == version  # every event read
        assert store.verify().ok
        sweeper = Engine(clock=w.clock, log=store, process=w.engine.process)
        assert len(sweeper.sweep().overdue) == 1
        assert w.log_firings() == [(deadline, r) for r in ("green", "yellow", "red")]
        assert store.verify().ok

    def test_regression_a_deleted_rung_row_is_found_and_restored(
        self, store: SqlEventLog, raw: Raw, tables: Tables, db: sa.Engine
    ) -> None:
        """A deleted fired-rung row passed ``verify()``, and the database would have
        let that rung be recorded a second time."""
        w = swept_round(store)
        red = next(e for e in store.read(w.round_id) if e.payload.get("rung") == "red")
        raw("DELETE FROM {rungs} WHERE rung = 'red'")
        report = store.verify()
        assert [(f.stream, f.kind, f.version) for f in report.findings] == [
            (w.round_id, "rungs", red.version)
        ]
        assert "has no row in the fired-rung table" in report.findings[0].message
        raw("UPDATE {rungs} SET version = 1 WHERE rung = 'green'")
        green, missing = (f.message for f in store.verify().findings)
        assert "at version 1, but it fired at version" in green
        assert "has no row in the fired-rung table" in missing
        assert store.rebuild_index() == store.version(w.round_id)
        assert store.verify().ok
        with db.connect() as conn:
            rows = conn.execute(
                sa.select(tables.rungs.c.rung, tables.rungs.c.version).order_by(
                    tables.rungs.c.version
                )
            ).all()
        fired = [e for e in store.read(w.round_id) if e.type == "deadline.escalate"]
        assert [tuple(r) for r in rows] == [(e.payload["rung"], e.version) for e in fired]
        head = list(store.read(w.round_id))[-1]
        again = seal(
            {
                **red.model_dump(exclude={"hash"}),
                "id": "red-again",
                "version": head.version + 1,
                "prev_hash": head.hash,
            }
        )
        with pytest.raises(DuplicateKey):
            store.append(w.round_id, head.version, [again])

    def test_rung_rows_of_a_stream_the_log_does_not_have_are_reported(
        self, store: SqlEventLog, db: sa.Engine, tables: Tables
    ) -> None:
        store.append("R-1", 0, make_events("R-1", 1))
        with db.begin() as conn:
            conn.execute(
                tables.rungs.insert().values(
                    stream="R-ghost", deadline="d", rung="red", generation=1, version=1
                )
            )
        report = store.verify()
        assert [(f.stream, f.kind) for f in report.findings] == [("R-ghost", "rungs")]
        assert store.verify("R-1").ok  # one stream: only its own rows
        assert [f.kind for f in store.verify("R-ghost").findings] == ["rungs"]
        store.rebuild_index()
        assert store.verify().ok

    def test_regression_edited_projections_are_found_and_refolded(
        self, store: SqlEventLog, raw: Raw, db: sa.Engine, tables: Tables
    ) -> None:
        """The projection tables — the source of SQL reports on items, measures and
        deadlines — could be edited and ``verify()`` still passed."""
        w = swept_round(store)
        items, measures, deadlines = store.items(), store.measures(), store.deadlines()
        assert items
        assert measures
        assert deadlines
        raw("UPDATE {items} SET state = 'closed' WHERE id = 'P-1'")
        raw("DELETE FROM {measures}")
        with db.begin() as conn:
            conn.execute(
                tables.units.insert().values(
                    stream=w.round_id,
                    id="U-forged",
                    name="伪造单位",
                    organization_id="org-x",
                    state="rectifying",
                    version=1,
                )
            )
            conn.execute(
                tables.units.insert().values(
                    stream="R-ghost", id="U-1", name="x", organization_id="o", state="s", version=1
                )
            )
        report = store.verify()
        assert all(r.ok for r in report.streams)  # the chains hold
        found = [(f.stream, f.kind, f.message) for f in report.findings]
        assert {s for s, _, _ in found} == {w.round_id, "R-ghost"}
        assert {k for _, k, _ in found} == {"projections"}
        text = "\n".join(m for _, _, m in found)
        assert "items row 'P-1': state is 'closed', the events make" in text
        assert "measures has no row 'M-P-1-1', which the events make" in text
        assert "units row 'U-forged' is not made by any event (inserted)" in text
        assert "units hold rows of a stream the log does not have" in text
        assert store.verify(projections=False).ok  # rungs and chains only
        assert store.items(state="closed") != []  # what a report would have shown
        assert store.rebuild_index() == store.version(w.round_id)
        assert store.verify().ok
        assert (store.items(), store.measures(), store.deadlines()) == (
            items,
            measures,
            deadlines,
        )

    def test_verify_leaves_the_projections_as_they_were(self, store: SqlEventLog, raw: Raw) -> None:
        """The fold verify compares with is rolled back: verify never writes."""
        w = swept_round(store)
        raw("UPDATE {items} SET description = 'edited' WHERE id = 'P-1'")
        before = (store.items(), store.measures(), store.deadlines(), store.units())
        assert [f.kind for f in store.verify().findings] == ["projections"]
        assert [f.kind for f in store.verify(w.round_id).findings] == ["projections"]
        assert (store.items(), store.measures(), store.deadlines(), store.units()) == before

    def test_a_verify_in_a_host_transaction_keeps_the_hosts_writes(
        self, db: sa.Engine, options: dict[str, Any], notes: sa.Table, open_store: OpenStore
    ) -> None:
        swept_round(open_store())
        with db.connect() as conn:
            with conn.begin():
                conn.execute(notes.insert().values(id=1, text="kept"))
                hosted = SqlEventLog(conn, **options)
                assert hosted.verify().ok
                conn.execute(notes.insert().values(id=2, text="also kept"))
            assert conn.execute(sa.select(sa.func.count()).select_from(notes)).scalar() == 2

    # -- the hash algorithm, recorded in the database ---------------------------------
    def test_the_hash_algorithm_is_recorded_in_the_database(
        self,
        open_hashed: Callable[[str | None], EventLog],
        db: sa.Engine,
        tables: Tables,
    ) -> None:
        assert open_hashed(None).hash_algorithm == "sha256"
        store = open_hashed("sm3")  # an empty log takes the hash it is opened with
        assert store.hash_algorithm == "sm3"
        store.append("R-1", 0, make_events("R-1", 2, algorithm="sm3"))
        again = open_hashed(None)
        assert again.hash_algorithm == "sm3"
        assert again.verify().ok
        assert open_hashed("sm3").version("R-1") == 2
        with pytest.raises(SchemaMismatch, match="sm3"):
            open_hashed("sha256")  # once it has events, never another hash
        with db.connect() as conn:
            recorded = conn.execute(
                sa.select(tables.meta.c.value).where(tables.meta.c.key == "hash_algorithm")
            ).scalar_one()
        assert recorded == "sm3"
        with pytest.raises(InvalidArgument, match="md5"):
            open_hashed("md5")

    # -- the outbox in the database ---------------------------------------------------
    def test_messages_are_seen_only_once_their_events_commit(
        self, db: sa.Engine, options: dict[str, Any], open_store: OpenStore
    ) -> None:
        outside = open_store()
        events = make_events("R-1", 2)
        messages = [note(events[0]), note(events[1])]
        with db.connect() as conn:
            tx = conn.begin()
            hosted = SqlEventLog(conn, **options)
            hosted.record("R-1", 0, events, due=None, messages=messages)
            assert hosted.messages() == messages  # inside the transaction
            assert outside.messages() == []  # no worker sees them before the commit
            tx.rollback()
        assert outside.messages() == []
        assert outside.version("R-1") == 0
        with db.connect() as conn:
            tx = conn.begin()
            SqlEventLog(conn, **options).record("R-1", 0, events, due=None, messages=messages)
            assert outside.messages() == []
            tx.commit()
        assert outside.messages() == messages
        assert outside.claim_messages(START + DAY, worker="w", lease=HOUR) == [
            attrs_evolve(m, attempts=1) for m in messages
        ]

    def test_a_failure_text_the_database_cannot_keep_is_kept_readable(
        self, store: SqlEventLog
    ) -> None:
        events = make_events("R-1", 1)
        store.record("R-1", 0, events, due=None, messages=[note(events[0])])
        store.fail(note(events[0]).key, error="bad\x00byte " + "x" * 5000, retry_at=START)
        (kept,) = store.messages()
        assert kept.last_error is not None
        assert kept.last_error.startswith("bad\ufffdbyte x")
        assert len(kept.last_error) == 4000

    # -- bad arguments ------------------------------------------------------------------
    def test_bad_constructor_arguments_are_invalid_arguments(
        self, db: sa.Engine, options: dict[str, Any]
    ) -> None:
        bad: list[dict[str, Any]] = [
            {"page_size": 0},
            {"page_size": "10"},
            {"claim_limit": 0},
            {"claim_limit": 1.5},
            {"prefix": "x; DROP TABLE y"},
            {"prefix": "p" * 31},
            {"hash_algorithm": "md5"},
            {"hash_algorithm": ["sm3"]},
        ]
        for kwargs in bad:
            with pytest.raises(InvalidArgument):
                SqlEventLog(db, **{**options, **kwargs})
        with pytest.raises(InvalidArgument, match="Engine or Connection"):
            SqlEventLog("sqlite://", **options)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="schema"):
            SqlEventLog(db, schema="")
        with pytest.raises(InvalidArgument, match="Engine or Connection"):
            SqlSnapshotStore(object(), **options)  # type: ignore[arg-type]

    def test_a_naive_time_bound_by_the_store_is_an_invalid_argument(
        self, store: SqlEventLog, tables: Tables
    ) -> None:
        """``UtcDateTime`` refused a naive time with a bare ValueError, which
        SQLAlchemy wrapped in its StatementError."""
        naive = datetime(2026, 3, 2, 9)
        with pytest.raises(InvalidArgument, match="timezone-aware"):
            UtcDateTime().process_bind_param(naive, store.bind.dialect)
        refused = pytest.raises(InvalidArgument, match="timezone-aware")
        with refused, store._write() as conn:
            conn.execute(sa.update(tables.streams).values(due_at=naive))
