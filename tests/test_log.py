"""The event log: atomic, optimistic appends; verification that names the first bad
event; replay that refuses an inconsistent log (issue 2, item 7)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from helpers import PlainLog
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    ConcurrencyConflict,
    Engine,
    Event,
    EventLog,
    InMemoryEventLog,
    LogCorrupted,
    LogReport,
    ManualClock,
    Process,
    RolePolicy,
    UnknownProcess,
    XunchaError,
    replay,
)
from xuncha_flow._events import seal
from xuncha_flow.testing import RoundDriver

Chain = list[Event]


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=DEFAULT_TIMEZONE)


def make_engine(round_id: str, log: EventLog | None = None) -> Engine:
    """An engine holding a real round: opened, one unit, on site, three problems, one
    of them confirmed and one withdrawn."""
    clock = ManualClock(at(3, 2))
    counter = itertools.count(1)
    engine = Engine(clock=clock, log=log, ids=lambda: f"{round_id}-ev-{next(counter):03d}")
    drv = RoundDriver(engine, round_id)
    drv.round("open", {"name": "测试轮次", "level": "county"})
    drv.do(
        "unit",
        "U-1",
        "add",
        {"name": "青山镇党委", "organization_id": "org-town", "team_id": "team-1"},
    )
    drv.round("approve")
    clock.set(at(3, 9))
    drv.round("launch")
    for n in (1, 2, 3):
        clock.advance(hours=1)
        drv.do("item", f"P-{n}", "record", {"unit_id": "U-1", "description": f"问题 {n}"})
    drv.do("item", "P-1", "confirm")
    drv.do("item", "P-2", "withdraw", reason="不属实")
    return engine


@pytest.fixture(scope="module")
def events() -> Chain:
    return list(make_engine("R-1").log.read("R-1"))


@pytest.fixture(scope="module")
def other_stream() -> Chain:
    return list(make_engine("R-2").log.read("R-2"))


def fields(event: Event) -> dict[str, Any]:
    return event.model_dump(exclude={"hash"})


def filled(*streams: Chain) -> InMemoryEventLog:
    log = InMemoryEventLog()
    for chain in streams:
        log.append(chain[0].stream, 0, chain)
    return log


def reseal(chain: Chain, index: int, **update: Any) -> Chain:
    """``chain`` with event ``index`` changed and every hash from there recomputed, as
    a forger who knows the hash scheme would do."""
    out = list(chain[:index])
    for k, e in enumerate(chain[index:], start=index):
        data = {**fields(e), **(update if k == index else {})}
        if out:
            data["prev_hash"] = out[-1].hash
        out.append(seal(data))
    return out


# -- append ---------------------------------------------------------------------------------
def test_append_read_version_streams(events: Chain, other_stream: Chain) -> None:
    log = InMemoryEventLog()
    assert log.version("R-1") == 0
    assert list(log.read("R-1")) == []
    assert log.streams() == []
    log.append("R-2", 0, other_stream[:3])
    log.append("R-1", 0, events[:4])
    log.append("R-1", 4, events[4:])
    assert log.streams() == ["R-2", "R-1"]  # creation order
    assert log.version("R-1") == len(events)
    assert log.version("R-2") == 3
    assert list(log.read("R-1")) == events
    assert list(log.read("R-1", after=6)) == events[6:]
    assert list(log.read("R-1", after=len(events))) == []
    assert len(log) == len(events) + 3


def test_stale_expected_version_is_a_conflict_and_writes_nothing(events: Chain) -> None:
    log = filled(events[:5])
    with pytest.raises(ConcurrencyConflict) as info:
        log.append("R-1", 3, events[3:])
    assert (info.value.stream, info.value.expected, info.value.actual) == ("R-1", 3, 5)
    assert isinstance(info.value, XunchaError)
    with pytest.raises(ConcurrencyConflict):
        log.append("R-1", 6, events[6:])  # ahead of the stream
    with pytest.raises(ConcurrencyConflict):
        log.append("R-1", 0, events)  # a second writer that started from nothing
    assert log.version("R-1") == 5
    assert list(log.read("R-1")) == events[:5]
    assert log.verify().ok


@pytest.mark.parametrize(
    ("make_batch", "message"),
    [
        (lambda ev, other: [ev[6], ev[7]], "is version 7 of 'R-1', expected 6 of 'R-1'"),
        (lambda ev, other: [ev[5], ev[7]], "is version 8 of 'R-1', expected 7 of 'R-1'"),
        (lambda ev, other: [other[5]], "is version 6 of 'R-2', expected 6 of 'R-1'"),
        (
            lambda ev, other: [seal({**fields(ev[5]), "prev_hash": ev[3].hash})],
            "does not link to the stream head",
        ),
        (
            lambda ev, other: [ev[5], seal({**fields(ev[6]), "prev_hash": ev[4].hash})],
            "does not link to the stream head",
        ),
    ],
    ids=["gap", "gap-inside-batch", "other-stream", "bad-link", "bad-link-inside-batch"],
)
def test_a_batch_that_does_not_continue_the_chain_is_refused(
    events: Chain,
    other_stream: Chain,
    make_batch: Callable[[Chain, Chain], Chain],
    message: str,
) -> None:
    log = filled(events[:5])
    batch = make_batch(events, other_stream)
    with pytest.raises(LogCorrupted, match=message) as info:
        log.append("R-1", 5, batch)
    assert info.value.stream == "R-1"
    assert info.value.version is not None
    assert log.version("R-1") == 5
    assert list(log.read("R-1")) == events[:5]
    assert len(log) == 5


def test_the_first_event_of_a_stream_must_link_to_its_genesis(other_stream: Chain) -> None:
    log = InMemoryEventLog()
    moved = seal({**fields(other_stream[0]), "stream": "R-1"})
    with pytest.raises(LogCorrupted, match="does not link"):
        log.append("R-1", 0, [moved])
    assert log.streams() == []
    assert len(log) == 0


def test_concurrent_writers_one_wins(events: Chain) -> None:
    log = filled(events[:5])
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def writer() -> None:
        barrier.wait()
        try:
            log.append("R-1", 5, events[5:])
            outcomes.append("ok")
        except ConcurrencyConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    assert list(log.read("R-1")) == events
    assert log.verify().ok


# -- verify ---------------------------------------------------------------------------------
class TamperedLog(InMemoryEventLog):
    """A log whose storage was changed behind its back: ``read`` returns a doctored
    stream, while ``version`` still reports the head the store recorded."""

    def __init__(self, tamper: Callable[[Chain], Chain], stream: str = "R-1") -> None:
        super().__init__()
        self.tamper = tamper
        self.target = stream

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        chain = list(super().read(stream))
        if stream == self.target:
            chain = self.tamper(chain)
        return iter([e for e in chain if e.version > after])


def tampered(tamper: Callable[[Chain], Chain], *streams: Chain) -> TamperedLog:
    log = TamperedLog(tamper)
    for chain in streams:
        log.append(chain[0].stream, 0, chain)
    return log


def swap(chain: Chain, i: int, j: int) -> Chain:
    out = list(chain)
    out[i], out[j] = out[j], out[i]
    return out


def replace(chain: Chain, i: int, event: Event) -> Chain:
    return [*chain[:i], event, *chain[i + 1 :]]


CASES: dict[
    str, tuple[Callable[[Chain, Chain], Chain], int, Callable[[Chain, Chain], str | None], str]
] = {
    "modified payload": (
        lambda c, o: replace(c, 5, c[5].model_copy(update={"payload": {"unit_id": "U-9"}})),
        6,
        lambda c, o: c[5].id,
        "modified",
    ),
    "modified actor": (
        lambda c, o: replace(c, 2, c[2].model_copy(update={"actor": o[5].actor})),
        3,
        lambda c, o: c[2].id,
        "modified",
    ),
    "deleted middle event": (
        lambda c, o: c[:4] + c[5:],
        5,
        lambda c, o: c[5].id,
        "has version 6 where 5 was expected",
    ),
    "inserted event": (
        lambda c, o: [*c[:6], seal({**fields(c[6]), "id": "copy"}), *c[6:]],
        8,
        lambda c, o: c[6].id,
        "has version 7 where 8 was expected",
    ),
    "swapped events": (
        lambda c, o: swap(c, 6, 7),
        7,
        lambda c, o: c[7].id,
        "has version 8 where 7 was expected",
    ),
    "event from another stream": (
        lambda c, o: replace(c, 6, o[6]),
        7,
        lambda c, o: o[6].id,
        "belongs to stream 'R-2'",
    ),
    "truncated tail": (
        lambda c, o: c[:-2],
        -1,
        lambda c, o: None,
        "stream head is at {n} but only {m} events could be read",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_names_the_first_bad_event(case: str, events: Chain, other_stream: Chain) -> None:
    tamper, version, event_id, problem = CASES[case]
    log = tampered(lambda c: tamper(c, other_stream), events, other_stream)
    report = log.verify()
    assert isinstance(report, LogReport)
    n = len(events)
    if version == -1:
        version = n - 1
        problem = problem.format(n=n, m=n - 2)
    assert not report.ok
    assert not report
    bad = report.first_bad
    assert bad is not None
    assert bad.stream == "R-1"
    assert bad.bad_version == version
    assert bad.bad_event_id == event_id(events, other_stream)
    assert problem in bad.problem
    # the untouched stream still verifies, on its own and in the overall report
    assert [r.stream for r in report.streams] == ["R-1", "R-2"]
    assert report.streams[1].ok
    assert log.verify("R-2").ok
    single = log.verify("R-1")
    assert single.first_bad == bad


def test_a_consistently_rewritten_tail_changes_the_head(events: Chain) -> None:
    # rewriting an event and every hash after it is consistent in itself; the head
    # the report gives is what a host compares with the head it kept (a receipt)
    log = tampered(lambda c: reseal(c, 6, reason="改写"), events)
    report = log.verify()
    assert report.ok
    assert report.streams[0].checked == len(events)
    assert report.streams[0].head != events[-1].hash
    assert filled(events).verify().streams[0].head == events[-1].hash


def test_verify_reports_every_stream(events: Chain, other_stream: Chain) -> None:
    log = filled(events, other_stream)
    report = log.verify()
    assert report.ok
    assert bool(report)
    assert report.first_bad is None
    assert report.events == len(events) + len(other_stream)
    assert [r.head for r in report.streams] == [events[-1].hash, other_stream[-1].hash]
    assert log.verify("R-2").events == len(other_stream)


def test_engine_log_verifies(events: Chain) -> None:
    engine = make_engine("R-1")
    assert engine.log.verify().ok
    assert list(engine.log.read("R-1")) == events  # deterministic ids and clock


# -- replay ---------------------------------------------------------------------------------
def test_replay_reproduces_the_live_state() -> None:
    engine = make_engine("R-1")
    live = engine.state("R-1")
    again = replay("R-1", engine.log.read("R-1"), [engine.process])
    assert again == live
    assert again.version == engine.log.version("R-1")
    assert again.head == list(engine.log.read("R-1"))[-1].hash


def test_replay_refuses_a_transition_from_the_wrong_state() -> None:
    engine = make_engine("R-1")
    head = list(engine.log.read("R-1"))[-1]
    record_p3 = next(e for e in engine.log.read("R-1") if e.subject == "P-3")
    # P-3 is "found"; a chain-valid event claims it was confirmed and closes it
    forged = seal(
        {
            **fields(record_p3),
            "id": "forged",
            "version": head.version + 1,
            "type": "item.close",
            "from_state": "confirmed",
            "to_state": "closed",
            "payload": {},
            "command_id": "cmd-forged",
            "prev_hash": head.hash,
        }
    )
    engine.log.append("R-1", head.version, [forged])  # the chain alone cannot tell
    assert engine.log.verify().ok
    with pytest.raises(LogCorrupted) as info:
        replay("R-1", engine.log.read("R-1"), [engine.process])
    assert info.value.version == head.version + 1
    assert info.value.stream == "R-1"
    assert "from 'confirmed', but it is 'found'" in str(info.value)
    engine.forget("R-1")
    with pytest.raises(LogCorrupted):
        engine.state("R-1")


def test_replay_refuses_an_unknown_definition_version(events: Chain) -> None:
    chain = reseal(events, 0, definition="round@1#000000000000")
    with pytest.raises(LogCorrupted, match="round@1#000000000000") as info:
        replay("R-1", chain, [Process.standard()])
    assert info.value.version == 1
    assert info.value.stream == "R-1"


def test_replay_refuses_an_event_made_under_another_definition(events: Chain) -> None:
    index = next(k for k, e in enumerate(events) if e.type == "item.record")
    chain = reseal(events, index, definition="problem-item@7#abcdefabcdef")
    with pytest.raises(LogCorrupted, match="problem-item@7#abcdefabcdef") as info:
        replay("R-1", chain, [Process.standard()])
    assert info.value.version == index + 1


def test_replay_needs_the_process_the_round_was_opened_with(events: Chain) -> None:
    with pytest.raises(UnknownProcess, match="unknown definition") as info:
        replay("R-1", events, [])
    assert info.value.stream == "R-1"
    # an engine whose current process is another one loads the round only when it
    # is given the round's process as an older version
    log = filled(events)
    current = Process.standard(RolePolicy.joint_supervision())
    engine = Engine(clock=ManualClock(at(12, 1)), log=log, process=current)
    with pytest.raises(UnknownProcess) as refused:
        engine.state("R-1")
    assert refused.value.stream == "R-1"
    assert refused.value.pinned == Process.standard().version_ids
    engine = Engine(
        clock=ManualClock(at(12, 1)), log=log, process=current, processes=[Process.standard()]
    )
    assert engine.state("R-1").version == len(events)


@pytest.mark.parametrize(
    ("tamper", "version", "message"),
    [
        (lambda c: replace(c, 4, c[4].model_copy(update={"reason": "x"})), 5, "match its hash"),
        # ``version`` is the version the offending event carries
        (lambda c: c[:3] + c[4:], 5, "is version 5 of 'R-1'; expected version 4"),
        (lambda c: swap(c, 5, 6), 7, "is version 7 of 'R-1'; expected version 6"),
        (
            lambda c: replace(c, 5, seal({**fields(c[5]), "prev_hash": c[3].hash})),
            6,
            "does not link",
        ),
    ],
    ids=["modified", "deleted", "swapped", "bad-link"],
)
def test_replay_refuses_a_broken_chain(
    events: Chain, tamper: Callable[[Chain], Chain], version: int, message: str
) -> None:
    with pytest.raises(LogCorrupted, match=message) as info:
        replay("R-1", tamper(events), [Process.standard()])
    assert info.value.version == version


# -- the due index shared by sweeping workers ----------------------------------------------
def test_the_in_memory_due_index_leases_streams_to_one_worker_at_a_time() -> None:
    t0 = at(5, 1, 9)
    log = InMemoryEventLog()
    for stream, hours in (("R-a", 2), ("R-b", 1), ("R-c", 30)):
        chain = list(make_engine(stream).log.read(stream))
        log.record(stream, 0, chain, due=t0 + timedelta(hours=hours))
    lease = timedelta(minutes=5)
    now = t0 + timedelta(hours=3)
    assert log.claim_due(now, worker="w1", lease=lease) == ["R-b", "R-a"]  # earliest first
    assert log.claim_due(now, worker="w2", lease=lease) == []  # leased to w1
    assert log.claim_due(now, worker="w1", lease=lease, limit=1) == ["R-b"]  # w1 may again
    log.release("R-a", due=None, worker="w1")  # nothing pending there any more
    later = now + timedelta(minutes=6)  # w1's lease on R-b lapsed: a crashed worker
    assert log.claim_due(later, worker="w2", lease=lease) == ["R-b"]
    log.release("R-b", due=later + timedelta(days=1), worker="w1")  # not w1's any more
    assert log.claim_due(later, worker="w3", lease=lease) == []  # still w2's
    assert log.claim_due(t0 + timedelta(days=2), worker="w3", lease=lease) == ["R-b", "R-c"]


def test_an_event_log_without_a_due_index_leaves_sweeps_to_the_engine() -> None:
    log = PlainLog()
    chain = list(make_engine("R-p").log.read("R-p"))
    log.record("R-p", 0, chain, due=at(3, 1))  # the default just appends
    assert log.version("R-p") == len(chain)
    assert log.claim_due(at(5, 1), worker="w", lease=timedelta(minutes=1)) is None
    log.release("R-p", due=None, worker="w")  # nothing to do, no error
