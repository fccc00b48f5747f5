"""CUDA-graph bookkeeping (capture once per shape, reuse, re-capture, fall back) and a real
torch.compile of the VAE decoder that recompiles only on a new shape."""

from __future__ import annotations

import threading

import torch

from engine.accel.compile_backend import apply_compile
from engine.accel.graphs import GraphedFn

from .conftest import TinyEngine


class RecordingCapturer:
    """Captures nothing: records what would be captured and replays the eager call."""

    def __init__(self, fail_on: tuple | None = None) -> None:
        self.captured: list[tuple] = []
        self.fail_on = fail_on

    def __call__(self, fn, example):
        shapes = tuple(tuple(a.shape) for a in example)
        if shapes == self.fail_on:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captured.append(shapes)
        return lambda args: fn(*args)


def test_graph_per_shape_reused_and_recaptured_on_change():
    capturer = RecordingCapturer()
    graphed = GraphedFn(lambda x, y: x * 2 + y, capturer, max_graphs=2)
    a, b, c = torch.ones(2, 3), torch.ones(4, 3), torch.ones(5, 3)
    assert torch.equal(graphed(a, a), a * 3)
    graphed(a, a)
    assert capturer.captured == [((2, 3), (2, 3))], "same shape: replayed, not re-captured"
    graphed(b, b)
    assert len(capturer.captured) == 2, "new shape: new graph"
    graphed(a, a)
    assert len(capturer.captured) == 2, "earlier shape still cached"
    graphed(c, c)  # evicts the least recently used (b)
    graphed(b, b)
    assert len(capturer.captured) == 4 and graphed.captures == 4
    assert graphed(a, a.to(torch.float64)).dtype == torch.float64, "dtype is part of the signature"


def test_failed_capture_falls_back_to_eager_for_that_shape():
    capturer = RecordingCapturer(fail_on=((3,),))
    graphed = GraphedFn(lambda x: x + 1, capturer)
    x = torch.zeros(3)
    assert torch.equal(graphed(x), x + 1)
    assert torch.equal(graphed(x), x + 1)
    assert capturer.captured == [] and ((3,), torch.float32, "cpu") in {s[0] for s in graphed.failed}
    graphed(torch.zeros(4))
    assert capturer.captured == [((4,),)]


def test_real_torch_compile_recompiles_only_on_new_shape():
    engine = TinyEngine()
    graphs_compiled: list[tuple] = []

    def counting_backend(gm, example_inputs):
        graphs_compiled.append(tuple(tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)))
        return gm.forward

    torch._dynamo.reset()
    eager = engine.vae_decode_fn
    apply_compile(engine, torch.device("cpu"), backend=counting_backend)
    small, tall = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 12, 8)
    with torch.no_grad():
        torch.testing.assert_close(engine.vae_decode_fn(small), eager(small))
        after_first = len(graphs_compiled)
        engine.vae_decode_fn(small)
        assert len(graphs_compiled) == after_first > 0
        engine.vae_decode_fn(tall)
        after_second = len(graphs_compiled)
        assert after_second > after_first, "a new shape compiles a new graph"
        engine.vae_decode_fn(small)
        engine.vae_decode_fn(tall)
        assert len(graphs_compiled) == after_second, "known shapes never recompile"
    torch._dynamo.reset()


def test_static_inputs_copy_only_what_changed():
    """Graph replays and TensorRT runs refill their input buffers only from tensors that are new or
    were written since the last copy (the engine's timesteps and text rows change on updates only)."""
    from engine.accel.graphs import StaticInputs

    bufs = [torch.zeros(4), torch.zeros(2)]
    latents, timesteps = torch.zeros(4), torch.tensor([5.0, 6.0])
    static = StaticInputs(bufs)
    static.fill([latents, timesteps])
    assert static.copies == 2 and torch.equal(bufs[1], timesteps)
    with torch.inference_mode():  # the engine writes its buffers under inference mode
        latents.add_(1.0)
        static.fill([latents, timesteps])
    assert static.copies == 3 and torch.equal(bufs[0], latents)  # only the written one
    timesteps[0] = 9.0  # an update
    static.fill([latents, timesteps])
    assert static.copies == 4 and bufs[1][0] == 9.0
    static.fill([latents.clone(), timesteps])  # another tensor, same values: copied
    assert static.copies == 5
    with torch.inference_mode():
        frozen = torch.ones(2)  # an inference tensor keeps no version: always copied
    static.fill([latents, frozen])
    static.fill([latents, frozen])
    assert static.copies == 8 and torch.equal(bufs[1], frozen)


def test_background_compile_precompiles_every_reachable_shape_then_swaps():
    """Issue 16 item 5: the compile backend compiles off the engine thread, for the UNet batch with
    and without the CFG rows (guidance either side of 1.0) and the VAE's frame batch, while the
    engine keeps serving with its torch seams; then the compiled seams are swapped in."""
    from engine import EngineConfig
    from engine.accel import AccelStatus
    from engine.models import load_models
    from engine.stream import StreamEngine

    config = EngineConfig(model="random:tiny", width=64, height=64, t_index_list=[20, 35], cfg_type="full")
    engine = StreamEngine(load_models(config), config)
    eager = (engine.unet_fn, engine.vae_encode_fn, engine.vae_decode_fn)
    shapes: list[tuple] = []
    threads: set[str] = set()
    release = threading.Event()

    def compiler(fn, dynamic):
        def compiled(*args, **kwargs):
            release.wait(30)  # hold the "compile" until the engine has served a frame meanwhile
            threads.add(threading.current_thread().name)
            tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            shapes.append(tuple(tuple(t.shape) for t in tensors))
            return fn(*args, **kwargs)

        return compiled

    status = AccelStatus(requested="compile", active="torch")
    assert (
        apply_compile(engine, torch.device("cpu"), compiler=compiler, background=True, status=status)
        == "torch"
    )
    assert status.building and (engine.unet_fn, engine.vae_encode_fn, engine.vae_decode_fn) == eager
    assert engine(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)  # served by torch meanwhile
    release.set()
    assert status.wait(60) and status.active == "compile" and status.error is None and not status.building
    assert threads == {"compile-build"}
    unet_batches = {s[0][0] for s in shapes if len(s) == 3}
    assert unet_batches == {2, 4}  # n*f text rows; plus n*f negative rows under full CFG
    assert ((1, 3, 64, 64),) in shapes and ((1, 4, 8, 8),) in shapes
    assert engine.unet_fn is not eager[0]
    calls = len(shapes)
    engine(torch.rand(1, 3, 64, 64))
    assert len(shapes) == calls + 3  # the engine now runs through the compiled seams
