"""CUDA-graph replay of a tensor function, one graph per input signature.

A graph replays the captured kernels into fixed ("static") input and output buffers, so a frame
costs one host call and no allocation. A new input shape (or dtype, or device) captures a new
graph; a shape already seen replays its graph. Capture itself is behind the small `Capturer`
interface so the decisions here (capture once, reuse, re-capture on change, fall back to the
plain call when capture fails) are tested on the CPU with a recording capturer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

log = logging.getLogger(__name__)

Signature = tuple[tuple[tuple[int, ...], torch.dtype, str], ...]


def signature(args: Sequence[torch.Tensor]) -> Signature:
    return tuple((tuple(a.shape), a.dtype, str(a.device)) for a in args)


class Replay(Protocol):
    def __call__(self, args: Sequence[torch.Tensor]) -> torch.Tensor: ...


class Capturer(Protocol):
    def __call__(self, fn: Callable[..., torch.Tensor], example: Sequence[torch.Tensor]) -> Replay: ...


def _identity(t: torch.Tensor) -> tuple | None:
    """What says a tensor still holds what it held: storage, layout and in-place version.

    None for inference tensors (they keep no version counter): those are always copied.
    """
    try:
        return (t.data_ptr(), t._version, tuple(t.shape), t.stride(), t.dtype)
    except RuntimeError:
        return None


class StaticInputs:
    """Fills fixed input buffers from the caller's tensors, skipping the copy of an input that is
    the very tensor last copied and has not been written since (same storage, same version
    counter): the engine's timesteps and text embeddings live in its own buffers and change only on
    an update, so a replay copies only the latents."""

    def __init__(self, buffers: Sequence[torch.Tensor]) -> None:
        self.buffers = list(buffers)
        self._seen: list[tuple | None] = [None] * len(self.buffers)
        self.copies = 0

    def fill(self, args: Sequence[torch.Tensor]) -> None:
        for i, (buf, a) in enumerate(zip(self.buffers, args, strict=True)):
            key = _identity(a)
            if key is not None and key == self._seen[i]:
                continue
            buf.copy_(a)
            self.copies += 1
            self._seen[i] = key


class CudaGraphCapturer:
    """Captures `fn` with `torch.cuda.graph` after a few warm-up calls on a side stream
    (the warm-up also triggers torch.compile's compilation, which must not happen under capture).

    Every graph shares one memory pool (`pool`), so graphs of several shapes (guidance crossing
    1.0, a new t_index length) do not each reserve their own; capture uses the thread-local error
    mode, so another thread's CUDA calls (an upload, a TensorRT build) do not break a capture.
    """

    def __init__(self, warmup: int = 3, copy_outputs: bool = True, pool=None) -> None:
        self.warmup = warmup
        self.copy_outputs = copy_outputs
        self.pool = pool

    def __call__(self, fn: Callable[..., torch.Tensor], example: Sequence[torch.Tensor]) -> Replay:
        with torch.inference_mode(False):  # static buffers are refilled in place on every call
            static_in = [a.detach().clone() for a in example]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup):
                fn(*static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"), torch.no_grad():
            static_out = fn(*static_in)
        copy_outputs = self.copy_outputs
        inputs = StaticInputs(static_in)

        def replay(args: Sequence[torch.Tensor]) -> torch.Tensor:
            inputs.fill(args)
            graph.replay()
            # The output buffer is overwritten by the next replay; hand out a copy unless the
            # caller promised to consume it first (copying uses torch's caching allocator: no malloc).
            return static_out.clone() if copy_outputs else static_out

        return replay


class GraphedFn:
    """`fn` replayed through a graph per input signature, at most `max_graphs` kept (LRU)."""

    def __init__(self, fn: Callable[..., torch.Tensor], capturer: Capturer, max_graphs: int = 4) -> None:
        self.fn = fn
        self.capturer = capturer
        self.max_graphs = max_graphs
        self.graphs: OrderedDict[Signature, Replay] = OrderedDict()
        self.failed: set[Signature] = set()
        self.captures = 0

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        sig = signature(args)
        replay = self.graphs.get(sig)
        if replay is not None:
            self.graphs.move_to_end(sig)
            return replay(args)
        if sig in self.failed:
            return self.fn(*args)
        try:
            replay = self.capturer(self.fn, args)
        except Exception as exc:  # capture is an optimisation: serve the frame without it
            log.warning("CUDA graph capture failed for %s, running without a graph: %s", sig, exc)
            self.failed.add(sig)
            return self.fn(*args)
        self.captures += 1
        self.graphs[sig] = replay
        while len(self.graphs) > self.max_graphs:
            self.graphs.popitem(last=False)
        return replay(args)
