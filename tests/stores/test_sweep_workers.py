"""Sweeps across workers: several processes sweeping one database.

* Three worker processes (``spawn``), each with its own engine and store object,
  sweep the same six rounds at the same moments, again and again. Every ladder rung
  is recorded exactly once per (deadline, rung, generation), and exactly the rungs
  a single engine records over a copy of the log; the work is split (more than one
  worker recorded rungs); the log verifies and every round's state is its replay.
* A worker killed with SIGKILL while it holds leases: until the leases lapse no
  other worker sweeps those rounds; then another does, once.

Both run on a SQLite file and on PostgreSQL (where claims use ``FOR UPDATE SKIP
LOCKED``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from deadline_helpers import SH
from xuncha_flow import Engine, Event, EventLog, InMemoryEventLog, replay
from xuncha_flow.testing import ManualClock

from ._sweepers import Backend, build_rounds, hold_leases, open_store, process, sweep_worker
from .conftest import PG_URL

WORKERS = 3
ROUNDS = 6
CTX = multiprocessing.get_context("spawn")
# every four days from before the first green letters to after the last rungs
TIMES = [datetime(2026, 5, 28, 9, tzinfo=SH) + timedelta(days=4 * k) for k in range(20)]

Key = tuple[str, str, str, int]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield {"kind": "sqlite", "path": str(tmp_path / "sweeps.db")}
    else:
        schema = request.getfixturevalue("pg_schema")
        yield {"kind": "postgres", "url": PG_URL, "schema": schema}


def rung_keys(log: EventLog, rounds: list[str]) -> list[Key]:
    """(round, deadline, rung, generation) of every escalation in the log."""
    return [
        (e.stream, e.subject, str(e.payload["rung"]), int(str(e.payload["generation"])))
        for r in rounds
        for e in log.read(r)
        if e.type == "deadline.escalate"
    ]


def reference(log: EventLog, rounds: list[str], times: list[datetime]) -> list[Key]:
    """The rungs one engine records sweeping a copy of ``log`` at ``times``."""
    copy = InMemoryEventLog()
    for r in rounds:
        copy.record(r, 0, list(log.read(r)), due=times[0])  # due: the first sweep looks
    clock = ManualClock(times[0])
    engine = Engine(clock=clock, log=copy, process=process())
    for moment in times:
        clock.set(moment)
        engine.sweep()
    return rung_keys(copy, rounds)


def _check_rounds(store: EventLog, rounds: list[str]) -> None:
    report = store.verify()
    assert report.ok, report.first_bad
    fresh = Engine(clock=ManualClock(TIMES[-1]), log=store, process=process())
    for r in rounds:
        assert fresh.state(r) == replay(r, store.read(r), [process()])


def test_workers_sweeping_one_database_record_each_rung_once_and_split_the_work(
    backend: Backend,
) -> None:
    store = open_store(backend)
    rounds, _ = build_rounds(store, ROUNDS)
    assert rung_keys(store, rounds) == []
    expected = reference(store, rounds, TIMES)
    assert len(expected) >= 4 * ROUNDS  # letters, overdue rungs, checks of six rounds

    step = CTX.Barrier(WORKERS)
    results: Any = CTX.Queue()
    workers = [
        CTX.Process(
            target=sweep_worker, args=(backend, f"w{n}", TIMES, 2, step, results), daemon=True
        )
        for n in range(WORKERS)
    ]
    for p in workers:
        p.start()
    reports = [results.get(timeout=300) for _ in workers]
    for p in workers:
        p.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * WORKERS

    keys = rung_keys(store, rounds)
    counts = Counter(keys)
    assert [k for k, n in counts.items() if n > 1] == []  # each rung exactly once
    assert sorted(keys) == sorted(expected)  # and every rung one engine would record
    # the rung key in the database holds the same
    db = store.bind
    assert isinstance(db, sa.Engine)
    with db.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(store.tables.rungs)).scalar()
    assert stored == len(keys)
    # the work was split: rungs were recorded by more than one worker
    by_worker = Counter(
        e.id.split("-")[0] for r in rounds for e in store.read(r) if e.type == "deadline.escalate"
    )
    assert len(by_worker) > 1, by_worker
    assert sum(r["busy"] for r in reports) >= len(by_worker)
    _check_rounds(store, rounds)
    # nothing is left: a last sweep at the last moment records nothing
    last = Engine(clock=ManualClock(TIMES[-1]), log=store, process=process())
    assert last.sweep().events == ()
    print(f"{backend['kind']}: rungs by worker {dict(by_worker)}; {reports}")


def test_a_killed_workers_rounds_are_swept_by_another_once_its_leases_lapse(
    backend: Backend,
) -> None:
    store = open_store(backend)
    rounds, _ = build_rounds(store, 3)
    at = datetime(2026, 6, 25, 9, tzinfo=SH)  # green and yellow letters are due
    expected = reference(store, rounds, [at])
    assert expected
    ready: Any = CTX.Queue()
    doomed = CTX.Process(target=hold_leases, args=(backend, at, ready), daemon=True)
    doomed.start()
    held = ready.get(timeout=120)
    assert held == sorted(rounds)  # it leased every due round, then hung in a hook
    os.kill(doomed.pid or 0, signal.SIGKILL)
    doomed.join(timeout=30)
    assert doomed.exitcode == -signal.SIGKILL

    lease = timedelta(minutes=5)
    clock = ManualClock(at)
    rescuer = Engine(
        clock=clock,
        log=open_store(backend),
        process=process(),
        worker="rescuer",
        ids=lambda: f"rescuer-{uuid.uuid4().hex}",
    )
    assert rescuer.lease == lease
    assert rescuer.sweep().events == ()  # still leased to the dead worker
    clock.set(at + lease - timedelta(seconds=1))
    assert rescuer.sweep().events == ()
    assert rung_keys(store, rounds) == []
    clock.set(at + lease)  # the leases lapse
    report = rescuer.sweep()
    assert sorted(_keys(report.events)) == sorted(expected)
    assert all(e.id.startswith("rescuer-") for e in report.events)
    assert rescuer.sweep().events == ()
    assert Counter(rung_keys(store, rounds)) == Counter(expected)
    entries = [store.due_entry(r) for r in rounds]
    assert all(e is not None and e.worker is e.leased_until is None for e in entries)  # no lease
    _check_rounds(store, rounds)


def _keys(events: tuple[Event, ...]) -> list[Key]:
    return [
        (e.stream, e.subject, str(e.payload["rung"]), int(str(e.payload["generation"])))
        for e in events
        if e.type == "deadline.escalate"
    ]


def test_a_round_that_cannot_be_loaded_is_reported_and_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    """One tampered round used to make every sweep of every worker fail before any
    round was swept, leaving the healthy rounds leased."""
    from deadline_helpers import DWorld
    from xuncha_flow.stores import sqlite_log

    path = tmp_path / "poisoned.sqlite3"
    log = sqlite_log(path)
    a = DWorld(round_id="R-A", log=log)
    b = DWorld(round_id="R-B", engine=a.engine, clock=a.clock, start=a.clock.now())
    a.planned({"U-1": ["P-1"]})
    b.planned({"U-1": ["P-1"]})
    planned = next(e.version for e in a.events() if e.type == "item.plan")
    with log.bind.begin() as conn:  # damage one event of R-A
        conn.exec_driver_sql(
            "UPDATE xuncha_events SET body = replace(body, 'P-1', 'P-9') "
            f"WHERE stream = 'R-A' AND version = {planned}"
        )
    a.clock.set(a.deadline("measure_due:M-P-1-1").due_at)
    with sqlite_log(path) as store:
        worker = Engine(clock=a.clock, log=store, process=a.engine.process, worker="w")
        report = worker.sweep()
        assert [stream for stream, _ in report.failed] == ["R-A"]
        assert "R-A" in report.failed[0][1]
        rungs = [
            (e.subject, e.payload["rung"])
            for e in report.events
            if e.type == "deadline.escalate" and e.subject.startswith("measure_due")
        ]
        assert rungs == [("measure_due:M-P-1-1", r) for r in ("green", "yellow", "red")]
        assert {e.stream for e in report.events} == {"R-B"}
        assert store.verify("R-B").ok
        assert not store.verify("R-A").ok
    log.close()
