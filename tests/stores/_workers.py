"""Code that runs in the worker processes of ``test_concurrency.py``.

Each worker is a separate process (started with ``spawn``) with its own
:class:`~xuncha_flow.Engine` over its own store object on the shared database,
as replicas of a service would be.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from xuncha_flow import ConcurrencyConflict, Engine, Event, EventLog, LogReport
from xuncha_flow.stores import SqlEventLog, postgres_log, sqlite_log
from xuncha_flow.testing import ManualClock, RoundDriver

from .contract import START, record_item

Backend = dict[str, str]


def open_backend(backend: Backend) -> SqlEventLog:
    """A new store object on the test's database."""
    if backend["kind"] == "sqlite":
        return sqlite_log(backend["path"])
    return postgres_log(backend["url"], schema=backend["schema"])


class CountingLog(EventLog):
    """Passes everything to ``inner`` and counts the conflicts ``append`` raises.
    With a ``gate``, the first append waits there first."""

    def __init__(self, inner: EventLog, gate: Barrier | None = None) -> None:
        self.inner = inner
        self.gate = gate
        self.conflicts = 0

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.wait(timeout=60)
        try:
            self.inner.append(stream, expected_version, events)
        except ConcurrencyConflict:
            self.conflicts += 1
            raise

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        return self.inner.read(stream, after)

    def streams(self) -> list[str]:
        return self.inner.streams()

    def version(self, stream: str) -> int:
        return self.inner.version(stream)

    def verify(self, stream: str | None = None, *, checkpoints: Any = None) -> LogReport:
        return self.inner.verify(stream, checkpoints=checkpoints)


def record_items(
    backend: Backend,
    worker: int,
    count: int,
    round_id: str,
    unit: str,
    retries: int,
    start: Barrier,
    results: Queue[dict[str, Any]],
) -> None:
    """Record ``count`` distinct items on ``unit``, all workers at once; report the
    events of every command and the conflicts met on the way. ``start`` is a barrier
    of all workers just before their first append."""
    store = open_backend(backend)
    # Every worker decides its first command on the same version of the round and
    # waits at ``start`` before appending it: all but one of those appends are stale,
    # whatever the engine caches.
    log = CountingLog(store, gate=start)
    engine = Engine(clock=ManualClock(START), log=log, ids=lambda: f"w{worker}-{uuid.uuid4().hex}")
    commands: dict[str, list[str]] = {}
    for k in range(count):
        command_id = f"w{worker}-cmd-{k}"
        events = record_item(
            engine, round_id, unit, f"W{worker}-P{k:03d}", command_id, retries=retries
        )
        commands[command_id] = [e.id for e in events]
    results.put({"worker": worker, "commands": commands, "conflicts": log.conflicts})
    store.close()


UNITS_PER_ROUND = 8


def write_rounds(backend: Backend, ready: Queue[str]) -> None:
    """Open round after round, each with several units, until killed. A launch is
    one command of ``1 + UNITS_PER_ROUND`` events (the round and every unit enter
    the site), the batch a crash must never split."""
    store = open_backend(backend)
    engine = Engine(clock=ManualClock(START), log=store)
    ready.put("ready")
    for n in range(100_000):
        round_id = f"K-{n:05d}"
        drv = RoundDriver(engine, round_id)
        drv.round("open", {"name": "轮次", "level": "county"})
        for u in range(UNITS_PER_ROUND):
            drv.do(
                "unit",
                f"U-{u}",
                "add",
                {"name": f"单位 {u}", "organization_id": f"org-{u}", "team_id": "team-1"},
            )
        drv.round("approve")
        drv.round("launch")
        record_item(engine, round_id, "U-0", "P-1", f"{round_id}:item")
