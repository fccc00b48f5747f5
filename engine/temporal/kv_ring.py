"""A fixed-size ring of one attention layer's keys and values from earlier frames.

The ring is one preallocated pair of buffers, (rows, (1 + slots) * tokens, channels) each:
slot 0 holds the current call's K/V, slots 1..slots the cached frames. Attention then reads
one contiguous view, ``k[:, : (1 + filled) * tokens]``, with no concatenation per call; the
order of the cached slots does not matter, since self-attention in the SD UNet has no positional
terms (it is invariant to permuting its keys together with their values).
"""

from __future__ import annotations

import torch


class KVRing:
    """Keys/values of up to `slots` earlier frames for `rows` batch rows of `tokens` tokens."""

    def __init__(
        self,
        slots: int,
        rows: int,
        tokens: int,
        key_channels: int,
        value_channels: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        if slots < 1:
            raise ValueError(f"a KV ring needs at least one slot, got {slots}")
        self.slots, self.rows, self.tokens = slots, rows, tokens
        length = (1 + slots) * tokens
        self.k = torch.zeros((rows, length, key_channels), device=device, dtype=dtype)
        self.v = torch.zeros((rows, length, value_channels), device=device, dtype=dtype)
        self.filled = 0
        """How many slots hold a cached frame (never more than `slots`)."""
        self._next = 0

    def fits(self, key: torch.Tensor, value: torch.Tensor) -> bool:
        """Whether this call's K/V have the shape, dtype and device the ring was made for."""
        return (
            key.shape == (self.rows, self.tokens, self.k.shape[-1])
            and value.shape == (self.rows, self.tokens, self.v.shape[-1])
            and key.dtype == self.k.dtype
            and key.device == self.k.device
        )

    def extended(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This call's K/V followed by every cached frame's: (rows, (1 + filled) * tokens, C)."""
        t = self.tokens
        self.k[:, :t].copy_(key)
        self.v[:, :t].copy_(value)
        length = (1 + self.filled) * t
        return self.k[:, :length], self.v[:, :length]

    def push(self) -> None:
        """Cache the K/V last given to `extended`, replacing the oldest frame once full."""
        t, slot = self.tokens, 1 + self._next
        self.k[:, slot * t : (slot + 1) * t].copy_(self.k[:, :t])
        self.v[:, slot * t : (slot + 1) * t].copy_(self.v[:, :t])
        self._next = (self._next + 1) % self.slots
        self.filled = min(self.filled + 1, self.slots)

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()
