"""Cached attention (issue 18): the processor's arithmetic checked by hand, off is today's
output exactly, the cache is bounded and flat over 500 frames, live changes act on the next
frames, and anything that restarts the stream empties the cache."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from engine.temporal import AttentionCache, CachedSelfAttention, CacheSlot
from engine.temporal.cached_attention import self_attention_names, slot_of


def _attention(heads: int = 2, dim_head: int = 4) -> Attention:
    torch.manual_seed(7)
    return Attention(query_dim=heads * dim_head, heads=heads, dim_head=dim_head).eval()


def _by_hand(attn: Attention, x: torch.Tensor, keys_from: list[torch.Tensor]) -> torch.Tensor:
    """softmax(q K^T / sqrt(d)) V over the concatenated sequence, head by head, then out-proj."""
    b, t, _ = x.shape
    h = attn.heads
    q = attn.to_q(x)
    k = torch.cat([attn.to_k(s) for s in keys_from], dim=1)
    v = torch.cat([attn.to_v(s) for s in keys_from], dim=1)
    d = q.shape[-1] // h
    out = torch.empty_like(q)
    for head in range(h):
        cols = slice(head * d, (head + 1) * d)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d)
        out[..., cols] = scores.softmax(dim=-1) @ v[..., cols]
    return attn.to_out[1](attn.to_out[0](out))


def _cached(attn: Attention, cache: AttentionCache) -> None:
    slot = CacheSlot()
    slot.cache = cache
    attn.set_processor(CachedSelfAttention(slot, "layer", AttnProcessor2_0()))


def _frame(attn, cache, x):
    cache.begin_frame()
    out = attn(x)
    cache.end_frame()
    return out


@torch.no_grad()
def test_with_its_own_kv_cached_it_is_attention_over_the_doubled_sequence():
    attn = _attention()
    cache = AttentionCache(frames=2)
    _cached(attn, cache)
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(1))
    first = _frame(attn, cache, x)
    torch.testing.assert_close(first, _by_hand(attn, x, [x]))  # empty cache: plain attention
    assert cache.entries == 1
    again = _frame(attn, cache, x)
    torch.testing.assert_close(again, _by_hand(attn, x, [x, x]))


@torch.no_grad()
def test_it_attends_to_the_cached_frames_of_the_same_rows():
    attn = _attention()
    cache = AttentionCache(frames=2)
    _cached(attn, cache)
    g = torch.Generator().manual_seed(2)
    a, b, c = (torch.randn(2, 6, 8, generator=g) for _ in range(3))
    _frame(attn, cache, a)
    _frame(attn, cache, b)
    out = _frame(attn, cache, c)
    torch.testing.assert_close(out, _by_hand(attn, c, [c, a, b]))
    assert not torch.allclose(out, _by_hand(attn, c, [c]))
    later = _frame(attn, cache, a)  # the ring is full: c replaced a, the oldest
    torch.testing.assert_close(later, _by_hand(attn, a, [a, c, b]))
    assert cache.entries == 2


@torch.no_grad()
def test_a_new_batch_shape_starts_a_fresh_ring():
    attn = _attention()
    cache = AttentionCache(frames=3)
    _cached(attn, cache)
    g = torch.Generator().manual_seed(3)
    _frame(attn, cache, torch.randn(2, 6, 8, generator=g))
    bigger = torch.randn(2, 10, 8, generator=g)  # another resolution: more tokens
    torch.testing.assert_close(_frame(attn, cache, bigger), _by_hand(attn, bigger, [bigger]))


def _run(engine, frames):
    return [engine(f).clone() for f in frames]


def test_cache_off_is_todays_output_and_the_unets_own_processors(make_engine, frames):
    today = _run(make_engine(), frames)
    engine = make_engine(own_models=True)
    originals = dict(engine.unet.attn_processors)
    engine.update(cache_attention=True)
    names = self_attention_names(engine.unet)
    assert names and all(isinstance(engine.unet.attn_processors[n], CachedSelfAttention) for n in names)
    assert not torch.equal(_run(engine, frames)[-1], today[-1])
    engine.update(cache_attention=False)
    assert all(engine.unet.attn_processors[n] is p for n, p in originals.items())
    engine.reset()
    assert all(torch.equal(a, b) for a, b in zip(_run(engine, frames), today, strict=True))


def test_engines_sharing_a_unet_keep_their_own_caches(make_engine, frames):
    today = _run(make_engine(), frames)
    cached_alone = _run(make_engine(own_models=True, cache_attention=True), frames)
    plain, cached, other = make_engine(), make_engine(cache_attention=True), make_engine()
    assert cached.unet is plain.unet
    outs = {"plain": [], "cached": [], "other": []}
    for f in frames:  # interleaved, as the bench's rows take turns
        for name, engine in (("plain", plain), ("cached", cached), ("other", other)):
            outs[name].append(engine(f).clone())
    assert all(torch.equal(a, b) for a, b in zip(outs["plain"], today, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(outs["other"], today, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(outs["cached"], cached_alone, strict=True))
    cached.update(cache_attention=False)
    assert slot_of(plain.unet) is None  # the last user put the UNet's own processors back


def test_enabling_the_cache_changes_the_next_frames(make_engine, frames):
    plain = _run(make_engine(), frames)
    engine = make_engine(own_models=True)
    assert all(torch.equal(a, b) for a, b in zip(_run(engine, frames[:3]), plain[:3], strict=True))
    engine.update(cache_attention=True, cache_frames=2)
    engine(frames[3])  # its K/V enter the cache
    assert engine.stats()["cache_entries"] == 1
    assert not torch.allclose(engine(frames[4]), plain[4], atol=0, rtol=0)


def test_the_cache_stays_bounded_and_flat_over_500_frames(make_engine, frames):
    engine = make_engine(own_models=True, cache_attention=True, cache_frames=3)
    engine(frames[0])
    stats = engine.stats()
    rings = dict(engine._temporal.cache._rings)
    pointers = {k: (r.k.data_ptr(), r.v.data_ptr()) for k, r in rings.items()}
    bytes_after_one = stats["cache_bytes"]
    assert bytes_after_one > 0
    for i in range(1, 500):
        engine(frames[i % len(frames)])
        assert engine._temporal.cache.entries <= 3
    assert engine.stats()["cache_bytes"] == bytes_after_one
    assert engine._temporal.cache.entries == 3
    now = engine._temporal.cache._rings
    assert now.keys() == rings.keys()
    assert {k: (r.k.data_ptr(), r.v.data_ptr()) for k, r in now.items()} == pointers


def test_cache_interval_decides_which_frames_enter(make_engine, frames):
    engine = make_engine(own_models=True, cache_attention=True, cache_frames=8, cache_interval=3)
    seen = []
    for i in range(7):
        engine(frames[i])
        seen.append(engine.stats()["cache_entries"])
    assert seen == [1, 1, 1, 2, 2, 2, 3]


def test_one_ring_per_layer_and_per_stage_in_sequential_mode(make_engine, frames):
    engine = make_engine(
        own_models=True, cache_attention=True, t_index_list=[20, 40], use_denoising_batch=False
    )
    _run(engine, frames[:2])
    layers = len(self_attention_names(engine.unet))
    assert engine._temporal.cache.rings == 2 * layers
    batch = make_engine(own_models=True, cache_attention=True, t_index_list=[20, 40])
    _run(batch, frames[:2])
    assert batch._temporal.cache.rings == layers  # one call over both stages' rows


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.reset(),
        lambda e: e.update(t_index_list=[20, 40]),  # another stage count rebuilds the buffers
        lambda e: e.update(cache_frames=2),
        lambda e: e.update(cache_attention=False),
    ],
    ids=["reset", "rebuild", "cache_frames", "off"],
)
def test_what_restarts_the_stream_empties_the_cache(make_engine, frames, change):
    engine = make_engine(own_models=True, cache_attention=True)
    _run(engine, frames[:3])
    assert engine.stats()["cache_entries"] == 3
    change(engine)
    assert engine.stats()["cache_entries"] == 0 and engine.stats()["cache_bytes"] == 0


def test_a_resolution_change_gives_a_fresh_cache(tiny_models, frames):
    from engine import EngineConfig, load_engine

    config = EngineConfig(model="random:tiny", width=64, height=64, cache_attention=True, accel="torch")
    small = load_engine(config)
    _run(small, frames[:2])
    assert small.stats()["cache_entries"] == 2
    big = load_engine(config.with_changes(width=96, height=96))  # how the daemon changes resolution
    assert big.stats()["cache_entries"] == 0
    big(torch.rand(1, 3, 96, 96))
    assert big.stats()["cache_entries"] == 1 and big._temporal.cache is not small._temporal.cache


@pytest.mark.parametrize(
    "params, message",
    [
        ({"cache_frames": 0}, "cache_frames must be an integer in \\[1, 8\\]"),
        ({"cache_frames": 9}, "cache_frames must be an integer in \\[1, 8\\]"),
        ({"cache_frames": 2.5}, "cache_frames must be an integer"),
        ({"cache_interval": 0}, "cache_interval must be an integer in \\[1, 1000\\]"),
        ({"cache_attention": "yes"}, "cache_attention must be true or false"),
    ],
)
def test_bad_cache_values_are_refused_and_change_nothing(make_engine, params, message):
    engine = make_engine(cache_frames=4)
    with pytest.raises(ValueError, match=message):
        engine.update(guidance_scale=2.0, **params)
    assert engine._temporal.cache.frames == 4 and engine.guidance_scale == 1.2
    assert not engine.stats()["cache_attention"]


def test_integral_floats_from_osc_count_as_integers(make_engine):
    engine = make_engine()
    engine.update(cache_frames=2.0, cache_interval=5.0)
    assert engine._temporal.cache.frames == 2 and engine._temporal.cache.interval == 5
