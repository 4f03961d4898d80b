"""What the SQL event store costs over the bare database.

Every figure is a ratio against a baseline run in the same process on the same
data (the machines are shared and noisy, so absolute times mean little). The
data are the events of the example's simulated round (``examples/simulate_round.py``),
grouped by command as the engine appends them.

1. **SQLite appends** — :class:`~xuncha_flow.stores.SqlEventLog` against raw
   ``sqlite3`` doing the same inserts (the same rows, the same stream-head update,
   the same transactions, the same pragmas), with ``synchronous`` FULL (the default)
   and NORMAL; batched (``--batch`` events a transaction) and one command a
   transaction. The store's side includes turning events into rows (canonical
   JSON, hash check), SQLAlchemy, and what the store writes in the same
   transaction besides the events: the projections (units, items, measures,
   deadlines) and the fired-rung key; the raw side inserts ready-made event rows.
2. **Replay from SQLite** — reading a stream back as checked
   :class:`~xuncha_flow.Event` objects against a raw ``SELECT body`` plus
   ``json.loads``; and the whole replay to a round state against the raw scan.
3. **PostgreSQL, one and two writers** (when the server at ``--pg-url`` answers)
   — writer processes appending one command a transaction to streams of their own,
   the store against raw psycopg doing the same statements; and two writers'
   throughput against one writer's, for both.

    python bench/bench_store.py [--events N] [--batch 100] [--repeat 3] [--no-postgres]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import multiprocessing
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xuncha_flow import Event, Process, genesis_hash, replay
from xuncha_flow._events import seal
from xuncha_flow.stores import postgres_log, sqlite_log
from xuncha_flow.stores._sql import _body

ROOT = Path(__file__).resolve().parents[1]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
Batches = list[list[Event]]


# -- data ----------------------------------------------------------------------------
def simulated_events(limit: int | None) -> list[Event]:
    """The simulated round's events (the first ``limit`` of them)."""
    path = ROOT / "examples" / "simulate_round.py"
    spec = importlib.util.spec_from_file_location("simulate_round", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    engine, _ = module.simulate()
    events = list(engine.log.read(module.ROUND))
    return events[:limit] if limit else events


def restream(events: Sequence[Event], stream: str) -> list[Event]:
    """The same events re-sealed as stream ``stream`` (for writers of their own)."""
    out: list[Event] = []
    prev = genesis_hash(stream)
    for e in events:
        fields = e.model_dump(exclude={"hash"})
        fields.update(stream=stream, id=f"{stream}:{e.id}", prev_hash=prev)
        out.append(seal(fields))
        prev = out[-1].hash
    return out


def by_command(events: Sequence[Event]) -> Batches:
    return [list(g) for _, g in itertools.groupby(events, key=lambda e: e.command_id)]


def by_size(events: Sequence[Event], size: int) -> Batches:
    return [list(events[i : i + size]) for i in range(0, len(events), size)]


def _row(e: Event) -> tuple[Any, ...]:
    stamp = e.timestamp.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return (e.stream, e.version, e.id, e.type, e.subject, stamp, e.command_id, e.prev_hash, e.hash)


# -- timing --------------------------------------------------------------------------
def best(run: Callable[[], float], repeat: int) -> float:
    """The best of ``repeat`` runs; ``run`` returns its own measured seconds."""
    return min(run() for _ in range(repeat))


# -- SQLite --------------------------------------------------------------------------
_INSERT = (
    "INSERT INTO xuncha_events (stream, version, id, type, subject, timestamp, command_id, "
    "prev_hash, hash, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _fresh_file(tmp: Path) -> Path:
    path = tmp / f"{uuid.uuid4().hex}.db"
    sqlite_log(path).close()  # the store's own schema, for both sides
    return path


def sqlite_store_appends(tmp: Path, batches: Batches, synchronous: str) -> float:
    path = _fresh_file(tmp)
    store = sqlite_log(path, synchronous=synchronous)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for batch in batches:
        store.append(batch[0].stream, batch[0].version - 1, batch)
    elapsed = time.perf_counter() - t0
    assert store.verify().ok
    store.close()
    return elapsed


def sqlite_raw_appends(tmp: Path, batches: Batches, synchronous: str) -> float:
    path = _fresh_file(tmp)
    rows = [[(*_row(e), _body(e)) for e in batch] for batch in batches]
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", f"synchronous = {synchronous}", "foreign_keys = ON"):
        con.execute(f"PRAGMA {pragma}")
    t0 = time.perf_counter()
    for batch, batch_rows in zip(batches, rows, strict=True):
        first, last = batch[0], batch[-1]
        con.execute("BEGIN IMMEDIATE")
        if first.version == 1:
            con.execute(
                "INSERT INTO xuncha_streams (stream, version, head, created) VALUES (?, ?, ?, ?)",
                (first.stream, last.version, last.hash, batch_rows[0][5]),
            )
        else:
            con.execute(
                "UPDATE xuncha_streams SET version = ?, head = ? "
                "WHERE stream = ? AND version = ? AND head = ?",
                (last.version, last.hash, first.stream, first.version - 1, first.prev_hash),
            )
        con.executemany(_INSERT, batch_rows)
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def sqlite_replay(tmp: Path, events: Sequence[Event], repeat: int) -> dict[str, float]:
    path = _fresh_file(tmp)
    store = sqlite_log(path)
    stream = events[0].stream
    store.append(stream, 0, list(events))
    process = Process.standard()
    con = sqlite3.connect(path)

    def raw() -> float:
        t0 = time.perf_counter()
        rows = con.execute(
            "SELECT body FROM xuncha_events WHERE stream = ? ORDER BY version", (stream,)
        )
        loaded = [json.loads(body) for (body,) in rows]
        elapsed = time.perf_counter() - t0
        assert len(loaded) == len(events)
        return elapsed

    def read() -> float:
        t0 = time.perf_counter()
        loaded = list(store.read(stream))
        elapsed = time.perf_counter() - t0
        assert len(loaded) == len(events)
        return elapsed

    def to_state() -> float:
        t0 = time.perf_counter()
        state = replay(stream, store.read(stream), [process])
        elapsed = time.perf_counter() - t0
        assert state.version == len(events)
        return elapsed

    times = {"raw": best(raw, repeat), "read": best(read, repeat)}
    times["state"] = best(to_state, repeat) if events[0].type == "round.open" else times["read"]
    con.close()
    store.close()
    return times


# -- PostgreSQL ----------------------------------------------------------------------
def _pg_writer(
    url: str, schema: str, stream: str, events: list[Event], raw: bool, start: Any, done: Any
) -> None:
    """One writer process: append ``events``, re-sealed as ``stream``, one command a
    transaction, through the store or through raw psycopg."""
    import psycopg
    import sqlalchemy as sa

    batches = by_command(restream(events, stream))
    if raw:
        rows = [[(*_row(e), _body(e)) for e in b] for b in batches]
        conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(False)
        con = psycopg.connect(conninfo)
        con.execute(f'SET search_path TO "{schema}"')
        con.commit()
        start.wait()
        for batch, batch_rows in zip(batches, rows, strict=True):
            first, last = batch[0], batch[-1]
            with con.transaction(), con.cursor() as cur:
                if first.version == 1:
                    cur.execute(
                        "INSERT INTO xuncha_streams (stream, version, head, created) "
                        "VALUES (%s, %s, %s, %s)",
                        (first.stream, last.version, last.hash, first.timestamp),
                    )
                else:
                    cur.execute(
                        "UPDATE xuncha_streams SET version = %s, head = %s "
                        "WHERE stream = %s AND version = %s AND head = %s",
                        (last.version, last.hash, first.stream, first.version - 1, first.prev_hash),
                    )
                cur.executemany(_INSERT.replace("?", "%s"), batch_rows)
        con.close()
    else:
        store = postgres_log(url, schema=schema, create=False)
        store.version(stream)  # a pooled connection, ready
        start.wait()
        for batch in batches:
            store.append(stream, batch[0].version - 1, batch)
        store.close()
    done.put(stream)


def postgres_writers(url: str, events: list[Event], repeat: int) -> dict[str, float] | None:
    """Seconds for one and for two writer processes, each appending all ``events``."""
    try:
        import sqlalchemy as sa

        probe = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with probe.connect():
            pass
    except Exception as exc:  # no server: the PostgreSQL figures are left out
        print(f"  PostgreSQL left out: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return None
    ctx = multiprocessing.get_context("spawn")

    def run(writers: int, raw: bool) -> float:
        schema = f"xuncha_bench_{uuid.uuid4().hex[:10]}"
        postgres_log(url, schema=schema).close()
        start, done = ctx.Barrier(writers + 1), ctx.Queue()
        procs = [
            ctx.Process(target=_pg_writer, args=(url, schema, f"W{w}", events, raw, start, done))
            for w in range(writers)
        ]
        try:
            for p in procs:
                p.start()
            start.wait(timeout=120)
            t0 = time.perf_counter()
            for _ in procs:
                done.get(timeout=600)
            elapsed = time.perf_counter() - t0
            for p in procs:
                p.join()
            with postgres_log(url, schema=schema, create=False) as store:
                # raw writers insert events only: no rung rows, no projections
                report = store.verify(projections=not raw)
                assert all(r.ok for r in report.streams)
                assert raw or report.ok
                assert [store.version(f"W{w}") for w in range(writers)] == [len(events)] * writers
            return elapsed
        finally:
            with probe.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))

    try:
        return {
            "store1": best(lambda: run(1, raw=False), repeat),
            "store2": best(lambda: run(2, raw=False), repeat),
            "raw1": best(lambda: run(1, raw=True), repeat),
            "raw2": best(lambda: run(2, raw=True), repeat),
        }
    finally:
        probe.dispose()


# -- report --------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=0, help="use the first N events (0: all)")
    parser.add_argument("--batch", type=int, default=100, help="events a batched transaction")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)

    events = simulated_events(args.events or None)
    commands = by_command(events)
    ratios: dict[str, float] = {}
    print(
        f"event store benchmark: {len(events)} events in {len(commands)} commands "
        f"(simulated round), SQLite {sqlite3.sqlite_version}; best of {args.repeat}; "
        "ratio = store time / raw time"
    )

    def line(name: str, ours: float, raw: float, unit: int) -> None:
        ratios[name] = ours / raw
        print(
            f"  {name:<38} store {ours * 1e6 / unit:8.1f} µs/event   "
            f"raw {raw * 1e6 / unit:8.1f} µs/event   ratio {ours / raw:5.2f}"
        )

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for sync in ("FULL", "NORMAL"):
            for label, batches in (
                (f"batched ({args.batch} events/tx)", by_size(events, args.batch)),
                ("one command per transaction", commands),
            ):
                ours = best(lambda b=batches, s=sync: sqlite_store_appends(tmp, b, s), args.repeat)
                raw = best(lambda b=batches, s=sync: sqlite_raw_appends(tmp, b, s), args.repeat)
                line(f"sqlite {sync:<6} {label}", ours, raw, len(events))
        times = sqlite_replay(tmp, events, args.repeat)
        line("sqlite replay: read events", times["read"], times["raw"], len(events))
        line("sqlite replay: to round state", times["state"], times["raw"], len(events))

    if not args.no_postgres:
        pg = postgres_writers(args.pg_url, events, args.repeat)
        if pg is not None:
            line("postgres 1 writer, 1 command/tx", pg["store1"], pg["raw1"], len(events))
            line("postgres 2 writers, 1 command/tx", pg["store2"], pg["raw2"], 2 * len(events))
            for side in ("store", "raw"):
                gain = 2 * pg[f"{side}1"] / pg[f"{side}2"]
                ratios[f"postgres {side}: 2 writers / 1 writer throughput"] = gain
                label = f"pg {side}: 2 vs 1 writer throughput"
                print(f"  {label:<38}{'ratio ':>57}{gain:5.2f}")
    return ratios


if __name__ == "__main__":
    main(sys.argv[1:])
