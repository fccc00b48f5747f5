"""A one-slot, latest-frame-wins queue between two threads."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """`put` replaces whatever the consumer has not taken yet (counted in `dropped`), so a slow
    consumer always gets the newest item and latency never piles up in a backlog.

    One consumer per slot. It waits on a bare lock that is held exactly while the slot is empty (a
    binary semaphore): `Lock.acquire(timeout=...)` blocks in C, where `Condition.wait_for` runs a
    dozen Python calls per wake-up, and every frame crosses two slots (issue 16).
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._has = False
        self._lock = threading.Lock()
        self._ready = threading.Lock()
        """Held while the slot is empty; released by the `put` that fills it."""
        self._ready.acquire()
        self.dropped = 0
        self.put_count = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._has:
                self.dropped += 1
            else:
                self._ready.release()
            self._item, self._has = item, True
            self.put_count += 1

    @property
    def waiting(self) -> bool:
        """An item is in the slot, not taken yet."""
        return self._has

    def get(self, timeout: float) -> T | None:
        """The newest item, or None after `timeout` seconds without one."""
        if not self._ready.acquire(timeout=max(0.0, timeout)):
            return None
        with self._lock:
            item, self._item, self._has = self._item, None, False
        return item
