"""Snapshots: a round's state at one version, so loading a long stream reads the
snapshot and the events after it instead of the whole stream.

A snapshot is a cache, never the record: the event log stays the source of truth.
But a loaded snapshot *is* the state the next command is decided on, so whoever can
edit a snapshot could edit around the rules (change a unit's organization, and that
unit's own office could verify its items). So a snapshot is bound to the chain and
authenticated: it carries the version and head hash of the last event it covers and
an HMAC, under the host's key (:class:`~xuncha_flow.HmacKey`), over stream, version,
head and body. The engine uses a snapshot only when its HMAC verifies with its key
and the log's event at that version has that hash; otherwise it replays from the
first event. A snapshot without a valid HMAC (edited, written under another key, or
from an older version) costs a replay, never correctness. :meth:`Engine.replay
<xuncha_flow.Engine.replay>` never uses snapshots, and :meth:`Engine.verify
<xuncha_flow.Engine.verify>` replays each stream and reports a snapshot that does not
equal the replay of its events, naming the stream and version.

The body is JSON (the round's records as :mod:`xuncha_flow` records, plus the
applied command ids), readable and diffable, never pickled code.
"""

from __future__ import annotations

import hmac
import json
import threading
from abc import ABC, abstractmethod
from datetime import date, datetime
from decimal import Decimal
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import attrs

from ._checkpoints import HmacKey
from ._events import canonical_json
from ._model import (
    Deadline,
    Item,
    Lead,
    Measure,
    Recommendation,
    Round,
    RoundState,
    Unit,
)
from ._records import snapshot
from ._roles import Actor

__all__ = [
    "InMemorySnapshotStore",
    "Snapshot",
    "SnapshotStore",
    "state_from_json",
    "state_to_json",
]

FORMAT = 2


@attrs.frozen
class Snapshot:
    """A round's state after event ``version`` (whose hash is ``head``), with the
    HMAC (``digest``, hex) under the key named ``key_id``."""

    stream: str
    version: int
    head: str
    body: str = attrs.field(repr=False)
    digest: str = ""
    key_id: str | None = None

    @classmethod
    def of(cls, state: RoundState, key: HmacKey) -> Snapshot:
        body = state_to_json(state)
        draft = cls(state.stream, state.version, state.head, body, "", key.key_id)
        return attrs.evolve(draft, digest=key.mac(draft.signed()))

    def signed(self) -> bytes:
        """The bytes the HMAC covers: stream, version, head and body."""
        return canonical_json(
            {
                "format": FORMAT,
                "stream": self.stream,
                "version": self.version,
                "head": self.head,
                "body": self.body,
            }
        )

    def authentic(self, key: HmacKey) -> bool:
        """Whether this snapshot was written under ``key`` and not changed since."""
        return self.key_id == key.key_id and hmac.compare_digest(
            self.digest, key.mac(self.signed())
        )


class SnapshotStore(ABC):
    """Where snapshots are kept; only the latest of each round matters."""

    @abstractmethod
    def save(self, snap: Snapshot) -> None:
        """Keep ``snap`` (replacing an older snapshot of the same round)."""

    @abstractmethod
    def latest(self, stream: str) -> Snapshot | None:
        """The newest snapshot of the round, if any."""


class InMemorySnapshotStore(SnapshotStore):
    def __init__(self) -> None:
        self._snaps: dict[str, Snapshot] = {}
        self._lock = threading.Lock()

    def save(self, snap: Snapshot) -> None:
        with self._lock:
            old = self._snaps.get(snap.stream)
            if old is None or old.version <= snap.version:
                self._snaps[snap.stream] = snap

    def latest(self, stream: str) -> Snapshot | None:
        with self._lock:
            return self._snaps.get(stream)


# -- (de)serialisation -------------------------------------------------------------------
def state_to_json(state: RoundState) -> str:
    """The round's state as canonical JSON."""
    data = {
        "format": FORMAT,
        "at": state.at.isoformat() if state.at is not None else None,
        "stream": state.stream,
        "records": snapshot(state).model_dump(mode="json"),
        "commands": {k: list(v) for k, v in state.commands.items()},
    }
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def state_from_json(body: str) -> RoundState:
    """Rebuild a :class:`RoundState` from :func:`state_to_json` output."""
    data = json.loads(body)
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown snapshot format {data.get('format')!r}")
    records = data["records"]
    state = RoundState(str(data["stream"]), str(records["head"]))
    state.version = int(records["version"])
    state.at = datetime.fromisoformat(data["at"]) if data.get("at") else None
    round_data = dict(records["round"])
    round_data["definitions"] = sorted(round_data["definitions"].items())
    state.round = _build(Round, round_data)
    for table, cls in (
        ("units", Unit),
        ("items", Item),
        ("measures", Measure),
        ("leads", Lead),
        ("deadlines", Deadline),
        ("recommendations", Recommendation),
    ):
        target: dict[str, Any] = getattr(state, table)
        for row in records[table]:
            target[row["id"]] = _build(cls, row)
    state.commands = {k: (int(v[0]), int(v[1])) for k, v in data["commands"].items()}
    return state


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    attrs.resolve_types(cls)
    values = {}
    for field in attrs.fields(cls):
        if field.name in data:
            values[field.name] = _convert(field.type, data[field.name])
    return cls(**values)


def _convert(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, UnionType):
        options = [a for a in get_args(tp) if a is not NoneType]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=True))
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is date:
        return date.fromisoformat(value)
    if tp is Decimal:
        return Decimal(str(value))
    if tp is Actor:
        return Actor.model_validate(value)
    if attrs.has(tp):
        return _build(tp, value)
    return value
