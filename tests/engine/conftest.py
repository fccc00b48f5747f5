"""One tiny random model for the whole engine suite; engines are cheap to build on top of it."""

from __future__ import annotations

import pytest
import torch

from engine import EngineConfig
from engine.stream import StreamEngine
from tests.tiny_models import BASE, load_tiny_models


@pytest.fixture(scope="session")
def tiny_models():
    return load_tiny_models()


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
