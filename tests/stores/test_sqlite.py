"""The SQLite event store (the embedded default) passes the store contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from xuncha_flow import ConcurrencyConflict, EventLog, InvalidArgument, LogCorrupted
from xuncha_flow.stores import SqlEventLog, sqlite_engine, sqlite_log

from .contract import OpenStore, SqlContract, make_events


class TestSqliteEventLog(SqlContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "xuncha.db"

    @pytest.fixture
    def db(self, path: Path) -> Iterator[sa.Engine]:
        engine = sqlite_engine(path)
        yield engine
        engine.dispose()

    @pytest.fixture
    def open_store(self, path: Path) -> Iterator[OpenStore]:
        opened: list[SqlEventLog] = []

        def open_() -> EventLog:
            opened.append(sqlite_log(path))
            return opened[-1]

        yield open_
        for store in opened:
            store.close()


def test_the_file_is_in_wal_mode_with_the_documented_pragmas(tmp_path: Path) -> None:
    with sqlite_log(tmp_path / "x.db") as store:
        store.append("R-1", 0, make_events("R-1", 1))
    engine = sqlite_engine(tmp_path / "x.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()
    with sqlite_log(tmp_path / "x.db", synchronous="NORMAL", busy_timeout=2) as store:
        assert store.version("R-1") == 1


def test_an_in_memory_sqlite_database_works(tmp_path: Path) -> None:
    with sqlite_log(":memory:") as store:
        events = make_events("R-1", 3)
        store.append("R-1", 0, events)
        assert list(store.read("R-1")) == events


def test_a_host_transaction_on_a_plain_sqlalchemy_engine_rolls_back(tmp_path: Path) -> None:
    """An engine the host made itself, with the sqlite3 driver's legacy implicit
    transactions: the store still writes inside the host's transaction."""
    plain = sa.create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    SqlEventLog(plain)
    with plain.connect() as conn:
        tx = conn.begin()
        SqlEventLog(conn).append("R-1", 0, make_events("R-1", 2))
        tx.rollback()
    assert SqlEventLog(plain).version("R-1") == 0
    with plain.connect() as conn:
        tx = conn.begin()
        SqlEventLog(conn).append("R-1", 0, make_events("R-1", 2))
        tx.commit()
    own = SqlEventLog(plain)  # the store's own transactions on that engine
    assert own.version("R-1") == 2
    events = list(own.read("R-1"))
    own.append("R-1", 2, make_events("R-1", 1, after=2, prev=events[-1].hash, command="x"))
    with pytest.raises(ConcurrencyConflict):
        own.append("R-1", 2, make_events("R-1", 1, after=2, prev=events[-1].hash, tag="y"))
    assert own.version("R-1") == 3
    assert own.verify().ok
    plain.dispose()


def test_page_size_does_not_change_what_is_read(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "p.db")
    events = make_events("R-1", 7)
    SqlEventLog(engine).append("R-1", 0, events)
    for size in (1, 2, 3, 7, 100):
        store = SqlEventLog(engine, page_size=size)
        assert list(store.read("R-1")) == events
        assert list(store.read("R-1", after=4)) == events[4:]
        assert store.verify().ok
    with pytest.raises(InvalidArgument, match="page_size"):
        SqlEventLog(engine, page_size=0)
    engine.dispose()


def test_a_table_prefix_keeps_two_logs_apart(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "two.db")
    a, b = SqlEventLog(engine), SqlEventLog(engine, prefix="other_")
    a.append("R-1", 0, make_events("R-1", 2))
    assert b.streams() == []
    assert sa.inspect(engine).has_table("other_events")
    engine.dispose()


def test_a_timestamp_column_holding_no_time_is_named(tmp_path: Path) -> None:
    """SQLite keeps any text in a time column: it is reported, not raised while
    the row is fetched."""
    with sqlite_log(tmp_path / "t.db") as store:
        store.append("R-1", 0, make_events("R-1", 3))
        with store.bind.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE xuncha_events SET timestamp = 'not a time' WHERE version = 2"
            )
        report = store.verify()
        assert report.first_bad is not None
        assert report.first_bad.bad_version == 2
        assert "the timestamp column of its row (modified)" in report.first_bad.problem
        with pytest.raises(LogCorrupted) as err:
            list(store.read("R-1"))
        assert err.value.version == 2


def test_bad_engine_settings_are_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="synchronous"):
        sqlite_engine(tmp_path / "x.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="busy_timeout"):
        sqlite_engine(tmp_path / "x.db", busy_timeout=-1)
    with pytest.raises(InvalidArgument, match="path"):
        sqlite_log(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="md5"):
        sqlite_log(tmp_path / "x.db", hash_algorithm="md5")


def test_sqlite_log_creates_an_sm3_log(tmp_path: Path) -> None:
    with sqlite_log(tmp_path / "sm3.db", hash_algorithm="sm3") as store:
        store.append("R-1", 0, make_events("R-1", 2, algorithm="sm3"))
    with sqlite_log(tmp_path / "sm3.db") as store:
        assert store.hash_algorithm == "sm3"
        assert store.verify().ok
