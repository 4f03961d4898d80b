"""The event log on SQLAlchemy 2 Core: SQLite (the embedded default) and PostgreSQL.

Writing. :meth:`SqlEventLog.append` writes a command's events and moves the
stream head in one transaction. The head row is moved first, by a conditional
``UPDATE ... WHERE version = expected`` (or, for a new stream, an ``INSERT`` that
the unique stream id refuses twice): a stale writer changes no row and gets
:class:`~xuncha_flow.ConcurrencyConflict`; the primary key ``(stream, version)``
of the events backs this up, and a driver's integrity error on it (or on the
unique stream id, two writers creating one stream) becomes the same
:class:`~xuncha_flow.ConcurrencyConflict` — the one the in-memory log raises. Any
other unique key the database refuses (an event id used twice, a rung fired
twice, an outbox key reused) is :class:`~xuncha_flow.DuplicateKey` naming it
(``"events.id"``, ``"rungs"``, ``"outbox.key"``): retrying cannot help, so it is
not a conflict. Either way the transaction is rolled back and nothing of the batch
is written. Keys a database cannot keep (a NUL character, over-long ids) are
refused before any statement with :class:`~xuncha_flow.InvalidArgument`
(``check_key`` in ``_log.py``, shared with the in-memory log).

Whose transaction. Bound to an :class:`~sqlalchemy.engine.Engine`, the store opens
a transaction per call (``engine.begin()``). Bound to a
:class:`~sqlalchemy.engine.Connection` that is inside a transaction, it writes in
*that* transaction, under a savepoint so that a conflict undoes only the append,
and never commits: the host commits workflow events together with its own rows,
or rolls both back (``_base.py``). A connection-bound store belongs to the thread
that owns the connection.

SQLite. Writers take the write lock when their transaction begins
(``BEGIN IMMEDIATE``), so two writers queue on SQLite's busy timeout instead of
failing halfway; readers run in WAL mode beside them. :func:`sqlite_engine`
configures this (and the pragmas); an engine made elsewhere still gets
``BEGIN IMMEDIATE`` from the store when its driver has not begun a transaction.

Reading. :meth:`SqlEventLog.read` reads the stream head, then pages through the
events up to it in version order, parsing each from its stored JSON and checking
it: readable, the row it is stored in, every column that repeats a field of the
body (compared generically over the table's columns; times as instants), its hash
over the exact stored bytes, its link to the previous event, and at the end the
head. A row that fails raises :class:`~xuncha_flow.LogCorrupted` naming stream and
version — corrupted data is never loaded silently. :meth:`SqlEventLog.verify` runs
the same checks over every stream and reports the first bad event of each instead
of raising, plus events stored beyond a head or for a stream without one; and it
compares what the database derives from the events with the events: the
fired-rung rows and the projections (:class:`~xuncha_flow.Finding`).

The due index (sweeps shared by workers). :meth:`SqlEventLog.record` appends and,
in the same transaction, sets the stream's next due time and ends any sweep lease
on it. :meth:`SqlEventLog.claim_due` leases the due, unleased streams to a worker,
earliest first, in one short transaction: on PostgreSQL the candidates are
selected ``FOR UPDATE SKIP LOCKED`` — workers claiming at once take disjoint
streams without waiting on each other, and streams a writer is appending to are
skipped — and the lease is set and committed at once; on SQLite ``BEGIN
IMMEDIATE`` serialises the claims. A lease lapses ``lease`` after the sweep time it
was taken at, so a crashed worker's streams are taken over.
:meth:`SqlEventLog.release` notes the next due time and ends the lease, only for
its holder (or when nobody holds one).

Rungs once, by a unique key. Every ``deadline.escalate`` appended is also
inserted, in the same transaction, into the fired-rung table keyed by ``(stream,
deadline, rung, generation)``: a rung recorded twice is refused by the database,
surfaces as :class:`~xuncha_flow.DuplicateKey` (``"rungs"``) and nothing of the
batch is written. (The head row is moved first, so a concurrent writer of the
stream is caught as a conflict before any rung is inserted.)

Projections. The same transaction folds the batch into the view tables
(``_projections.py``): :meth:`SqlEventLog.items`, :meth:`SqlEventLog.measures`,
:meth:`SqlEventLog.deadlines`, :meth:`SqlEventLog.overdue` and
:meth:`SqlEventLog.units` query them; :meth:`SqlEventLog.rebuild_projections`
refolds them from the log, and :meth:`SqlEventLog.rebuild_index` rebuilds them and
the fired-rung rows in one transaction.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import attrs
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from .._clock import require_aware
from .._errors import (
    ConcurrencyConflict,
    DuplicateKey,
    InvalidArgument,
    LogCorrupted,
    SchemaMismatch,
    StoreError,
)
from .._events import (
    DEFAULT_HASH,
    ChainReport,
    Event,
    anchor_problem,
    canonical_json,
    check_algorithm,
    digest,
    genesis_hash,
    short_of_anchor,
)
from .._log import (
    MAX_MESSAGE_KEY,
    DueEntry,
    EventLog,
    Finding,
    LogReport,
    check_batch,
    check_key,
    check_message,
)
from .._outbox import Message
from ._base import BEGIN_MODES, BEGIN_OPTION, SqlBase, check_int
from ._projections import (
    DeadlineRow,
    ItemRow,
    MeasureRow,
    Projector,
    States,
    UnitRow,
    Views,
    rung_rows,
)
from ._schema import Tables

if TYPE_CHECKING:
    from .._checkpoints import Checkpoints
    from ._snapshots import SqlSnapshotStore

__all__ = ["SqlEventLog", "postgres_log", "sqlite_engine", "sqlite_log"]

_KEEP: Any = object()
"""``due`` of a plain :meth:`SqlEventLog.append`: the due index is left as it is."""
_CHUNK = 500
_SHOWN = 10
"""How many differing rows of one stream's projections a report spells out."""
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")
RungKey = tuple[str, str, int]
"""(deadline, rung, generation): the key of a fired rung within its stream."""


class _Corrupt(LogCorrupted):
    """A stored event that fails its checks; ``event_id`` when the row has one."""

    def __init__(self, stream: str, version: int, event_id: str | None, problem: str) -> None:
        super().__init__(f"stream {stream!r}: {problem}", stream=stream, version=version)
        self.event_id = event_id
        self.problem = problem


def _body(event: Event) -> str:
    """The stored text of an event: its canonical JSON with the ``hash`` member."""
    return canonical_json(event.model_dump(mode="json")).decode()


def _body_hash(body: str, claimed: str, algorithm: str) -> str:
    """The digest of a stored body without its ``hash`` member: the bytes the
    event's hash covers. Keys are sorted and ``actor``, the only object before
    ``hash``, has no such key, so the first ``,"hash":"<claimed>"`` is the top-level
    member (inside JSON strings a quote is always escaped)."""
    return digest(body.replace(f',"hash":"{claimed}"', "", 1).encode(), algorithm)


def _message_row(message: Message) -> dict[str, Any]:
    return {
        "key": message.key,
        "stream": message.stream,
        "version": message.version,
        "topic": message.topic,
        "event_type": message.event_type,
        "subject": message.subject,
        "body": canonical_json(dict(message.body)).decode(),
        "created_at": message.created_at,
        "available_at": message.created_at,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "delivered_at": message.delivered_at,
        "lease_worker": None,
        "lease_until": None,
    }


def _message(row: Any) -> Message:
    return Message(
        key=str(row.key),
        stream=str(row.stream),
        version=int(row.version),
        topic=str(row.topic),
        event_type=str(row.event_type),
        subject=str(row.subject),
        body=json.loads(row.body),
        created_at=row.created_at,
        attempts=int(row.attempts),
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


class _Statements:
    """The store's statements, built once with bound parameters so that SQLAlchemy
    compiles each once and caches it."""

    def __init__(self, tables: Tables, page_size: int, dialect: str) -> None:
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
        # record(): the same, and the due time set and the lease ended with them
        due: dict[str, Any] = {"due_at": p("s_due"), "lease_worker": None, "lease_until": None}
        self.create_due = streams.insert().values(
            stream=p("s_stream"),
            version=p("s_version"),
            head=p("s_head"),
            created=p("s_created"),
            **due,
        )
        self.move_due = self.move.values(**due)
        self.touch_due = (
            sa.update(streams)
            .where(streams.c.stream == p("s_stream"), streams.c.version == p("s_expected"))
            .values(**due)
        )
        self.release = (
            sa.update(streams)
            .where(
                streams.c.stream == p("s_stream"),
                sa.or_(streams.c.lease_worker.is_(None), streams.c.lease_worker == p("s_worker")),
            )
            .values(**due)
        )
        self.claimable = (
            sa.select(streams.c.stream)
            .where(
                streams.c.due_at.is_not(None),
                streams.c.due_at <= p("c_at"),
                sa.or_(
                    streams.c.lease_until.is_(None),
                    streams.c.lease_until <= p("c_at"),
                    streams.c.lease_worker == p("c_worker"),
                ),
            )
            .order_by(streams.c.due_at, streams.c.stream)
        )
        self.lease = (
            sa.update(streams)
            .where(streams.c.stream.in_(p("c_streams", expanding=True)))
            .values(lease_worker=p("c_worker"), lease_until=p("c_until"))
        )
        self.rungs = tables.rungs.insert()
        outbox = tables.outbox
        self.post = outbox.insert()
        self.pending = (
            sa.select(outbox)
            .where(
                outbox.c.delivered_at.is_(None),
                outbox.c.available_at <= p("o_at"),
                sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= p("o_at")),
            )
            .order_by(outbox.c.available_at, outbox.c.created_at, outbox.c.key)
        )
        self.lease_messages = (
            sa.update(outbox)
            .where(outbox.c.key.in_(p("o_keys", expanding=True)))
            .values(
                lease_worker=p("o_worker"),
                lease_until=p("o_until"),
                attempts=outbox.c.attempts + 1,
            )
        )
        self.ack = (
            sa.update(outbox)
            .where(outbox.c.key == p("o_key"), outbox.c.delivered_at.is_(None))
            .values(delivered_at=p("o_at"), lease_worker=None, lease_until=None)
        )
        self.fail = (
            sa.update(outbox)
            .where(outbox.c.key == p("o_key"), outbox.c.delivered_at.is_(None))
            .values(
                last_error=p("o_error"),
                available_at=p("o_retry"),
                lease_worker=None,
                lease_until=None,
            )
        )
        self.insert = events.insert()
        self.anchor = sa.select(events.c.hash).where(
            events.c.stream == p("s_stream"), events.c.version == p("s_version")
        )
        # every column, so that those mirroring a field of the body are checked
        self.page = (
            sa.select(*(_raw(c, dialect) for c in events.columns))
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
        locked = sa.select(streams.c.version).where(streams.c.stream == p("s_stream"))
        self.locked_head = locked.with_for_update() if dialect == "postgresql" else locked
        rungs = tables.rungs
        self.stream_rungs = sa.select(
            rungs.c.deadline, rungs.c.rung, rungs.c.generation, rungs.c.version
        ).where(rungs.c.stream == p("s_stream"))
        self.tail = (
            sa.select(events.c.version, events.c.body)
            .where(
                events.c.stream == p("s_stream"),
                events.c.version > p("s_from"),
                events.c.version <= p("s_to"),
            )
            .order_by(events.c.version)
        )
        self.orphan_rungs = (
            sa.select(rungs.c.stream, sa.func.count())
            .where(~sa.exists().where(streams.c.stream == rungs.c.stream))
            .group_by(rungs.c.stream)
            .order_by(rungs.c.stream)
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


def _raw(column: sa.Column[Any], dialect: str) -> sa.ColumnElement[Any]:
    """How a column of the events table is read for checking. SQLite keeps times as
    text: read them as text, so that a value that is not a time is reported, not
    raised while fetching."""
    if dialect == "sqlite" and isinstance(column.type, sa.DateTime):
        return sa.type_coerce(column, sa.String).label(column.name)
    return column


def _instant(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite stores UTC without a zone);
    None when it is not a time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _differs(stored: Any, value: Any) -> bool:
    """Whether a column's stored value differs from the body's field ``value``;
    times compare as instants."""
    if isinstance(value, datetime):
        return _instant(stored) != value
    return bool(stored != value)


def _rung_key(row: Mapping[Any, Any]) -> RungKey:
    return (str(row["deadline"]), str(row["rung"]), int(row["generation"]))


def _rung_name(key: RungKey) -> str:
    deadline, rung, generation = key
    return f"rung {rung!r} of {deadline} (generation {generation})"


def _show(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else repr(value)


def _rung_findings(
    stream: str, expected: Mapping[RungKey, int], stored: Mapping[RungKey, int]
) -> list[Finding]:
    """Findings for fired-rung rows that are not exactly the stream's escalations."""
    findings = []
    for key in sorted(expected.keys() | stored.keys()):
        event, row = expected.get(key), stored.get(key)
        if event == row:
            continue
        if row is None:
            message = (
                f"{_rung_name(key)} fired at version {event} but has no row in the "
                "fired-rung table: a sweep could record it again (rebuild_index restores it)"
            )
        elif event is None:
            message = (
                f"the fired-rung table has {_rung_name(key)} at version {row}, which no "
                "deadline.escalate event records: it blocks that rung's sweeps "
                "(rebuild_index removes it)"
            )
        else:
            message = (
                f"the fired-rung table has {_rung_name(key)} at version {row}, but it "
                f"fired at version {event} (rebuild_index corrects it)"
            )
        findings.append(Finding(stream, "rungs", message, event if event is not None else row))
    return findings


class SqlEventLog(SqlBase, EventLog):
    """An :class:`~xuncha_flow.EventLog` in a SQL database, through SQLAlchemy Core.

    ``bind`` is an :class:`~sqlalchemy.engine.Engine` (the store runs its own
    transactions) or a :class:`~sqlalchemy.engine.Connection` (the store writes in
    the connection's transaction, if one is open, and never commits it). Tables are
    named ``<prefix>events``, ``<prefix>streams``, ... (``_schema.py``), in database
    schema ``schema`` if given. With ``create`` the tables are created or upgraded
    to :data:`SCHEMA_VERSION`; without it, a database at another version is
    refused. ``page_size`` is how many events :meth:`read` fetches a query;
    ``owns_engine`` makes :meth:`close` dispose of the engine. ``claim_limit`` caps
    how many streams one :meth:`claim_due` leases when its caller sets no limit
    (None: all that are due), so that workers starting together share the due
    rounds instead of the first taking them all; an engine's ``sweep`` then takes at
    most that many rounds, so a worker sweeps until a sweep records nothing.

    A command that lands on a round while it is being swept ends the sweep's lease
    and makes the sweep's append stale: the engine's sweep reloads that round and
    sweeps it again (``SWEEP_RETRIES`` times).
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
        claim_limit: int | None = None,
        hash_algorithm: str | None = None,
    ) -> None:
        if claim_limit is not None:
            check_int(claim_limit, "claim_limit", 1)
        if hash_algorithm is not None and not isinstance(hash_algorithm, str):
            raise InvalidArgument(f"hash_algorithm must be a string, got {hash_algorithm!r}")
        wanted = check_algorithm(hash_algorithm) if hash_algorithm is not None else None
        self.claim_limit = claim_limit
        SqlBase.__init__(
            self,
            bind,
            prefix=prefix,
            schema=schema,
            create=create,
            page_size=page_size,
            owns_engine=owns_engine,
        )
        self._sql = _Statements(self.tables, page_size, self.dialect)
        self._mirrored = tuple(
            c.name for c in self.tables.events.columns if c.name in Event.model_fields
        )
        self._projector = Projector(self.tables)
        self._views = Views(self.tables)
        self._hash = self._settle_hash(wanted)

    @property
    def hash_algorithm(self) -> str:
        """The hash this database's events are chained with, as recorded in it."""
        return self._hash

    def _settle_hash(self, wanted: str | None) -> str:
        """The log's hash algorithm as the database records it; an empty log takes
        ``wanted``, a log with events refuses another one."""
        meta = self.tables.meta
        query = sa.select(meta.c.value).where(meta.c.key == "hash_algorithm")
        with self._read() as conn:
            recorded = conn.execute(query).scalar()
        have = str(recorded) if recorded is not None else DEFAULT_HASH
        if wanted is None or wanted == have:
            return have
        with self._write() as conn:
            events = conn.execute(sa.select(sa.func.count()).select_from(self.tables.events))
            if int(events.scalar() or 0):
                raise SchemaMismatch(
                    f"this log's events are chained with {have!r}; it cannot be opened "
                    f"with hash_algorithm={wanted!r}"
                )
            found = conn.execute(
                sa.update(meta).where(meta.c.key == "hash_algorithm").values(value=wanted)
            )
            if found.rowcount == 0:
                conn.execute(meta.insert().values(key="hash_algorithm", value=wanted))
        return wanted

    # -- EventLog --------------------------------------------------------------------
    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        check_key(stream, "stream")
        self._append(stream, expected_version, tuple(events), _KEEP)

    def record(
        self,
        stream: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        due: datetime | None = None,
        messages: Sequence[Message] = (),
    ) -> None:
        """:meth:`append` the events and, in the same transaction, set the stream's
        next due time (None: nothing pending), end any sweep lease on it and put
        ``messages`` in the outbox. An empty batch only checks the version and notes
        the due time (of an existing stream)."""
        check_key(stream, "stream")
        if due is not None:
            require_aware(due, "due")
        for message in messages:
            check_message(message)
        self._append(stream, expected_version, tuple(events), due, tuple(messages))

    def _append(
        self,
        stream: str,
        expected_version: int,
        batch: tuple[Event, ...],
        due: Any,
        messages: tuple[Message, ...] = (),
    ) -> None:
        keep = due is _KEEP
        sql = self._sql
        if not batch:
            if keep:
                actual = self.version(stream)
                if actual != expected_version:
                    raise ConcurrencyConflict(stream, expected_version, actual)
                return
            with self._write() as conn:
                touched = conn.execute(
                    sql.touch_due,
                    {"s_stream": stream, "s_expected": expected_version, "s_due": due},
                )
                if touched.rowcount != 1:
                    found = conn.execute(sql.version, {"s_stream": stream}).scalar()
                    actual = int(found or 0)
                    if actual != expected_version:
                        raise ConcurrencyConflict(stream, expected_version, actual)
            return
        first, last = batch[0], batch[-1]
        head = genesis_hash(stream, self._hash) if expected_version == 0 else first.prev_hash
        check_batch(stream, expected_version, head, batch, self._hash)
        rows = [self._row(e) for e in batch]
        rungs = rung_rows(batch)
        head_row = {"s_stream": stream, "s_version": last.version, "s_head": last.hash}
        if not keep:
            head_row["s_due"] = due
        try:
            with self._write() as conn:
                if expected_version == 0:
                    create = sql.create if keep else sql.create_due
                    conn.execute(create, {**head_row, "s_created": first.timestamp})
                else:
                    moved = conn.execute(
                        sql.move if keep else sql.move_due,
                        {**head_row, "s_expected": expected_version, "s_link": first.prev_hash},
                    )
                    if moved.rowcount != 1:
                        self._refused(conn, stream, expected_version, batch)
                conn.execute(sql.insert, rows)
                if rungs:
                    conn.execute(sql.rungs, rungs)
                if messages:
                    conn.execute(sql.post, [_message_row(m) for m in messages])
                self._projector.fold(conn, stream, batch)
        except sa_exc.IntegrityError as exc:
            key = self._violated(exc)
            if key is None:
                raise ConcurrencyConflict(
                    stream, expected_version, self._version_or_none(stream)
                ) from exc
            raise key from exc

    def _violated(self, exc: sa_exc.IntegrityError) -> StoreError | None:
        """What a write refused by the database violated: None for the stream's
        version — the (stream, version) key of the events, or the unique stream id of
        a stream two writers create — which is a :class:`ConcurrencyConflict`;
        :class:`DuplicateKey` naming any other unique key (an event id used twice, a
        rung fired twice, an outbox key reused); :class:`StoreError` for any other
        constraint. Read from the driver's error: psycopg's diagnostics (table and
        constraint), sqlite3's message (``UNIQUE constraint failed: table.column``)."""
        names = {
            self.tables.events.name: "events",
            self.tables.streams.name: "streams",
            self.tables.rungs.name: "rungs",
            self.tables.outbox.name: "outbox",
        }
        orig = exc.orig
        table: str | None = None
        columns: tuple[str, ...] = ()
        constraint: str | None = None
        diag = getattr(orig, "diag", None)
        if diag is not None:  # psycopg
            if getattr(orig, "sqlstate", None) != "23505":  # not unique_violation
                return StoreError(f"the database refused the write: {orig}")
            table = names.get(str(diag.table_name))
            constraint = str(diag.constraint_name)
            if table == "events":
                columns = ("stream", "version") if constraint.endswith("_pkey") else ("id",)
        else:  # sqlite3
            found = _SQLITE_UNIQUE.search(str(orig))
            if found is None:
                return StoreError(f"the database refused the write: {orig}")
            qualified = [c.strip().rpartition(".") for c in found.group(1).split(",")]
            table = names.get(qualified[0][0])
            columns = tuple(c for _, _, c in qualified)
            constraint = found.group(1)
        if table == "events" and columns == ("stream", "version"):
            return None
        if table == "streams":  # its only unique key besides the row number: the stream
            return None
        name = {
            "events": "events.id",
            "rungs": "rungs",
            "outbox": "outbox.key",
        }.get(table or "", constraint or "unknown")
        return DuplicateKey(name, str(orig).strip().splitlines()[0])

    # -- the due index ---------------------------------------------------------------
    def claim_due(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[str]:
        """Lease to ``worker`` the streams due at or before ``at`` that no other worker
        holds (a lease taken at ``at`` lapses at ``at + lease``), earliest due first,
        at most ``limit`` (or :attr:`claim_limit`) of them; the lease is committed
        before this returns (unless the store writes in a host's transaction)."""
        require_aware(at, "at")
        check_key(worker, "worker")
        cap = limit if limit is not None else self.claim_limit
        if cap is not None and cap < 1:
            return []
        query = self._sql.claimable
        if cap is not None:
            query = query.limit(cap)
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        params = {"c_at": at, "c_worker": worker}
        with self._write() as conn:
            taken = [str(s) for s in conn.execute(query, params).scalars()]
            for start in range(0, len(taken), _CHUNK):
                conn.execute(
                    self._sql.lease,
                    {**params, "c_streams": taken[start : start + _CHUNK], "c_until": at + lease},
                )
        return taken

    def release(self, stream: str, *, due: datetime | None, worker: str) -> None:
        """Note the stream's next due time and end the lease, if ``worker`` holds it
        or nobody does (a lease another worker took over is left alone)."""
        check_key(stream, "stream")
        check_key(worker, "worker")
        if due is not None:
            require_aware(due, "due")
        with self._write() as conn:
            conn.execute(self._sql.release, {"s_stream": stream, "s_due": due, "s_worker": worker})

    def due_entry(self, stream: str) -> DueEntry | None:
        """The stream's due index entry (None for an unknown stream)."""
        check_key(stream, "stream")
        streams = self.tables.streams
        query = sa.select(streams.c.due_at, streams.c.lease_worker, streams.c.lease_until).where(
            streams.c.stream == stream
        )
        with self._read() as conn:
            found = conn.execute(query).first()
        if found is None:
            return None
        return DueEntry(found.due_at, found.lease_worker, found.lease_until)

    def reset_due(self, stream: str, due: datetime | None) -> None:
        """Set the stream's next due time and end any lease on it, whoever holds it."""
        check_key(stream, "stream")
        if due is not None:
            require_aware(due, "due")
        streams = self.tables.streams
        with self._write() as conn:
            conn.execute(
                sa.update(streams)
                .where(streams.c.stream == stream)
                .values(due_at=due, lease_worker=None, lease_until=None)
            )

    # -- the outbox ------------------------------------------------------------------
    def claim_messages(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[Message]:
        """Lease to ``worker`` the undelivered messages available at ``at`` that no
        other worker holds, oldest first, at most ``limit``; on PostgreSQL, rows
        another worker is claiming are skipped (``FOR UPDATE SKIP LOCKED``)."""
        require_aware(at, "at")
        check_key(worker, "worker")
        if limit is not None and limit < 1:
            return []
        query = self._sql.pending
        if limit is not None:
            query = query.limit(limit)
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self._write() as conn:
            rows = conn.execute(query, {"o_at": at}).all()
            keys = [str(r.key) for r in rows]
            for start in range(0, len(keys), _CHUNK):
                conn.execute(
                    self._sql.lease_messages,
                    {
                        "o_keys": keys[start : start + _CHUNK],
                        "o_worker": worker,
                        "o_until": at + lease,
                    },
                )
        return [attrs.evolve(_message(r), attempts=int(r.attempts) + 1) for r in rows]

    def ack(self, key: str, *, at: datetime) -> None:
        check_key(key, "message key", MAX_MESSAGE_KEY)
        require_aware(at, "at")
        with self._write() as conn:
            conn.execute(self._sql.ack, {"o_key": key, "o_at": at})

    def fail(self, key: str, *, error: str, retry_at: datetime) -> None:
        """Note the failed delivery: ``error`` is kept (its first 4000 characters, a
        NUL character, which PostgreSQL refuses in text, written as U+FFFD) and the
        message is available again at ``retry_at``."""
        check_key(key, "message key", MAX_MESSAGE_KEY)
        require_aware(retry_at, "retry_at")
        text = str(error).replace("\x00", "\ufffd")[:4000]
        with self._write() as conn:
            conn.execute(self._sql.fail, {"o_key": key, "o_error": text, "o_retry": retry_at})

    def messages(self, *, stream: str | None = None, pending: bool | None = None) -> list[Message]:
        outbox = self.tables.outbox
        query = sa.select(outbox).order_by(
            outbox.c.created_at, outbox.c.stream, outbox.c.version, outbox.c.key
        )
        if stream is not None:
            query = query.where(outbox.c.stream == check_key(stream, "stream"))
        if pending is not None:
            delivered = outbox.c.delivered_at
            query = query.where(delivered.is_(None) if pending else delivered.is_not(None))
        with self._read() as conn:
            return [_message(r) for r in conn.execute(query)]

    def _refused(
        self, conn: sa.Connection, stream: str, expected: int, batch: tuple[Event, ...]
    ) -> None:
        """The head did not move: say why (a stale writer, or a batch that does not
        link to the head)."""
        found = conn.execute(self._sql.head, {"s_stream": stream}).first()
        actual = int(found.version) if found is not None else 0
        if actual != expected or found is None:
            raise ConcurrencyConflict(stream, expected, actual)
        check_batch(stream, expected, str(found.head), batch, self._hash)
        raise ConcurrencyConflict(stream, expected, actual)  # pragma: no cover - moved meanwhile

    def _version_or_none(self, stream: str) -> int | None:
        try:
            return self.version(stream)
        except sa_exc.SQLAlchemyError:  # pragma: no cover - only for the message
            return None

    @staticmethod
    def _row(event: Event) -> dict[str, Any]:
        """The row of an event that :func:`check_batch` found sealed for this log."""
        body = _body(event)
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
        head as it was when reading began. Raises :class:`LogCorrupted` at the
        first stored event that fails its checks."""
        check_key(stream, "stream")
        return self._scan(stream, max(after, 0))

    def _scan(self, stream: str, after: int) -> Iterator[Event]:
        sql = self._sql
        with self._read() as conn:
            found = conn.execute(sql.head, {"s_stream": stream}).first()
            top = int(found.version) if found is not None else 0
            if top <= after:
                return
            prev = genesis_hash(stream, self._hash)
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
                event = self._parse(stream, expect, row._mapping, prev)
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

    def _parse(self, stream: str, expect: int, row: Mapping[Any, Any], prev: str) -> Event:
        """The event stored in ``row``, checked: its body readable, of this stream and
        version, every column that repeats a field of the body equal to it, its hash
        over the exact stored bytes, its link to ``prev``."""
        version, ident, body = int(row["version"]), str(row["id"]), str(row["body"])
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
        elif edited := [c for c in self._mirrored if _differs(row[c], getattr(event, c))]:
            problem = (
                f"does not match the {', '.join(edited)} column{'s' if len(edited) > 1 else ''} "
                "of its row (modified)"
            )
        elif _body_hash(body, event.hash, self._hash) != event.hash:
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
        check_key(stream, "stream")
        with self._read() as conn:
            found = conn.execute(self._sql.version, {"s_stream": stream}).scalar()
        return int(found or 0)

    def verify(
        self,
        stream: str | None = None,
        *,
        checkpoints: Checkpoints | None = None,
        projections: bool = True,
    ) -> LogReport:
        """Check every stream (or one) and what the database derives from it.

        The chains: each stored event readable, unmodified — its body against its
        hash, and every column that repeats a field of the body (``type``,
        ``subject``, ``timestamp``, ``command_id``, ``prev_hash``, ...) against the
        body, so that SQL reports on those columns cannot be forged — in its place
        and linked to the one before, and the stream head (``version``, ``head``)
        matching the last event. Reports the first bad event of each stream; with no
        ``stream``, also streams that have events but no head row. With
        ``checkpoints``, each stream must still reach the heads they recorded (see
        :meth:`EventLog.verify <xuncha_flow.EventLog.verify>`).

        Then, for each stream whose chain holds, :class:`~xuncha_flow.Finding` s:
        ``"rungs"`` when the fired-rung rows are not exactly those of its
        ``deadline.escalate`` events (a stray row blocks that rung's sweeps, a
        missing one lets it fire twice), and with ``projections`` (the default)
        ``"projections"`` for each view row that differs from a fresh fold of its
        events — folded in a transaction that is rolled back, holding the stream's
        writers back meanwhile. With no ``stream``, rung and view rows of streams
        that have no head row are reported too. :meth:`rebuild_index` repairs
        both."""
        if stream is not None:
            check_key(stream, "stream")
        anchors = self._anchors(checkpoints)
        names = [stream] if stream is not None else self.streams()
        reports: list[ChainReport] = []
        findings: list[Finding] = []
        for name in names:
            report, fired = self._verify_stream(name, anchors.get(name, {}))
            reports.append(report)
            if report.ok:
                findings += self._derived(name, report.checked, fired, projections)
        if stream is None:
            reports.extend(self._headless())
            findings += self._orphans(projections)
        reports += self._vanished(anchors, names, stream)
        return LogReport(tuple(reports), tuple(findings))

    def _verify_stream(
        self, stream: str, pins: Mapping[int, str]
    ) -> tuple[ChainReport, dict[RungKey, int]]:
        """The stream's chain report, and the rungs its checked events fired
        (key → version)."""
        checked, last = 0, genesis_hash(stream, self._hash)
        fired: dict[RungKey, int] = {}
        try:
            for event in self._scan(stream, 0):
                if event.version in pins and pins[event.version] != event.hash:
                    raise _Corrupt(stream, event.version, event.id, anchor_problem(event.version))
                checked, last = event.version, event.hash
                for row in rung_rows([event]):
                    fired.setdefault(_rung_key(row), event.version)
        except _Corrupt as bad:
            report = ChainReport(
                stream,
                checked,
                last,
                bad_version=bad.version,
                bad_event_id=bad.event_id,
                problem=bad.problem,
            )
            return report, fired
        with self._read() as conn:
            beyond = conn.execute(
                self._sql.beyond, {"s_stream": stream, "s_version": checked}
            ).first()
        # A row past the head is an insertion, unless a writer appended meanwhile.
        if beyond is not None and self.version(stream) < beyond.version:
            report = ChainReport(
                stream,
                checked,
                last,
                bad_version=int(beyond.version),
                bad_event_id=str(beyond.id),
                problem=f"event {beyond.version} ({beyond.id}) is stored beyond the stream "
                f"head at version {checked} (inserted)",
            )
            return report, fired
        short = [v for v in pins if v > checked]
        if short:
            report = ChainReport(
                stream,
                checked,
                last,
                bad_version=min(short),
                problem=short_of_anchor(checked, min(short)),
            )
            return report, fired
        return ChainReport(stream, checked, last), fired

    def _derived(
        self, stream: str, checked: int, fired: dict[RungKey, int], projections: bool
    ) -> list[Finding]:
        """Findings on the stream's fired-rung rows and (with ``projections``) view
        rows, compared with its events. One transaction, always rolled back, that
        holds the stream's head row (PostgreSQL: ``FOR UPDATE``; SQLite: the write
        lock), so no writer of the stream commits while it compares."""
        sql = self._sql
        with self._write(undo=True) as conn:
            top = int(conn.execute(sql.locked_head, {"s_stream": stream}).scalar() or 0)
            expected = dict(fired)
            if top > checked:  # appended since the chain was read: their rungs count too
                tail = conn.execute(sql.tail, {"s_stream": stream, "s_from": checked, "s_to": top})
                for _, body in tail:
                    try:
                        event = Event.model_validate_json(body)
                    except ValidationError:
                        return []  # changed meanwhile: the next verify names it
                    for row in rung_rows([event]):
                        expected.setdefault(_rung_key(row), event.version)
            stored = {
                _rung_key(r): int(r["version"])
                for r in conn.execute(sql.stream_rungs, {"s_stream": stream}).mappings()
            }
            findings = _rung_findings(stream, expected, stored)
            if projections:
                findings += self._view_findings(conn, stream, top)
        return findings

    def _view_findings(self, conn: sa.Connection, stream: str, top: int) -> list[Finding]:
        """The stream's view rows against a fold of its events up to ``top``, in the
        caller's (rolled back) transaction."""
        before = self._projector.rows(conn, stream)
        try:
            self._projector.refold(conn, stream, top, self.page_size)
        except LogCorrupted:
            return []  # an unreadable event: its chain report names it
        after = self._projector.rows(conn, stream)
        problems: list[tuple[Any, str]] = []
        for key in sorted(before.keys() | after.keys()):
            table, _, ident = key
            have, want = before.get(key), after.get(key)
            if have is None:
                assert want is not None
                problems.append(
                    (want["version"], f"{table} has no row {ident!r}, which the events make")
                )
            elif want is None:
                problems.append(
                    (have["version"], f"{table} row {ident!r} is not made by any event (inserted)")
                )
            else:
                cols = [c for c in want if have.get(c) != want[c]]
                if cols:
                    said = "; ".join(
                        f"{c} is {_show(have.get(c))}, the events make {_show(want[c])}"
                        for c in cols
                    )
                    problems.append((want["version"], f"{table} row {ident!r}: {said}"))
        findings = [
            Finding(
                stream,
                "projections",
                f"{message} (rebuild_index refolds the projections)",
                version if isinstance(version, int) else None,
            )
            for version, message in problems[:_SHOWN]
        ]
        if len(problems) > _SHOWN:
            more = len(problems) - _SHOWN
            findings.append(
                Finding(stream, "projections", f"and {more} more projection rows differ")
            )
        return findings

    def _orphans(self, projections: bool) -> list[Finding]:
        """Rung rows and (with ``projections``) view rows of streams without a head."""
        with self._read() as conn:
            rungs = conn.execute(self._sql.orphan_rungs).all()
            views = self._projector.orphans(conn) if projections else {}
        findings = [
            Finding(
                str(stream),
                "rungs",
                f"the fired-rung table has {count} row(s) of a stream the log does not have "
                "(rebuild_index removes them)",
            )
            for stream, count in rungs
        ]
        findings += [
            Finding(
                stream,
                "projections",
                f"{', '.join(tables)} hold rows of a stream the log does not have "
                "(rebuild_index removes them)",
            )
            for stream, tables in views.items()
        ]
        return findings

    def rebuild_index(self) -> int:
        """Rebuild, in one transaction, what the database derives from the events
        alone: the fired-rung rows (exactly one per ``deadline.escalate``) and the
        projections, from each stream's events up to its head; return the number of
        events read. Writers wait meanwhile (see :meth:`rebuild_projections`). The
        due index needs the process to judge: :meth:`Engine.rebuild_indexes
        <xuncha_flow.Engine.rebuild_indexes>` calls this, then resets it."""
        rungs: dict[tuple[str, str, str, int], dict[str, Any]] = {}

        def collect(batch: Sequence[Event]) -> None:
            for row in rung_rows(batch):
                rungs.setdefault((str(row["stream"]), *_rung_key(row)), row)

        with self._write() as conn:
            read = self._projector.rebuild(conn, self.page_size, each=collect)
            conn.execute(sa.delete(self.tables.rungs))
            rows = list(rungs.values())
            for start in range(0, len(rows), _CHUNK):
                conn.execute(self._sql.rungs, rows[start : start + _CHUNK])
        return read

    def _headless(self) -> list[ChainReport]:
        with self._read() as conn:
            rows = conn.execute(self._sql.headless).all()
        return [
            ChainReport(
                str(name),
                0,
                genesis_hash(str(name), self._hash),
                bad_version=int(first),
                problem=f"event {first} is stored for a stream that has no head row (inserted)",
            )
            for name, first in rows
        ]

    # -- projections -----------------------------------------------------------------
    def units(
        self, *, stream: str | None = None, organization: str | None = None, state: States = None
    ) -> list[UnitRow]:
        """Units, by round, organization and state (one state or several)."""
        with self._read() as conn:
            return self._views.units(conn, stream=stream, organization=organization, state=state)

    def items(
        self,
        *,
        stream: str | None = None,
        unit: str | None = None,
        organization: str | None = None,
        state: States = None,
        responsible_person: str | None = None,
        due_before: date | None = None,
    ) -> list[ItemRow]:
        """Problem items, refined parents and their children alike, in recording
        order: by round, unit (its id in the round), organization, state; with
        ``responsible_person`` / ``due_before``, those with a measure of that person /
        due before that day."""
        with self._read() as conn:
            return self._views.items(
                conn,
                stream=stream,
                unit=unit,
                organization=organization,
                state=state,
                responsible_person=responsible_person,
                due_before=due_before,
            )

    def measures(
        self,
        *,
        stream: str | None = None,
        item: str | None = None,
        unit: str | None = None,
        responsible_person: str | None = None,
        due_before: date | None = None,
        state: States = None,
    ) -> list[MeasureRow]:
        """Measures, earliest due first (undated last): by round, item, unit,
        responsible person, due date (strictly before ``due_before``) and state."""
        with self._read() as conn:
            return self._views.measures(
                conn,
                stream=stream,
                item=item,
                unit=unit,
                responsible_person=responsible_person,
                due_before=due_before,
                state=state,
            )

    def deadlines(
        self,
        *,
        stream: str | None = None,
        unit: str | None = None,
        state: States = None,
        due_by: datetime | None = None,
    ) -> list[DeadlineRow]:
        """Deadlines, earliest due first: by round, unit, state and due time (at or
        before ``due_by``)."""
        if due_by is not None:
            require_aware(due_by, "due_by")
        with self._read() as conn:
            return self._views.deadlines(conn, stream=stream, unit=unit, state=state, due_by=due_by)

    def overdue(
        self, at: datetime, *, stream: str | None = None, unit: str | None = None
    ) -> list[DeadlineRow]:
        """Running deadlines whose due time is at or before ``at`` (paused ones are
        not overdue), earliest due first — the engine's ``overdue`` over every round,
        without loading any."""
        return self.deadlines(stream=stream, unit=unit, state="running", due_by=at)

    def rebuild_projections(self) -> int:
        """Empty the projection tables and refold every stream of the log into them,
        in one transaction; return the number of events folded."""
        with self._write() as conn:
            return self._projector.rebuild(conn, self.page_size)

    def snapshot_store(self) -> SqlSnapshotStore:
        """A :class:`~xuncha_flow.stores.SqlSnapshotStore` on the same database,
        tables and transactions as this log."""
        from ._snapshots import SqlSnapshotStore

        return SqlSnapshotStore(
            self.bind, prefix=self.tables.prefix, schema=self.tables.schema, create=False
        )

    # -- lifetime --------------------------------------------------------------------
    def __enter__(self) -> SqlEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlEventLog({self.bind!r}, {self._where()})"


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
    if synchronous not in ("FULL", "NORMAL"):
        raise InvalidArgument(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
    if (
        isinstance(busy_timeout, bool)
        or not isinstance(busy_timeout, int | float)
        or not 0 <= busy_timeout < 86400
    ):
        raise InvalidArgument(f"busy_timeout must be seconds from 0 to a day, got {busy_timeout!r}")
    try:
        database = os.fspath(path)
    except TypeError as exc:
        raise InvalidArgument(f"path must be a file path or ':memory:', got {path!r}") from exc
    if not isinstance(database, str) or "\x00" in database:
        raise InvalidArgument(f"path must be a file path or ':memory:', got {path!r}")
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
        mode = str(conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")).upper()
        conn.exec_driver_sql(f"BEGIN {mode if mode in BEGIN_MODES else 'DEFERRED'}")

    return engine


def sqlite_log(
    path: str | os.PathLike[str],
    *,
    prefix: str = "xuncha_",
    create: bool = True,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    busy_timeout: float = 30.0,
    hash_algorithm: str | None = None,
) -> SqlEventLog:
    """The embedded default: an event log in the SQLite file ``path``, created or
    upgraded on first use. ``hash_algorithm`` chooses the hash of a new log
    (``"sha256"``, the default, or ``"sm3"``); an existing log keeps the one it
    records. :meth:`SqlEventLog.close` releases the file."""
    engine = sqlite_engine(path, synchronous=synchronous, busy_timeout=busy_timeout)
    try:
        return SqlEventLog(
            engine, prefix=prefix, create=create, owns_engine=True, hash_algorithm=hash_algorithm
        )
    except BaseException:
        engine.dispose()
        raise


def postgres_log(
    url: str | sa.URL,
    *,
    schema: str | None = None,
    prefix: str = "xuncha_",
    create: bool = True,
    hash_algorithm: str | None = None,
    **kwargs: Any,
) -> SqlEventLog:
    """An event log in PostgreSQL (or a PostgreSQL-compatible database) at ``url``,
    through psycopg 3: ``postgresql+psycopg://user@host:5432/db`` (a plain
    ``postgresql://`` URL is given the psycopg driver). ``hash_algorithm`` as for
    :func:`sqlite_log`; ``kwargs`` go to :func:`sqlalchemy.create_engine`."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError as exc:
        raise InvalidArgument(f"not a database URL: {url!r}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(parsed, **kwargs)
    try:
        return SqlEventLog(
            engine,
            schema=schema,
            prefix=prefix,
            create=create,
            owns_engine=True,
            hash_algorithm=hash_algorithm,
        )
    except BaseException:
        engine.dispose()
        raise
