"""Issue 16 on a real GPU: no sync in the frame path, the asynchronous download, one graph per step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge.frames import TensorBridge
from engine.accel.compile_backend import graph_step

CFG = ("none", "full", "self", "initialize")


def _images(count: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)] for _ in range(count)]


@pytest.mark.parametrize("similarity_filter", [False, True])
@pytest.mark.parametrize("cfg_type", CFG)
def test_the_frame_path_never_syncs(make_cuda_engine, cfg_type, similarity_filter):
    """Upload, engine and download under sync debug mode "error": any sync raises."""
    eng = make_cuda_engine(
        cfg_type=cfg_type,
        guidance_scale=1.5,
        t_index_list=[20, 35],
        similarity_filter=similarity_filter,
        similarity_threshold=0.5,
    )
    bridge = TensorBridge("cuda", torch.float16)
    frames = _images(12)
    for img in frames[:3]:
        bridge.download(eng(bridge.to_tensor(img))).images()
    torch.cuda.synchronize()
    pending = []
    torch.cuda.set_sync_debug_mode("error")
    try:
        for img in frames[3:] + [frames[-1]] * 6:
            pending.append(bridge.download(eng(bridge.to_tensor(img))))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(p.images()[0].shape == (64, 64, 3) for p in pending)
    if similarity_filter:
        assert eng.stats()["skipped"] > 0


def test_download_equals_the_synchronous_conversion_and_flags_nan():
    bridge = TensorBridge("cuda", torch.float16)
    t = torch.rand(2, 3, 48, 64, device="cuda", dtype=torch.float16)
    expected = t.permute(0, 2, 3, 1).mul(255.0).clamp_(0.0, 255.0).add_(0.5).to(torch.uint8).cpu().numpy()
    pending = bridge.download(t)
    got = pending.images()
    assert pending.ready() and all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    t[1, 2, 5, 5] = float("nan")
    with pytest.raises(FloatingPointError):
        bridge.download(t).images()


def test_upload_staging_alternates_and_round_trips():
    bridge = TensorBridge("cuda", torch.float16)
    frames = _images(5, seed=3)
    for img in frames:
        back = bridge.to_uint8(bridge.to_tensor(img))[0]
        assert np.abs(back.astype(int) - img[0].astype(int)).max() <= 1  # fp16 of k/255
    assert len(bridge._staging) == 2


@pytest.mark.parametrize("cfg_type", ["none", "self", "initialize", "full"])
def test_the_whole_step_replays_as_one_cuda_graph(make_cuda_engine, cfg_type):
    """The step captured whole (stable buffers, device scalars) gives what the eager step gives."""
    common = dict(cfg_type=cfg_type, guidance_scale=1.5, t_index_list=[20, 35])
    eager, graphed = make_cuda_engine(**common), make_cuda_engine(**common)
    bridge = TensorBridge("cuda", torch.float16)
    frames = [bridge.to_tensor(img).mul(2).sub_(1) for img in _images(6, seed=5)]
    step = graph_step(graphed._step)
    with torch.inference_mode(False), torch.no_grad():
        out_g = [step(frames[0])]  # 3 warm-up calls + the replay: 4 steps on frame 0
        out_e = [eager._step(frames[0]) for _ in range(4)][-1:]
        for x in frames[1:]:
            out_g.append(step(x))
            out_e.append(eager._step(x))
        eager.update(guidance_scale=2.0, delta=0.7)  # live values reach the replayed graph
        graphed.update(guidance_scale=2.0, delta=0.7)
        out_g.append(step(frames[1]))
        out_e.append(eager._step(frames[1]))
    assert step.captures == 1
    for g, e in zip(out_g, out_e, strict=True):
        torch.testing.assert_close(g.float(), e.float(), atol=2e-2, rtol=2e-2)
    assert not torch.allclose(out_g[-1].float(), out_g[-2].float())


def test_engine_step_capturer_captures_once_and_serves(make_cuda_engine):
    from engine.accel.graphs import CudaGraphCapturer

    eng = make_cuda_engine(cfg_type="self", guidance_scale=1.5, t_index_list=[20, 35])
    eng.step_capturer = CudaGraphCapturer()
    bridge = TensorBridge("cuda", torch.float16)
    outs = [bridge.to_uint8(eng(bridge.to_tensor(img)))[0] for img in _images(8, seed=7)]
    assert len(eng._step_graphs) == 1 and None not in eng._step_graphs.values()  # captured, not failed
    assert all(o.shape == (64, 64, 3) for o in outs) and not np.array_equal(outs[-1], outs[-2])
