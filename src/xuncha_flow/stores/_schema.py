"""The tables of the SQL event store and the steps that create and upgrade them.

Three tables, named with a prefix (``xuncha_`` by default) and optionally in a
database schema:

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
    ``seq`` gives the creation order.
``<prefix>schema_version``
    one row per applied migration step.

The schema is changed only by :data:`MIGRATIONS`, applied in order, each inside
the caller's transaction and recorded in the version table: a database is
upgraded in place, never dropped and recreated. A step defines its own DDL (it
does not reuse the live table objects), so that later steps can change tables
without changing what earlier steps did.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import sqlalchemy as sa

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "Tables", "current_version", "upgrade"]


@attrs.frozen
class Tables:
    """The live table objects the store queries, for one prefix and schema."""

    prefix: str
    schema: str | None
    events: sa.Table
    streams: sa.Table
    versions: sa.Table

    @classmethod
    def build(cls, prefix: str = "xuncha_", schema: str | None = None) -> Tables:
        md = sa.MetaData(schema=schema)
        return cls(prefix, schema, *_define(md, prefix))


def _define(md: sa.MetaData, prefix: str) -> tuple[sa.Table, sa.Table, sa.Table]:
    """The tables as of schema version 1."""
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


@attrs.frozen
class Migration:
    """One step of the schema: ``apply`` runs inside the upgrading transaction."""

    version: int
    description: str
    apply: Callable[[sa.Connection, Tables], None]


def _v1_tables(conn: sa.Connection, tables: Tables) -> None:
    events, streams, _ = _define(sa.MetaData(schema=tables.schema), tables.prefix)
    events.create(conn)
    streams.create(conn)


def _v2_command_index(conn: sa.Connection, tables: Tables) -> None:
    # Finding a command's events (idempotent retries, crash checks, audits) by
    # command id without scanning the stream.
    events, _, _ = _define(sa.MetaData(schema=tables.schema), tables.prefix)
    sa.Index(f"{tables.prefix}events_command_id", events.c.command_id).create(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events and stream heads", _v1_tables),
    Migration(2, "index events by command id", _v2_command_index),
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
    upgraders (a write lock or an advisory lock) so two never run the same step."""
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
