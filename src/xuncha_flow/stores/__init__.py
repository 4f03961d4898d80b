"""Event stores in SQL databases: SQLite (the embedded default) and PostgreSQL.

Needs the ``sqlite`` or ``postgres`` extra (SQLAlchemy 2, and psycopg 3 for
PostgreSQL); ``import xuncha_flow`` alone never imports them::

    from xuncha_flow import Engine, SystemClock
    from xuncha_flow.stores import sqlite_log

    engine = Engine(clock=SystemClock(), log=sqlite_log("xuncha.db"))

A host that keeps its own tables in the same database passes its SQLAlchemy
``Connection`` and commits the workflow's events with its own writes::

    with host_engine.begin() as conn:
        Engine(clock=clock, log=SqlEventLog(conn)).execute(command)
        conn.execute(host_table.insert(), ...)  # same transaction

Snapshots go in the same database, and several sweep workers share the log's due
index (each round is leased to one worker at a time)::

    log = postgres_log(url)
    engine = Engine(clock=clock, log=log, snapshots=log.snapshot_store(), worker="w-1")
    engine.sweep()

Services query the projections instead of loading rounds::

    log.items(organization="org-7", state="rectifying")
    log.measures(responsible_person="person-1", due_before=date(2026, 7, 1))
    log.overdue(clock.now())

Every store here and :class:`~xuncha_flow.InMemoryEventLog` pass the same
contract tests (``tests/stores/contract.py``).
"""

from ._projections import DeadlineRow, ItemRow, MeasureRow, UnitRow
from ._schema import MIGRATIONS, SCHEMA_VERSION, Migration
from ._snapshots import SqlSnapshotStore
from ._sql import SqlEventLog, postgres_log, sqlite_engine, sqlite_log

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DeadlineRow",
    "ItemRow",
    "MeasureRow",
    "Migration",
    "SqlEventLog",
    "SqlSnapshotStore",
    "UnitRow",
    "postgres_log",
    "sqlite_engine",
    "sqlite_log",
]
