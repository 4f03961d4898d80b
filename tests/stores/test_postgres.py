"""The PostgreSQL event store passes the store contract, against the real server.

Each test works in its own schema (the ``pg_schema`` fixture), which is dropped
afterwards; see ``conftest.py`` for when these tests skip or fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from xuncha_flow import DueEntry
from xuncha_flow.stores import SCHEMA_VERSION, SqlEventLog, postgres_log

from .conftest import PG_URL, require_pg
from .contract import DAY, HOUR, START, SqlContract, make_events, note


class TestPostgresEventLog(SqlContract):
    @pytest.fixture
    def db(self, pg_schema: str) -> Iterator[sa.Engine]:
        engine = sa.create_engine(PG_URL)
        yield engine
        engine.dispose()

    @pytest.fixture
    def options(self, pg_schema: str) -> dict[str, Any]:
        return {"schema": pg_schema}


def test_postgres_log_opens_a_url_and_a_prefix(pg_schema: str) -> None:
    url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with postgres_log(url, schema=pg_schema, prefix="wf_") as store:
        assert store.dialect == "postgresql"
        store.append("R-1", 0, make_events("R-1", 2))
        assert store.version("R-1") == 2
    engine = sa.create_engine(PG_URL)
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("wf_events", schema=pg_schema)
    engine.dispose()


def test_several_stores_create_one_schema_at_once(pg_schema: str) -> None:
    """Workers starting together: the advisory lock lets one create the tables."""
    import threading

    require_pg()
    errors: list[BaseException] = []

    def start() -> None:
        try:
            postgres_log(PG_URL, schema=pg_schema).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with postgres_log(PG_URL, schema=pg_schema, create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_claims_skip_streams_locked_by_another_transaction(pg_schema: str) -> None:
    """``FOR UPDATE SKIP LOCKED``: a worker claiming while another's claim (or a
    writer's append) is not committed yet takes the other due streams, without
    waiting. Without it the second claim would wait on the row locks (and fail
    here, after the 2 s lock timeout)."""
    store = postgres_log(PG_URL, schema=pg_schema)
    for n in range(5):
        store.record(f"R-{n}", 0, make_events(f"R-{n}", 1), due=START + n * HOUR)
    waiting = sa.create_engine(PG_URL, connect_args={"options": "-c lock_timeout=2000"})
    at = START + DAY
    with store.bind.connect() as conn:  # type: ignore[union-attr]
        tx = conn.begin()
        hosted = SqlEventLog(conn, schema=pg_schema, claim_limit=2)
        assert hosted.claim_due(at, worker="a", lease=HOUR) == ["R-0", "R-1"]
        events = list(hosted.read("R-2"))
        more = make_events("R-2", 1, after=1, prev=events[-1].hash, command="c")
        hosted.record("R-2", 1, more, due=at)  # a writer holds R-2's row too
        other = SqlEventLog(waiting, schema=pg_schema)
        began = time.monotonic()
        assert other.claim_due(at, worker="b", lease=HOUR) == ["R-3", "R-4"]
        assert time.monotonic() - began < 1.5
        tx.commit()
    assert other.claim_due(at, worker="c", lease=HOUR) == ["R-2"]  # recorded: lease ended
    assert store.due_entry("R-0") == DueEntry(START, "a", at + HOUR)
    assert store.due_entry("R-3") == DueEntry(START + 3 * HOUR, "b", at + HOUR)
    waiting.dispose()
    store.close()


def test_workers_claiming_messages_at_once_take_disjoint_ones(pg_schema: str) -> None:
    """Four workers, each with its own engine and connections, claim the outbox in
    small batches at the same moment until it is empty: every message is leased to
    exactly one of them."""
    store = postgres_log(PG_URL, schema=pg_schema)
    events = make_events("R-1", 60)
    store.record("R-1", 0, events, due=None, messages=[note(e) for e in events])
    at = START + DAY
    start = threading.Barrier(4)
    taken: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def claim(worker: str) -> None:
        log = postgres_log(PG_URL, schema=pg_schema)
        try:
            start.wait(timeout=30)
            mine: list[str] = []
            while batch := log.claim_messages(at, worker=worker, lease=HOUR, limit=3):
                mine += [m.key for m in batch]
            taken[worker] = mine
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            log.close()

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    keys = [k for mine in taken.values() for k in mine]
    assert sorted(keys) == sorted(note(e).key for e in events)  # all of them, each once
    assert len(keys) == len(set(keys))
    assert all(m.attempts == 1 for m in store.messages())
    store.close()


def test_message_claims_skip_rows_locked_by_another_transaction(pg_schema: str) -> None:
    """``FOR UPDATE SKIP LOCKED`` on the outbox: a worker claiming while another's
    claim is not committed yet takes the other messages without waiting (without
    it the second claim would wait on the row locks and fail after 2 s here)."""
    store = postgres_log(PG_URL, schema=pg_schema)
    events = make_events("R-1", 5)
    store.record("R-1", 0, events, due=None, messages=[note(e) for e in events])
    waiting = sa.create_engine(PG_URL, connect_args={"options": "-c lock_timeout=2000"})
    at = START + DAY
    with store.bind.connect() as conn:  # type: ignore[union-attr]
        tx = conn.begin()
        hosted = SqlEventLog(conn, schema=pg_schema)
        first = hosted.claim_messages(at, worker="a", lease=HOUR, limit=2)
        assert [m.key for m in first] == [note(e).key for e in events[:2]]
        other = SqlEventLog(waiting, schema=pg_schema)
        began = time.monotonic()
        second = other.claim_messages(at, worker="b", lease=HOUR)
        assert time.monotonic() - began < 1.5
        assert [m.key for m in second] == [note(e).key for e in events[2:]]
        tx.rollback()  # a's claim is undone: its messages are free again
    assert [m.key for m in other.claim_messages(at, worker="c", lease=HOUR)] == [
        note(e).key for e in events[:2]
    ]
    waiting.dispose()
    store.close()
