"""GPU tests: collected only where CUDA is available (run by `python -m bridge.bench.gpu`).

On a machine without CUDA these files are not collected at all (rather than skipped: CI treats a
skip as a failure), and the session header says so.
"""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header(config) -> str:
    return "tests/gpu: " + ("collected (CUDA)" if CUDA else "not collected: no CUDA device here")


BASE = dict(model="random:tiny", width=64, height=64, prompt="a red fox", negative_prompt="blurry", seed=3)


@pytest.fixture(scope="session")
def cuda_models():
    from engine import EngineConfig
    from engine.models import load_models

    return load_models(EngineConfig(**BASE, device="cuda", dtype="float16"))


@pytest.fixture
def make_cuda_engine(cuda_models):
    from engine import EngineConfig
    from engine.stream import StreamEngine

    def make(**changes):
        return StreamEngine(
            cuda_models, EngineConfig(**{**BASE, "device": "cuda", "dtype": "float16", **changes})
        )

    return make
