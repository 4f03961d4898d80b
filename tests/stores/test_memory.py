"""The in-memory event log passes the store contract."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from xuncha_flow import DueEntry, Event, EventLog, InMemoryEventLog

from .contract import OpenStore, StoreContract, Tamper


class MemoryTamper(Tamper):
    """Tampering through the in-memory log's internals."""

    def __init__(self, log: InMemoryEventLog) -> None:
        self.log = log

    def replace(self, stream: str, events: Sequence[Event]) -> None:
        self.log._streams[stream] = list(events)

    def drop(self, stream: str) -> None:
        del self.log._streams[stream]
        self.log._due.pop(stream, None)

    def clear_due(self, stream: str) -> None:
        self.log._due[stream] = DueEntry()


class TestInMemoryEventLog(StoreContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        log = InMemoryEventLog()
        return lambda: log

    @pytest.fixture
    def open_hashed(self) -> Callable[[str | None], EventLog]:
        return lambda algorithm: InMemoryEventLog(hash_algorithm=algorithm or "sha256")

    @pytest.fixture
    def tamper(self, store: EventLog) -> Tamper:
        assert isinstance(store, InMemoryEventLog)
        return MemoryTamper(store)
