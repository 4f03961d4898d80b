"""The tables of the SQL event store and the steps that create and upgrade them.

Tables are named with a prefix (``xuncha_`` by default) and optionally in a
database schema.

The log (the record):

``<prefix>events``
    one row per event, primary key ``(stream, version)``; ``id`` is unique.
    ``body`` is the whole event as canonical JSON text (sorted keys, no spaces,
    UTF-8) — exactly the bytes its hash was computed over, plus the ``hash``
    member — so the hash can be recomputed byte for byte. It is text, not a JSON
    column type: a JSON column may reorder keys or change number spellings.
    ``type``, ``subject``, ``timestamp``, ``command_id``, ``prev_hash`` and
    ``hash`` repeat fields of the body for queries; the body is the record.
``<prefix>streams``
    one row per stream: its ``version`` and ``head`` (the hash of its last event),
    updated in the same transaction as the events. The head is what shows a
    truncated tail: events alone cannot tell that their last ones are missing.
    ``seq`` gives the creation order. The due index (version 3): ``due_at``, when
    the stream next has something for a sweep (NULL: nothing pending), and the
    sweep lease, ``lease_worker`` and ``lease_until``; a partial index on
    ``due_at`` makes claiming cost grow with what is due, not with what exists.
``<prefix>rungs``
    one row per ladder rung recorded (``deadline.escalate``), primary key
    ``(stream, deadline, rung, generation)``: the database refuses a rung twice.
``<prefix>outbox`` (version 6)
    the transactional outbox: one row per notification (its idempotency ``key``
    the primary key), written in the transaction of the events that made it, with
    its delivery state (``available_at``, ``attempts``, ``last_error``,
    ``delivered_at``) and lease (``lease_worker``, ``lease_until``).
``<prefix>meta`` (version 6)
    facts about the log as a whole, as text: ``hash_algorithm``, the hash its
    events are chained with (``sha256`` for a log created before version 6).
``<prefix>schema_version``
    one row per applied migration step.

Caches and views, derived from the log and never its record:

``<prefix>snapshots``
    the newest snapshot of each stream (:class:`~xuncha_flow.stores.SqlSnapshotStore`):
    its ``digest`` is an HMAC under the key named by ``key_id`` (version 6).
``<prefix>units``, ``<prefix>items``, ``<prefix>measures``, ``<prefix>deadlines``
    projections for queries (``_projections.py``), written in the same
    transaction as the events and rebuildable from the log.

The schema is changed only by :data:`MIGRATIONS`, applied in order, each inside
the caller's transaction and recorded in the version table: a database is
upgraded in place, never dropped and recreated. A step defines its own DDL (it
does not reuse the live table objects), so that later steps can change tables
without changing what earlier steps did. A step that creates or changes
projection tables is marked ``refold``: after the upgrade the store refolds the
whole log into the projections with the current projector (they are derived
data, so they are rebuilt rather than converted).

Times in the due index and the projections are stored in UTC (:class:`UtcDateTime`):
SQLite keeps no time zone, and UTC text sorts in time order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import sqlalchemy as sa

from .._clock import require_aware

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Tables",
    "UtcDateTime",
    "current_version",
    "upgrade",
]


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime stored in UTC and read back as an aware UTC datetime.

    A naive value is refused with :class:`~xuncha_flow.InvalidArgument`: the store
    never guesses a time zone."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        moment = require_aware(value, "a stored time").astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The due time given to every stream when the due index is added (version 3)."""


@attrs.frozen
class Tables:
    """The live table objects the store queries, for one prefix and schema."""

    prefix: str
    schema: str | None
    events: sa.Table
    streams: sa.Table
    versions: sa.Table
    rungs: sa.Table
    snapshots: sa.Table
    units: sa.Table
    items: sa.Table
    measures: sa.Table
    deadlines: sa.Table
    outbox: sa.Table
    meta: sa.Table

    @classmethod
    def build(cls, prefix: str = "xuncha_", schema: str | None = None) -> Tables:
        md = sa.MetaData(schema=schema)
        events, streams, versions = _define(md, prefix, due_index=True)
        sa.Index(f"{prefix}events_command_id", events.c.command_id)
        _due_index(streams, prefix)
        return cls(
            prefix,
            schema,
            events,
            streams,
            versions,
            _rungs(md, prefix),
            _snapshots(md, prefix, keyed=True),
            *_views(md, prefix),
            _outbox(md, prefix),
            _meta(md, prefix),
        )

    @property
    def views(self) -> tuple[sa.Table, ...]:
        """The projection tables."""
        return (self.units, self.items, self.measures, self.deadlines)


def _define(
    md: sa.MetaData, prefix: str, *, due_index: bool = False
) -> tuple[sa.Table, sa.Table, sa.Table]:
    """The tables as of schema version 1 (with ``due_index``: the streams table's
    columns as of version 3)."""
    events = sa.Table(
        f"{prefix}events",
        md,
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(200), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("command_id", sa.String(200), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    streams = sa.Table(
        f"{prefix}streams",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(200), nullable=False, unique=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        *(_due_columns() if due_index else ()),
    )
    versions = sa.Table(
        f"{prefix}schema_version",
        md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
    )
    return events, streams, versions


def _due_columns() -> tuple[sa.Column[Any], ...]:
    """The due index and sweep lease of a stream (schema version 3)."""
    return (
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("lease_worker", sa.String(200), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
    )


def _due_index(streams: sa.Table, prefix: str) -> sa.Index:
    due = streams.c.due_at
    return sa.Index(
        f"{prefix}streams_due",
        due,
        postgresql_where=due.is_not(None),
        sqlite_where=due.is_not(None),
    )


def _rungs(md: sa.MetaData, prefix: str) -> sa.Table:
    """Fired ladder rungs, unique by deadline, rung and generation (version 3)."""
    return sa.Table(
        f"{prefix}rungs",
        md,
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("deadline", sa.String(200), primary_key=True),
        sa.Column("rung", sa.String(100), primary_key=True),
        sa.Column("generation", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=False),
    )


def _snapshots(md: sa.MetaData, prefix: str, *, keyed: bool = False) -> sa.Table:
    """The newest snapshot of each stream (version 4; with ``keyed``, the key id of
    its HMAC, version 6)."""
    return sa.Table(
        f"{prefix}snapshots",
        md,
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        *((_snapshot_key(),) if keyed else ()),
    )


def _snapshot_key() -> sa.Column[Any]:
    return sa.Column("key_id", sa.String(200), nullable=True)


def _outbox(md: sa.MetaData, prefix: str) -> sa.Table:
    """The transactional outbox (version 6)."""
    available: sa.Column[datetime] = sa.Column("available_at", UtcDateTime(), nullable=False)
    delivered: sa.Column[datetime] = sa.Column("delivered_at", UtcDateTime(), nullable=True)
    return sa.Table(
        f"{prefix}outbox",
        md,
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        available,
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        delivered,
        sa.Column("lease_worker", sa.String(200), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Index(
            f"{prefix}outbox_pending",
            available,
            postgresql_where=delivered.is_(None),
            sqlite_where=delivered.is_(None),
        ),
        sa.Index(f"{prefix}outbox_stream", "stream", "version"),
    )


def _meta(md: sa.MetaData, prefix: str) -> sa.Table:
    """Facts about the log as a whole (version 6)."""
    return sa.Table(
        f"{prefix}meta",
        md,
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def _views(md: sa.MetaData, prefix: str) -> tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    """The projection tables (version 5), each keyed by ``(stream, id)``; ``version``
    is the stream version of the last event that changed the row."""

    def key() -> tuple[sa.Column[Any], ...]:
        return (
            sa.Column("stream", sa.String(200), primary_key=True),
            sa.Column("id", sa.String(200), primary_key=True),
        )

    units = sa.Table(
        f"{prefix}units",
        md,
        *key(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("organization_id", sa.String(200), nullable=False),
        sa.Column("state", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Index(f"{prefix}units_organization", "organization_id"),
    )
    items = sa.Table(
        f"{prefix}items",
        md,
        *key(),
        sa.Column("unit_id", sa.String(200), nullable=False),
        sa.Column("organization_id", sa.String(200), nullable=True),
        sa.Column("parent_id", sa.String(200), nullable=True),
        sa.Column("state", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("found_at", UtcDateTime(), nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Index(f"{prefix}items_unit_state", "unit_id", "state"),
        sa.Index(f"{prefix}items_organization_state", "organization_id", "state"),
        sa.Index(f"{prefix}items_state", "state"),
    )
    measures = sa.Table(
        f"{prefix}measures",
        md,
        *key(),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("unit_id", sa.String(200), nullable=True),
        sa.Column("state", sa.String(100), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("responsible_leader", sa.String(200), nullable=True),
        sa.Column("responsible_person", sa.String(200), nullable=True),
        sa.Column("due_date", sa.Date, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Index(f"{prefix}measures_item", "stream", "item_id"),
        sa.Index(f"{prefix}measures_person", "responsible_person", "due_date"),
        sa.Index(f"{prefix}measures_due", "due_date"),
    )
    deadlines = sa.Table(
        f"{prefix}deadlines",
        md,
        *key(),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("subject_kind", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("unit_id", sa.String(200), nullable=True),
        sa.Column("state", sa.String(100), nullable=False),
        sa.Column("due", sa.Date, nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("paused_at", UtcDateTime(), nullable=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Index(f"{prefix}deadlines_state_due", "state", "due_at"),
    )
    return units, items, measures, deadlines


@attrs.frozen
class Migration:
    """One step of the schema: ``apply`` runs inside the upgrading transaction.
    ``refold``: the step creates or changes projection tables, so the store refolds
    the log into them once the upgrade is done."""

    version: int
    description: str
    apply: Callable[[sa.Connection, Tables], None]
    refold: bool = False


def _v1_tables(conn: sa.Connection, tables: Tables) -> None:
    events, streams, _ = _define(sa.MetaData(schema=tables.schema), tables.prefix)
    events.create(conn)
    streams.create(conn)


def _v2_command_index(conn: sa.Connection, tables: Tables) -> None:
    # Finding a command's events (idempotent retries, crash checks, audits) by
    # command id without scanning the stream.
    events, _, _ = _define(sa.MetaData(schema=tables.schema), tables.prefix)
    sa.Index(f"{tables.prefix}events_command_id", events.c.command_id).create(conn)


def _add_column(conn: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
    prep = conn.dialect.identifier_preparer
    kind = column.type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(
        f"ALTER TABLE {prep.format_table(table)} ADD COLUMN {prep.quote(column.name)} {kind}"
    )


def _v3_due_index_and_rungs(conn: sa.Connection, tables: Tables) -> None:
    # The due index: columns added in place. Streams written before it have no due
    # time, so every one is made due once (at the epoch): the first sweep that
    # claims it computes its real next due time and releases it.
    md = sa.MetaData(schema=tables.schema)
    events, streams, _ = _define(md, tables.prefix)
    for column in _due_columns():
        _add_column(conn, streams, column)
    live = _define(sa.MetaData(schema=tables.schema), tables.prefix, due_index=True)[1]
    _due_index(live, tables.prefix).create(conn)
    conn.execute(sa.update(live).values(due_at=EPOCH))
    # Fired rungs, backfilled from the escalations already in the log.
    rungs = _rungs(md, tables.prefix)
    rungs.create(conn)
    found = conn.execute(
        sa.select(events.c.stream, events.c.version, events.c.subject, events.c.body)
        .where(events.c.type == "deadline.escalate")
        .order_by(events.c.stream, events.c.version)
    )
    seen: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for stream, version, subject, body in found:
        payload = json.loads(body).get("payload") or {}
        key = (
            str(stream),
            str(subject),
            str(payload.get("rung")),
            int(payload.get("generation") or 1),
        )
        seen.setdefault(
            key,
            {
                "stream": key[0],
                "deadline": key[1],
                "rung": key[2],
                "generation": key[3],
                "version": int(version),
            },
        )
    if seen:
        conn.execute(rungs.insert(), list(seen.values()))


def _v4_snapshots(conn: sa.Connection, tables: Tables) -> None:
    _snapshots(sa.MetaData(schema=tables.schema), tables.prefix).create(conn)


def _v5_projections(conn: sa.Connection, tables: Tables) -> None:
    for table in _views(sa.MetaData(schema=tables.schema), tables.prefix):
        table.create(conn)


def _v6_outbox_meta_keyed_snapshots(conn: sa.Connection, tables: Tables) -> None:
    # The outbox and the log's own facts; the events written so far were chained
    # with SHA-256, the only hash before this step. Snapshots get the id of the key
    # that authenticates them: older ones, with a bare digest, no longer count and
    # are replaced by the next snapshot an engine writes.
    md = sa.MetaData(schema=tables.schema)
    _outbox(md, tables.prefix).create(conn)
    meta = _meta(md, tables.prefix)
    meta.create(conn)
    conn.execute(meta.insert().values(key="hash_algorithm", value="sha256"))
    _add_column(conn, _snapshots(md, tables.prefix), _snapshot_key())


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events and stream heads", _v1_tables),
    Migration(2, "index events by command id", _v2_command_index),
    Migration(3, "due index and sweep leases on streams; fired rungs", _v3_due_index_and_rungs),
    Migration(4, "snapshots", _v4_snapshots),
    Migration(5, "projections: units, items, measures, deadlines", _v5_projections, refold=True),
    Migration(
        6,
        "transactional outbox; the log's hash algorithm; keyed snapshots",
        _v6_outbox_meta_keyed_snapshots,
    ),
)
"""Every schema step, in order. Append new steps; never edit a released one."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this library writes."""


def current_version(conn: sa.Connection, tables: Tables) -> int:
    """The schema version of the database (0 when nothing was created yet)."""
    if not sa.inspect(conn).has_table(tables.versions.name, schema=tables.schema):
        return 0
    found = conn.execute(sa.select(sa.func.max(tables.versions.c.version))).scalar()
    return int(found or 0)


def upgrade(
    conn: sa.Connection,
    tables: Tables,
    *,
    target: int | None = None,
    steps: tuple[Migration, ...] = MIGRATIONS,
) -> tuple[int, ...]:
    """Apply the steps after the database's version, up to ``target`` (default: all),
    in the caller's transaction; return the versions applied. The caller serialises
    upgraders (a write lock or an advisory lock) so two never run the same step,
    and refolds the projections when an applied step is marked ``refold``."""
    if tables.schema is not None and conn.dialect.name != "sqlite":
        conn.execute(sa.schema.CreateSchema(tables.schema, if_not_exists=True))
    if not sa.inspect(conn).has_table(tables.versions.name, schema=tables.schema):
        tables.versions.create(conn)
    have = current_version(conn, tables)
    applied = []
    for step in steps:
        if step.version <= have or (target is not None and step.version > target):
            continue
        step.apply(conn, tables)
        conn.execute(
            tables.versions.insert().values(version=step.version, description=step.description)
        )
        applied.append(step.version)
    return tuple(applied)
