"""Stage timing of the engine's step without stalling it.

On CUDA each stage boundary records an event; a frame's times are read once its last event has
completed (`query()`, never `synchronize()`), so `finish()` returns the newest *finished* frame's
times, usually the previous frame's. On the CPU the work is synchronous and perf_counter is exact.
"""

from __future__ import annotations

import time
from collections import deque

import torch

STAGES = ("encode", "unet", "decode")


class StageClock:
    """start(), mark(stage) after each of STAGES, finish() -> {stage: ms, "total": ms} or None."""

    def __init__(self, device: torch.device, keep: int = 4) -> None:
        self._cuda = device.type == "cuda"
        self._marks: list = []
        self._pending: deque[list] = deque(maxlen=keep)

    def _now(self):
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        self._marks = [self._now()]

    def mark(self, stage: str) -> None:
        self._marks.append(self._now())

    def finish(self) -> dict[str, float] | None:
        marks, self._marks = self._marks, []
        if len(marks) != len(STAGES) + 1:
            return None
        if not self._cuda:
            return _timings([(b - a) * 1e3 for a, b in zip(marks, marks[1:], strict=False)])
        self._pending.append(marks)
        done = None
        while self._pending and self._pending[0][-1].query():
            done = self._pending.popleft()
        if done is None:
            return None
        return _timings([a.elapsed_time(b) for a, b in zip(done, done[1:], strict=False)])


def _timings(stage_ms: list[float]) -> dict[str, float]:
    out = dict(zip(STAGES, stage_ms, strict=True))
    out["total"] = sum(stage_ms)
    return out
