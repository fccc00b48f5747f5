"""Cached attention under the accelerated backends (issue 18): torch.compile traces the UNet
with the cache in it (one graph break per self-attention layer, no recompiles once the cache is
full) and computes what eager does; the backends that can't run it say so in one line."""

from __future__ import annotations

import logging

import pytest
import torch
from torch._dynamo.utils import counters

from engine import EngineConfig, load_engine
from engine.accel import AccelStatus
from engine.accel.compile_backend import apply_compile, graph_step
from engine.accel.graphs import GraphedFn

CONFIG = EngineConfig(
    model="random:tiny", width=64, height=64, accel="torch", cache_attention=True, cache_frames=2
)


def _dynamo(module, **options):
    """torch.compile's graph capture without a code generator: cheap on a shared CPU."""
    return torch.compile(module, backend="eager", **options)


def test_compiled_unet_with_the_cache_matches_eager_and_stops_recompiling(frames):
    eager = load_engine(CONFIG)
    expected = [eager(f).clone() for f in frames[:3]]
    torch._dynamo.reset()
    counters.clear()
    engine = load_engine(CONFIG)
    apply_compile(engine, torch.device("cpu"), compiler=_dynamo)
    got = [engine(f).clone() for f in frames[:3]]
    assert [s.failed for s in (engine.unet_fn, engine.vae_encode_fn, engine.vae_decode_fn)] == [None] * 3
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert engine.stats()["cache_entries"] == 2
    graphs = counters["stats"]["unique_graphs"]
    for f in frames[3:6]:
        engine(f)
    assert counters["stats"]["unique_graphs"] == graphs  # the cache full: no new graph


def test_tensorrt_refuses_the_cache_in_one_line(make_engine):
    engine = make_engine()
    engine.accel_status = AccelStatus(requested="tensorrt", active="tensorrt")
    with pytest.raises(ValueError, match="isn't exported to TensorRT yet") as err:
        engine.update(cache_attention=True)
    assert "\n" not in str(err.value) and not engine.stats()["cache_attention"]


def test_cuda_graph_seams_refuse_the_cache_and_a_configured_one_is_switched_off(make_engine, caplog):
    engine = make_engine()
    engine.unet_fn = graph_step(engine.unet_fn)  # what --accel compile installs on CUDA
    assert isinstance(engine.unet_fn, GraphedFn)
    with pytest.raises(ValueError, match="can't run inside CUDA graphs yet"):
        engine.update(cache_attention=True)
    configured = make_engine(cache_attention=True)
    configured.unet_fn = graph_step(configured.unet_fn)
    with caplog.at_level(logging.WARNING):
        why = configured.settle_temporal_backend()
    assert why and "CUDA graphs" in why and not configured.stats()["cache_attention"]
    assert make_engine(cache_attention=True).settle_temporal_backend() is None
