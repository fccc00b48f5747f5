"""`--accel compile`: torch.compile of the UNet and the VAE, plus CUDA-graph replay on CUDA.

The modules are compiled with `dynamic=False`: each new input shape compiles a specialised graph
(a resolution or batch change), the same shape never recompiles. On CUDA each seam then replays a
CUDA graph per shape with static input and output buffers (`graphs.GraphedFn`). The engine can
wrap its whole per-frame step the same way with `graph_step(fn)` when that step is free of host
synchronisation; the seams alone already remove nearly all per-kernel launch cost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import torch

from .graphs import CudaGraphCapturer, GraphedFn
from .seams import install_seams, module_seams, unet_forward, vae_decode_raw, vae_encode_raw

log = logging.getLogger(__name__)

Compiler = Callable[..., Callable[..., torch.Tensor]]


def compile_seams(unet: torch.nn.Module, vae: torch.nn.Module, compiler: Compiler, **options: object):
    """Compiled versions of the three seams; compilation itself happens lazily on the first call."""
    unet_c = compiler(unet, dynamic=False, **options)
    encode_c = compiler(lambda images: vae_encode_raw(vae, images), dynamic=False, **options)
    decode_c = compiler(lambda latents: vae_decode_raw(vae, latents), dynamic=False, **options)

    def unet_fn(latent: torch.Tensor, timestep: torch.Tensor, ehs: torch.Tensor) -> torch.Tensor:
        return unet_forward(unet_c, latent, timestep, ehs)

    return unet_fn, encode_c, decode_c


class EagerOnFailure:
    """A compiled seam that falls back to its eager version for good if compiling fails.

    torch.compile compiles on the first call, so its failures (no Triton on a Windows CUDA box, no
    C++ compiler for the CPU backend, an unsupported op) surface mid-show; they must cost speed,
    not frames.
    """

    def __init__(self, name: str, compiled: Callable[..., torch.Tensor], eager: Callable[..., torch.Tensor]):
        self.name, self.compiled, self.eager = name, compiled, eager
        self.failed: str | None = None

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if self.failed is None:
            try:
                return self.compiled(*args)
            except Exception as exc:
                self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("torch.compile of %s failed, running it eagerly: %s", self.name, self.failed)
        return self.eager(*args)


def graph_step(fn: Callable[..., torch.Tensor], *, copy_outputs: bool = True) -> GraphedFn:
    """`fn(*tensors) -> tensor` replayed through a CUDA graph per input signature."""
    return GraphedFn(fn, CudaGraphCapturer(copy_outputs=copy_outputs))


def reachable_inputs(engine: Any) -> tuple[list[tuple[torch.Tensor, ...]], ...]:
    """Example arguments for every shape the three seams see under the engine's live parameters:
    the UNet batch with and without the CFG rows (guidance either side of 1.0), each stage's batch
    in sequential mode, and the VAE's one frame batch. Fresh tensors, never the engine's buffers
    (the engine keeps serving from those meanwhile). A new t_index length or brush count changes
    the batch and is compiled when it first happens."""
    if not hasattr(engine, "_batch"):  # not a StreamEngine: nothing known ahead, compile lazily
        return [], [], []
    dtype, device = engine.dtype, engine.device
    batches = [engine._batch] if engine.use_denoising_batch else list(engine._stages)
    unet: dict[tuple, tuple[torch.Tensor, ...]] = {}
    for b in batches:
        for rows in {b.latents.shape[0], b.latents.shape[0] - b.uncond_rows}:
            args = (
                torch.randn((rows, *b.latents.shape[1:]), device=device, dtype=dtype),
                b.timesteps[:rows].clone(),
                b.embeds[:rows].clone(),
            )
            unet[tuple(a.shape for a in args)] = args
    f = engine.frame_buffer_size
    images = torch.zeros((f, 3, engine.height, engine.width), device=device, dtype=dtype)
    latents = torch.zeros((f, *engine.latent_shape), device=device, dtype=dtype)
    return list(unet.values()), [(images,)], [(latents,)]


def precompile(seams: tuple[Callable[..., torch.Tensor], ...], engine: Any) -> int:
    """Call each seam once per reachable shape (compiling it, capturing its graph); returns calls."""
    calls = 0
    with torch.inference_mode():  # as the engine calls them: no grad-mode guard to fail later
        for fn, examples in zip(seams, reachable_inputs(engine), strict=True):
            for args in examples:
                fn(*args)
                calls += 1
    return calls


def apply_compile(
    engine: Any,
    device: torch.device,
    *,
    compiler: Compiler | None = None,
    cuda_graphs: bool | None = None,
    background: bool = False,
    status: Any = None,
    **options: object,
) -> str:
    """Install compiled seams; on CUDA (or when `cuda_graphs` is forced) behind CUDA graphs.

    `compiler` defaults to `torch.compile`; tests pass a cheap one. Options go to the compiler
    (e.g. `mode="max-autotune-no-cudagraphs"`; don't pick a cudagraph mode, graphs are ours).
    With `background` (the daemon on CUDA), every reachable shape is compiled and captured on a
    thread while the current seams keep serving, and the compiled seams are swapped in when all
    are ready; it returns "torch" at once and `status` (an `AccelStatus`) says when "compile" serves.
    Without it, compilation happens lazily on the first call of each shape (bench, tests).
    """
    compiler = compiler or torch.compile
    compiled = compile_seams(engine.unet, engine.vae, compiler, **options)  # type: ignore[attr-defined]
    eager = module_seams(engine.unet, engine.vae)  # type: ignore[attr-defined]
    names = ("unet", "vae_encode", "vae_decode")
    seams = tuple(EagerOnFailure(n, c, e) for n, c, e in zip(names, compiled, eager, strict=True))
    if cuda_graphs is None:
        cuda_graphs = device.type == "cuda"
    if cuda_graphs:
        # No output clones: the engine consumes every seam's output within the frame, before the
        # next call of that seam overwrites the graph's static output (see StreamEngine._step).
        pool = torch.cuda.graph_pool_handle() if torch.cuda.is_available() else None
        seams = tuple(GraphedFn(fn, CudaGraphCapturer(copy_outputs=False, pool=pool)) for fn in seams)
    if not background:
        install_seams(engine, *seams)
        return "compile"

    def build() -> None:
        try:
            calls = precompile(seams, engine)
            install_seams(engine, *seams)
            if status is not None:
                status.active = "compile"
            log.info("compiled %d seam shapes in the background; switched from torch to compile", calls)
        except Exception as exc:  # the show goes on with the seams it has
            if status is not None:
                status.error = f"{type(exc).__name__}: {exc}"
            log.error("background compile failed, staying on torch: %s", exc)
        finally:
            if status is not None:
                status.building = False
                status._done.set()

    if status is not None:
        status.building = True
    threading.Thread(target=build, name="compile-build", daemon=True).start()
    return "torch"
