"""The three hot-path calls an accelerator replaces, written once for plain diffusers modules.

The engine calls `unet_fn(latent, timestep, encoder_hidden_states) -> noise_pred`,
`vae_encode_fn(images in [-1, 1]) -> raw latents` and `vae_decode_fn(raw latents) -> images in [-1, 1]`.
"Raw" latents are what the VAE itself produces, before the engine applies `scaling_factor`.
The ONNX export wraps the very same functions, so TensorRT engines compute what torch computes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ImageFn = Callable[[torch.Tensor], torch.Tensor]


def unet_forward(unet: torch.nn.Module, latent: torch.Tensor, timestep: torch.Tensor, ehs: torch.Tensor):
    """Noise prediction of a `UNet2DConditionModel` as a plain tensor."""
    return unet(latent, timestep, encoder_hidden_states=ehs, return_dict=False)[0]


def vae_encode_raw(vae: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Latents of an `AutoencoderTiny` (its output) or `AutoencoderKL` (the mode of its distribution)."""
    encoded = vae.encode(images, return_dict=False)[0]
    return encoded if isinstance(encoded, torch.Tensor) else encoded.mode()


def vae_decode_raw(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    return vae.decode(latents, return_dict=False)[0]


def vae_scale_factor(vae: torch.nn.Module) -> int:
    """Pixels per latent cell (8 for SD VAEs and TAESD), from the VAE's own config."""
    config = vae.config
    blocks = getattr(config, "block_out_channels", None) or config.encoder_block_out_channels
    return 2 ** (len(blocks) - 1)


def module_seams(unet: torch.nn.Module, vae: torch.nn.Module) -> tuple[UNetFn, ImageFn, ImageFn]:
    """Seams that call the given (possibly compiled) modules directly."""

    def unet_fn(latent: torch.Tensor, timestep: torch.Tensor, ehs: torch.Tensor) -> torch.Tensor:
        return unet_forward(unet, latent, timestep, ehs)

    def vae_encode_fn(images: torch.Tensor) -> torch.Tensor:
        return vae_encode_raw(vae, images)

    def vae_decode_fn(latents: torch.Tensor) -> torch.Tensor:
        return vae_decode_raw(vae, latents)

    return unet_fn, vae_encode_fn, vae_decode_fn


def install_seams(engine: object, unet_fn: UNetFn, encode_fn: ImageFn, decode_fn: ImageFn) -> None:
    """Point the engine's hot path at new callables. Each assignment is atomic under the GIL; the
    three implementations agree on dtypes and semantics, so a frame that straddles the swap is fine."""
    engine.unet_fn = unet_fn  # type: ignore[attr-defined]
    engine.vae_encode_fn = encode_fn  # type: ignore[attr-defined]
    engine.vae_decode_fn = decode_fn  # type: ignore[attr-defined]
