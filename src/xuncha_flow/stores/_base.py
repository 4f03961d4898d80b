"""What every SQL store object shares: its binding, its transactions, its schema.

Whose transaction. Bound to an :class:`~sqlalchemy.engine.Engine`, a store opens
a transaction per call (``engine.begin()``). Bound to a
:class:`~sqlalchemy.engine.Connection` that is inside a transaction, it writes in
*that* transaction, under a savepoint so that a failure undoes only the store's
own statements, and never commits: the host commits workflow events together with
its own rows, or rolls both back. A connection-bound store belongs to the thread
that owns the connection.

SQLite. Writers take the write lock when their transaction begins
(``BEGIN IMMEDIATE``), so two writers queue on SQLite's busy timeout instead of
failing halfway; readers run in WAL mode beside them. An engine made by
:func:`~xuncha_flow.stores.sqlite_engine` does this itself; on an engine made
elsewhere the store begins with ``BEGIN IMMEDIATE`` when its driver has not begun a
transaction.

Errors. A library error raised while SQLAlchemy binds a parameter (a naive time,
refused by :class:`~xuncha_flow.stores._schema.UtcDateTime`) reaches the caller as
that error, not wrapped in SQLAlchemy's ``StatementError``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .._errors import InvalidArgument, SchemaMismatch, XunchaError
from ._projections import Projector
from ._schema import MIGRATIONS, SCHEMA_VERSION, Tables, current_version, upgrade

__all__ = ["BEGIN_MODES", "BEGIN_OPTION", "SqlBase"]

BEGIN_OPTION = "xuncha_sqlite_begin"
BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,29}")


def check_int(value: object, what: str, least: int) -> int:
    """``value`` if it is an int of at least ``least``, else
    :class:`~xuncha_flow.InvalidArgument`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    if value < least:
        raise InvalidArgument(f"{what} must be at least {least}, got {value}")
    return value


@contextmanager
def library_errors() -> Iterator[None]:
    """Let a library error raised inside SQLAlchemy (a bind parameter's processor)
    out as itself rather than as ``StatementError``."""
    try:
        yield
    except sa_exc.StatementError as exc:
        if isinstance(exc.orig, XunchaError):
            raise exc.orig from exc
        raise


class SqlBase:
    """A binding to a database (an Engine or a Connection), the store's tables for
    ``prefix`` and ``schema``, and its transactions. With ``create`` the tables are
    created or upgraded to :data:`SCHEMA_VERSION`; without it, a database at
    another version is refused."""

    def __init__(
        self,
        bind: sa.Engine | sa.Connection,
        *,
        prefix: str = "xuncha_",
        schema: str | None = None,
        create: bool = True,
        page_size: int = 1000,
        owns_engine: bool = False,
    ) -> None:
        if isinstance(bind, sa.Connection):
            self._engine: sa.Engine | None = None
            self._conn: sa.Connection | None = bind
        elif isinstance(bind, sa.Engine):
            self._engine, self._conn = bind, None
        else:
            raise InvalidArgument(f"bind must be a SQLAlchemy Engine or Connection, not {bind!r}")
        check_int(page_size, "page_size", 1)
        if not isinstance(prefix, str) or not (prefix == "" or _PREFIX.fullmatch(prefix)):
            raise InvalidArgument(
                f"prefix must be empty or a letter or underscore followed by at most 29 "
                f"letters, digits or underscores, got {prefix!r}"
            )
        if schema is not None and (
            not isinstance(schema, str) or not 0 < len(schema) <= 63 or "\x00" in schema
        ):
            raise InvalidArgument(
                f"schema must be None or a name of 1 to 63 characters without NUL, got {schema!r}"
            )
        self.tables = Tables.build(prefix, schema)
        self.page_size = page_size
        self.dialect: str = bind.dialect.name
        self._owns_engine = owns_engine
        self._lock = threading.RLock()
        if create:
            self.upgrade()
        else:
            self._check_version(self.schema_version())

    @property
    def bind(self) -> sa.Engine | sa.Connection:
        """The Engine or Connection the store was given."""
        found = self._engine if self._engine is not None else self._conn
        assert found is not None
        return found

    # -- schema ----------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version of the database (0 before the tables exist)."""
        with self._read() as conn:
            return current_version(conn, self.tables)

    def upgrade(self, target: int | None = None) -> tuple[int, ...]:
        """Create or upgrade the tables to ``target`` (default: :data:`SCHEMA_VERSION`)
        in one transaction; return the schema versions applied. When a step applied
        creates or changes projection tables, the log is refolded into them in the
        same transaction."""
        goal = SCHEMA_VERSION if target is None else target
        have = self.schema_version()
        if have > SCHEMA_VERSION:
            self._check_version(have)
        if have >= goal:
            return ()
        with self._write() as conn:
            if self.dialect == "postgresql":
                # Serialise concurrent upgraders (several workers starting at once);
                # SQLite writers are serialised by BEGIN IMMEDIATE already.
                key = f"xuncha_flow:{self.tables.schema or ''}:{self.tables.prefix}"
                digest = hashlib.sha256(key.encode()).digest()[:8]
                conn.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(int.from_bytes(digest, signed=True)))
                )
            applied = upgrade(conn, self.tables, target=goal)
            steps = {m.version: m for m in MIGRATIONS}
            if goal == SCHEMA_VERSION and any(steps[v].refold for v in applied):
                Projector(self.tables).rebuild(conn, self.page_size)
            return applied

    def _check_version(self, have: int) -> None:
        if have != SCHEMA_VERSION:
            hint = (
                "upgrade xuncha_flow"
                if have > SCHEMA_VERSION
                else "open it with create=True to upgrade it"
            )
            raise SchemaMismatch(
                f"the database schema is at version {have}, this xuncha_flow uses "
                f"{SCHEMA_VERSION}: {hint}"
            )

    # -- transactions ----------------------------------------------------------------
    @contextmanager
    def _write(self, *, undo: bool = False) -> Iterator[sa.Connection]:
        """A write transaction (or, in a host's transaction, a savepoint), committed
        when the block ends without an error; with ``undo``, always rolled back: a
        scratch transaction whose writes nobody ever sees."""
        with library_errors():
            if self._engine is not None:
                with self._engine.connect() as conn:
                    conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                    with conn.begin() as tx:
                        self._sqlite_begin(conn)
                        yield conn
                        if undo:
                            tx.rollback()
                return
            assert self._conn is not None
            conn = self._conn
            with self._lock:
                if conn.in_transaction():
                    self._sqlite_begin(conn)
                    with conn.begin_nested() as sp:
                        yield conn
                        if undo:
                            sp.rollback()
                else:
                    conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                    with conn.begin() as tx:
                        self._sqlite_begin(conn)
                        yield conn
                        if undo:
                            tx.rollback()

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with library_errors():
            if self._engine is not None:
                with self._engine.connect() as conn, conn.begin():
                    yield conn
                return
            assert self._conn is not None
            conn = self._conn
            with self._lock:
                if conn.in_transaction():
                    yield conn
                else:
                    with conn.begin():
                        yield conn

    def _sqlite_begin(self, conn: sa.Connection) -> None:
        """Make sure a SQLite write runs in a real transaction holding the write lock.

        Python's sqlite3 driver, in its default mode, begins a transaction only at
        the first INSERT/UPDATE/DELETE and never for SAVEPOINT, so a savepoint
        opened first would commit on release. Beginning here keeps our writes, and
        a host's, in the transaction the host commits or rolls back."""
        if self.dialect != "sqlite":
            return
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not getattr(dbapi, "in_transaction", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    # -- lifetime --------------------------------------------------------------------
    def close(self) -> None:
        """Dispose of the engine if the store made it (:func:`sqlite_log`,
        :func:`postgres_log`); a host's engine or connection is left alone."""
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()

    def _where(self) -> str:
        return f"prefix={self.tables.prefix!r}, schema={self.tables.schema!r}"
