"""The in-memory event log passes the store contract."""

from __future__ import annotations

import pytest

from xuncha_flow import InMemoryEventLog

from .contract import OpenStore, StoreContract


class TestInMemoryEventLog(StoreContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        log = InMemoryEventLog()
        return lambda: log
