"""The transactional outbox: notifications written with the events, delivered after.

A letter, a reminder, a talk to arrange — anything that leaves the system — must not
be sent for a command that is then rolled back or loses a concurrency conflict. So a
command's notifications are not sent by hooks inside its unit of work: they are
:class:`Message` rows that the log writes *in the same atomic step as the events*
(:meth:`~xuncha_flow.EventLog.record`). Only once that step has committed can a
worker see them; :meth:`~xuncha_flow.Engine.deliver` leases a batch, hands each to
the host's sender and marks it delivered. Delivery is at least once: a worker that
dies between sending and marking leaves the message leased, and once the lease
lapses another worker sends it again — so every message carries an idempotency
``key`` (the causing event's id and the topic) that the receiving side uses to drop
repeats.

Which events make messages. The engine writes, for every fired ladder rung, a message
on topic ``"warning"`` or ``"overdue"`` (the letters and reminders of the ladder), and
for every recommendation raised or decided, ``"recommendation"`` and ``"decision"``
(talks, accountability: what the leading group must decide, and what it decided).
A host adds its own topics with :meth:`~xuncha_flow.Hooks.notify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from pydantic import JsonValue

if TYPE_CHECKING:
    from ._events import Event
    from ._hooks import AfterContext

__all__ = [
    "BUILTIN_TOPICS",
    "DeliveryReport",
    "Message",
    "Notifier",
    "backoff",
    "builtin_messages",
    "deliver",
    "message_for",
]

Notifier = Callable[["Event", "AfterContext"], Mapping[str, Any] | None]
"""A host's message maker: the body of the message an event makes (JSON values), or
None for no message. It runs inside the unit of work and must not send anything."""

MAX_BACKOFF = timedelta(hours=6)


@attrs.frozen
class Message:
    """One notification to deliver. ``key`` is unique in the log and stays the same
    however often the message is delivered: the receiver's idempotency key."""

    key: str
    stream: str
    version: int
    """The version of the event that made it."""
    topic: str
    event_type: str
    subject: str
    body: Mapping[str, JsonValue]
    created_at: datetime
    attempts: int = 0
    """Deliveries tried so far that failed (or whose worker did not report back)."""
    last_error: str | None = None
    delivered_at: datetime | None = None


@attrs.frozen
class DeliveryReport:
    """What one :meth:`~xuncha_flow.Engine.deliver` did."""

    delivered: tuple[Message, ...] = ()
    failed: tuple[tuple[Message, str], ...] = ()
    """(message, error) of deliveries the sender raised for; they are retried later."""


def backoff(attempts: int) -> timedelta:
    """How long a message waits after its ``attempts``-th failed delivery: one minute,
    doubling, at most :data:`MAX_BACKOFF`."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def message_for(event: Event, topic: str, body: Mapping[str, Any]) -> Message:
    """The message ``event`` makes on ``topic``, keyed by event id and topic."""
    return Message(
        key=f"{event.id}:{topic}",
        stream=event.stream,
        version=event.version,
        topic=topic,
        event_type=event.type,
        subject=event.subject,
        body=dict(body),
        created_at=event.timestamp,
    )


def _rung_topic(event: Event) -> str | None:
    if event.type != "deadline.escalate" or event.payload.get("outcome", "fired") != "fired":
        return None
    kind = event.payload.get("kind")
    # a recommendation rung's message is the recommendation's own (topic "recommendation")
    return {"warning": "warning", "overdue": "overdue"}.get(str(kind))


BUILTIN_TOPICS = ("warning", "overdue", "recommendation", "decision")
"""The topics the engine writes by itself (see the module documentation)."""


def builtin_messages(events: Iterable[Event]) -> list[Message]:
    """The ladder's and the recommendations' messages for ``events``."""
    out = []
    for event in events:
        base: dict[str, Any] = {
            "round": event.stream,
            "subject": event.subject,
            "at": event.timestamp.isoformat(),
            **event.payload,
        }
        topic = _rung_topic(event)
        if topic is None and event.type == "recommendation.recommend":
            topic = "recommendation"
        elif topic is None and event.type in ("recommendation.confirm", "recommendation.dismiss"):
            topic = "decision"
            base = {**base, "decision": event.event, "reason": event.reason}
        if topic is not None:
            out.append(message_for(event, topic, base))
    return out


def deliver(
    log: Any,
    send: Callable[[Message], object],
    *,
    at: datetime,
    worker: str,
    lease: timedelta,
    limit: int | None = None,
) -> DeliveryReport:
    """Lease due messages of ``log`` to ``worker`` and hand each to ``send``: marked
    delivered when it returns, retried after :func:`backoff` when it raises (an
    :class:`Exception`; anything else propagates and the lease lapses)."""
    delivered: list[Message] = []
    failed: list[tuple[Message, str]] = []
    for message in log.claim_messages(at, worker=worker, lease=lease, limit=limit):
        try:
            send(message)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.fail(message.key, error=error, retry_at=at + backoff(message.attempts))
            failed.append((message, error))
        else:
            log.ack(message.key, at=at)
            delivered.append(attrs.evolve(message, delivered_at=at))
    return DeliveryReport(tuple(delivered), tuple(failed))
