"""Snapshots: loading = snapshot + tail, and a snapshot is only ever a cache."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from helpers import ROUND, World
from xuncha_flow import Engine, HmacKey, InMemoryEventLog, replay
from xuncha_flow._snapshots import (
    InMemorySnapshotStore,
    Snapshot,
    SnapshotStore,
    state_from_json,
    state_to_json,
)


class CountingLog(InMemoryEventLog):
    """Counts the events read, to see whether a load used a snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.read_events = 0

    def read(self, stream: str, after: int = 0) -> Any:
        events = list(super().read(stream, after))
        self.read_events += len(events)
        return iter(events)


KEY = HmacKey(b"snapshot-key-of-the-test-suite-32b", key_id="test-snapshots")


def _round(log: InMemoryEventLog, snapshots: SnapshotStore | None, every: int = 10) -> World:
    w = World(log=log)
    w.engine.snapshots, w.engine.snapshot_key = snapshots, KEY
    w.engine.snapshot_every = every
    w.to_feedback({"U-1": ["P-1", "P-2", "P-3"], "U-2": ["P-4"]})
    w.plan("U-1")
    w.finish("P-1")
    return w


def test_state_round_trips_through_json_exactly() -> None:
    w = _round(InMemoryEventLog(), None)
    state = w.state
    again = state_from_json(state_to_json(state))
    assert again == state
    assert again.commands == state.commands
    assert state_to_json(again) == state_to_json(state)


def test_a_long_stream_loads_from_its_snapshot_and_tail() -> None:
    log, snaps = CountingLog(), InMemorySnapshotStore()
    w = _round(log, snaps, every=10)
    live = w.state
    snap = snaps.latest(ROUND)
    assert snap is not None
    assert snap.authentic(KEY)
    assert 0 < snap.version <= live.version
    assert snap.version > live.version - 10  # taken at most ``every`` events ago
    fresh = Engine(
        clock=w.clock, log=log, process=w.engine.process, snapshots=snaps, snapshot_key=KEY
    )
    log.read_events = 0
    loaded = fresh.state(ROUND)
    assert loaded == live
    # one event at the snapshot's version (its hash is checked) plus the tail
    assert log.read_events == 1 + live.version - snap.version
    assert loaded == replay(ROUND, log.read(ROUND), [w.engine.process])
    # and the loaded round goes on working
    fresh.fire(w.cast.supervision, ROUND, "item", "P-2", "withdraw", reason="不属实")
    assert fresh.state(ROUND) == fresh.replay(ROUND)


@pytest.mark.parametrize("damage", ["body", "head", "version", "stream"])
def test_a_damaged_or_foreign_snapshot_is_ignored(damage: str) -> None:
    log, snaps = CountingLog(), InMemorySnapshotStore()
    w = _round(log, snaps, every=10)
    live = w.state
    snap = snaps.latest(ROUND)
    assert snap is not None
    if damage == "body":  # the HMAC no longer matches
        bad = attrs.evolve(snap, body=snap.body.replace("P-1", "P-9"))
    elif damage == "head":  # not a point of this log's chain
        bad = attrs.evolve(snap, head="0" * 64)
    elif damage == "version":  # claims to be ahead of the log
        bad = attrs.evolve(snap, version=live.version + 5)
    else:  # another round's state under this round's name, with a valid HMAC
        other = attrs.evolve(snap, body=snap.body.replace(f'"{ROUND}"', '"R-X"'))
        bad = attrs.evolve(other, digest=KEY.mac(other.signed()))
    broken = InMemorySnapshotStore()
    broken.save(bad)
    fresh = Engine(
        clock=w.clock, log=log, process=w.engine.process, snapshots=broken, snapshot_key=KEY
    )
    log.read_events = 0
    assert fresh.state(ROUND) == live
    assert log.read_events >= live.version  # replayed from the first event


class FailingStore(SnapshotStore):
    def save(self, snap: Snapshot) -> None:
        raise OSError("disk full")

    def latest(self, stream: str) -> Snapshot | None:
        return None


def test_a_snapshot_that_cannot_be_saved_does_not_fail_the_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="xuncha_flow"):
        w = _round(InMemoryEventLog(), FailingStore(), every=1)
    assert w.state == w.engine.replay(ROUND)
    assert "could not save a snapshot" in caplog.text
