"""Regional prompts (StreamMultiDiffusion, arXiv 2403.09055) inside the stream batch.

A background prompt plus up to `MAX_BRUSHES` brushes, each a prompt painted through a mask;
their noise predictions come from one batched UNet call and are fused per latent pixel.
Pure torch: no model is loaded here; the engine passes its text encoder in and plugs
`build_conditioning(...)` into its conditioning seam (`engine.conditioning`).
"""

from .brush import MAX_BRUSHES, Brush, as_brush, as_brushes
from .conditioning import RegionalConditioning, build_conditioning
from .fusion import (
    fuse_groups,
    mix_embeddings,
    region_weights,
    stack_conditions,
)
from .masks import MaskError, as_mask, gaussian_blur, prepare_mask, resize_mask

__all__ = [
    "MAX_BRUSHES",
    "Brush",
    "MaskError",
    "RegionalConditioning",
    "as_brush",
    "as_brushes",
    "as_mask",
    "build_conditioning",
    "fuse_groups",
    "gaussian_blur",
    "mix_embeddings",
    "prepare_mask",
    "region_weights",
    "resize_mask",
    "stack_conditions",
]
