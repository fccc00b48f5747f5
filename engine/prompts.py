"""Prompt embeddings: encode once per distinct text, blend weighted lists, morph between prompts."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import torch

PromptSpec = str | Sequence[tuple[str, float]]

MAX_TEXT = 2000
MAX_ITEMS = 16


def normalize_weighted(value: object, what: str, item_type: type, max_items: int = MAX_ITEMS) -> list:
    """Validate `value` as a plain item or a list of (item, weight) pairs; return [(item, weight)].

    Weights are made to sum to 1. Raises ValueError naming `what` on anything else.
    """
    if isinstance(value, item_type) and not isinstance(value, bool):
        return [(value, 1.0)]
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{what} must be a {item_type.__name__} or a list of ({item_type.__name__}, weight)")
    if len(value) > max_items:
        raise ValueError(f"{what} takes at most {max_items} entries, got {len(value)}")
    pairs = []
    for entry in value:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ValueError(f"{what} entries must be ({item_type.__name__}, weight) pairs, got {entry!r}")
        item, weight = entry
        if not isinstance(item, item_type) or isinstance(item, bool):
            raise ValueError(f"{what} entries must start with a {item_type.__name__}, got {item!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"{what} weights must be numbers >= 0, got {weight!r}")
        if weight != weight or weight == float("inf"):
            raise ValueError(f"{what} weights must be finite, got {weight!r}")
        pairs.append((item, float(weight)))
    total = sum(w for _, w in pairs)
    if total <= 0:
        raise ValueError(f"{what} weights must not all be zero")
    return [(item, w / total) for item, w in pairs]


def check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > MAX_TEXT or "\x00" in text:
        raise ValueError(f"{what} must be at most {MAX_TEXT} characters without NUL bytes")
    return text


class PromptEncoder:
    """Text -> (1, 77, D) embeddings on the engine's device, cached per distinct text (LRU)."""

    def __init__(self, tokenizer, text_encoder, device: torch.device, dtype: torch.dtype, cache_size=128):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.device = device
        self.dtype = dtype
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.encode_count = 0
        """How many texts went through the text encoder (cache misses)."""

    def cached(self, text: str) -> bool:
        return text in self._cache

    @torch.no_grad()
    def encode(self, text: str) -> torch.Tensor:
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        ids = self.tokenizer(
            [text],
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.text_encoder.device)
        out = self.text_encoder(ids)[0].to(self.device, self.dtype)
        self.encode_count += 1
        self._cache[text] = out
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def blend(self, prompt: PromptSpec, what: str = "prompt") -> torch.Tensor:
        """The embeddings of a prompt or of a weighted list of prompts (weighted mean)."""
        pairs = normalize_weighted(prompt, what, str)
        for text, _ in pairs:
            check_text(text, what)
        if len(pairs) == 1:
            return self.encode(pairs[0][0])
        acc = torch.zeros_like(self.encode(pairs[0][0]), dtype=torch.float32)
        for text, w in pairs:
            acc.add_(self.encode(text).float(), alpha=w)
        return acc.to(self.dtype)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return (a.float() + (b.float() - a.float()) * t).to(a.dtype)


class SlerpPath:
    """Spherical interpolation from `a` to `b` per token vector (last dim), lerp where near-parallel.

    Everything that does not depend on t (norms, angles, the near-parallel mask) is computed once
    here, so a transition frame costs a handful of element-wise ops (`at(t)`) instead of ~28.
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> None:
        af, bf = a.float(), b.float()
        an = af / af.norm(dim=-1, keepdim=True).clamp_min(eps)
        bn = bf / bf.norm(dim=-1, keepdim=True).clamp_min(eps)
        dot = (an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0)
        self.omega = torch.acos(dot)
        so = torch.sin(self.omega)
        self.near = so.abs() < 1e-4
        self.safe = torch.where(self.near, torch.ones_like(so), so)
        self.af, self.bf, self.dtype = af, bf, a.dtype

    def at(self, t: float) -> torch.Tensor:
        wa = torch.where(self.near, 1.0 - t, torch.sin((1.0 - t) * self.omega) / self.safe)
        wb = torch.where(self.near, t, torch.sin(t * self.omega) / self.safe)
        return (wa * self.af + wb * self.bf).to(self.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation of each token vector (last dim); lerp where they are near-parallel."""
    return SlerpPath(a, b, eps).at(t)


class Transition:
    """Morphs the prompt embeddings from one value to another over a number of frames."""

    def __init__(self, start: torch.Tensor) -> None:
        self.source = start
        self.target = start
        self.current = start
        self.frames = 0
        self.done = 0
        self.curve: Literal["linear", "slerp"] = "slerp"
        self._path: SlerpPath | None = None

    @property
    def active(self) -> bool:
        return self.done < self.frames

    def retarget(self, target: torch.Tensor, frames: int, curve: Literal["linear", "slerp"]) -> None:
        """Start moving from wherever we are now towards `target` (cut when frames == 0)."""
        self.source = self.current
        self.target = target
        self.frames = frames
        self.done = 0
        self.curve = curve
        self._path = SlerpPath(self.source, target) if frames > 1 and curve == "slerp" else None
        if frames == 0:
            self.current = target

    def advance(self) -> torch.Tensor:
        """One frame further; returns the embeddings to use for this frame."""
        if self.active:
            self.done += 1
            if self.done >= self.frames:
                self.current = self.target
            else:
                t = self.done / self.frames
                path = self._path
                self.current = path.at(t) if path is not None else lerp(self.source, self.target, t)
        return self.current
