"""The coalescing key of a datagram, worked out once per message header and then looked up.

The receive thread keys every datagram of a flood (see `osc_inbox`), and that runs with the GIL
held while the frame loop waits for it. A message's header (its address, padding and type tags:
the bytes up to the NUL that ends the tags) fixes everything `signature` reads from it, so the
header's signature (None when the address is not a parameter's) is kept in a dict: a
flood of 20,000 messages a second over a few addresses then costs two `find`s and a lookup per
datagram instead of a signature and a route check. Bundles, rarer, still take the full walk.
"""

from __future__ import annotations

from collections.abc import Hashable

from .osc_wire import BUNDLE_PREFIX, signature

MAX_HEADERS = 4096
"""Headers remembered at most: a sender making up addresses must not grow the dict for ever."""


class CoalesceKeys:
    """`key(data)`: equal for two datagrams only when they differ in their values alone."""

    def __init__(self, route_keys: frozenset[bytes]) -> None:
        self._route_keys = route_keys
        self._headers: dict[bytes, tuple | None] = {}
        """header -> the signature of the first datagram with it, or None: not a parameter's."""

    def key(self, data: bytes) -> Hashable:
        if data[:8] == BUNDLE_PREFIX:
            return self._uncached(data)
        end = data.find(b"\x00")
        stop = data.find(b"\x00", (end // 4 + 1) * 4) if end > 0 else -1
        if stop < 0:
            return self._uncached(data)
        header = data[:stop]
        try:
            sig = self._headers[header]
        except KeyError:
            if len(self._headers) >= MAX_HEADERS:
                self._headers.clear()
            sig = signature(data)
            if sig is not None and sig[0] not in self._route_keys:
                sig = None
            self._headers[header] = sig
        if sig is None:
            return ("other", data)
        address, tags, size = sig
        return sig if size < 0 else (address, tags, len(data))  # = signature(data), found faster

    def _uncached(self, data: bytes) -> Hashable:
        """A bundle or a datagram without tags: its signature when every address in it is a
        parameter's; questions and anything unknown only coalesce with an identical datagram."""
        sig = signature(data)
        if sig is not None and all(a in self._route_keys for a in _addresses(sig)):
            return sig
        return ("other", data)


def _addresses(sig: tuple) -> list[bytes]:
    """The addresses in a message's or bundle's `signature`."""
    if sig and isinstance(sig[0], bytes):
        return [sig[0]]
    return [a for element in sig for a in _addresses(element)]
