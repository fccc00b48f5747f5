"""NDI objects that live as long as the daemon: one Finder, and receivers that are never destroyed.

cyndilib calls into the NDI library with Python's GIL held, so a slow NDI call stops every
thread of the daemon, the output's hold timer included. Two calls are slow, and both happen
when a sender goes away (measured on the 2-core VM, cyndilib 0.0.x with NDI 6):

- destroying a receiver that was ever connected: 460-520 ms (over 1.5 s in a loaded test
  run). A `Receiver` and its `FrameSync` refer to each other, so it is only destroyed by
  Python's cyclic garbage collector: at a random moment, in whichever thread allocates.
- connecting a receiver again after its sender died: about 440 ms.

Connecting a fresh receiver takes about 1 ms, and a receiver that stays connected to a name
picks the sender up again by itself when it comes back. So each receiver here is connected
once, to one source name, and kept: closing an NDI source parks its receiver, and the next
open of that name takes it back without an NDI call. There is one receiver per name the
daemon has used (one per `ndi:` source in a show); they go when the process ends.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_finder: Any = None
_parked: dict[str, list[tuple[Any, Any]]] = {}
made = 0
"""Receivers created in this process (each one is kept until it ends)."""


def finder() -> Any:
    """The process's one open cyndilib Finder: discovery keeps running between searches."""
    global _finder
    from .ndi import import_cyndilib

    finder_mod = import_cyndilib()[0]
    with _lock:
        if _finder is None:
            f = finder_mod.Finder()
            f.open()
            _finder = f
        return _finder


def take(source_name: str) -> tuple[Any, Any]:
    """A receiver connected to `source_name` and its VideoFrameSync: a parked one if there is
    one (no NDI call), else a new one (connecting it takes about a millisecond)."""
    global made
    with _lock:
        spare = _parked.get(source_name)
        if spare:
            return spare.pop()
    from .ndi import import_cyndilib

    _, receiver_mod, video_mod, ndi_recv = import_cyndilib()
    source = finder().get_source(source_name)
    if source is None:
        raise LookupError(f"NDI source {source_name!r} left the list while connecting")
    receiver = receiver_mod.Receiver(
        color_format=ndi_recv.RecvColorFormat.RGBX_RGBA,
        bandwidth=ndi_recv.RecvBandwidth.highest,
        recv_name="sd-bridge",
    )
    frame = video_mod.VideoFrameSync()
    receiver.frame_sync.set_video_frame(frame)
    receiver.set_source(source)
    with _lock:
        made += 1
    return receiver, frame


def park(source_name: str, receiver: Any, frame: Any) -> None:
    """Keep a receiver, still connected to `source_name`, for the next `take` of that name."""
    with _lock:
        _parked.setdefault(source_name, []).append((receiver, frame))
