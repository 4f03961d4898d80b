"""Code that runs in the sweep-worker processes of ``test_sweep_workers.py``.

Each worker is a separate process (``spawn``) with its own
:class:`~xuncha_flow.Engine` and store object on the shared database, as the
replicas of a service would be; workers agree on the time through a
:class:`~xuncha_flow.ManualClock` each sets to the same moments.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from deadline_helpers import DWorld
from xuncha_flow import (
    AfterContext,
    ConcurrencyConflict,
    DeadlinePolicy,
    Engine,
    Event,
    EventLog,
    Hooks,
    Process,
)
from xuncha_flow.stores import SqlEventLog, postgres_log, sqlite_log
from xuncha_flow.testing import ManualClock

from .contract import START

Backend = dict[str, str]


def process() -> Process:
    """The process of every round and every worker."""
    return Process.standard(deadlines=DeadlinePolicy.standard())


def open_store(backend: Backend, claim_limit: int | None = None) -> SqlEventLog:
    """A new store object on the test's database."""
    if backend["kind"] == "sqlite":
        store = sqlite_log(backend["path"])
    else:
        store = postgres_log(backend["url"], schema=backend["schema"])
    store.claim_limit = claim_limit
    return store


def build_rounds(log: EventLog, count: int) -> tuple[list[str], ManualClock]:
    """``count`` rounds, fed back on 11 May 2026 and in rectification, each with two
    items and a measure per item; round ``n``'s measures fall due ``2n`` days after
    20 June 2026. Returns the round ids and the clock (at the end of the building)."""
    clock = ManualClock(START)
    engine = Engine(
        clock=clock, log=log, process=process(), ids=lambda: f"setup-{uuid.uuid4().hex}"
    )
    rounds = []
    for n in range(count):
        w = DWorld(round_id=f"S-{n}", engine=engine, clock=clock, start=START)
        w.planned({"U-1": ["P-1", "P-2"]}, due=date(2026, 6, 20 + 2 * n))
        rounds.append(w.round_id)
    return rounds, clock


def sweep_worker(
    backend: Backend,
    name: str,
    times: Sequence[datetime],
    claim_limit: int,
    step: Barrier,
    results: Queue[dict[str, Any]],
) -> None:
    """At each of ``times`` (all workers together, at the ``step`` barrier), sweep
    until a sweep records nothing; report how many sweeps recorded something and
    how many met a conflict. Event ids start with the worker's name."""
    store = open_store(backend, claim_limit)
    clock = ManualClock(times[0])
    engine = Engine(
        clock=clock,
        log=store,
        process=process(),
        worker=name,
        ids=lambda: f"{name}-{uuid.uuid4().hex}",
    )
    busy = conflicts = 0
    for moment in times:
        step.wait(timeout=120)
        clock.set(moment)
        for _ in range(100):
            try:
                report = engine.sweep()
            except ConcurrencyConflict:
                conflicts += 1
                continue
            if not report.events:
                break
            busy += 1
    results.put({"worker": name, "busy": busy, "conflicts": conflicts})
    store.close()


def _worker(store: SqlEventLog, stream: str) -> str | None:
    """The worker holding the stream's sweep lease."""
    entry = store.due_entry(stream)
    return entry.worker if entry is not None else None


def hold_leases(backend: Backend, at: datetime, ready: Queue[list[str]]) -> None:
    """Sweep at ``at`` and hang in the first escalation hook, holding the leases of
    every round due (until killed). Puts the rounds it leased on ``ready``."""
    store = open_store(backend)
    hooks = Hooks()

    def hang(event: Event, ctx: AfterContext) -> None:
        ready.put([s for s in store.streams() if _worker(store, s) == "doomed"])
        time.sleep(3600)

    hooks.on_escalation(hang)
    engine = Engine(
        clock=ManualClock(at),
        log=store,
        process=process(),
        hooks=hooks,
        worker="doomed",
        ids=lambda: f"doomed-{uuid.uuid4().hex}",
    )
    engine.sweep()
