"""One tiny random model for the whole engine suite; engines are cheap to build on top of it."""

from __future__ import annotations

import pytest
import torch

from engine import EngineConfig
from engine.models import load_models
from engine.stream import StreamEngine

BASE = dict(model="random:tiny", width=64, height=64, prompt="a red fox", negative_prompt="blurry", seed=3)


@pytest.fixture(scope="session")
def tiny_models():
    torch.set_num_threads(1)  # tiny convs: threads only contend on a shared 2-core machine
    return load_models(EngineConfig(**BASE))


@pytest.fixture
def make_engine(tiny_models):
    def make(**changes) -> StreamEngine:
        return StreamEngine(tiny_models, EngineConfig(**{**BASE, **changes}))

    return make


@pytest.fixture
def frames():
    """A few distinct input frames, (1, 3, 64, 64) each, reproducible."""
    g = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, 64, 64, generator=g) for _ in range(6)]
