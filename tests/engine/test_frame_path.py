"""Issue 16, proven on the CPU: the per-frame path reads nothing back from the device, launches a
budgeted number of glue kernels, keeps every buffer at one address, and traces as one graph that
live parameter changes do not recompile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge.frames import TensorBridge
from tests.engine.host_reads import HostReads, exclude_seams

CFG = ("none", "full", "self", "initialize")
T_INDEX = [20, 35]


def _image(seed: int) -> list[np.ndarray]:
    return [np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)]


@pytest.mark.parametrize("similarity_filter", [False, True], ids=["filter-off", "filter-on"])
@pytest.mark.parametrize("cfg_type", CFG)
def test_engine_and_conversions_never_read_the_device(make_engine, cfg_type, similarity_filter):
    """Engine + TensorBridge on the engine thread, N frames: no scalar read, no download, no
    `.numpy()`; the pixels are taken by another thread. With the filter on, a still input is
    skipped (the skip path is exercised) and the old `float(cos)` would count here."""
    eng = make_engine(
        cfg_type=cfg_type,
        guidance_scale=1.5,
        t_index_list=T_INDEX,
        similarity_filter=similarity_filter,
        similarity_threshold=0.5,
        max_skip_frame=3,
    )
    bridge = TensorBridge("cpu")
    still, moving = _image(0), [_image(i) for i in range(1, 7)]
    for img in (still, still):  # warm up: the filter's buffers, the first frames
        bridge.download(eng(bridge.to_tensor(img))).images()
    reads = HostReads()
    pending = []
    with reads.python_escapes(), reads:
        for img in [still] * 6 + moving:
            pending.append(bridge.download(eng(bridge.to_tensor(img))))
    assert reads.reads() == {"scalar_reads": 0, "to_host": 0, "host_calls": 0}
    assert all(p.images()[0].shape == (64, 64, 3) for p in pending)
    assert (eng.stats()["skipped"] > 0) == similarity_filter


def test_the_counter_sees_what_it_must():
    """The counter is not blind: each escape it claims to count is counted."""
    t = torch.rand(4)
    for mode in (torch.no_grad, torch.inference_mode):
        reads = HostReads()
        with reads.python_escapes(), reads, mode():
            float(t.sum())
            bool(t.max() > 0)
            int(t.argmax())
            t.numpy()
            t.tolist()
        assert reads.scalar_reads == 3 and reads.host_calls >= 2, mode


# Glue kernels per frame outside the UNet and VAE calls (fbs 1, two stages, guidance 1.5): the
# input scale (1), the output scale and clamp (2), the step's few addcmuls and, with residual CFG,
# the residual update. A new kernel on the hot path fails this; lower it when you remove one.
KERNEL_BUDGET = {"none": 7, "full": 10, "self": 13, "initialize": 15}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_one_kernel_scalings_equal_the_two_kernel_ones_bit_for_bit(dtype):
    """2x - 1 and 0.5x + 0.5 as one `add(c, x, alpha)` each: the power-of-two scaling is exact,
    so both round once, exactly as the mul-then-add pairs they replaced."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200_000, generator=g).to(dtype)
    y = (torch.randn(200_000, generator=g) * 3).to(dtype)
    assert torch.equal(torch.add(torch.tensor(-1.0, dtype=dtype), x, alpha=2.0), x.mul(2.0).sub_(1.0))
    fused = torch.add(torch.tensor(0.5, dtype=dtype), y, alpha=0.5).clamp_(0.0, 1.0)
    assert torch.equal(fused, y.mul(0.5).add_(0.5).clamp_(0.0, 1.0))


@pytest.mark.parametrize("cfg_type", CFG)
def test_glue_kernel_budget_per_frame(make_engine, cfg_type):
    eng = make_engine(cfg_type=cfg_type, guidance_scale=1.5, t_index_list=T_INDEX)
    bridge = TensorBridge("cpu")
    for i in range(2):
        eng(bridge.to_tensor(_image(i)))
    reads = HostReads()
    exclude_seams(eng, reads)
    frames = 5
    with reads:
        for i in range(frames):
            bridge.download(eng(bridge.to_tensor(_image(i))))
    assert reads.kernels <= KERNEL_BUDGET[cfg_type] * frames, dict(reads.ops)
    assert reads.kernels >= 5 * frames  # the counter does see the glue


# Held by the engine but not read by the step: the last output (handed out), and the sources an
# update copies into the step's own buffers (stage noise on the CPU, the negative embeddings).
NOT_STEP = {"_last", "_stage_noise", "_negative_embeds"}


def _buffers(eng) -> dict[str, int]:
    """data_ptr of every tensor the step reads or writes that the engine holds between frames."""
    out = {}
    holders = {"engine": eng, "batch": eng._batch, "rows": eng._rows}
    holders.update({f"stage{i}": b for i, b in enumerate(eng._stages)})
    for name, holder in holders.items():
        for key, value in vars(holder).items():
            if isinstance(value, torch.Tensor) and key not in NOT_STEP:
                out[f"{name}.{key}"] = value.data_ptr()
    return out


@pytest.mark.parametrize("cfg_type", CFG)
def test_buffers_keep_their_addresses_across_frames_and_live_updates(make_engine, cfg_type):
    """The precondition of capturing the step: every buffer, and every tensor handed to the UNet,
    stays where it is, frame after frame and across guidance/delta/seed/strength/prompt updates."""
    eng = make_engine(cfg_type=cfg_type, guidance_scale=1.5, t_index_list=T_INDEX)
    unet_args: list[tuple[int, ...]] = []
    unet = eng.unet_fn

    def recording(x, t, e):
        unet_args.append((x.data_ptr(), t.data_ptr(), e.data_ptr()))
        return unet(x, t, e)

    eng.unet_fn = recording
    bridge = TensorBridge("cpu")
    eng(bridge.to_tensor(_image(0)))
    before = _buffers(eng)
    assert {"engine._stock", "engine._g", "batch.latents", "rows.noise"} <= set(before)
    updates = [{"guidance_scale": 2.5}, {"delta": 0.5}, {"seed": 9}, {"strength": 0.6}, {"prompt": "x"}]
    for i, update in enumerate([{}, {}, *updates]):
        eng.update(**update)
        eng(bridge.to_tensor(_image(i)))
        assert _buffers(eng) == before, update
    assert len(set(unet_args)) == 1


@pytest.fixture
def dynamo():
    torch._dynamo.reset()
    yield torch._dynamo
    torch._dynamo.reset()


@pytest.mark.parametrize("cfg_type", ["self", "full"])
def test_the_whole_step_is_one_graph_and_live_changes_do_not_recompile(make_engine, dynamo, cfg_type):
    from torch._dynamo.testing import CompileCounter

    eng = make_engine(cfg_type=cfg_type, guidance_scale=1.5, t_index_list=T_INDEX, transition_frames=0)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        explained = dynamo.explain(eng._step)(images)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
        dynamo.reset()
        counter = CompileCounter()
        step = torch.compile(eng._step, backend=counter)
        step(images)
        changes = [
            {"prompt": "a blue whale"},
            {"guidance_scale": 3.0},
            {"delta": 0.3},
            {"seed": 12},
            {"similarity_filter": True},
            {"strength": 0.55},
        ]
        for change in changes:
            eng.update(**change)
            step(images)
    assert counter.frame_count == 1, f"recompiled {counter.frame_count - 1} times"


def test_a_live_t_index_change_only_picks_rows_of_the_precomputed_table(make_engine, tiny_models):
    """Issue 16 item 6: no scheduler maths on an update (the table of all 50 indices is made once),
    and the new coefficients equal the scheduler's own for those indices."""
    from engine.schedule import stage_coefficients

    eng = make_engine(t_index_list=[20, 35])
    sched = eng.scheduler

    def refuse(*_a, **_k):
        raise AssertionError("scheduler maths on a live update")

    real = sched.set_timesteps, sched.get_scalings_for_boundary_condition_discrete
    sched.set_timesteps = sched.get_scalings_for_boundary_condition_discrete = refuse
    try:
        eng.update(t_index_list=[10, 42])
        eng.update(strength=0.7)
    finally:
        sched.set_timesteps, sched.get_scalings_for_boundary_condition_discrete = real
    expected = stage_coefficients(sched, eng.t_index_list, 50)
    for name in ("timesteps", "alpha", "beta", "c_skip", "c_out"):
        assert torch.equal(getattr(eng._stage, name), getattr(expected, name)), name
    alpha = expected.alpha.repeat_interleave(1).view(-1, 1, 1, 1).to(torch.float32)
    assert torch.equal(eng._rows.alpha, alpha)


class _RecordingCapturer:
    """Captures nothing: counts captures and replays the eager call (the bookkeeping under test)."""

    def __init__(self) -> None:
        self.captures = 0

    def __call__(self, fn, example):
        self.captures += 1
        return lambda args: fn(*args)


def test_step_capture_is_keyed_by_shape_cfg_rows_buffers_and_seams(make_engine, frames):
    """With `step_capturer` set the whole step replays from one capture, recaptured exactly when
    a captured graph would be stale: CFG rows appear (guidance crosses 1.0 under full), the buffers
    are reallocated (a new t_index length), or the seams are swapped (TensorRT taking over)."""
    eager = make_engine(cfg_type="full", guidance_scale=1.5, t_index_list=T_INDEX)
    graphed = make_engine(cfg_type="full", guidance_scale=1.5, t_index_list=T_INDEX)
    graphed.step_capturer = capturer = _RecordingCapturer()
    for f in frames[:3]:
        torch.testing.assert_close(graphed(f), eager(f), rtol=0, atol=0)
    assert capturer.captures == 1
    for eng in (eager, graphed):
        eng.update(guidance_scale=2.0, delta=0.5, seed=5)  # device values: the same graph
    torch.testing.assert_close(graphed(frames[3]), eager(frames[3]), rtol=0, atol=0)
    assert capturer.captures == 1
    graphed.update(guidance_scale=1.0)  # no CFG rows: another batch shape
    graphed(frames[4])
    assert capturer.captures == 2
    graphed.update(guidance_scale=2.0)  # back: that graph is kept
    graphed(frames[4])
    assert capturer.captures == 2
    graphed.update(t_index_list=[10, 25, 40])  # new buffers: every graph is stale
    graphed(frames[5])
    assert capturer.captures == 3
    unet = graphed.unet_fn
    graphed.unet_fn = lambda x, t, e: unet(x, t, e)  # a seam swap
    graphed(frames[5])
    assert capturer.captures == 4
