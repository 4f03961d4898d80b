"""Events: the immutable record of every change, chained by hashes.

Each event's ``hash`` is the SHA-256 of its canonical JSON (every field but
``hash``, keys sorted, UTF-8, no spaces) and that JSON includes ``prev_hash``, the
hash of the previous event of the same stream. The first event of a stream chains
to :func:`genesis_hash` of the stream id, so an event moved to another stream
breaks the chain too. :func:`verify_chain` names the first event that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from ._roles import Actor

__all__ = ["ChainReport", "Event", "genesis_hash", "verify_chain"]


class Event(BaseModel):
    """One applied change. ``type`` is ``"<subject kind>.<event value>"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    stream: str = Field(min_length=1, description="the round id")
    version: int = Field(ge=1, description="position in the stream, from 1, no gaps")
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    subject: str = Field(min_length=1, description="id of the round, unit, item, measure or lead")
    actor: Actor
    timestamp: AwareDatetime = Field(description="from the engine's clock, stored in UTC")
    from_state: str | None = Field(description="None for a creation event")
    to_state: str
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    reason: str | None = None
    attachments: tuple[str, ...] = ()
    command_id: str = Field(min_length=1)
    automatic: bool = Field(
        default=False, description="fired by the engine as a consequence of the command"
    )
    definition: str = Field(description="version id of the definition that allowed it")
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def kind(self) -> str:
        """The subject kind: round, unit, item, measure or lead."""
        return self.type.partition(".")[0]

    @property
    def event(self) -> str:
        """The stored event value, without the subject kind."""
        return self.type.partition(".")[2]

    @property
    def role(self) -> str:
        return self.actor.role.value

    def canonical(self) -> bytes:
        """The bytes the hash covers: every field but ``hash``."""
        return canonical_json(self.model_dump(mode="json", exclude={"hash"}))

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def genesis_hash(stream: str) -> str:
    """The ``prev_hash`` of a stream's first event."""
    return hashlib.sha256(f"xuncha_flow:genesis:{stream}".encode()).hexdigest()


def seal(fields: dict[str, Any]) -> Event:
    """Build an event from its fields (without ``hash``) and compute its hash."""
    draft = Event.model_validate({**fields, "hash": "0" * 64})
    return draft.model_copy(update={"hash": draft.computed_hash()})


@attrs.frozen
class ChainReport:
    """The outcome of :func:`verify_chain`. ``ok`` is False at the first bad event."""

    stream: str
    checked: int
    head: str
    bad_version: int | None = None
    bad_event_id: str | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_version is None

    def __bool__(self) -> bool:
        return self.ok


def verify_chain(stream: str, events: Iterable[Event]) -> ChainReport:
    """Check that ``events`` are the stream's events 1..n, unmodified, in order.

    A modified event fails its own hash; an inserted, deleted or reordered one
    breaks the versions or the link to its predecessor. Deleting events from the
    end cannot be seen from the events alone: compare ``head`` and ``checked``
    with the stream head a store keeps.
    """
    prev = genesis_hash(stream)
    n = 0
    for n, event in enumerate(events, start=1):
        problem = ""
        if event.stream != stream:
            problem = f"belongs to stream {event.stream!r}"
        elif event.version != n:
            problem = f"has version {event.version} where {n} was expected"
        elif event.prev_hash != prev:
            problem = "does not link to the previous event (prev_hash mismatch)"
        elif event.computed_hash() != event.hash:
            problem = "content does not match its hash (modified)"
        if problem:
            return ChainReport(
                stream,
                n - 1,
                prev,
                bad_version=n,
                bad_event_id=event.id,
                problem=f"event {n} ({event.id}) {problem}",
            )
        prev = event.hash
    return ChainReport(stream, n, prev)
