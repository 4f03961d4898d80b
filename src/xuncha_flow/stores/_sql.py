"""The event log on SQLAlchemy 2 Core: SQLite (the embedded default) and PostgreSQL.

Writing. :meth:`SqlEventLog.append` writes a command's events and moves the
stream head in one transaction. The head row is moved first, by a conditional
``UPDATE ... WHERE version = expected`` (or, for a new stream, an ``INSERT`` that
the unique stream id refuses twice): a stale writer changes no row and gets
:class:`~xuncha_flow.ConcurrencyConflict`; the primary key ``(stream, version)``
of the events backs this up, and a driver's integrity error on it becomes the
same :class:`~xuncha_flow.ConcurrencyConflict` — the one the in-memory log raises.
Either way the transaction is rolled back and nothing of the batch is written.

Whose transaction. Bound to an :class:`~sqlalchemy.engine.Engine`, the store opens
a transaction per call (``engine.begin()``). Bound to a
:class:`~sqlalchemy.engine.Connection` that is inside a transaction, it writes in
*that* transaction, under a savepoint so that a conflict undoes only the append,
and never commits: the host commits workflow events together with its own rows,
or rolls both back. A connection-bound store belongs to the thread that owns the
connection.

SQLite. Writers take the write lock when their transaction begins
(``BEGIN IMMEDIATE``), so two writers queue on SQLite's busy timeout instead of
failing halfway; readers run in WAL mode beside them. :func:`sqlite_engine`
configures this (and the pragmas); an engine made elsewhere still gets
``BEGIN IMMEDIATE`` from the store when its driver has not begun a transaction.

Reading. :meth:`SqlEventLog.read` reads the stream head, then pages through the
events up to it in version order, parsing each from its stored JSON and checking
it: readable, the row it is stored in, its hash over the exact stored bytes, its
link to the previous event, and at the end the head. A row that fails raises
:class:`~xuncha_flow.IntegrityError` naming stream and version — corrupted data is
never loaded silently. :meth:`SqlEventLog.verify` runs the same checks over every
stream and reports the first bad event of each instead of raising, plus events
stored beyond a head or for a stream without one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from .._errors import ConcurrencyConflict, IntegrityError
from .._events import ChainReport, Event, canonical_json, genesis_hash
from .._log import EventLog, LogReport, check_batch
from ._schema import SCHEMA_VERSION, Tables, current_version, upgrade

__all__ = ["SqlEventLog", "postgres_log", "sqlite_engine", "sqlite_log"]

_BEGIN_OPTION = "xuncha_sqlite_begin"
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


class _Corrupt(IntegrityError):
    """A stored event that fails its checks; ``event_id`` when the row has one."""

    def __init__(self, stream: str, version: int, event_id: str | None, problem: str) -> None:
        super().__init__(f"stream {stream!r}: {problem}", stream=stream, version=version)
        self.event_id = event_id
        self.problem = problem


def _body(event: Event) -> str:
    """The stored text of an event: its canonical JSON with the ``hash`` member."""
    return canonical_json(event.model_dump(mode="json")).decode()


def _body_hash(body: str, claimed: str) -> str:
    """SHA-256 of a stored body without its ``hash`` member: the bytes the event's
    hash covers. Keys are sorted and ``actor``, the only object before ``hash``,
    has no such key, so the first ``,"hash":"<claimed>"`` is the top-level member
    (inside JSON strings a quote is always escaped)."""
    return hashlib.sha256(body.replace(f',"hash":"{claimed}"', "", 1).encode()).hexdigest()


class _Statements:
    """The store's statements, built once with bound parameters so that SQLAlchemy
    compiles each once and caches it."""

    def __init__(self, tables: Tables, page_size: int) -> None:
        events, streams = tables.events, tables.streams
        p = sa.bindparam
        self.head = sa.select(streams.c.version, streams.c.head).where(
            streams.c.stream == p("s_stream")
        )
        self.version = sa.select(streams.c.version).where(streams.c.stream == p("s_stream"))
        self.order = sa.select(streams.c.stream).order_by(streams.c.seq)
        self.create = streams.insert().values(
            stream=p("s_stream"), version=p("s_version"), head=p("s_head"), created=p("s_created")
        )
        self.move = (
            sa.update(streams)
            .where(
                streams.c.stream == p("s_stream"),
                streams.c.version == p("s_expected"),
                streams.c.head == p("s_link"),
            )
            .values(version=p("s_version"), head=p("s_head"))
        )
        self.insert = events.insert()
        self.anchor = sa.select(events.c.hash).where(
            events.c.stream == p("s_stream"), events.c.version == p("s_version")
        )
        self.page = (
            sa.select(events.c.version, events.c.id, events.c.hash, events.c.body)
            .where(
                events.c.stream == p("s_stream"),
                events.c.version >= p("s_from"),
                events.c.version <= p("s_to"),
            )
            .order_by(events.c.version)
            .limit(page_size)
        )
        self.beyond = (
            sa.select(events.c.version, events.c.id)
            .where(events.c.stream == p("s_stream"), events.c.version > p("s_version"))
            .order_by(events.c.version)
            .limit(1)
        )
        self.headless = (
            sa.select(events.c.stream, sa.func.min(events.c.version))
            .select_from(events.outerjoin(streams, events.c.stream == streams.c.stream))
            .where(streams.c.stream.is_(None))
            .group_by(events.c.stream)
            .order_by(events.c.stream)
        )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


class SqlEventLog(EventLog):
    """An :class:`~xuncha_flow.EventLog` in a SQL database, through SQLAlchemy Core.

    ``bind`` is an :class:`~sqlalchemy.engine.Engine` (the store runs its own
    transactions) or a :class:`~sqlalchemy.engine.Connection` (the store writes in
    the connection's transaction, if one is open, and never commits it). Tables are
    named ``<prefix>events``, ``<prefix>streams`` and ``<prefix>schema_version``,
    in database schema ``schema`` if given. With ``create`` the tables are created
    or upgraded to :data:`SCHEMA_VERSION`; without it, a database at another version
    is refused. ``page_size`` is how many events :meth:`read` fetches a query;
    ``owns_engine`` makes :meth:`close` dispose of the engine.
    """

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
            raise TypeError(f"bind must be a SQLAlchemy Engine or Connection, not {bind!r}")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.tables = Tables.build(prefix, schema)
        self._sql = _Statements(self.tables, page_size)
        self.dialect: str = bind.dialect.name
        self._owns_engine = owns_engine
        self._lock = threading.RLock()
        if create:
            self.upgrade()
        else:
            self._check_version(self.schema_version())

    # -- schema ----------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version of the database (0 before the tables exist)."""
        with self._read() as conn:
            return current_version(conn, self.tables)

    def upgrade(self, target: int | None = None) -> tuple[int, ...]:
        """Create or upgrade the tables to ``target`` (default: :data:`SCHEMA_VERSION`)
        in one transaction; return the schema versions applied."""
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
            return upgrade(conn, self.tables, target=goal)

    def _check_version(self, have: int) -> None:
        if have != SCHEMA_VERSION:
            hint = (
                "upgrade xuncha_flow"
                if have > SCHEMA_VERSION
                else "open it with create=True to upgrade it"
            )
            raise IntegrityError(
                f"the database schema is at version {have}, this xuncha_flow uses "
                f"{SCHEMA_VERSION}: {hint}"
            )

    # -- transactions ----------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        if self._engine is not None:
            with self._engine.connect() as conn:
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    self._sqlite_begin(conn)
                    yield conn
            return
        assert self._conn is not None
        conn = self._conn
        with self._lock:
            if conn.in_transaction():
                self._sqlite_begin(conn)
                with conn.begin_nested():
                    yield conn
            else:
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    self._sqlite_begin(conn)
                    yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
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

    # -- EventLog --------------------------------------------------------------------
    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        batch = tuple(events)
        if not batch:
            actual = self.version(stream)
            if actual != expected_version:
                raise ConcurrencyConflict(stream, expected_version, actual)
            return
        first, last = batch[0], batch[-1]
        head = genesis_hash(stream) if expected_version == 0 else first.prev_hash
        check_batch(stream, expected_version, head, batch)
        rows = [self._row(e) for e in batch]
        sql = self._sql
        head_row = {"s_stream": stream, "s_version": last.version, "s_head": last.hash}
        try:
            with self._write() as conn:
                if expected_version == 0:
                    conn.execute(sql.create, {**head_row, "s_created": first.timestamp})
                else:
                    moved = conn.execute(
                        sql.move,
                        {**head_row, "s_expected": expected_version, "s_link": first.prev_hash},
                    )
                    if moved.rowcount != 1:
                        self._refused(conn, stream, expected_version, batch)
                conn.execute(sql.insert, rows)
        except sa_exc.IntegrityError as exc:
            raise ConcurrencyConflict(
                stream, expected_version, self._version_or_none(stream)
            ) from exc

    def _refused(
        self, conn: sa.Connection, stream: str, expected: int, batch: tuple[Event, ...]
    ) -> None:
        """The head did not move: say why (a stale writer, or a batch that does not
        link to the head)."""
        found = conn.execute(self._sql.head, {"s_stream": stream}).first()
        actual = int(found.version) if found is not None else 0
        if actual != expected or found is None:
            raise ConcurrencyConflict(stream, expected, actual)
        check_batch(stream, expected, str(found.head), batch)
        raise ConcurrencyConflict(stream, expected, actual)  # pragma: no cover - moved meanwhile

    def _version_or_none(self, stream: str) -> int | None:
        try:
            return self.version(stream)
        except sa_exc.SQLAlchemyError:  # pragma: no cover - only for the message
            return None

    @staticmethod
    def _row(event: Event) -> dict[str, Any]:
        body = _body(event)
        if _body_hash(body, event.hash) != event.hash:
            raise IntegrityError(
                f"event {event.id} does not match its hash; it was not sealed or was changed",
                stream=event.stream,
                version=event.version,
            )
        return {
            "stream": event.stream,
            "version": event.version,
            "id": event.id,
            "type": event.type,
            "subject": event.subject,
            "timestamp": event.timestamp,
            "command_id": event.command_id,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
            "body": body,
        }

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        """The stream's events with version > ``after``, in order, up to the stream
        head as it was when reading began. Raises :class:`IntegrityError` at the
        first stored event that fails its checks."""
        return self._scan(stream, max(after, 0))

    def _scan(self, stream: str, after: int) -> Iterator[Event]:
        sql = self._sql
        with self._read() as conn:
            found = conn.execute(sql.head, {"s_stream": stream}).first()
            top = int(found.version) if found is not None else 0
            if top <= after:
                return
            prev = genesis_hash(stream)
            if after:
                anchor = conn.execute(sql.anchor, {"s_stream": stream, "s_version": after}).scalar()
                if anchor is None:
                    raise _Corrupt(stream, after, None, f"event {after} is missing")
                prev = str(anchor)
        assert found is not None
        expect = after + 1
        page = {"s_stream": stream, "s_to": top}
        while expect <= top:
            with self._read() as conn:
                rows = conn.execute(sql.page, {**page, "s_from": expect}).all()
            if not rows:
                raise _Corrupt(
                    stream,
                    expect,
                    None,
                    f"event {expect} is missing: the stream head is at version {top} "
                    f"but the stored events end at {expect - 1} (deleted tail)",
                )
            for row in rows:
                event = self._parse(
                    stream,
                    expect,
                    int(row.version),
                    str(row.id),
                    str(row.hash),
                    str(row.body),
                    prev,
                )
                yield event
                prev = event.hash
                expect += 1
        if prev != found.head:
            raise _Corrupt(
                stream,
                top,
                None,
                f"event {top} is not the stream head: the head hash does not match the last "
                "stored event (replaced tail or modified head)",
            )

    @staticmethod
    def _parse(
        stream: str, expect: int, version: int, ident: str, stored_hash: str, body: str, prev: str
    ) -> Event:
        name = f"event {expect} ({ident})"
        if version != expect:
            raise _Corrupt(
                stream,
                expect,
                ident,
                f"event {expect} is missing: the next stored event is version {version} "
                "(deleted row)",
            )
        try:
            event = Event.model_validate_json(body)
        except ValidationError as exc:
            raise _Corrupt(
                stream, expect, ident, f"{name} cannot be read: {_first_error(exc)}"
            ) from exc
        problem = ""
        if event.stream != stream:
            problem = f"belongs to stream {event.stream!r}"
        elif event.version != expect:
            problem = f"is stored as version {expect} but is event {event.version} (moved)"
        elif event.id != ident or event.hash != stored_hash:
            problem = "does not match the id or hash columns of its row (modified)"
        elif _body_hash(body, event.hash) != event.hash:
            problem = "content does not match its hash (modified)"
        elif event.prev_hash != prev:
            problem = "does not link to the previous event (prev_hash mismatch)"
        if problem:
            raise _Corrupt(stream, expect, ident, f"{name} {problem}")
        return event

    def streams(self) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(self._sql.order).scalars()
            return [str(s) for s in rows]

    def version(self, stream: str) -> int:
        with self._read() as conn:
            found = conn.execute(self._sql.version, {"s_stream": stream}).scalar()
        return int(found or 0)

    def verify(self, stream: str | None = None) -> LogReport:
        """Check every stream (or one): each stored event readable, unmodified, in
        its place and linked to the one before, and the stream head matching the
        last event. Reports the first bad event of each stream; with no ``stream``,
        also streams that have events but no head row."""
        names = [stream] if stream is not None else self.streams()
        reports = [self._verify_stream(name) for name in names]
        if stream is None:
            reports.extend(self._headless())
        return LogReport(tuple(reports))

    def _verify_stream(self, stream: str) -> ChainReport:
        checked, last = 0, genesis_hash(stream)
        try:
            for event in self._scan(stream, 0):
                checked, last = event.version, event.hash
        except _Corrupt as bad:
            return ChainReport(
                stream,
                checked,
                last,
                bad_version=bad.version,
                bad_event_id=bad.event_id,
                problem=bad.problem,
            )
        with self._read() as conn:
            beyond = conn.execute(
                self._sql.beyond, {"s_stream": stream, "s_version": checked}
            ).first()
        # A row past the head is an insertion, unless a writer appended meanwhile.
        if beyond is not None and self.version(stream) < beyond.version:
            return ChainReport(
                stream,
                checked,
                last,
                bad_version=int(beyond.version),
                bad_event_id=str(beyond.id),
                problem=f"event {beyond.version} ({beyond.id}) is stored beyond the stream "
                f"head at version {checked} (inserted)",
            )
        return ChainReport(stream, checked, last)

    def _headless(self) -> list[ChainReport]:
        with self._read() as conn:
            rows = conn.execute(self._sql.headless).all()
        return [
            ChainReport(
                str(name),
                0,
                genesis_hash(str(name)),
                bad_version=int(first),
                problem=f"event {first} is stored for a stream that has no head row (inserted)",
            )
            for name, first in rows
        ]

    # -- lifetime --------------------------------------------------------------------
    def close(self) -> None:
        """Dispose of the engine if the store made it (:func:`sqlite_log`,
        :func:`postgres_log`); a host's engine or connection is left alone."""
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> SqlEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        bind = self._engine if self._engine is not None else self._conn
        where = f"prefix={self.tables.prefix!r}, schema={self.tables.schema!r}"
        return f"SqlEventLog({bind!r}, {where})"


def sqlite_engine(
    path: str | os.PathLike[str],
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    busy_timeout: float = 30.0,
    **kwargs: Any,
) -> sa.Engine:
    """A SQLAlchemy engine on the SQLite file ``path`` (``":memory:"`` for a private
    in-memory database), configured for the event log and safe for a host's own
    tables too:

    * ``journal_mode=WAL`` — readers do not block the writer nor it them, and a
      writer killed mid-transaction leaves the database as of its last commit;
    * ``synchronous=FULL`` by default — with WAL, ``NORMAL`` is already safe
      against a crashed *process*, but a power loss may undo the last commits;
      the log is the record of what was decided, so a command acknowledged to its
      caller must survive that too. FULL costs one fsync of the WAL per commit
      (batch commands into fewer transactions to amortise it); pass ``NORMAL``
      where losing the last moments on power loss is acceptable;
    * ``foreign_keys=ON`` for a host's tables (SQLite leaves them off by default);
    * ``busy_timeout`` (seconds) — a writer waits this long for another's lock
      instead of failing at once;
    * transactions are begun by SQLAlchemy, not by the driver's implicit mode
      (SQLAlchemy's documented recipe), so SELECTs and savepoints take part in
      them; the store's writes begin with ``BEGIN IMMEDIATE``.
    """
    database = os.fspath(path)
    memory = database in ("", ":memory:")
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
    engine = sa.create_engine(sa.URL.create("sqlite", database=database), **kwargs)
    pragmas = [
        f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}",
        f"PRAGMA synchronous = {synchronous}",
        "PRAGMA foreign_keys = ON",
    ]
    if not memory:
        pragmas.insert(0, "PRAGMA journal_mode = WAL")

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN, below
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = str(conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")).upper()
        conn.exec_driver_sql(f"BEGIN {mode if mode in _BEGIN_MODES else 'DEFERRED'}")

    return engine


def sqlite_log(
    path: str | os.PathLike[str],
    *,
    prefix: str = "xuncha_",
    create: bool = True,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    busy_timeout: float = 30.0,
) -> SqlEventLog:
    """The embedded default: an event log in the SQLite file ``path``, created or
    upgraded on first use. :meth:`SqlEventLog.close` releases the file."""
    engine = sqlite_engine(path, synchronous=synchronous, busy_timeout=busy_timeout)
    try:
        return SqlEventLog(engine, prefix=prefix, create=create, owns_engine=True)
    except BaseException:
        engine.dispose()
        raise


def postgres_log(
    url: str | sa.URL,
    *,
    schema: str | None = None,
    prefix: str = "xuncha_",
    create: bool = True,
    **kwargs: Any,
) -> SqlEventLog:
    """An event log in PostgreSQL (or a PostgreSQL-compatible database) at ``url``,
    through psycopg 3: ``postgresql+psycopg://user@host:5432/db`` (a plain
    ``postgresql://`` URL is given the psycopg driver). ``kwargs`` go to
    :func:`sqlalchemy.create_engine`."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(parsed, **kwargs)
    try:
        return SqlEventLog(engine, schema=schema, prefix=prefix, create=create, owns_engine=True)
    except BaseException:
        engine.dispose()
        raise
