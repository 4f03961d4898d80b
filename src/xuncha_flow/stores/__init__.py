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

Every store here and :class:`~xuncha_flow.InMemoryEventLog` pass the same
contract tests (``tests/stores/contract.py``).
"""

from ._schema import MIGRATIONS, SCHEMA_VERSION, Migration
from ._sql import SqlEventLog, postgres_log, sqlite_engine, sqlite_log

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "SqlEventLog",
    "postgres_log",
    "sqlite_engine",
    "sqlite_log",
]
