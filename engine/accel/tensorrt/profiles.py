"""What each exported part looks like: tensor names, dynamic axes and optimisation profiles.

One engine per part covers a range of shapes: batch 1..max and 256..1024 pixels per side (in
steps of the VAE's scale factor), with the preset's own size as the shape TensorRT tunes for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Shape = tuple[int, ...]
ShapeRange = tuple[Shape, Shape, Shape]  # (min, opt, max)

TEXT_TOKENS = 77


@dataclass(frozen=True)
class ProfileRange:
    """Batch and pixel-size ranges an engine accepts; `opt_*` is what it is tuned for."""

    opt_batch: int
    opt_height: int
    opt_width: int
    min_batch: int = 1
    max_batch: int = 4
    min_size: int = 256
    max_size: int = 1024

    def __post_init__(self) -> None:
        if not self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"batch {self.opt_batch} outside {self.min_batch}..{self.max_batch}")
        for side in (self.opt_height, self.opt_width):
            if not self.min_size <= side <= self.max_size:
                raise ValueError(f"size {side} outside {self.min_size}..{self.max_size}")

    @classmethod
    def around(cls, batch: int, height: int, width: int, max_batch: int = 4) -> ProfileRange:
        """The default range for a preset: 256..1024 (widened to hold the preset's size)."""
        return cls(
            opt_batch=batch,
            opt_height=height,
            opt_width=width,
            max_batch=max(batch, max_batch),
            min_size=min(256, height, width),
            max_size=max(1024, height, width),
        )

    def with_batch(self, opt_batch: int) -> ProfileRange:
        return ProfileRange(
            opt_batch,
            self.opt_height,
            self.opt_width,
            self.min_batch,
            max(self.max_batch, opt_batch),
            self.min_size,
            self.max_size,
        )


@dataclass(frozen=True)
class PartSpec:
    """One exported network: its name, I/O names, dynamic axes and shape profile."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]
    profile: dict[str, ShapeRange]

    def profile_fields(self) -> tuple:
        """The profile as plain, ordered data (for the cache key)."""
        return tuple((n, tuple(map(list, r))) for n, r in sorted(self.profile.items()))


def _latent(rng: ProfileRange, scale: int, channels: int, which: str) -> Shape:
    b = {"min": rng.min_batch, "opt": rng.opt_batch, "max": rng.max_batch}[which]
    if which == "opt":
        return (b, channels, rng.opt_height // scale, rng.opt_width // scale)
    side = rng.min_size if which == "min" else rng.max_size
    return (b, channels, side // scale, side // scale)


def _image(rng: ProfileRange, which: str) -> Shape:
    b = {"min": rng.min_batch, "opt": rng.opt_batch, "max": rng.max_batch}[which]
    if which == "opt":
        return (b, 3, rng.opt_height, rng.opt_width)
    side = rng.min_size if which == "min" else rng.max_size
    return (b, 3, side, side)


def _ranged(fn) -> ShapeRange:
    return (fn("min"), fn("opt"), fn("max"))


def unet_spec(rng: ProfileRange, *, in_channels: int, text_dim: int, scale: int = 8) -> PartSpec:
    batch = {"min": rng.min_batch, "opt": rng.opt_batch, "max": rng.max_batch}
    return PartSpec(
        name="unet",
        inputs=("sample", "timestep", "encoder_hidden_states"),
        outputs=("noise_pred",),
        dynamic_axes={
            "sample": {0: "batch", 2: "height", 3: "width"},
            "timestep": {0: "batch"},
            "encoder_hidden_states": {0: "batch"},
            "noise_pred": {0: "batch", 2: "height", 3: "width"},
        },
        profile={
            "sample": _ranged(lambda w: _latent(rng, scale, in_channels, w)),
            "timestep": _ranged(lambda w: (batch[w],)),
            "encoder_hidden_states": _ranged(lambda w: (batch[w], TEXT_TOKENS, text_dim)),
        },
    )


def vae_encoder_spec(rng: ProfileRange) -> PartSpec:
    return PartSpec(
        name="vae_encoder",
        inputs=("images",),
        outputs=("latents",),
        dynamic_axes={
            "images": {0: "batch", 2: "height", 3: "width"},
            "latents": {0: "batch", 2: "lh", 3: "lw"},
        },
        profile={"images": _ranged(lambda w: _image(rng, w))},
    )


def vae_decoder_spec(rng: ProfileRange, *, latent_channels: int, scale: int = 8) -> PartSpec:
    return PartSpec(
        name="vae_decoder",
        inputs=("latents",),
        outputs=("images",),
        dynamic_axes={
            "latents": {0: "batch", 2: "lh", 3: "lw"},
            "images": {0: "batch", 2: "height", 3: "width"},
        },
        profile={"latents": _ranged(lambda w: _latent(rng, scale, latent_channels, w))},
    )


def example_inputs(spec: PartSpec, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Inputs at the profile's optimum, for tracing the export (timesteps stay float32)."""
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for name in spec.inputs:
        shape = spec.profile[name][1]
        if name == "timestep":
            tensors.append(torch.full(shape, 500.0, device=device))
        else:
            tensors.append(torch.randn(shape, generator=generator).to(device=device, dtype=dtype))
    return tuple(tensors)
