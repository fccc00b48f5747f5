"""Latent feedback (issue 18): off is today's output bit for bit, on blends exactly the previous
output's latent where the new frame enters, live changes act on the next frame, regions blend
inside their masks only."""

from __future__ import annotations

import pytest
import torch

from engine.regions import Brush
from tests.engine.engine_helpers import Recorder


def _run(engine, frames):
    return [engine(f).clone() for f in frames]


def test_feedback_zero_is_todays_output_bit_for_bit(make_engine, frames):
    today = _run(make_engine(), frames)
    engine = make_engine()
    engine.update(feedback=0.6)
    assert not torch.equal(_run(engine, frames)[-1], today[-1])  # it did something while on
    engine.update(feedback=0.0)
    engine.reset()
    assert all(torch.equal(a, b) for a, b in zip(_run(engine, frames), today, strict=True))
    explicit = make_engine(feedback=0.0)
    assert all(torch.equal(a, b) for a, b in zip(_run(explicit, frames), today, strict=True))


def test_feedback_off_noises_the_vae_latent_exactly_as_before(make_engine, frames):
    engine = make_engine()
    rec = Recorder(engine)
    _run(engine, frames[:3])
    rows = engine._rows
    for encoded, (x, _t, _e) in zip(rec.encoded, rec.unet_in, strict=True):
        expected = torch.addcmul(rows.beta_noise[:1], rows.alpha_in[:1], encoded)
        assert torch.equal(x[:1], expected)


@pytest.mark.parametrize("cfg_type", ["self", "none"])
def test_feedback_blends_the_previous_outputs_latent_into_the_new_one(make_engine, frames, cfg_type):
    s = 0.35
    engine = make_engine(feedback=s, cfg_type=cfg_type)
    rec = Recorder(engine)
    _run(engine, frames[:4])
    rows = engine._rows
    # frame 0 has no previous output: it enters unblended
    assert torch.equal(
        rec.unet_in[0][0][:1], torch.addcmul(rows.beta_noise[:1], rows.alpha_in[:1], rec.encoded[0])
    )
    for i in range(1, 4):
        previous_raw = rec.decoded_in[i - 1]  # the previous output's x0, unscaled for the VAE
        mixed = (1 - s) * rec.encoded[i] + s * previous_raw
        expected = rows.beta_noise[:1] + rows.alpha_in[:1] * mixed
        torch.testing.assert_close(rec.unet_in[i][0][:1], expected, rtol=1e-5, atol=1e-6)


def test_feedback_in_a_two_stage_stream_batch_uses_the_finished_frame(make_engine, frames):
    engine = make_engine(feedback=0.5, t_index_list=[20, 40])
    rec = Recorder(engine)
    _run(engine, frames[:4])
    rows = engine._rows
    for i in range(1, 4):
        mixed = 0.5 * rec.encoded[i] + 0.5 * rec.decoded_in[i - 1]
        torch.testing.assert_close(rec.unet_in[i][0][:1], rows.beta_noise[:1] + rows.alpha_in[:1] * mixed)


def test_a_live_feedback_change_takes_effect_on_the_next_frame(make_engine, frames):
    plain = _run(make_engine(), frames)
    engine = make_engine()
    outs = _run(engine, frames[:3])
    assert all(torch.equal(a, b) for a, b in zip(outs, plain[:3], strict=True))
    engine.update(feedback=0.5)
    assert not torch.equal(engine(frames[3]), plain[3])
    assert engine.stats()["feedback"] == 0.5


def test_reset_forgets_the_previous_output(make_engine, frames):
    fresh = make_engine(feedback=0.5)
    first = fresh(frames[0]).clone()
    engine = make_engine(feedback=0.5)
    _run(engine, frames[1:4])
    engine.reset()
    assert torch.equal(engine(frames[0]), first)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.3", True, None])
def test_bad_feedback_is_refused_and_changes_nothing(make_engine, bad):
    engine = make_engine(feedback=0.25)
    with pytest.raises(ValueError, match="feedback must be a number in \\[0, 1\\]"):
        engine.update(feedback=bad, guidance_scale=3.0)
    assert engine.stats()["feedback"] == 0.25 and engine.guidance_scale == 1.2


def _left_half_brush(**kw) -> Brush:
    mask = torch.zeros(64, 64)
    mask[:, :32] = 1.0
    return Brush("a blue lake", mask, blur=0.0, **kw)


def _entries(engine, frames) -> list[torch.Tensor]:
    rec = Recorder(engine)
    _run(engine, frames)
    return [x[:1].clone() for x, _t, _e in rec.unet_in]


def test_a_brushs_feedback_blends_inside_its_mask_only(make_engine, frames):
    plain = make_engine()
    plain.update(regions=[_left_half_brush()])
    reactive = _entries(plain, frames[:3])
    brush = make_engine()
    brush.update(regions=[_left_half_brush(feedback=0.8)])
    locked = _entries(brush, frames[:3])
    inside, outside = (slice(None), slice(None), slice(None), slice(0, 4)), (..., slice(4, None))
    assert torch.equal(locked[0], reactive[0])  # no previous output yet
    for a, b in zip(locked[1:], reactive[1:], strict=True):
        assert torch.equal(a[outside], b[outside])
        assert not torch.allclose(a[inside], b[inside])


def test_the_backgrounds_feedback_blends_outside_the_brushes_only(make_engine, frames):
    plain = make_engine()
    plain.update(regions=[_left_half_brush()])
    reactive = _entries(plain, frames[:3])
    background = make_engine(feedback=0.8)  # /sd/feedback is the background's value
    background.update(regions=[_left_half_brush(feedback=0.0)])
    locked = _entries(background, frames[:3])
    inside, outside = (..., slice(0, 4)), (..., slice(4, None))
    for a, b in zip(locked[1:], reactive[1:], strict=True):
        assert torch.equal(a[inside], b[inside])
        assert not torch.allclose(a[outside], b[outside])


def test_the_feedback_map_follows_the_brush_weights(make_engine):
    engine = make_engine(feedback=0.2)
    engine.update(regions=[_left_half_brush(feedback=0.9)])
    strength = engine._temporal.feedback.strength_map[0, 0]
    torch.testing.assert_close(strength[:, :4], torch.full((8, 4), 0.9))
    torch.testing.assert_close(strength[:, 4:], torch.full((8, 4), 0.2))
    engine.update(regions=[])
    torch.testing.assert_close(engine._temporal.feedback.strength_map, torch.full((1, 1, 8, 8), 0.2))
