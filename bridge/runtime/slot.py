"""A one-slot, latest-frame-wins queue between two threads."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """`put` replaces whatever the consumer has not taken yet (counted in `dropped`), so a slow
    consumer always gets the newest item and latency never piles up in a backlog."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._has = False
        self._cond = threading.Condition()
        self.dropped = 0
        self.put_count = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._has:
                self.dropped += 1
            self._item, self._has = item, True
            self.put_count += 1
            self._cond.notify()

    def get(self, timeout: float) -> T | None:
        """The newest item, or None after `timeout` seconds without one."""
        with self._cond:
            if not self._has and not self._cond.wait_for(lambda: self._has, timeout):
                return None
            item, self._item, self._has = self._item, None, False
            return item
