"""Snapshots in the SQL database, beside the event log.

One row per stream in ``<prefix>snapshots``: the newest snapshot (version, head,
its HMAC in ``digest`` with the ``key_id`` of the key, and the JSON body as text).
A save replaces the row only with a snapshot at the same or a later version, in one
statement (an upsert ``ON CONFLICT ... DO UPDATE ... WHERE``), so two engines saving
at once keep the newer. A snapshot is a cache: the engine checks it against the
log's chain and its HMAC, and replays from the first event when it does not fit, so
a damaged or forged row costs time, never correctness.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from .._log import check_key
from .._snapshots import Snapshot, SnapshotStore
from ._base import SqlBase

__all__ = ["SqlSnapshotStore"]


class SqlSnapshotStore(SqlBase, SnapshotStore):
    """A :class:`~xuncha_flow.SnapshotStore` in a SQL database: pass it to
    ``Engine(snapshots=...)``. ``bind``, ``prefix``, ``schema`` and ``create`` are
    those of :class:`~xuncha_flow.stores.SqlEventLog` (the same tables and schema
    versions; a connection-bound store saves in the host's transaction, under a
    savepoint)."""

    def __init__(
        self,
        bind: sa.Engine | sa.Connection,
        *,
        prefix: str = "xuncha_",
        schema: str | None = None,
        create: bool = True,
        owns_engine: bool = False,
    ) -> None:
        super().__init__(bind, prefix=prefix, schema=schema, create=create, owns_engine=owns_engine)
        table = self.tables.snapshots
        p = sa.bindparam
        self._latest = sa.select(
            table.c.stream,
            table.c.version,
            table.c.head,
            table.c.body,
            table.c.digest,
            table.c.key_id,
        ).where(table.c.stream == p("n_stream"))
        self._replace = (
            sa.update(table)
            .where(table.c.stream == p("n_stream"), table.c.version <= p("n_version"))
            .values(
                version=p("n_version"),
                head=p("n_head"),
                body=p("n_body"),
                digest=p("n_digest"),
                key_id=p("n_key_id"),
            )
        )
        self._save = self._upsert()

    def _upsert(self) -> sa.Insert | None:
        table = self.tables.snapshots
        if self.dialect not in ("sqlite", "postgresql"):
            return None  # pragma: no cover - other dialects: update, then insert
        ins = sqlite.insert(table) if self.dialect == "sqlite" else postgresql.insert(table)
        return ins.on_conflict_do_update(
            index_elements=[table.c.stream],
            set_={c: ins.excluded[c] for c in ("version", "head", "body", "digest", "key_id")},
            where=table.c.version <= ins.excluded.version,
        )

    def save(self, snap: Snapshot) -> None:
        """Keep ``snap`` unless the stored snapshot of the stream is newer."""
        check_key(snap.stream, "stream")
        if snap.key_id is not None:
            check_key(snap.key_id, "snapshot key id")
        row = {
            "stream": snap.stream,
            "version": snap.version,
            "head": snap.head,
            "body": snap.body,
            "digest": snap.digest,
            "key_id": snap.key_id,
        }
        if self._save is not None:
            with self._write() as conn:
                conn.execute(self._save, row)
            return
        params = {f"n_{k}": v for k, v in row.items()}  # pragma: no cover
        try:  # pragma: no cover
            with self._write() as conn:
                if conn.execute(self._replace, params).rowcount == 0:
                    conn.execute(self.tables.snapshots.insert(), row)
        except sa_exc.IntegrityError:  # pragma: no cover - a newer one is there
            return

    def latest(self, stream: str) -> Snapshot | None:
        check_key(stream, "stream")
        with self._read() as conn:
            found = conn.execute(self._latest, {"n_stream": stream}).first()
        if found is None:
            return None
        return Snapshot(
            str(found.stream),
            int(found.version),
            str(found.head),
            str(found.body),
            str(found.digest),
            None if found.key_id is None else str(found.key_id),
        )

    def __enter__(self) -> SqlSnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlSnapshotStore({self.bind!r}, {self._where()})"
