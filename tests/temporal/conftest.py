"""Tiny random models and engines for the temporal-stability tests (issue 18).

Cached attention installs processors on its engine's UNet, so every engine made here gets its
cache switched off again at teardown, and tests that compare a cache-on engine with a plain one
give the cache-on one its own models (`own_models=True`).
"""

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
    made: list[StreamEngine] = []

    def make(own_models: bool = False, **changes) -> StreamEngine:
        config = EngineConfig(**{**BASE, **changes})
        engine = StreamEngine(load_models(config) if own_models else tiny_models, config)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.update(cache_attention=False)


@pytest.fixture
def frames():
    """Distinct input frames, (1, 3, 64, 64) each, reproducible."""
    g = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, 64, 64, generator=g) for _ in range(8)]
