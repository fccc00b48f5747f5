"""Tiny random-weight diffusers modules (random:tiny's own, nothing downloaded) and a minimal
engine exposing only the accel seams, so backend tests need no text encoder or scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from diffusers import AutoencoderTiny, UNet2DConditionModel

from engine.accel.seams import module_seams
from engine.random_models import random_unet, random_vae

TEXT_DIM = 32
"""The tiny UNet's cross-attention width (random:tiny's text encoder size)."""


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return random_unet("tiny").eval()


def tiny_vae() -> AutoencoderTiny:
    torch.manual_seed(1)
    return random_vae("tiny", "tiny").eval()


@dataclass
class AccelConfig:
    """The `EngineConfig` fields accel reads, at test scale."""

    accel: str = "torch"
    engine_dir: str | None = None
    width: int = 64
    height: int = 64
    frame_buffer_size: int = 1
    t_index_list: list[int] = field(default_factory=lambda: [20, 35])
    use_denoising_batch: bool = True
    cfg_type: str = "self"
    tome_ratio: float = 0.0


class TinyEngine:
    """What `engine.accel.apply` touches on a StreamEngine: modules, device, dtype and seams."""

    def __init__(self) -> None:
        self.unet = tiny_unet()
        self.vae = tiny_vae()
        self.text_encoder = None
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.unet_fn, self.vae_encode_fn, self.vae_decode_fn = module_seams(self.unet, self.vae)


@pytest.fixture
def tiny_engine() -> TinyEngine:
    return TinyEngine()


def unet_inputs(batch: int = 2, h: int = 8, w: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 4, h, w, generator=g),
        torch.tensor([500.0, 250.0, 100.0, 50.0][:batch] + [10.0] * max(0, batch - 4)),
        torch.randn(batch, 77, TEXT_DIM, generator=g),
    )


def image_inputs(batch: int = 1, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, h, w, generator=g) * 2 - 1
