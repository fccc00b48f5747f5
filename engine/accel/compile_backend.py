"""`--accel compile`: torch.compile of the UNet and the VAE, plus CUDA-graph replay on CUDA.

The modules are compiled with `dynamic=False`: each new input shape compiles a specialised graph
(a resolution or batch change), the same shape never recompiles. On CUDA each seam then replays a
CUDA graph per shape with static input and output buffers (`graphs.GraphedFn`). The engine can
wrap its whole per-frame step the same way with `graph_step(fn)` when that step is free of host
synchronisation; the seams alone already remove nearly all per-kernel launch cost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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


def apply_compile(
    engine: object,
    device: torch.device,
    *,
    compiler: Compiler | None = None,
    cuda_graphs: bool | None = None,
    **options: object,
) -> str:
    """Install compiled seams; on CUDA (or when `cuda_graphs` is forced) behind CUDA graphs.

    `compiler` defaults to `torch.compile`; tests pass a cheap one. Options go to the compiler
    (e.g. `mode="max-autotune-no-cudagraphs"`; don't pick a cudagraph mode, graphs are ours).
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
    install_seams(engine, *seams)
    return "compile"
