"""The agenda: what is due next, across all rounds, in time order.

A binary heap of ``(time, stream, key)`` entries. Pushing is O(log n); taking the
entries due by a time is O(k log n) for k due entries, whatever the number of
entries waiting — a sweep's cost grows with what is due, not with what is open.
Entries are hints: the engine re-checks each against the round's state when it is
taken, so stale entries (a deadline met or extended since) cost one look-up and are
dropped, and the same key may be pushed again without harm.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from datetime import datetime

__all__ = ["Agenda", "AgendaKey"]

AgendaKey = tuple[str, str]
"""(what, id): ("deadline", deadline id), ("unit", unit id) or ("round", round id)."""


class Agenda:
    """A thread-safe time-ordered queue of (stream, key) entries."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str, AgendaKey]] = []
        self._seq = 0
        self._lock = threading.Lock()

    def push(self, when: datetime, stream: str, key: AgendaKey) -> None:
        with self._lock:
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, stream, key))

    def take_due(
        self,
        at: datetime,
        select: Callable[[str, AgendaKey], bool] | None = None,
        left: set[str] | None = None,
    ) -> list[tuple[datetime, str, AgendaKey]]:
        """Remove and return the entries due at or before ``at`` (those ``select``
        accepts; the others stay, and their streams are added to ``left``), earliest
        first, without duplicates."""
        taken: list[tuple[datetime, str, AgendaKey]] = []
        kept: list[tuple[datetime, int, str, AgendaKey]] = []
        seen: set[tuple[str, AgendaKey]] = set()
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] <= at:
                entry = heapq.heappop(heap)
                when, _, stream, key = entry
                if select is not None and not select(stream, key):
                    kept.append(entry)
                    if left is not None:
                        left.add(stream)
                    continue
                if (stream, key) not in seen:
                    seen.add((stream, key))
                    taken.append((when, stream, key))
            for entry in kept:
                heapq.heappush(heap, entry)
        return taken

    def next_time(self) -> datetime | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._heap)
