"""The attention processor that extends a UNet's self-attention with cached K/V, and its install.

`CachedSelfAttention` computes what diffusers' `AttnProcessor2_0` computes, except that the
keys and values are this call's followed by the cached frames' (see `attention_cache`). It
replaces only the ``attn1`` (self-attention) processors; cross-attention to the prompt
(``attn2``) is untouched.

Several engines may share one UNet (the bench builds every row on one set of weights), so the
processors read the cache from a `CacheSlot` kept on the UNet: an engine with the cache on puts
its cache there for the length of its frame (`Temporal.begin_frame` / `end_frame`), every other
call (another engine's, one with the cache off) finds the slot empty and runs the processor the
UNet had before, the very same object. `install` counts the engines using the slot and
`uninstall` puts the original processors back when the last one switches its cache off.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .attention_cache import AttentionCache

SELF_ATTENTION_SUFFIX = "attn1.processor"
SLOT_ATTRIBUTE = "_sd_bridge_cache_slot"


class CacheSlot:
    """The cache the current UNet call uses (None: plain attention), shared by a UNet's processors."""

    def __init__(self) -> None:
        self.cache: AttentionCache | None = None
        self.users = 0
        self.originals: dict[str, Any] = {}


class CachedSelfAttention:
    def __init__(self, slot: CacheSlot, layer: str, original: Any) -> None:
        self.slot = slot
        self.layer = layer
        self.original = original
        """The processor this one replaced: it runs every call made without a cache."""

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        cache = self.slot.cache
        if cache is None or encoder_hidden_states is not None or attention_mask is not None:
            if temb is not None:
                kwargs["temb"] = temb
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        if attn.norm_q is not None:
            query = attn.norm_q(query.view(batch, -1, heads, head_dim)).view(batch, -1, heads * head_dim)
        if attn.norm_k is not None:
            key = attn.norm_k(key.view(batch, -1, heads, head_dim)).view(batch, -1, heads * head_dim)
        key, value = cache.extend(self.layer, key, value)
        q = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        k = key.reshape(batch, -1, heads, head_dim).transpose(1, 2)
        v = value.reshape(batch, -1, heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def self_attention_names(unet: torch.nn.Module) -> list[str]:
    """The processor names of the UNet's self-attention layers (``...attn1.processor``)."""
    return [n for n in getattr(unet, "attn_processors", {}) if n.endswith(SELF_ATTENTION_SUFFIX)]


def slot_of(unet: torch.nn.Module) -> CacheSlot | None:
    """The UNet's cache slot while any engine has its cache on, else None."""
    return getattr(unet, SLOT_ATTRIBUTE, None)


def install(unet: torch.nn.Module) -> CacheSlot:
    """Put a `CachedSelfAttention` on every self-attention layer (once per UNet); return the slot."""
    slot = slot_of(unet)
    if slot is None:
        processors = dict(unet.attn_processors)
        names = [n for n in processors if n.endswith(SELF_ATTENTION_SUFFIX)]
        if not names:
            raise ValueError("cached attention needs a UNet with self-attention (attn1) layers")
        slot = CacheSlot()
        slot.originals = {n: processors[n] for n in names}
        for n in names:
            processors[n] = CachedSelfAttention(slot, n.removesuffix(".processor"), processors[n])
        unet.set_attn_processor(processors)
        setattr(unet, SLOT_ATTRIBUTE, slot)
    slot.users += 1
    return slot


def uninstall(unet: torch.nn.Module) -> None:
    """One engine less uses the cache; the last one puts back the original processors."""
    slot = slot_of(unet)
    if slot is None:
        return
    slot.users -= 1
    slot.cache = None
    if slot.users <= 0:
        processors = dict(unet.attn_processors)
        processors.update(slot.originals)
        unet.set_attn_processor(processors)
        delattr(unet, SLOT_ATTRIBUTE)
