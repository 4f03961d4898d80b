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
or rolls both back (``_base.py``). A connection-bound store belongs to the thread
that owns the connection.

SQLite. Writers take the write lock when their transaction begins
(``BEGIN IMMEDIATE``), so two writers queue on SQLite's busy timeout instead of
failing halfway; readers run in WAL mode beside them. :func:`sqlite_engine`
configures this (and the pragmas); an engine made elsewhere still gets
``BEGIN IMMEDIATE`` from the store when its driver has not begun a transaction.

Reading. :meth:`SqlEventLog.read` reads the stream head, then pages through the
events up to it in version order, parsing each from its stored JSON and checking
it: readable, the row it is stored in, its hash over the exact stored bytes, its
link to the previous event, and at the end the head. A row that fails raises
:class:`~xuncha_flow.LogCorrupted` naming stream and version — corrupted data is
never loaded silently. :meth:`SqlEventLog.verify` runs the same checks over every
stream and reports the first bad event of each instead of raising, plus events
stored beyond a head or for a stream without one.

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
surfaces as :class:`~xuncha_flow.ConcurrencyConflict` and nothing of the batch is
written.

Projections. The same transaction folds the batch into the view tables
(``_projections.py``): :meth:`SqlEventLog.items`, :meth:`SqlEventLog.measures`,
:meth:`SqlEventLog.deadlines`, :meth:`SqlEventLog.overdue` and
:meth:`SqlEventLog.units` query them; :meth:`SqlEventLog.rebuild_projections`
refolds them from the log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import attrs
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from .._clock import require_aware
from .._errors import ConcurrencyConflict, InvalidArgument, LogCorrupted, SchemaMismatch
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
from .._log import DueEntry, EventLog, LogReport, check_batch
from .._outbox import Message
from ._base import BEGIN_MODES, BEGIN_OPTION, SqlBase
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
        if claim_limit is not None and claim_limit < 1:
            raise InvalidArgument("claim_limit must be at least 1")
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
        self._sql = _Statements(self.tables, page_size)
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
        if due is not None:
            require_aware(due, "due")
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
            raise ConcurrencyConflict(
                stream, expected_version, self._version_or_none(stream)
            ) from exc

    # -- the due index ---------------------------------------------------------------
    def claim_due(
        self, at: datetime, *, worker: str, lease: timedelta, limit: int | None = None
    ) -> list[str]:
        """Lease to ``worker`` the streams due at or before ``at`` that no other worker
        holds (a lease taken at ``at`` lapses at ``at + lease``), earliest due first,
        at most ``limit`` (or :attr:`claim_limit`) of them; the lease is committed
        before this returns (unless the store writes in a host's transaction)."""
        require_aware(at, "at")
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
        if due is not None:
            require_aware(due, "due")
        with self._write() as conn:
            conn.execute(self._sql.release, {"s_stream": stream, "s_due": due, "s_worker": worker})

    def due_entry(self, stream: str) -> DueEntry | None:
        """The stream's due index entry (None for an unknown stream)."""
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
        require_aware(at, "at")
        with self._write() as conn:
            conn.execute(self._sql.ack, {"o_key": key, "o_at": at})

    def fail(self, key: str, *, error: str, retry_at: datetime) -> None:
        require_aware(retry_at, "retry_at")
        with self._write() as conn:
            conn.execute(
                self._sql.fail, {"o_key": key, "o_error": error[:4000], "o_retry": retry_at}
            )

    def messages(self, *, stream: str | None = None, pending: bool | None = None) -> list[Message]:
        outbox = self.tables.outbox
        query = sa.select(outbox).order_by(
            outbox.c.created_at, outbox.c.stream, outbox.c.version, outbox.c.key
        )
        if stream is not None:
            query = query.where(outbox.c.stream == stream)
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
                event = self._parse(
                    self._hash,
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
        algorithm: str,
        stream: str,
        expect: int,
        version: int,
        ident: str,
        stored_hash: str,
        body: str,
        prev: str,
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
        elif _body_hash(body, event.hash, algorithm) != event.hash:
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

    def verify(
        self, stream: str | None = None, *, checkpoints: Checkpoints | None = None
    ) -> LogReport:
        """Check every stream (or one): each stored event readable, unmodified, in
        its place and linked to the one before, and the stream head matching the
        last event. Reports the first bad event of each stream; with no ``stream``,
        also streams that have events but no head row. With ``checkpoints``, each
        stream must still reach the heads they recorded (see
        :meth:`EventLog.verify <xuncha_flow.EventLog.verify>`)."""
        anchors = self._anchors(checkpoints)
        names = [stream] if stream is not None else self.streams()
        reports = [self._verify_stream(name, anchors.get(name, {})) for name in names]
        if stream is None:
            reports.extend(self._headless())
        reports += self._vanished(anchors, names, stream)
        return LogReport(tuple(reports))

    def _verify_stream(self, stream: str, pins: Mapping[int, str]) -> ChainReport:
        checked, last = 0, genesis_hash(stream, self._hash)
        try:
            for event in self._scan(stream, 0):
                if event.version in pins and pins[event.version] != event.hash:
                    raise _Corrupt(stream, event.version, event.id, anchor_problem(event.version))
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
        short = [v for v in pins if v > checked]
        if short:
            return ChainReport(
                stream,
                checked,
                last,
                bad_version=min(short),
                problem=short_of_anchor(checked, min(short)),
            )
        return ChainReport(stream, checked, last)

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
