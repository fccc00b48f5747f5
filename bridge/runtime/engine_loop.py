"""The engine loop: between frames apply control and swap in a rebuilt engine; then one engine call.

One thread, the only one that calls the engine. Each step: drain the live parameters (control),
swap in an engine the rebuild room finished (a pointer change), take a batch of
`frame_buffer_size` captured frames, run the engine and hand its frames to the sinks' slots.
An engine that raises (or returns non-finite values) costs that batch only: the input goes out.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from bridge.errors import BridgeError
from bridge.frames import Frame, PendingImage, fit

from .engines import one_line
from .pacing import DemandClock

if TYPE_CHECKING:
    from .daemon import Runtime


class EngineLoop:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._pending_meta: deque[list[Frame]] = deque()
        self._last_out: list[Frame] | None = None
        self.demand = DemandClock()
        """When this loop takes frames and how long it works before asking again (capture pacing)."""

    def run(self) -> None:
        rt = self.rt
        while not rt.stop_event.is_set():
            try:
                self.step()
            except Exception as exc:  # a bug here must not end the show: log it and go on
                what = f"{type(exc).__name__}: {one_line(exc)}"
                rt.once.warn(f"loop:engine:{one_line(exc)}", f"engine loop: {what}")
                rt.stop_event.wait(0.01)

    def step(self) -> None:
        rt = self.rt
        rt.control.apply()
        rt.output.check_limit()  # `--frames N` with a sink that stopped writing: the drain timeout
        if rt.rebuild.swap_if_ready():
            self._pending_meta.clear()
            rt.control.apply()  # a preset that waited for this engine applies before its first frame
        batch = self._take_batch()
        if batch is None:
            return
        t0 = time.perf_counter()
        self.demand.took(t0)
        for f in batch:
            rt._stats.add("queue", t0 - f.times["captured"])
        outputs = self._process(batch)
        t1 = time.perf_counter()
        rt._stats.add("engine", t1 - t0)
        self._record_engine_timings()
        for f in outputs:
            f.times["engine"] = t1
        self._last_out = outputs
        rt.output.deliver(outputs)

    def _record_engine_timings(self) -> None:
        """With `options.profile`, the engine's own stages (encode, unet, decode) join the stats."""
        rt = self.rt
        if not rt.options.profile:
            return
        timings = getattr(rt.engine, "last_timings", None) or {}
        for name in ("encode", "unet", "decode"):
            ms = timings.get(name)
            if isinstance(ms, (int, float)):
                rt._stats.add(f"engine.{name}", ms / 1000.0)

    def _take_batch(self) -> list[Frame] | None:
        rt = self.rt
        n = max(1, int(rt.engine.frame_buffer_size))
        self.demand.asking(time.perf_counter())
        first = rt._in.get(0.1)
        if first is None:
            return None
        batch = [first]
        while len(batch) < n and not rt.stop_event.is_set():
            nxt = rt._in.get(0.1)
            if nxt is not None:
                batch.append(nxt)
        return batch if len(batch) == n else None

    def _process(self, batch: list[Frame]) -> list[Frame]:
        rt = self.rt
        if rt.pause and self._last_out is not None:
            pairs = zip(self._last_out, batch, strict=False)
            return [Frame(f.image, b.index, b.t_capture, dict(b.times)) for f, b in pairs]
        if rt.bypass:
            return batch
        w, h = rt._size
        images = [b.image if b.image.shape[:2] == (h, w) else fit(b.image, w, h, rt._fit) for b in batch]
        try:
            out_images = self._to_host(rt.engine(rt._bridge.to_tensor(images)), images, w, h)
        except Exception as exc:
            rt.faults["engine"] += 1
            rt.once.warn(
                f"engine:{type(exc).__name__}:{one_line(exc)}",
                f"engine error ({type(exc).__name__}: {one_line(exc)}); sending the input through meanwhile",
            )
            return batch
        # In stream-batch mode the output belongs to the input of `lag` calls ago: attribute it so.
        metas = self._lagged(batch)
        pairs = zip(out_images, metas, strict=True)
        return [Frame(img, m.index, m.t_capture, dict(m.times)) for img, m in pairs]

    def _to_host(self, result, inputs: list[np.ndarray], w: int, h: int) -> list[PendingImage]:  # noqa: ANN001
        """Engine output (N, 3, H, W) in [0, 1] -> N pending RGB uint8 images, downloading without a
        wait here (raises on a wrong shape; non-finite output resolves to `inputs`, reported once)."""
        n = len(inputs)
        out_images = self.rt._bridge.download(result).lazy(inputs, self._output_fault)
        if len(out_images) != n or out_images[0].ndim != 3 or out_images[0].shape[2] != 3:
            raise BridgeError(f"the engine returned shape {tuple(result.shape)}, expected {n}x3x{h}x{w}")
        return out_images

    def _output_fault(self, exc: BaseException) -> None:
        """Non-finite engine output, found where the pixels are read: the inputs go out instead."""
        rt = self.rt
        rt.faults["engine"] += 1
        rt.once.warn(
            f"engine:{type(exc).__name__}:{one_line(exc)}",
            f"engine error ({type(exc).__name__}: {one_line(exc)}); sending the input through meanwhile",
        )

    def _lagged(self, batch: list[Frame]) -> list[Frame]:
        rt = self.rt
        lag = getattr(rt.engine, "lag", None)
        if lag is None:
            lag = len(rt.control.t_index) - 1 if rt.config.use_denoising_batch else 0
        self._pending_meta.append(batch)
        while len(self._pending_meta) > lag + 1:
            self._pending_meta.popleft()
        return self._pending_meta[0]
