"""Fixtures of the ControlNet suite: one tiny random model per session, engines with nets on it."""

from __future__ import annotations

import pytest
import torch
from cn_helpers import bridge_conftest

from engine import EngineConfig
from engine.controlnet import build_stack
from engine.stream import StreamEngine
from tests.tiny_models import BASE, load_tiny_models


@pytest.fixture(scope="session")
def tiny_models():
    return load_tiny_models()


@pytest.fixture
def make_engine(tiny_models):
    """make(controlnets=[ControlNetSpec(...), ...], **engine config changes) -> a StreamEngine."""

    def make(controlnets=(), **changes) -> StreamEngine:
        config = EngineConfig(**{**BASE, **changes}, controlnets=list(controlnets))
        engine = StreamEngine(tiny_models, config)
        if controlnets:
            engine.set_controlnets(build_stack(tiny_models, config))
        return engine

    return make


@pytest.fixture
def frames():
    """Distinct input frames (1, 3, 64, 64) with some shapes in them (edges for canny), reproducible."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(6):
        img = torch.rand(1, 3, 64, 64, generator=g) * 0.2
        img[:, :, 10 + 4 * i : 40 + 2 * i, 8 + 3 * i : 30 + 3 * i] += 0.7
        out.append(img.clamp(0, 1))
    return out


ndi_sender = bridge_conftest.ndi_sender  # the bridge suite's NDI test sender (see cn_helpers)
