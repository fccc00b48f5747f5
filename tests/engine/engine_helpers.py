"""Test helpers for the engine suite."""

from __future__ import annotations

import torch

from engine.stream import StreamEngine


class Recorder:
    """Wraps an engine's seams to record what crosses them."""

    def __init__(self, engine: StreamEngine) -> None:
        self.unet_in: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.unet_out: list[torch.Tensor] = []
        self.encoded: list[torch.Tensor] = []
        self.decoded_in: list[torch.Tensor] = []
        unet, enc, dec = engine.unet_fn, engine.vae_encode_fn, engine.vae_decode_fn

        def unet_fn(x, t, e):
            out = unet(x, t, e)
            self.unet_in.append((x.clone(), t.clone(), e.clone()))
            self.unet_out.append(out.clone())
            return out

        def encode_fn(images):
            out = enc(images)
            self.encoded.append(out.clone())
            return out

        def decode_fn(latents):
            self.decoded_in.append(latents.clone())
            return dec(latents)

        engine.unet_fn, engine.vae_encode_fn, engine.vae_decode_fn = unet_fn, encode_fn, decode_fn
