"""Effects after commit: the transactional outbox and ``Engine.deliver``.

Before, notifications were sent by after hooks, which run inside the unit of work:
a hook that sent a letter sent it for a command that then lost a concurrency
conflict, and with ``retries=3`` it ran four times for a command that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from deadline_helpers import DWorld, only_rules
from helpers import ROUND, PlainLog
from xuncha_flow import (
    BUILTIN_TOPICS,
    AfterContext,
    ConcurrencyConflict,
    DeadlinePolicy,
    Engine,
    Event,
    HookFailed,
    Hooks,
    InMemoryEventLog,
    InvalidArgument,
    Message,
    StoreError,
)
from xuncha_flow.testing import ManualClock

DEADLINE = "measure_due:M-P-1-1"


class FlakyLog(InMemoryEventLog):
    """Refuses the next ``failures`` appends as if another writer had been first."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConcurrencyConflict(stream, expected_version, expected_version + 1)
        super().append(stream, expected_version, events)


def _planned(log: InMemoryEventLog | None = None, hooks: Hooks | None = None) -> DWorld:
    w = DWorld(
        only_rules(DeadlinePolicy.standard(), "measure_due"),
        log=log if log is not None else InMemoryEventLog(),
        hooks=hooks,
    )
    w.planned({"U-1": ["P-1"]})
    return w


def _swept(log: InMemoryEventLog | None = None, hooks: Hooks | None = None) -> DWorld:
    w = _planned(log, hooks)
    w.clock.set(w.deadline(DEADLINE).due_at)
    assert len(w.engine.sweep().overdue) == 1
    return w


def test_the_ladder_writes_its_letters_to_the_outbox_with_the_events() -> None:
    w = _swept()
    messages = w.engine.log.messages()
    assert [(m.topic, m.body["rung"]) for m in messages] == [
        ("warning", "green"),
        ("warning", "yellow"),
        ("overdue", "red"),
    ]
    rungs = [e for e in w.events() if e.type == "deadline.escalate"]
    assert [m.key for m in messages] == [
        f"{e.id}:{m.topic}" for e, m in zip(rungs, messages, strict=True)
    ]
    assert all(m.subject == DEADLINE and m.stream == ROUND for m in messages)
    assert [m.version for m in messages] == [e.version for e in rungs]
    assert {m.delivered_at for m in messages} == {None}


def test_regression_a_command_that_loses_its_conflicts_sends_nothing() -> None:
    """An after hook that sent letters sent them for each failed attempt; the outbox
    only holds what was committed."""
    log = FlakyLog()
    notified: list[str] = []
    hooks = Hooks()
    w = _planned(log, hooks)
    hooks.notify(
        "plan-changed",
        lambda event, ctx: notified.append(event.id) or {"measure": event.subject},
        types={"measure.start"},
    )
    log.failures = 4
    command = {
        "command_id": "cmd-start",
        "round_id": ROUND,
        "kind": "measure",
        "subject": "M-P-1-1",
        "event": "start",
        "actor": w.unit_actor("U-1"),
    }
    with pytest.raises(ConcurrencyConflict):
        w.engine.execute(command, retries=3)
    assert len(notified) == 4  # the notifier ran in each attempt ...
    assert log.messages() == []  # ... but no message of a failed command exists
    assert w.engine.deliver(lambda m: None).delivered == ()
    log.failures = 1
    w.engine.execute(command, retries=1)
    assert [(m.topic, m.body) for m in log.messages()] == [("plan-changed", {"measure": "M-P-1-1"})]


def test_deliver_hands_each_message_over_once_and_marks_it() -> None:
    w = _swept()
    sent: list[Message] = []
    report = w.engine.deliver(sent.append)
    assert [m.body["rung"] for m in sent] == ["green", "yellow", "red"]
    assert [m.key for m in report.delivered] == [m.key for m in sent]
    assert all(m.delivered_at == w.clock.now() for m in report.delivered)
    assert all(m.attempts == 1 for m in sent)
    assert w.engine.deliver(sent.append).delivered == ()
    assert len(sent) == 3
    assert w.engine.log.messages(pending=True) == []
    assert len(w.engine.log.messages(pending=False)) == 3


def test_a_failed_delivery_is_retried_after_a_back_off() -> None:
    w = _swept()
    calls: list[str] = []

    def flaky(message: Message) -> None:
        calls.append(message.key)
        if message.body["rung"] == "red":
            raise ConnectionError("短信网关不可用")

    report = w.engine.deliver(flaky)
    assert len(report.delivered) == 2
    [(failed, error)] = report.failed
    assert error == "ConnectionError: 短信网关不可用"
    [pending] = w.engine.log.messages(pending=True)
    assert pending.key == failed.key
    assert pending.last_error == error
    assert w.engine.deliver(flaky).failed == ()  # not yet: it waits a minute
    w.clock.advance(minutes=1)
    report = w.engine.deliver(lambda m: calls.append(m.key))
    assert [m.key for m in report.delivered] == [failed.key]
    assert report.delivered[0].attempts == 2
    assert calls.count(failed.key) == 2


def test_delivery_is_at_least_once_when_a_worker_dies_before_marking() -> None:
    w = _swept()
    log = w.engine.log
    crashed = log.claim_messages(w.clock.now(), worker="w-dead", lease=timedelta(minutes=5))
    assert len(crashed) == 3  # sent, perhaps, but never marked: the worker died
    sent: list[Message] = []
    assert w.engine.deliver(sent.append).delivered == ()  # still leased
    w.clock.advance(minutes=5)
    w.engine.deliver(sent.append)
    assert [m.key for m in sent] == [m.key for m in crashed]  # the same keys again
    assert [m.attempts for m in sent] == [2, 2, 2]


def test_two_engines_share_the_deliveries() -> None:
    w = _swept()
    other = Engine(clock=w.clock, log=w.engine.log, process=w.engine.process, worker="w-2")
    first = w.engine.deliver(lambda m: None, limit=2)
    second = other.deliver(lambda m: None)
    assert len(first.delivered) == 2
    assert len(second.delivered) == 1
    assert {m.key for m in first.delivered}.isdisjoint(m.key for m in second.delivered)


def test_a_notifier_that_raises_rolls_the_command_back() -> None:
    hooks = Hooks()
    w = _planned(hooks=hooks)
    version = w.state.version

    def broken(event: Event, ctx: AfterContext) -> dict[str, Any]:
        raise KeyError("no template")

    hooks.notify("sms", broken, types={"measure.start"})
    with pytest.raises(HookFailed, match="no template") as failed:
        w.do("measure", "M-P-1-1", "start")
    assert failed.value.phase == "notify"
    assert w.state.version == version
    assert w.engine.log.version(ROUND) == version
    assert w.engine.log.messages() == []


@pytest.mark.parametrize("topic", [*BUILTIN_TOPICS, "", "x" * 101])
def test_a_notifier_takes_a_topic_of_its_own(topic: str) -> None:
    with pytest.raises(InvalidArgument, match="topic"):
        Hooks().notify(topic, lambda event, ctx: {}, types={"item.close"})


def test_a_log_without_an_outbox_refuses_messages_rather_than_lose_them() -> None:
    w = _planned()
    log = PlainLog()
    events = w.events()
    message = Message(
        key="k",
        stream=ROUND,
        version=1,
        topic="t",
        event_type=events[0].type,
        subject=ROUND,
        body={},
        created_at=events[0].timestamp,
    )
    with pytest.raises(StoreError, match="keeps no outbox"):
        log.record(ROUND, 0, events, messages=[message])
    assert log.version(ROUND) == 0
    assert log.claim_messages(w.clock.now(), worker="w", lease=timedelta(minutes=1)) == []


def test_deliver_cannot_look_ahead_of_the_clock() -> None:
    w = _planned()
    with pytest.raises(InvalidArgument, match="ahead of the clock"):
        w.engine.deliver(lambda m: None, at=w.clock.now() + timedelta(seconds=1))
    engine = Engine(clock=ManualClock(w.clock.now()))
    assert engine.deliver(lambda m: None).delivered == ()
