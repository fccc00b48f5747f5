"""When to read an on-demand source: no more often than its pace, and, when the engine is slower
than that pace, once per engine frame, just before the engine will ask for it.

A source that makes its picture when it is read (the test card, a screen, a still image) loses
nothing by being read less often. Read at its full pace while the engine takes a frame only every
second or third tick, most reads are replaced in the slot before the engine sees them, and each
one wakes a thread that takes the GIL from the engine: on a 2-core machine every such read costs
the engine about 1-3% of its speed (issue 16). A video file is not on demand: it plays in real
time, so it is read at its own rate and the frames the engine cannot take are dropped.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

LEAD = 0.25
"""How early a read lands before the engine asks, as a share of the engine's time between a take
and its next ask (plus the read's own duration): the margin for an engine call that ends early.
A frame is then about a quarter of an engine frame old when taken, as it was on average when the
source ran at twice the engine's rate."""

RECENT = 5
"""The engine's busy time is planned as the shortest of its last RECENT: a read that comes too
late makes the engine wait (a stall the show sees), one that comes early only makes the frame a
few milliseconds older, and an average would lag behind an engine that speeds up."""

SMOOTHING = 0.2
"""Weight of the newest read time in its moving average."""


@dataclass(frozen=True)
class Need:
    """The engine loop's next demand for a frame not captured yet."""

    at: float
    """perf_counter time at which the engine loop will ask for it."""
    busy_s: float
    """The engine loop's time from taking a frame to asking for the next (the shortest lately)."""


def next_read(paced: float, need: Need | None, read_s: float, latest: float = math.inf) -> float:
    """When to read next: `paced` (the source's own pace) unless the engine will need its next
    frame later than that, in which case just before that need (LEAD of its busy time plus the
    read's own time `read_s` earlier), but not after `latest`; never before `paced`."""
    if need is None or need.busy_s <= 0:
        return paced
    return max(paced, min(need.at - LEAD * need.busy_s - read_s, latest))


class DemandClock:
    """Kept by the engine loop: when it took its last frame, and how long it then works before
    asking for the next one (a take followed by a wait does not count the wait, so an engine that
    waited for a late frame does not look slower and push reads later still)."""

    def __init__(self) -> None:
        self.taken_at: float | None = None
        self.busy_s: float | None = None
        """The shortest of the recent busy times (plain attributes: the capture thread reads them)."""
        self._busy: deque[float] = deque(maxlen=RECENT)
        self._since_take: float | None = None

    def asking(self, now: float) -> None:
        """The engine loop asks for a frame (called before it waits for one)."""
        if self._since_take is not None:
            self._busy.append(now - self._since_take)
            self.busy_s = min(self._busy)
            self._since_take = None

    def took(self, now: float) -> None:
        """The engine loop took a frame."""
        self.taken_at = self._since_take = now

    def need(self, now: float, one_waiting: bool) -> Need | None:
        """The need the next read is for: the next ask, or the one after it when a frame is already
        waiting in the slot (that one will be taken at the next ask)."""
        busy = self.busy_s
        if self.taken_at is None or busy is None:
            return None
        ask = max(self.taken_at + busy, now)  # an overdue ask comes any moment now
        return Need(ask + busy if one_waiting else ask, busy)
