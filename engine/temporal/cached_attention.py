"""The attention processor that extends a UNet's self-attention with cached K/V, and its install.

`CachedSelfAttention` computes what diffusers' `AttnProcessor2_0` computes, except that the
keys and values are this call's followed by the cached frames' (see `attention_cache`). With
an empty cache it is plain self-attention. It replaces only the ``attn1`` (self-attention)
processors; cross-attention to the prompt (``attn2``) is untouched. `install` returns the
processors it replaced so that `uninstall` puts back the very same objects: with the cache
off the UNet is exactly what it was.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .attention_cache import AttentionCache

SELF_ATTENTION_SUFFIX = "attn1.processor"


class CachedSelfAttention:
    def __init__(self, cache: AttentionCache, layer: str, original: Any = None) -> None:
        self.cache = cache
        self.layer = layer
        self.original = original
        """The processor this one replaced (what `uninstall` puts back)."""

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
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, tokens, _ = hidden_states.shape
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = attn.to_q(hidden_states)
        key = attn.to_k(source)
        value = attn.to_v(source)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        if attn.norm_q is not None:
            query = attn.norm_q(query.view(batch, -1, heads, head_dim)).view(batch, -1, heads * head_dim)
        if attn.norm_k is not None:
            key = attn.norm_k(key.view(batch, -1, heads, head_dim)).view(batch, -1, heads * head_dim)
        mask = None
        if attention_mask is None and encoder_hidden_states is None:
            key, value = self.cache.extend(self.layer, key, value)
        elif attention_mask is not None:  # a masked self-attention is left as it is
            mask = attn.prepare_attention_mask(attention_mask, tokens, batch)
            mask = mask.view(batch, heads, -1, mask.shape[-1])
        q = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        k = key.reshape(batch, -1, heads, head_dim).transpose(1, 2)
        v = value.reshape(batch, -1, heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
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


def install(unet: torch.nn.Module, cache: AttentionCache) -> dict[str, Any]:
    """Put a `CachedSelfAttention` on every self-attention layer; return the processors replaced."""
    processors = dict(unet.attn_processors)
    names = [n for n in processors if n.endswith(SELF_ATTENTION_SUFFIX)]
    if not names:
        raise ValueError("cached attention needs a UNet with self-attention (attn1) layers")
    # A UNet shared by two engines may already carry another cache's processors: keep the originals.
    replaced = {n: getattr(processors[n], "original", None) or processors[n] for n in names}
    for n in names:
        processors[n] = CachedSelfAttention(cache, n.removesuffix(".processor"), replaced[n])
    unet.set_attn_processor(processors)
    return replaced


def uninstall(unet: torch.nn.Module, replaced: dict[str, Any]) -> None:
    """Put back the processors `install` replaced (the same objects)."""
    processors = dict(unet.attn_processors)
    processors.update(replaced)
    unet.set_attn_processor(processors)
