"""What the audit trail proves, engine-side: hash algorithms, signed checkpoints,
authenticated snapshots, ``Engine.verify`` and the clock.

Each ``test_regression_*`` names an attack that passed unnoticed before; the stores'
own columns, rungs and projections are covered by the contract in ``tests/stores``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import attrs
import pytest

from deadline_helpers import DWorld, only_rules
from helpers import ROUND, START, World
from xuncha_flow import (
    HASH_ALGORITHMS,
    CheckpointInvalid,
    Checkpoints,
    ClockBehind,
    DeadlinePolicy,
    Ed25519Signer,
    Engine,
    Event,
    HmacKey,
    InMemoryEventLog,
    InMemorySnapshotStore,
    InvalidArgument,
    SeparationOfDuties,
    Snapshot,
    genesis_hash,
    make_checkpoints,
    replay,
)
from xuncha_flow.testing import ManualClock

KEY = HmacKey(b"snapshot-key-of-the-test-suite-32b", key_id="test-snapshots")
OFFICE = HmacKey(b"the-city-inspection-office-secret", key_id="city-office-2026")


def _world(log: InMemoryEventLog | None = None) -> World:
    w = World(log=log if log is not None else InMemoryEventLog())
    w.to_feedback({"U-1": ["P-1", "P-2"], "U-2": ["P-3"]})
    w.plan("U-1")
    return w


def _reseal_from(log: InMemoryEventLog, stream: str, index: int, **changes: object) -> None:
    """Rewrite event ``index`` of ``stream`` and re-seal it and every later event, so
    the chain is consistent again: what a writer with access to the store can do."""
    events = list(log.read(stream))
    out: list[Event] = events[:index]
    prev = out[-1].hash if out else genesis_hash(stream, log.hash_algorithm)
    for n, event in enumerate(events[index:]):
        fields = event.model_dump(exclude={"hash"})
        if n == 0:
            fields.update(changes)
        fields["prev_hash"] = prev
        draft = Event.model_validate({**fields, "hash": "0" * 64})
        event = draft.model_copy(update={"hash": draft.computed_hash(log.hash_algorithm)})
        out.append(event)
        prev = event.hash
    log._streams[stream] = out


# -- hash algorithms -------------------------------------------------------------------
def test_the_documented_test_vectors_hold() -> None:
    """The vectors in ``_events.py``'s docstring and docs/security.md (GB/T 32905-2016
    and FIPS 180-4 give ``abc``)."""
    assert HASH_ALGORITHMS == ("sha256", "sm3")
    assert hashlib.sha256(b"abc").hexdigest() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert hashlib.new("sm3", b"abc").hexdigest() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


def test_an_sm3_log_chains_every_event_with_sm3() -> None:
    log = InMemoryEventLog(hash_algorithm="sm3")
    w = _world(log)
    events = w.events()
    assert (
        events[0].prev_hash
        == hashlib.new("sm3", f"xuncha_flow:genesis:{ROUND}".encode()).hexdigest()
    )
    for event in events:
        assert event.hash == hashlib.new("sm3", event.canonical()).hexdigest()
        assert event.hash != hashlib.sha256(event.canonical()).hexdigest()
    assert w.engine.hash_algorithm == "sm3"
    assert log.verify().ok
    assert w.engine.replay(ROUND) == w.state
    assert replay(ROUND, log.read(ROUND), w.engine.processes, hash_algorithm="sm3") == w.state
    with pytest.raises(Exception, match="does not match its hash"):
        replay(ROUND, log.read(ROUND), w.engine.processes)  # read as SHA-256


def test_a_log_refuses_events_sealed_with_another_hash() -> None:
    sha = _world().events()
    sm3 = InMemoryEventLog(hash_algorithm="sm3")
    with pytest.raises(Exception, match="sm3 hash") as refused:
        sm3.append(ROUND, 0, sha[:3])
    assert type(refused.value).__name__ == "LogCorrupted"
    assert sm3.version(ROUND) == 0


def test_an_unknown_hash_algorithm_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="md5"):
        InMemoryEventLog(hash_algorithm="md5")


# -- signed checkpoints ----------------------------------------------------------------
@pytest.mark.parametrize("signer", ["hmac-sha256", "hmac-sm3", "ed25519"])
def test_checkpoints_round_trip_as_signed_json(signer: str) -> None:
    w = _world()
    if signer == "ed25519":
        private = Ed25519Signer.generate("county-xcb")
        sign, check = private, private.verifier()
    else:
        key = HmacKey.generate("county-xcb", hash_algorithm=signer.removeprefix("hmac-"))
        sign = check = key
    cps = make_checkpoints(w.engine.log, sign, at=w.clock.now())
    assert [(c.stream, c.version, c.head) for c in cps.entries] == [
        (ROUND, w.state.version, w.state.head)
    ]
    text = cps.to_json()
    data = json.loads(text)
    assert data["format"] == "xuncha_flow.checkpoints/1"
    assert data["signature_algorithm"] == signer
    assert Checkpoints.from_json(text, check) == cps
    assert w.engine.log.verify(checkpoints=cps).ok


def test_a_checkpoint_file_that_was_edited_or_signed_by_another_key_is_refused() -> None:
    w = _world()
    text = make_checkpoints(w.engine.log, OFFICE, at=w.clock.now()).to_json()
    data = json.loads(text)
    data["checkpoints"][0]["version"] -= 1  # an editor moves the anchor back
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        Checkpoints.from_json(json.dumps(data), OFFICE)
    with pytest.raises(CheckpointInvalid, match="was not given"):
        Checkpoints.from_json(text, HmacKey.generate("another-office"))
    forger = HmacKey(b"x" * 32, key_id=OFFICE.key_id)  # same name, other secret
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        Checkpoints.from_json(text, forger)
    with pytest.raises(CheckpointInvalid, match="not a checkpoint file"):
        Checkpoints.from_json("{}", OFFICE)
    ed = Ed25519Signer.generate("ed")
    signed = make_checkpoints(w.engine.log, ed, at=w.clock.now()).to_json()
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        Checkpoints.from_json(signed, Ed25519Signer.generate("ed").verifier())


def test_regression_a_truncated_stream_is_named_by_its_checkpoint() -> None:
    """Deleting the tail of a stream and moving its head back passed ``verify()``."""
    log = InMemoryEventLog()
    w = _world(log)
    other = World(log=log, round_id="R-2", id_prefix="o")
    other.to_feedback({"U-1": ["Q-1"]})
    cps = make_checkpoints(log, OFFICE, at=w.clock.now())
    log._streams[ROUND] = log._streams[ROUND][:-3]  # the tail and the head, together
    assert log.verify().ok  # the chain alone cannot tell
    report = log.verify(checkpoints=cps)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad.stream == ROUND
    assert "no longer reaches its checkpoint (truncated)" in report.first_bad.problem
    assert [r.stream for r in report.streams if not r.ok] == [ROUND]  # R-2 is fine


def test_regression_a_rewritten_and_resealed_chain_is_named_by_its_checkpoint() -> None:
    """Rewriting one event and re-sealing every later hash passed ``verify()``."""
    w = _world()
    log = w.engine.log
    assert isinstance(log, InMemoryEventLog)
    cps = make_checkpoints(log, OFFICE, at=w.clock.now())
    index = next(k for k, e in enumerate(w.events()) if e.type == "item.record")
    _reseal_from(log, ROUND, index, payload={**w.events()[index].payload, "description": "无"})
    assert log.verify().ok
    report = log.verify(checkpoints=cps)
    assert report.first_bad is not None
    assert report.first_bad.stream == ROUND
    assert report.first_bad.bad_version == w.state.version
    assert "rewritten" in report.first_bad.problem


def test_a_stream_a_checkpoint_names_that_is_gone_is_reported() -> None:
    w = _world()
    log = w.engine.log
    assert isinstance(log, InMemoryEventLog)
    cps = make_checkpoints(log, OFFICE, at=w.clock.now())
    del log._streams[ROUND]
    report = log.verify(checkpoints=cps)
    assert report.first_bad is not None
    assert report.first_bad.stream == ROUND
    assert report.first_bad.checked == 0


def test_checkpoints_of_another_hash_are_refused_and_a_bad_chain_is_never_signed() -> None:
    w = _world()
    cps = make_checkpoints(w.engine.log, OFFICE, at=w.clock.now())
    with pytest.raises(CheckpointInvalid, match="'sha256'"):
        InMemoryEventLog(hash_algorithm="sm3").verify(checkpoints=cps)
    log = w.engine.log
    assert isinstance(log, InMemoryEventLog)
    log._streams[ROUND][4] = log._streams[ROUND][4].model_copy(update={"subject": "U-9"})
    with pytest.raises(Exception, match="no checkpoint is signed") as refused:
        make_checkpoints(log, OFFICE, at=w.clock.now())
    assert type(refused.value).__name__ == "LogCorrupted"
    with pytest.raises(InvalidArgument, match="32 random bytes"):
        HmacKey(b"short", key_id="k")
    assert "secret" not in repr(OFFICE)
    assert OFFICE.key_id in repr(OFFICE)


def test_later_checkpoints_merge_with_earlier_ones() -> None:
    w = _world()
    first = make_checkpoints(w.engine.log, OFFICE, at=w.clock.now())
    w.clock.advance(days=1)
    w.finish("P-1")
    second = make_checkpoints(w.engine.log, OFFICE, at=w.clock.now())
    both = first.merged(second)
    assert sorted(both.anchors()[ROUND]) == [first.entries[0].version, second.entries[0].version]
    assert w.engine.log.verify(checkpoints=both).ok


# -- snapshots -------------------------------------------------------------------------
def _snapshotted() -> tuple[World, InMemorySnapshotStore]:
    snaps = InMemorySnapshotStore()
    w = World()
    w.engine.snapshots, w.engine.snapshot_key, w.engine.snapshot_every = snaps, KEY, 5
    w.to_feedback({"U-1": ["P-1", "P-2"], "U-2": ["P-3"]})
    w.plan("U-1")
    w.do_measures("P-1")
    w.submit("P-1")
    return w, snaps


def test_regression_an_edited_snapshot_cannot_change_who_may_verify() -> None:
    """A snapshot's body could be edited and its unkeyed digest recomputed: changing
    a unit's ``organization_id`` let that unit's own supervision office verify and
    close its item, and ``verify()`` still passed."""
    w, snaps = _snapshotted()
    snap = snaps.latest(ROUND)
    assert snap is not None
    assert w.item_state("P-1") == "submitted"
    own_office = w.actor(w.cast.supervision.role, "org-1", "org-1-jdb")
    forged_body = snap.body.replace('"organization_id":"org-1"', '"organization_id":"org-x"')
    assert forged_body != snap.body
    forged = attrs.evolve(
        snap, body=forged_body, digest=hashlib.sha256(forged_body.encode()).hexdigest()
    )
    snaps._snaps[ROUND] = forged
    fresh = Engine(
        clock=w.clock, log=w.engine.log, process=w.engine.process, snapshots=snaps, snapshot_key=KEY
    )
    assert fresh.state(ROUND).units["U-1"].organization_id == "org-1"  # replayed, not forged
    with pytest.raises(SeparationOfDuties):
        fresh.fire(own_office, ROUND, "item", "P-1", "verify")
    report = fresh.verify()
    assert not report.ok
    assert [(f.stream, f.kind, f.version) for f in report.findings] == [
        (ROUND, "snapshot", snap.version),
        (ROUND, "snapshot", snap.version),
    ]
    messages = " ".join(f.message for f in report.findings)
    assert "does not equal the replay of its events" in messages
    assert "does not verify with the snapshot key" in messages


def test_a_snapshot_signed_with_the_key_but_wrong_is_named_by_verify() -> None:
    """A key holder's bad snapshot (a bug, or an insider) verifies with the key, so
    the engine would use it: ``verify`` replays and names stream and version."""
    w, snaps = _snapshotted()
    snap = snaps.latest(ROUND)
    assert snap is not None
    body = snap.body.replace('"organization_id":"org-1"', '"organization_id":"org-x"')
    signed = attrs.evolve(snap, body=body)
    snaps._snaps[ROUND] = attrs.evolve(signed, digest=KEY.mac(signed.signed()))
    report = w.engine.verify()
    assert [(f.kind, f.version) for f in report.findings] == [("snapshot", snap.version)]
    assert "does not equal the replay" in report.findings[0].message
    assert str(report.findings[0]).startswith(f"{ROUND}: ")


def test_a_snapshot_under_another_key_is_not_used() -> None:
    w, snaps = _snapshotted()
    snap = snaps.latest(ROUND)
    assert snap is not None
    other = HmacKey.generate(KEY.key_id)
    resigned = attrs.evolve(snap, digest=other.mac(snap.signed()))
    assert not resigned.authentic(KEY)
    assert resigned.authentic(other)
    assert Snapshot.of(w.state, KEY).authentic(KEY)


def test_snapshots_need_a_key() -> None:
    with pytest.raises(InvalidArgument, match="snapshot_key"):
        Engine(clock=ManualClock(START), snapshots=InMemorySnapshotStore())


def test_verify_of_a_sound_engine_finds_nothing() -> None:
    w, _ = _snapshotted()
    report = w.engine.verify()
    assert report.ok
    assert report.findings == ()
    assert w.engine.verify(ROUND).ok


# -- the due index ---------------------------------------------------------------------
def test_regression_a_cleared_due_time_is_found_and_rebuilt() -> None:
    """A ``NULL``ed due time silently stopped every sweep of its round."""
    w = DWorld(only_rules(DeadlinePolicy.standard(), "measure_due"))
    w.planned({"U-1": ["P-1"]})
    deadline = "measure_due:M-P-1-1"
    entry = w.engine.log.due_entry(ROUND)
    assert entry is not None
    assert entry.at is not None
    w.engine.log.reset_due(ROUND, None)
    other = Engine(clock=w.clock, log=w.engine.log, process=w.engine.process)
    w.clock.set(w.deadline(deadline).due_at)
    report = other.verify()
    assert [(f.stream, f.kind) for f in report.findings] == [(ROUND, "due_index")]
    assert "nothing due" in report.findings[0].message
    assert other.rebuild_indexes() == 1
    assert other.verify().ok
    assert len(other.sweep().overdue) == 1


# -- the clock -------------------------------------------------------------------------
def test_regression_an_event_is_never_stamped_before_the_one_it_follows() -> None:
    """Two workers with skewed clocks: the lagging one wrote events dated before the
    round's last event."""
    w = _world()
    version = w.state.version
    behind = ManualClock(w.clock.now() - timedelta(minutes=5))
    lagging = Engine(clock=behind, log=w.engine.log, process=w.engine.process)
    with pytest.raises(ClockBehind) as refused:
        lagging.fire(w.unit_actor("U-2"), ROUND, "item", "P-3", "claim")
    assert refused.value.last == w.state.at
    assert lagging.state(ROUND).version == version == w.state.version
    behind.set(w.clock.now())
    lagging.fire(w.unit_actor("U-2"), ROUND, "item", "P-3", "claim")  # once it caught up
    stamps = [e.timestamp for e in w.engine.log.read(ROUND)]
    assert stamps == sorted(stamps)


def test_a_sweep_on_a_lagging_clock_leaves_the_round_to_others() -> None:
    w = DWorld(only_rules(DeadlinePolicy.standard(), "measure_due"))
    w.planned({"U-1": ["P-1"]})
    due = w.deadline("measure_due:M-P-1-1").due_at
    w.clock.set(due + timedelta(hours=1))
    w.do("measure", "M-P-1-1", "start")  # the round's last event, an hour after due
    lagging = Engine(clock=ManualClock(due), log=w.engine.log, process=w.engine.process)
    report = lagging.sweep()
    assert report.events == ()
    assert [s for s, _ in report.failed] == [ROUND]
    assert "earlier than the round's last event" in report.failed[0][1]
    assert len(w.engine.sweep().overdue) == 1  # an engine with a sound clock does it
