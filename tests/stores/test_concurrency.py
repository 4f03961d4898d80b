"""Reliability: several processes on one database, and a writer killed mid-run.

* Four processes (``spawn``), each with its own engine over its own store object,
  record items on the same unit of the same round at once, retrying on
  :class:`~xuncha_flow.ConcurrencyConflict`. Nothing is lost, nothing is applied
  twice, conflicts happen and are retried, the final state is the replay of the
  log, and the log verifies.
* A writer is killed with SIGKILL at a random moment while it writes round after
  round: the store verifies, every command's events are all there or none, and the
  rounds load, replay and take new commands.

Both run on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xuncha_flow import Engine, Event, Process, replay
from xuncha_flow._commands import SubjectKind
from xuncha_flow.testing import ManualClock, RoundDriver

from ._workers import UNITS_PER_ROUND, Backend, open_backend, record_items, write_rounds
from .conftest import PG_URL
from .contract import START, engine_on, open_round

WORKERS = 4
ITEMS_PER_WORKER = 15
CTX = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield {"kind": "sqlite", "path": str(tmp_path / "shared.db")}
    else:
        schema = request.getfixturevalue("pg_schema")
        yield {"kind": "postgres", "url": PG_URL, "schema": schema}


def _by_command(events: list[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[event.command_id].append(event)
    return grouped


def _contiguous(events: list[Event]) -> bool:
    versions = [e.version for e in events]
    return versions == list(range(versions[0], versions[0] + len(versions)))


def test_four_processes_lose_nothing_and_apply_nothing_twice(backend: Backend) -> None:
    store = open_backend(backend)
    setup = engine_on(store, "setup")
    open_round(setup, "R-1", units=("U-1",))
    before = store.version("R-1")

    start = CTX.Barrier(WORKERS)
    results: Any = CTX.Queue()
    workers = [
        CTX.Process(
            target=record_items,
            args=(backend, w, ITEMS_PER_WORKER, "R-1", "U-1", 200, start, results),
        )
        for w in range(WORKERS)
    ]
    for p in workers:
        p.start()
    reports = [results.get(timeout=120) for _ in workers]
    for p in workers:
        p.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * WORKERS

    # every successful command's events are in the log exactly once
    log = list(store.read("R-1"))
    ids = Counter(e.id for e in log)
    assert all(n == 1 for n in ids.values())
    commands = {c: evs for r in reports for c, evs in r["commands"].items()}
    assert len(commands) == WORKERS * ITEMS_PER_WORKER
    grouped = _by_command(log)
    for command_id, event_ids in commands.items():
        assert [e.id for e in grouped[command_id]] == event_ids
        assert _contiguous(grouped[command_id])
    # counts add up: one event per command, 4 × K distinct items on the unit
    assert len(log) == before + WORKERS * ITEMS_PER_WORKER
    fresh = Engine(clock=ManualClock(START), log=open_backend(backend))
    state = fresh.state("R-1")
    expected = {f"W{w}-P{k:03d}" for w in range(WORKERS) for k in range(ITEMS_PER_WORKER)}
    assert set(state.items) == expected
    assert set(state.units["U-1"].item_ids) == expected
    # conflicts were surfaced to the engines and retried: the workers decided their
    # first commands on the same version, so all but one of those appends were stale
    conflicts = sum(r["conflicts"] for r in reports)
    assert conflicts >= WORKERS - 1
    # the state is the replay of the log, and the log verifies
    assert state == replay("R-1", store.read("R-1"), [Process.standard()])
    report = store.verify()
    assert report.ok, report.first_bad
    assert report.events == len(log)
    print(f"{backend['kind']}: {conflicts} conflicts retried for {len(commands)} commands")


def test_a_writer_killed_mid_run_leaves_no_half_command(backend: Backend) -> None:
    rng = random.Random(f"kill-{backend['kind']}")
    open_backend(backend).close()  # the tables exist before the writer starts
    ready: Any = CTX.Queue()
    writer = CTX.Process(target=write_rounds, args=(backend, ready))
    writer.start()
    assert ready.get(timeout=60) == "ready"
    delay = rng.uniform(0.4, 1.2)
    writer.join(timeout=delay)
    assert writer.is_alive(), "the writer stopped before it was killed"
    os.kill(writer.pid or 0, signal.SIGKILL)
    writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL

    store = open_backend(backend)
    report = store.verify()
    assert report.ok, report.first_bad
    rounds = store.streams()
    assert rounds, "nothing was written before the kill"
    engine = Engine(clock=ManualClock(START), log=store)
    for round_id in rounds:
        events = list(store.read(round_id))
        for command_id, batch in _by_command(events).items():
            assert _contiguous(batch), command_id
            size = 1 + UNITS_PER_ROUND if batch[0].type == "round.launch" else 1
            assert len(batch) == size, (command_id, [e.type for e in batch])
        assert engine.state(round_id) == replay(round_id, events, [engine.process])
    # the round the writer was on takes new commands
    last = rounds[-1]
    state = engine.state(last)
    assert state.round is not None
    before = store.version(last)
    drv = RoundDriver(engine, last)
    kind: SubjectKind
    kind, subject, event, payload = {
        "prepare": ("unit", "U-new", "add", {"name": "新单位", "organization_id": "org-new"}),
        "mobilize": ("round", last, "launch", {}),
    }.get(state.round.state, ("item", "P-after", "record", {"unit_id": "U-0", "description": "新"}))
    actor = drv.actor_for(kind, subject, event, payload)
    engine.fire(actor, last, kind, subject, event, payload, command_id="after-crash")
    assert store.version(last) > before
    assert store.verify().ok
    print(f"{backend['kind']}: killed after {delay:.2f}s with {len(rounds)} rounds written")
