"""Events: the immutable record of every change, chained by hashes.

Each event's ``hash`` is the digest of its canonical JSON (every field but
``hash``, keys sorted, UTF-8, no spaces) and that JSON includes ``prev_hash``, the
hash of the previous event of the same stream. The first event of a stream chains
to :func:`genesis_hash` of the stream id, so an event moved to another stream
breaks the chain too. :func:`verify_chain` names the first event that does not fit.

The digest is chosen per log and recorded with it (:data:`HASH_ALGORITHMS`):
SHA-256 by default, or SM3 (GB/T 32905-2016, China's national hash standard, which
government crypto reviews expect), both 256 bits and written as 64 hex digits.
Test vectors (the standards' own, for the three bytes ``abc``)::

    sha256(b"abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    sm3(b"abc")    = 66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from ._errors import InvalidArgument
from ._roles import Actor

__all__ = [
    "DEFAULT_HASH",
    "HASH_ALGORITHMS",
    "ChainReport",
    "Event",
    "check_algorithm",
    "digest",
    "genesis_hash",
    "verify_chain",
]

HASH_ALGORITHMS = ("sha256", "sm3")
"""The hash algorithms a log may chain its events with."""
DEFAULT_HASH = "sha256"


@functools.cache
def check_algorithm(name: str) -> str:
    """``name`` if it is one of :data:`HASH_ALGORITHMS` and this Python provides it
    (SM3 comes from OpenSSL through :mod:`hashlib`), else raise
    :class:`~xuncha_flow.InvalidArgument`."""
    if name not in HASH_ALGORITHMS:
        raise InvalidArgument(
            f"unknown hash algorithm {name!r}; choose one of {', '.join(HASH_ALGORITHMS)}"
        )
    try:
        hashlib.new(name)
    except ValueError as exc:  # pragma: no cover - an OpenSSL built without SM3
        raise InvalidArgument(
            f"this Python's hashlib (OpenSSL) does not provide {name!r}: {exc}"
        ) from exc
    return name


def digest(data: bytes, algorithm: str = DEFAULT_HASH) -> str:
    """The hex digest of ``data`` under ``algorithm``."""
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    return hashlib.new(check_algorithm(algorithm), data).hexdigest()


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

    def computed_hash(self, algorithm: str = DEFAULT_HASH) -> str:
        """The digest of :meth:`canonical` under the log's hash ``algorithm``."""
        return digest(self.canonical(), algorithm)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def genesis_hash(stream: str, algorithm: str = DEFAULT_HASH) -> str:
    """The ``prev_hash`` of a stream's first event."""
    return digest(f"xuncha_flow:genesis:{stream}".encode(), algorithm)


def seal(fields: dict[str, Any], algorithm: str = DEFAULT_HASH) -> Event:
    """Build an event from its fields (without ``hash``) and compute its hash."""
    draft = Event.model_validate({**fields, "hash": "0" * 64})
    return draft.model_copy(update={"hash": draft.computed_hash(algorithm)})


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


def verify_chain(
    stream: str,
    events: Iterable[Event],
    algorithm: str = DEFAULT_HASH,
    anchors: Mapping[int, str] | None = None,
) -> ChainReport:
    """Check that ``events`` are the stream's events 1..n, unmodified, in order.

    A modified event fails its own hash; an inserted, deleted or reordered one
    breaks the versions or the link to its predecessor. Deleting events from the
    end, or rewriting events and re-sealing every later hash, cannot be seen from
    the events alone: compare ``head`` and ``checked`` with the stream head a store
    keeps, and pass ``anchors`` (version → hash, from signed checkpoints, see
    :func:`~xuncha_flow.make_checkpoints`) that the chain must still reach.
    """
    prev = genesis_hash(stream, algorithm)
    pins = dict(anchors or {})
    n = 0
    for n, event in enumerate(events, start=1):
        problem = ""
        if event.stream != stream:
            problem = f"belongs to stream {event.stream!r}"
        elif event.version != n:
            problem = f"has version {event.version} where {n} was expected"
        elif event.prev_hash != prev:
            problem = "does not link to the previous event (prev_hash mismatch)"
        elif event.computed_hash(algorithm) != event.hash:
            problem = "content does not match its hash (modified)"
        elif n in pins and pins[n] != event.hash:
            problem = anchor_problem(n)
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
    missing = [v for v in pins if v > n]
    if missing:
        return ChainReport(
            stream,
            n,
            prev,
            bad_version=min(missing),
            problem=short_of_anchor(n, min(missing)),
        )
    return ChainReport(stream, n, prev)


def anchor_problem(version: int) -> str:
    """The problem named when event ``version`` is not the one a checkpoint signed."""
    return (
        f"event {version} is not the event a signed checkpoint recorded at version "
        f"{version}: the chain no longer reaches its checkpoint (rewritten)"
    )


def short_of_anchor(have: int, version: int) -> str:
    """The problem named when a stream ends before a checkpoint's version."""
    return (
        f"the stream ends at version {have}, but a signed checkpoint recorded it at "
        f"version {version}: the chain no longer reaches its checkpoint (truncated)"
    )
