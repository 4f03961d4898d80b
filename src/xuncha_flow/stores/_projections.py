"""Projections: tables that answer what services ask without loading every round.

Which units, items and measures a round has, in which state, whose responsibility
and due when; which deadlines run and which are overdue. The store writes them in
the same transaction as the events (:meth:`Projector.fold`), so a query never sees
a view ahead of or behind the log it has committed, and
:meth:`~xuncha_flow.stores.SqlEventLog.rebuild_projections` refolds them from the
log (:meth:`Projector.rebuild`).

The projector folds each event into the view rows using only the event and the
view tables themselves — never an engine or its state — so any writer, and a
rebuild, produce the same rows. This module is the only place that knows which
event types change which view (the built-in definitions' stored event values):

* ``unit.add`` creates a unit row (name, organization);
* ``item.record`` creates an item row (its unit from the payload, the unit's
  organization from the unit row); ``item.refine`` creates the children listed in
  its payload (in the parent's state before the refinement, in its unit);
* ``measure.add`` creates a measure row (its item from the payload, the item's
  unit from the item row); ``measure.revise`` changes the fields it names;
* ``deadline.open`` creates a deadline row (its unit: the subject itself, the
  item's or the measure's unit; none for a lead); ``deadline.pause``,
  ``deadline.resume`` and ``deadline.extend`` move its times as the engine does;
* any other event of a unit, item, measure or deadline sets the row's state.

It also lists the fired rungs of a batch (:func:`rung_rows`): each
``deadline.escalate`` is keyed by ``(stream, deadline, payload["rung"],
payload["generation"])``, the primary key that makes the database refuse a rung
recorded twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite

from .._errors import LogCorrupted
from .._events import Event
from ._schema import Tables

__all__ = [
    "DeadlineRow",
    "ItemRow",
    "MeasureRow",
    "Projector",
    "UnitRow",
    "Views",
    "rung_rows",
]

RUNG_EVENT = "deadline.escalate"
_TABLES = {"unit": "units", "item": "items", "measure": "measures", "deadline": "deadlines"}
Row = dict[str, Any]


# -- rows returned by queries ---------------------------------------------------------
@attrs.frozen
class UnitRow:
    """An inspected unit of a round."""

    stream: str
    id: str
    name: str
    organization_id: str
    state: str
    version: int


@attrs.frozen
class ItemRow:
    """A problem item. ``organization_id`` is its unit's organization; ``parent_id``
    the refined item it was split from."""

    stream: str
    id: str
    unit_id: str
    organization_id: str | None
    parent_id: str | None
    state: str
    description: str
    found_at: datetime
    version: int


@attrs.frozen
class MeasureRow:
    """A rectification measure, with whose responsibility it is and when it is due."""

    stream: str
    id: str
    item_id: str
    unit_id: str | None
    state: str
    text: str
    responsible_leader: str | None
    responsible_person: str | None
    due_date: date | None
    version: int


@attrs.frozen
class DeadlineRow:
    """A deadline: overdue when ``state`` is running and ``due_at`` has passed."""

    stream: str
    id: str
    rule: str
    subject_kind: str
    subject: str
    unit_id: str | None
    state: str
    due: date
    due_at: datetime
    paused_at: datetime | None
    generation: int
    version: int


# -- fired rungs -------------------------------------------------------------------------
def rung_rows(events: Iterable[Event]) -> list[Row]:
    """The rows of the fired-rung table for the escalations among ``events``."""
    return [
        {
            "stream": e.stream,
            "deadline": e.subject,
            "rung": str(e.payload.get("rung")),
            "generation": int(str(e.payload.get("generation") or 1)),
            "version": e.version,
        }
        for e in events
        if e.type == RUNG_EVENT
    ]


# -- folding -----------------------------------------------------------------------------
def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


class _Pending:
    """The view rows one fold touches: read when needed, written at the end in as
    few statements as possible (new rows in one upsert per table, changes in one
    executemany per table and set of columns)."""

    def __init__(self, projector: Projector, conn: sa.Connection, stream: str) -> None:
        self.projector = projector
        self.conn = conn
        self.stream = stream
        self.loaded: dict[tuple[str, str], Row | None] = {}
        self.new: dict[tuple[str, str], Row] = {}
        self.changed: dict[tuple[str, str], Row] = {}

    def get(self, table: str, ident: str) -> Row | None:
        """The row as it stands after the changes folded so far (None if unknown)."""
        key = (table, ident)
        if key in self.new:
            return self.new[key]
        if key not in self.loaded:
            query = self.projector.selects[table]
            found = (
                self.conn.execute(query, {"g_stream": self.stream, "g_id": ident})
                .mappings()
                .first()
            )
            self.loaded[key] = dict(found) if found is not None else None
        base = self.loaded[key]
        return None if base is None else {**base, **self.changed.get(key, {})}

    def create(self, table: str, row: Row) -> None:
        self.new[(table, str(row["id"]))] = {"stream": self.stream, **row}
        self.changed.pop((table, str(row["id"])), None)

    def change(self, table: str, ident: str, **values: Any) -> None:
        key = (table, ident)
        if key in self.new:
            self.new[key].update(values)
        else:
            self.changed.setdefault(key, {}).update(values)

    def flush(self) -> None:
        inserts: dict[str, list[Row]] = {}
        for (table, _), row in self.new.items():
            inserts.setdefault(table, []).append(row)
        for table, rows in inserts.items():
            self.conn.execute(self.projector.upsert(table, self.conn.dialect.name), rows)
        updates: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
        for (table, ident), values in self.changed.items():
            columns = tuple(sorted(values))
            params = {f"v_{c}": values[c] for c in columns}
            updates.setdefault((table, columns), []).append(
                {"k_stream": self.stream, "k_id": ident, **params}
            )
        for (table, columns), rows in updates.items():
            self.conn.execute(self.projector.update(table, columns), rows)


class Projector:
    """Folds events into the view tables of ``tables``."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.views: dict[str, sa.Table] = {
            "units": tables.units,
            "items": tables.items,
            "measures": tables.measures,
            "deadlines": tables.deadlines,
        }
        self.selects = {
            name: sa.select(view).where(
                view.c.stream == sa.bindparam("g_stream"), view.c.id == sa.bindparam("g_id")
            )
            for name, view in self.views.items()
        }
        self._upserts: dict[tuple[str, str], sa.Insert] = {}
        self._updates: dict[tuple[str, tuple[str, ...]], sa.Update] = {}

    # -- statements ------------------------------------------------------------------
    def upsert(self, table: str, dialect: str) -> sa.Insert:
        """Insert rows, replacing a row already there (a view is derived data: a row
        left by an interrupted rebuild must not block a write)."""
        key = (table, dialect)
        found = self._upserts.get(key)
        if found is not None:
            return found
        view = self.views[table]
        stmt: sa.Insert
        if dialect in ("sqlite", "postgresql"):
            ins = sqlite.insert(view) if dialect == "sqlite" else postgresql.insert(view)
            stmt = ins.on_conflict_do_update(
                index_elements=[view.c.stream, view.c.id],
                set_={c.name: ins.excluded[c.name] for c in view.c if not c.primary_key},
            )
        else:  # pragma: no cover - other dialects: a plain insert
            stmt = view.insert()
        self._upserts[key] = stmt
        return stmt

    def update(self, table: str, columns: tuple[str, ...]) -> sa.Update:
        key = (table, columns)
        found = self._updates.get(key)
        if found is None:
            view = self.views[table]
            found = self._updates[key] = (
                sa.update(view)
                .where(view.c.stream == sa.bindparam("k_stream"), view.c.id == sa.bindparam("k_id"))
                .values({c: sa.bindparam(f"v_{c}") for c in columns})
            )
        return found

    # -- folding ---------------------------------------------------------------------
    def fold(self, conn: sa.Connection, stream: str, events: Sequence[Event]) -> None:
        """Fold ``events`` (a batch of ``stream``, in order) into the views, in the
        caller's transaction."""
        rows = _Pending(self, conn, stream)
        for event in events:
            table = _TABLES.get(event.kind)
            if table is None:
                continue
            if event.from_state is None:
                self._create(rows, event)
            else:
                rows.change(
                    table,
                    event.subject,
                    state=event.to_state,
                    version=event.version,
                    **self._changes(rows, event),
                )
        rows.flush()

    def _create(self, rows: _Pending, e: Event) -> None:
        p, kind = e.payload, e.kind
        base = {"id": e.subject, "state": e.to_state, "version": e.version}
        if kind == "unit":
            rows.create(
                "units",
                {
                    **base,
                    "name": str(p.get("name") or ""),
                    "organization_id": str(p.get("organization_id") or ""),
                },
            )
        elif kind == "item":
            unit_id = str(p.get("unit_id"))
            unit = rows.get("units", unit_id)
            rows.create(
                "items",
                {
                    **base,
                    "unit_id": unit_id,
                    "organization_id": unit["organization_id"] if unit else None,
                    "parent_id": None,
                    "description": str(p.get("description") or ""),
                    "found_at": e.timestamp,
                    "created": e.version,
                },
            )
        elif kind == "measure":
            item_id = str(p.get("item_id"))
            item = rows.get("items", item_id)
            rows.create(
                "measures",
                {
                    **base,
                    "item_id": item_id,
                    "unit_id": item["unit_id"] if item else None,
                    "text": str(p.get("text") or ""),
                    "responsible_leader": _opt(p.get("responsible_leader")),
                    "responsible_person": _opt(p.get("responsible_person")),
                    "due_date": _day(p.get("due_date")),
                },
            )
        elif kind == "deadline":
            subject_kind, subject = str(p.get("subject_kind")), str(p.get("subject"))
            rows.create(
                "deadlines",
                {
                    **base,
                    "rule": str(p.get("rule")),
                    "subject_kind": subject_kind,
                    "subject": subject,
                    "unit_id": self._unit_of(rows, subject_kind, subject),
                    "due": date.fromisoformat(str(p["due"])),
                    "due_at": datetime.fromisoformat(str(p["due_at"])),
                    "paused_at": None,
                    "generation": 1,
                },
            )

    @staticmethod
    def _unit_of(rows: _Pending, kind: str, subject: str) -> str | None:
        """The unit a deadline's subject belongs to, as the engine finds it."""
        if kind == "unit":
            return subject
        table = {"item": "items", "measure": "measures"}.get(kind)
        found = rows.get(table, subject) if table is not None else None
        return _opt(found["unit_id"]) if found is not None else None

    def _changes(self, rows: _Pending, e: Event) -> Row:
        """What besides the state the event changes in its subject's row."""
        p, kind, name = e.payload, e.kind, e.event
        if kind == "item" and name == "refine":
            parent = rows.get("items", e.subject)
            children = p.get("children")
            for child in children if isinstance(children, list) else ():
                if not isinstance(child, dict):
                    continue
                rows.create(
                    "items",
                    {
                        "id": str(child["id"]),
                        "state": str(e.from_state),
                        "version": e.version,
                        "unit_id": parent["unit_id"] if parent else "",
                        "organization_id": parent["organization_id"] if parent else None,
                        "parent_id": e.subject,
                        "description": str(child.get("description") or ""),
                        "found_at": e.timestamp,
                        "created": e.version,
                    },
                )
            return {}
        if kind == "measure" and name == "revise":
            changes: Row = {}
            for key in ("text", "responsible_leader", "responsible_person"):
                if key in p:
                    changes[key] = _opt(p[key]) if key != "text" else str(p[key] or "")
            if "due_date" in p:
                changes["due_date"] = _day(p["due_date"])
            return changes
        if kind != "deadline":
            return {}
        if name == "pause":
            return {"paused_at": e.timestamp}
        if name in ("meet", "cancel"):
            return {"paused_at": None}
        if name in ("resume", "extend"):
            row = rows.get("deadlines", e.subject)
            if row is None:
                return {}
            if name == "resume":
                if row["paused_at"] is None:
                    return {}
                days = math.ceil((e.timestamp - row["paused_at"]) / timedelta(days=1))
                shift = timedelta(days=days)
                return {
                    "paused_at": None,
                    "due": row["due"] + shift,
                    "due_at": row["due_at"] + shift,
                }
            due = date.fromisoformat(str(p["due"]))
            return {
                "due": due,
                "due_at": row["due_at"] + (due - row["due"]),
                "generation": int(row["generation"]) + 1,
            }
        return {}

    # -- rebuilding ------------------------------------------------------------------
    def clear(self, conn: sa.Connection) -> None:
        for view in self.views.values():
            conn.execute(sa.delete(view))

    def rebuild(
        self,
        conn: sa.Connection,
        page_size: int = 1000,
        each: Callable[[Sequence[Event]], None] | None = None,
    ) -> int:
        """Empty the views and refold every stream of the log (its events up to its
        head), in the caller's transaction; return the number of events folded.
        ``each`` is called with every batch folded. Writers wait meanwhile: on
        PostgreSQL the streams table is locked against writes (every append moves a
        stream head) for the rest of the transaction; SQLite writers are serialised
        by the write lock already."""
        if conn.dialect.name == "postgresql":
            table = conn.dialect.identifier_preparer.format_table(self.tables.streams)
            conn.exec_driver_sql(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        self.clear(conn)
        streams = self.tables.streams
        heads = conn.execute(
            sa.select(streams.c.stream, streams.c.version).order_by(streams.c.seq)
        ).all()
        return sum(
            self._fold_stream(conn, str(name), int(top), page_size, each) for name, top in heads
        )

    def refold(
        self,
        conn: sa.Connection,
        stream: str,
        upto: int,
        page_size: int = 1000,
        each: Callable[[Sequence[Event]], None] | None = None,
    ) -> int:
        """Delete the stream's view rows and fold its events up to version ``upto``
        again, in the caller's transaction; return the number of events folded."""
        for view in self.views.values():
            conn.execute(sa.delete(view).where(view.c.stream == stream))
        return self._fold_stream(conn, stream, upto, page_size, each)

    def _fold_stream(
        self,
        conn: sa.Connection,
        name: str,
        upto: int,
        page_size: int,
        each: Callable[[Sequence[Event]], None] | None,
    ) -> int:
        events = self.tables.events
        page = (
            sa.select(events.c.version, events.c.body)
            .where(
                events.c.stream == sa.bindparam("r_stream"),
                events.c.version > sa.bindparam("r_after"),
                events.c.version <= sa.bindparam("r_upto"),
            )
            .order_by(events.c.version)
            .limit(page_size)
        )
        folded = after = 0
        while True:
            rows = conn.execute(page, {"r_stream": name, "r_after": after, "r_upto": upto}).all()
            if not rows:
                return folded
            batch = []
            for version, body in rows:
                try:
                    batch.append(Event.model_validate_json(body))
                except ValidationError as exc:
                    raise LogCorrupted(
                        f"event {version} of {name!r} cannot be read: {exc.errors()[0]['msg']}",
                        stream=name,
                        version=int(version),
                    ) from exc
            self.fold(conn, name, batch)
            if each is not None:
                each(batch)
            folded += len(batch)
            after = int(rows[-1].version)

    def rows(
        self, conn: sa.Connection, stream: str | None = None
    ) -> dict[tuple[str, str, str], Row]:
        """Every view row (of one stream), keyed by (table, stream, id)."""
        out: dict[tuple[str, str, str], Row] = {}
        for name, view in self.views.items():
            query = sa.select(view)
            if stream is not None:
                query = query.where(view.c.stream == stream)
            for row in conn.execute(query).mappings():
                out[(name, str(row["stream"]), str(row["id"]))] = dict(row)
        return out

    def orphans(self, conn: sa.Connection) -> dict[str, list[str]]:
        """Streams that have view rows but no head row, with the tables holding them."""
        streams = self.tables.streams
        out: dict[str, list[str]] = {}
        for name, view in self.views.items():
            query = (
                sa.select(view.c.stream)
                .distinct()
                .where(~sa.exists().where(streams.c.stream == view.c.stream))
                .order_by(view.c.stream)
            )
            for stream in conn.execute(query).scalars():
                out.setdefault(str(stream), []).append(name)
        return out


# -- queries -----------------------------------------------------------------------------
States = str | Iterable[str] | None


def _in(column: sa.ColumnElement[Any], value: States) -> sa.ColumnElement[bool] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return column == value
    return column.in_(list(value))


class Views:
    """Typed queries over the view tables."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def units(
        self,
        conn: sa.Connection,
        *,
        stream: str | None = None,
        organization: str | None = None,
        state: States = None,
    ) -> list[UnitRow]:
        t = self.tables.units
        where = [
            t.c.stream == stream if stream is not None else None,
            t.c.organization_id == organization if organization is not None else None,
            _in(t.c.state, state),
        ]
        query = sa.select(t).where(*[w for w in where if w is not None])
        rows = conn.execute(query.order_by(t.c.stream, t.c.version, t.c.id)).mappings()
        return [UnitRow(**{f.name: r[f.name] for f in attrs.fields(UnitRow)}) for r in rows]

    def items(
        self,
        conn: sa.Connection,
        *,
        stream: str | None = None,
        unit: str | None = None,
        organization: str | None = None,
        state: States = None,
        responsible_person: str | None = None,
        due_before: date | None = None,
    ) -> list[ItemRow]:
        t, m = self.tables.items, self.tables.measures
        where = [
            t.c.stream == stream if stream is not None else None,
            t.c.unit_id == unit if unit is not None else None,
            t.c.organization_id == organization if organization is not None else None,
            _in(t.c.state, state),
        ]
        if responsible_person is not None or due_before is not None:
            measure = [m.c.stream == t.c.stream, m.c.item_id == t.c.id]
            if responsible_person is not None:
                measure.append(m.c.responsible_person == responsible_person)
            if due_before is not None:
                measure.append(m.c.due_date < due_before)
            where.append(sa.exists().where(*measure))
        query = sa.select(t).where(*[w for w in where if w is not None])
        rows = conn.execute(query.order_by(t.c.stream, t.c.created, t.c.id)).mappings()
        return [ItemRow(**{f.name: r[f.name] for f in attrs.fields(ItemRow)}) for r in rows]

    def measures(
        self,
        conn: sa.Connection,
        *,
        stream: str | None = None,
        item: str | None = None,
        unit: str | None = None,
        responsible_person: str | None = None,
        due_before: date | None = None,
        state: States = None,
    ) -> list[MeasureRow]:
        t = self.tables.measures
        where = [
            t.c.stream == stream if stream is not None else None,
            t.c.item_id == item if item is not None else None,
            t.c.unit_id == unit if unit is not None else None,
            t.c.responsible_person == responsible_person
            if responsible_person is not None
            else None,
            t.c.due_date < due_before if due_before is not None else None,
            _in(t.c.state, state),
        ]
        query = sa.select(t).where(*[w for w in where if w is not None])
        order = (sa.nulls_last(t.c.due_date.asc()), t.c.stream, t.c.id)
        rows = conn.execute(query.order_by(*order)).mappings()
        return [MeasureRow(**{f.name: r[f.name] for f in attrs.fields(MeasureRow)}) for r in rows]

    def deadlines(
        self,
        conn: sa.Connection,
        *,
        stream: str | None = None,
        unit: str | None = None,
        state: States = None,
        due_by: datetime | None = None,
    ) -> list[DeadlineRow]:
        t = self.tables.deadlines
        where = [
            t.c.stream == stream if stream is not None else None,
            t.c.unit_id == unit if unit is not None else None,
            _in(t.c.state, state),
            t.c.due_at <= due_by if due_by is not None else None,
        ]
        query = sa.select(t).where(*[w for w in where if w is not None])
        rows = conn.execute(query.order_by(t.c.due_at, t.c.stream, t.c.id)).mappings()
        return [DeadlineRow(**{f.name: r[f.name] for f in attrs.fields(DeadlineRow)}) for r in rows]
