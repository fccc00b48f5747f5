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
from tests.tiny_models import BASE, load_tiny_models


@pytest.fixture(scope="session")
def tiny_models():
    return load_tiny_models()


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
