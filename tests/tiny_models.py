"""The one tiny random model the engine, ControlNet and temporal suites build their engines on."""

from __future__ import annotations

import torch

from engine import EngineConfig
from engine.models import Models, load_models

BASE = dict(model="random:tiny", width=64, height=64, prompt="a red fox", negative_prompt="blurry", seed=3)
"""The engine configuration those suites start from (tests change fields on top of it)."""


def load_tiny_models() -> Models:
    torch.set_num_threads(1)  # tiny convs: threads only contend on a shared 2-core machine
    return load_models(EngineConfig(**BASE))
