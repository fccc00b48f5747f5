"""Datagrams waiting to be parsed: the newest per client and address, taken fairly.

A controller that floods us (a fader at 20,000 messages a second, a stuck loop, a hostile
sender) must not make the OSC thread parse every packet: that holds Python's GIL and starves
the frame loop. So the receive thread only reads each datagram and files it here under a key
found without parsing its arguments (its address, or a bundle's addresses): a newer datagram
with the same key replaces the waiting one, so a flood costs one parse per address per pause,
and the newest value sent is the one applied. Each client has its own queue with a bound on
distinct keys, and clients are served in turns, so one flooding client can't crowd out another.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)


class Inbox(Generic[C]):
    """Per-client queues of datagrams, newest per key (used by one thread only: no lock)."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._queues: dict[C, OrderedDict[Hashable, bytes]] = {}
        self.coalesced = 0
        """Datagrams replaced by a newer one with the same key before they were parsed."""

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def put(self, client: C, key: Hashable, data: bytes) -> bool:
        """File `data`; False (nothing filed) if `client` already has `per_client` other keys waiting."""
        queue = self._queues.get(client)
        if queue is None:
            queue = self._queues[client] = OrderedDict()
        if key in queue:
            queue[key] = data
            queue.move_to_end(key)  # keeps "the last value sent wins" against bundles holding it
            self.coalesced += 1
            return True
        if len(queue) >= self.per_client:
            return False
        queue[key] = data
        return True

    def take(self, turn: int) -> Iterator[tuple[C, bytes]]:
        """Oldest first, `turn` datagrams of each client in rotation, until all queues are empty.

        Stop iterating at any time: what was not yielded stays filed (and keeps coalescing).
        """
        while self._queues:
            for client in list(self._queues):
                queue = self._queues[client]
                for _ in range(min(turn, len(queue))):
                    _, data = queue.popitem(last=False)
                    yield client, data
                if not queue:
                    del self._queues[client]

    def forget(self, client: C) -> None:
        self._queues.pop(client, None)
