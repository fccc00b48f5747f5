"""`--accel torch`: eager PyTorch, tuned but not transformed. Also the CPU path and the fallback
that serves frames while a TensorRT build runs."""

from __future__ import annotations

import logging

import torch

from .seams import install_seams, module_seams

log = logging.getLogger(__name__)


def use_sdpa(unet: torch.nn.Module) -> bool:
    """Switch attention to `scaled_dot_product_attention` where a processor doesn't use it yet.

    diffusers picks SDPA by default on torch 2; this only replaces the classic `AttnProcessor`
    (set by old code or loaded pipelines), and leaves custom processors (regional prompts, IP
    adapters) alone. Returns whether anything changed.
    """
    set_processor = getattr(unet, "set_attn_processor", None)
    processors = getattr(unet, "attn_processors", None)
    if set_processor is None or not processors:
        return False
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    if not any(type(p) is AttnProcessor for p in processors.values()):
        return False
    set_processor(
        {name: AttnProcessor2_0() if type(p) is AttnProcessor else p for name, p in processors.items()}
    )
    return True


def prepare_modules(engine: object, device: torch.device) -> None:
    """Inference mode for every module; channels_last for the convolution-heavy ones on CUDA,
    where cuDNN's NHWC kernels are faster in fp16 (on the CPU it is a wash, so it is left alone)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per engine: pick the fastest conv once
    for name in ("unet", "vae", "text_encoder"):
        module = getattr(engine, name, None)
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
            if device.type == "cuda" and name in ("unet", "vae"):
                module.to(memory_format=torch.channels_last)
    unet = getattr(engine, "unet", None)
    if isinstance(unet, torch.nn.Module) and use_sdpa(unet):
        log.info("attention switched to scaled_dot_product_attention")


def apply_torch(engine: object, device: torch.device) -> str:
    """Tune the modules and make sure the engine has eager seams (its own if it made them)."""
    prepare_modules(engine, device)
    if not all(callable(getattr(engine, n, None)) for n in ("unet_fn", "vae_encode_fn", "vae_decode_fn")):
        install_seams(engine, *module_seams(engine.unet, engine.vae))  # type: ignore[attr-defined]
    return "torch"
