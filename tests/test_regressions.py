"""Regression tests: one named test per engine bug the property tests found."""

from __future__ import annotations

from datetime import datetime

from xuncha_flow import (
    DEFAULT_TIMEZONE,
    DeadlinePolicy,
    Engine,
    InMemoryEventLog,
    Process,
    RoundSnapshot,
    replay,
    snapshot,
)
from xuncha_flow.testing import ManualClock, RoundDriver


def _opened_round() -> Engine:
    counter = iter(range(1, 10**6))
    engine = Engine(
        clock=ManualClock(datetime(2026, 3, 2, 9, tzinfo=DEFAULT_TIMEZONE)),
        ids=lambda: f"ev-{next(counter)}",
    )
    drv = RoundDriver(engine, "R-1")
    drv.round("open", {"name": "第一轮巡察", "level": "county"})
    drv.do("unit", "U-1", "add", {"name": "县教育局党组", "organization_id": "org-1"})
    return engine


def test_snapshot_of_an_opened_round_round_trips_through_json() -> None:
    """``snapshot`` called ``attrs.asdict(..., retain_collection_types=True)``, a keyword
    only the old ``attr.asdict`` takes: every snapshot raised TypeError."""
    state = _opened_round().state("R-1")
    snap = snapshot(state)
    assert snap.version == state.version
    assert snap.round.unit_ids == ("U-1",)
    assert isinstance(snap.round.unit_ids, tuple)
    assert RoundSnapshot.model_validate_json(snap.model_dump_json()) == snap


def test_engine_loads_rounds_of_processes_that_share_a_round_definition() -> None:
    """The engine kept its known processes by round-definition version alone, and
    ``replay`` chose one the same way. Two processes that differ only in their
    deadline policy (or in who approves or decides) share a round definition, so the
    one passed in ``processes=`` was dropped: its rounds failed to load with
    "which this engine does not know: pass that process in Engine(processes=...)"."""
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=DEFAULT_TIMEZONE))
    log = InMemoryEventLog()
    old = Process.standard(deadlines=DeadlinePolicy.standard())
    new = Process.standard(deadlines=DeadlinePolicy.county())
    assert old.definitions["round"].version_id == new.definitions["round"].version_id
    opener = Engine(clock=clock, log=log, process=old)
    RoundDriver(opener, "R-1").round("open", {"name": "第一轮巡察", "level": "county"})

    upgraded = Engine(clock=clock, log=log, process=new, processes=[old])
    assert upgraded.state("R-1") == opener.state("R-1")
    assert upgraded.process_of("R-1") is old
    assert replay("R-1", log.read("R-1"), [new, old]) == opener.state("R-1")
    assert replay("R-1", log.read("R-1"), [old, new]) == opener.state("R-1")
