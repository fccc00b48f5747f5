"""`engine.accel.apply` on a real `StreamEngine` (random:tiny): TensorRT seams (fake TensorRT,
onnxruntime underneath) give the same frames as torch, and frames keep coming during a build."""

from __future__ import annotations

import pytest
import torch

import engine.accel as accel
from engine import EngineConfig
from engine.models import load_models
from engine.stream import StreamEngine

from .fake_tensorrt import make_fake_tensorrt

BASE = dict(model="random:tiny", width=64, height=64, prompt="a red fox", seed=3, t_index_list=[20, 35])


@pytest.fixture(scope="module")
def models():
    return load_models(EngineConfig(**BASE))


def _frames(n: int = 4):
    g = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, 64, 64, generator=g) for _ in range(n)]


def test_tensorrt_seams_match_torch_frame_for_frame(models, tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "_gpu_present", lambda device: True)  # CUDA can't exist here
    config = EngineConfig(**BASE, accel="tensorrt", engine_dir=str(tmp_path))
    reference = StreamEngine(models, EngineConfig(**BASE, accel="torch"))
    assert accel.apply(reference, reference.config) == "torch"
    fast = StreamEngine(models, config)
    trt = make_fake_tensorrt()
    assert accel.apply(fast, config, background=False, trt=trt) == "tensorrt"
    with torch.no_grad():
        for frame in _frames():
            torch.testing.assert_close(fast(frame), reference(frame), atol=2e-3, rtol=1e-3)
    assert fast.stats()["frames"] == 4


def test_frames_flow_while_engines_build(models, tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "_gpu_present", lambda device: True)
    config = EngineConfig(**BASE, accel="auto", engine_dir=str(tmp_path))
    eng = StreamEngine(models, config)
    assert accel.apply(eng, config, trt=make_fake_tensorrt()) == "torch"
    served = 0
    with torch.no_grad():
        for frame in _frames(3):  # served by torch, or by TensorRT once swapped in: never missing
            out = eng(frame)
            assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
            served += 1
    assert eng.accel_status.wait(120) and eng.accel_status.active == "tensorrt"
    with torch.no_grad():
        assert torch.isfinite(eng(_frames(1)[0])).all()
    assert served == 3
