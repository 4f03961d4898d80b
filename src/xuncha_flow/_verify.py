"""What :meth:`Engine.verify <xuncha_flow.Engine.verify>` checks beyond the log itself.

The log's own ``verify`` proves its chains (and, with signed checkpoints, that they
still reach what was signed). Three things an engine relies on are not events, and an
editor of the database could change them to get around the rules or to silence the
ladder:

* a **snapshot** is the state the next command is decided on: it must equal the
  replay of its events up to its version, and verify with the snapshot key;
* the **due index** says when a round next has something for a sweep: a time later
  than what the events make due, or none at all, silently stops its ladder;
* the events must still **replay** under the process the round was opened with.

Each finding names the round and, where there is one, the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._effects import apply_event
from ._errors import LogCorrupted, UnknownProcess
from ._log import Finding, LogReport
from ._snapshots import state_to_json
from ._timekeeping import round_next_due

if TYPE_CHECKING:
    from ._checkpoints import Checkpoints
    from ._engine import Engine
    from ._events import Event
    from ._model import RoundState

__all__ = ["verify_rounds"]


def verify_rounds(
    engine: Engine, round_id: str | None, checkpoints: Checkpoints | None
) -> LogReport:
    """The log's report for ``round_id`` (or every round), with the engine's own
    findings added for each round whose chain holds."""
    from ._engine import replay

    report = engine.log.verify(round_id, checkpoints=checkpoints)
    findings = list(report.findings)
    for chain in report.streams:
        if not chain.ok or chain.checked == 0:
            continue
        stream = chain.stream
        events = list(engine.log.read(stream))
        snap = engine.snapshots.latest(stream) if engine.snapshots is not None else None
        cut = snap.version if snap is not None and 0 < snap.version <= len(events) else 0
        try:
            state = (
                replay(stream, events[:cut], engine.processes, hash_algorithm=engine.hash_algorithm)
                if cut
                else None
            )
            if snap is not None:
                findings += _snapshot_findings(engine, snap, state, len(events))
            if state is None:
                state = replay(
                    stream, events, engine.processes, hash_algorithm=engine.hash_algorithm
                )
            else:
                _fold(engine, state, events[cut:])
        except (LogCorrupted, UnknownProcess) as exc:
            findings.append(
                Finding(stream, "replay", f"the events do not replay: {exc}", exc.version)
            )
            continue
        findings += _due_findings(engine, stream, state)
    return LogReport(report.streams, tuple(findings))


def _fold(engine: Engine, state: RoundState, events: list[Event]) -> None:
    definitions = engine._process_for(state).definitions
    for event in events:
        apply_event(state, event, definitions)


def _snapshot_findings(
    engine: Engine, snap: object, state: RoundState | None, length: int
) -> list[Finding]:
    from ._snapshots import Snapshot

    assert isinstance(snap, Snapshot)
    stream, version = snap.stream, snap.version
    out = []
    if state is None:
        out.append(
            Finding(
                stream,
                "snapshot",
                f"the snapshot at version {version} lies beyond the stream's {length} events",
                version,
            )
        )
        return out
    if snap.head != state.head or snap.body != state_to_json(state):
        out.append(
            Finding(
                stream,
                "snapshot",
                f"the snapshot at version {version} does not equal the replay of its events",
                version,
            )
        )
    key = engine.snapshot_key
    if key is None or not snap.authentic(key):
        out.append(
            Finding(
                stream,
                "snapshot",
                f"the snapshot at version {version} does not verify with the snapshot key "
                f"({key.key_id if key is not None else 'none given'}): it is not used",
                version,
            )
        )
    return out


def _due_findings(engine: Engine, stream: str, state: RoundState) -> list[Finding]:
    entry = engine.log.due_entry(stream)
    if entry is None or state.round is None:
        return []
    process = engine._process_for(state)
    expected = round_next_due(state, process.deadlines, engine.clock.now())
    if expected is None or (entry.at is not None and entry.at <= expected):
        return []
    said = "nothing due" if entry.at is None else f"due at {entry.at.isoformat()}"
    return [
        Finding(
            stream,
            "due_index",
            f"the due index says {said}, but the events make it due at "
            f"{expected.isoformat()}: sweeps would miss it (rebuild_indexes repairs it)",
            state.version,
        )
    ]
