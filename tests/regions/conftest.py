"""A tiny random-weight engine for the regions suite (64 x 64 frames, 8 x 8 latents)."""

from __future__ import annotations

import pytest
import torch

from engine import EngineConfig

BASE = dict(model="random:tiny", width=64, height=64, prompt="a city", negative_prompt="blurry", seed=5)


@pytest.fixture(scope="session")
def region_models():
    from engine.models import load_models

    torch.set_num_threads(1)
    return load_models(EngineConfig(**BASE))


@pytest.fixture
def make_engine(region_models):
    from engine.stream import StreamEngine

    def make(**changes):
        return StreamEngine(region_models, EngineConfig(**{**BASE, **changes}))

    return make


@pytest.fixture
def frames():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(1, 3, 64, 64, generator=g) for _ in range(4)]


def left_half(h: int = 8, w: int = 8) -> torch.Tensor:
    m = torch.zeros(h, w)
    m[:, : w // 2] = 1
    return m
