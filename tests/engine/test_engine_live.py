"""Live parameters: prompts, transitions, blends, validation that leaves state intact."""

from __future__ import annotations

import threading

import pytest
import torch
from engine_helpers import Recorder

from engine import t_index_from_strength
from engine.noise import seeded_noise
from engine.prompts import lerp, slerp


def test_prompt_encoded_once_per_distinct_text(make_engine, frames):
    eng = make_engine()
    before = eng.stats()["prompt_encodes"]
    for text in ["a", "b", "a", "b", "a"]:
        eng.update(prompt=text)
    assert eng.stats()["prompt_encodes"] == before + 2


@pytest.mark.parametrize("curve", ["linear", "slerp"])
def test_transition_halfway_is_the_interpolation(make_engine, frames, curve):
    eng = make_engine(t_index_list=[30], transition_frames=4, transition_curve=curve)
    rec = Recorder(eng)
    start = eng.prompt_embeds.clone()
    eng.update(prompt="a blue whale")
    target = eng._encoder.encode("a blue whale")
    eng(frames[0])
    eng(frames[1])  # 2 of 4 frames: halfway
    expected = (slerp if curve == "slerp" else lerp)(start, target, 0.5)
    torch.testing.assert_close(eng.prompt_embeds, expected)
    torch.testing.assert_close(rec.unet_in[-1][2][0], expected[0])
    assert not torch.allclose(expected, start) and not torch.allclose(expected, target)
    eng(frames[2])
    eng(frames[3])
    torch.testing.assert_close(eng.prompt_embeds, target)


def test_slerp_keeps_norm_between_equal_norm_vectors():
    a = torch.tensor([[[3.0, 0.0]]])
    b = torch.tensor([[[0.0, 3.0]]])
    mid = slerp(a, b, 0.5)
    assert torch.isclose(mid.norm(), torch.tensor(3.0))
    assert lerp(a, b, 0.5).norm() < 2.2


def test_weighted_prompt_is_weighted_mean(make_engine):
    eng = make_engine()
    eng.update(prompt=[("neon city", 0.7), ("forest", 0.3)])
    e1, e2 = eng._encoder.encode("neon city"), eng._encoder.encode("forest")
    torch.testing.assert_close(eng.prompt_embeds, 0.7 * e1 + 0.3 * e2)
    eng.update(prompt=[("neon city", 2), ("forest", 2)])  # weights are normalised
    torch.testing.assert_close(eng.prompt_embeds, 0.5 * e1 + 0.5 * e2)


def test_weighted_seed_blend(make_engine, frames):
    shape = (2, 4, 8, 8)
    n1, n2 = seeded_noise(1, shape), seeded_noise(2, shape)
    blend = seeded_noise([(1, 0.75), (2, 0.25)], shape)
    torch.testing.assert_close(blend, (0.75 * n1 + 0.25 * n2) / (0.75**2 + 0.25**2) ** 0.5)
    a = make_engine(seed=1, cfg_type="none")  # no residual carried between frames
    b = make_engine(seed=1, cfg_type="none")
    b.update(seed=[(1, 0.5), (9, 0.5)])
    assert not torch.allclose(a(frames[0]), b(frames[0]))
    b.update(seed=1)
    torch.testing.assert_close(a(frames[1]), b(frames[1]))


def test_unknown_and_bad_values_leave_state_intact(make_engine, frames):
    eng = make_engine(t_index_list=[20, 35], guidance_scale=1.4)
    eng(frames[0])
    before = (eng.guidance_scale, eng.delta, list(eng.t_index_list), eng.prompt, eng.seed)
    bad = [
        {"guidance": 2.0},
        {"guidance_scale": float("nan")},
        {"guidance_scale": "2"},
        {"delta": -1},
        {"seed": -3},
        {"seed": [(1, 0.0)]},
        {"t_index_list": [35, 20]},
        {"t_index_list": [60]},
        {"t_index_list": []},
        {"strength": 1.5},
        {"prompt": 3},
        {"prompt": [("a", -1)]},
        {"similarity_threshold": 2},
        {"max_skip_frame": 1.5},
        {"transition_frames": -1},
        {"guidance_scale": 2.0, "delta": "x"},  # one bad value spoils the whole update
        {"strength": 0.5, "t_index_list": [1]},
    ]
    for params in bad:
        with pytest.raises(ValueError) as info:
            eng.update(**params)
        assert "\n" not in str(info.value)
    assert (eng.guidance_scale, eng.delta, list(eng.t_index_list), eng.prompt, eng.seed) == before
    with pytest.raises(ValueError, match="unknown engine parameter.*guidance.*known: prompt"):
        eng.update(guidance=1)
    assert eng(frames[1]).shape == (1, 3, 64, 64)


def test_update_accepts_every_documented_key(make_engine, frames):
    eng = make_engine(t_index_list=[20, 35])
    eng.update(
        prompt="x",
        negative_prompt="y",
        guidance_scale=1.1,
        delta=0.5,
        seed=[(1, 1.0), (2, 1.0)],
        strength=0.4,
        similarity_filter=True,
        similarity_threshold=0.9,
        max_skip_frame=3,
        transition_frames=2,
    )
    assert eng.t_index_list == t_index_from_strength(0.4, 2, 50)
    assert eng(frames[0]).shape == (1, 3, 64, 64)


def test_strength_mapping():
    assert t_index_from_strength(0.3, 1, 50) == [35]
    assert t_index_from_strength(1.0, 4, 50) == [0, 12, 25, 38]
    for s in (0.0, 0.01, 0.5, 0.99, 1.0):
        for count in (1, 2, 3, 5):
            idx = t_index_from_strength(s, count, 50)
            assert len(idx) == count and idx == sorted(set(idx)) and idx[0] >= 0 and idx[-1] <= 49
    assert t_index_from_strength(0.8, 2, 50)[0] < t_index_from_strength(0.2, 2, 50)[0]
    with pytest.raises(ValueError):
        t_index_from_strength(1.2, 1, 50)


class _GatedEncoder:
    """The real text encoder behind a gate, recording the thread that runs it."""

    def __init__(self, encoder) -> None:
        self.encoder, self.gate, self.threads = encoder, threading.Event(), []

    @property
    def device(self):
        return self.encoder.device

    def __call__(self, ids):
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(30)
        return self.encoder(ids)


def test_new_prompts_encode_on_a_worker_and_frames_go_on_meanwhile(make_engine, frames):
    """Issue 16 item 6: with `encode_in_background`, `update` never runs the text encoder on the
    calling (engine) thread: the other values apply at once, frames keep coming with the old
    prompt, and the new embeddings are swapped in once encoded."""
    eng = make_engine(transition_frames=0)
    eng.encode_in_background = True
    gated = _GatedEncoder(eng._encoder.text_encoder)
    eng._encoder.text_encoder = gated
    old = eng.prompt_embeds.clone()
    eng.update(prompt="a lighthouse at night", guidance_scale=1.7)  # returns with the encoder held
    assert eng.guidance_scale == 1.7 and eng.prompt != "a lighthouse at night"
    for f in frames[:3]:
        assert eng(f).shape == (1, 3, 64, 64)
    assert torch.equal(eng.prompt_embeds, old)
    with pytest.raises(ValueError):  # bad input is still refused at once, on the caller's thread
        eng.update(prompt=3)
    gated.gate.set()
    assert eng.wait_for_updates(30)
    eng(frames[3])
    assert eng.prompt == "a lighthouse at night" and not torch.equal(eng.prompt_embeds, old)
    assert torch.equal(eng.prompt_embeds, eng._encoder.encode("a lighthouse at night"))
    assert gated.threads and all(t.startswith("prompt-encoder") for t in gated.threads)
    count = len(gated.threads)
    eng.update(prompt="a red fox")  # encoded before: applied at once, no worker involved
    assert eng.prompt == "a red fox" and torch.equal(eng.prompt_embeds, eng._encoder.encode("a red fox"))
    assert len(gated.threads) == count and eng.background_error is None


def _slerp_per_frame(a, b, t, eps=1e-6):
    """The slerp as it ran before issue 16 (everything recomputed every frame): the reference."""
    af, bf = a.float(), b.float()
    an = af / af.norm(dim=-1, keepdim=True).clamp_min(eps)
    bn = bf / bf.norm(dim=-1, keepdim=True).clamp_min(eps)
    dot = (an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    near = so.abs() < 1e-4
    safe = torch.where(near, torch.ones_like(so), so)
    wa = torch.where(near, torch.full_like(so, 1.0 - t), torch.sin((1.0 - t) * omega) / safe)
    wb = torch.where(near, torch.full_like(so, t), torch.sin(t * omega) / safe)
    return (wa * af + wb * bf).to(a.dtype)


def test_precomputed_slerp_path_equals_the_per_frame_slerp_exactly():
    from engine.prompts import SlerpPath

    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(1, 77, 32, generator=g), torch.randn(1, 77, 32, generator=g)
    b[0, :5] = a[0, :5] * 2  # some near-parallel tokens take the lerp branch
    path = SlerpPath(a, b)
    assert path.near.any() and not path.near.all()
    for t in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        assert torch.equal(path.at(t), _slerp_per_frame(a, b, t))
