"""A brush: one regional prompt painted through a mask."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .masks import MaskError, as_mask

MAX_BRUSHES = 8
MAX_PROMPT_CHARS = 2000


@dataclass(frozen=True, eq=False)
class Brush:
    """A prompt that applies where its mask is non-zero.

    - ``mask``: H x W, values 0..1 (any size; resized to the latent grid). Given as a tensor or
      numpy array (bool, uint8 0..255 or float 0..1); stored as a float32 CPU tensor.
    - ``blur``: Gaussian standard deviation of the mask's edge, in output pixels (0 = hard edge).
    - ``alpha``: scales the mask (0 = brush has no effect, 1 = full weight).
    - ``strength``: mixes the prompt's embedding with the background prompt's
      (0 = background prompt, 1 = only this brush's prompt).
    - ``feedback``: latent feedback inside the mask, 0..1 (the background's is the engine's own
      `feedback`; see engine/temporal/feedback.py).
    """

    prompt: str
    mask: torch.Tensor = field(repr=False)
    blur: float = 0.0
    alpha: float = 1.0
    strength: float = 1.0
    feedback: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or len(self.prompt) > MAX_PROMPT_CHARS or "\x00" in self.prompt:
            raise ValueError(f"brush prompt must be text of at most {MAX_PROMPT_CHARS} characters")
        object.__setattr__(self, "mask", as_mask(self.mask, "brush mask"))
        object.__setattr__(self, "blur", _number("blur", self.blur, 0.0, 1000.0))
        object.__setattr__(self, "alpha", _number("alpha", self.alpha, 0.0, 1.0))
        object.__setattr__(self, "strength", _number("strength", self.strength, 0.0, 1.0))
        object.__setattr__(self, "feedback", _number("feedback", self.feedback, 0.0, 1.0))


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"brush {name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    if not lo <= float(value) <= hi:
        raise ValueError(f"brush {name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


_FIELDS = ("prompt", "mask", "blur", "alpha", "strength", "feedback")


def as_brush(item: Brush | Mapping[str, Any]) -> Brush:
    """A Brush from a Brush or a dict with keys prompt, mask and optionally blur, alpha, strength."""
    if isinstance(item, Brush):
        return item
    if not isinstance(item, Mapping):
        raise ValueError(f"a region must be a Brush or a dict, got {type(item).__name__}")
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown region keys {unknown}; expected some of {list(_FIELDS)}")
    if "prompt" not in item or "mask" not in item:
        raise ValueError("a region needs at least 'prompt' and 'mask'")
    return Brush(**item)


def as_brushes(items: Sequence[Brush | Mapping[str, Any]] | None) -> tuple[Brush, ...]:
    """Check a whole list of regions (all or nothing); None or [] means no regions."""
    if items is None:
        return ()
    if isinstance(items, (str, bytes, Mapping, Brush)) or not isinstance(items, Sequence):
        raise ValueError("regions must be a list of Brush or dicts")
    if len(items) > MAX_BRUSHES:
        raise ValueError(f"at most {MAX_BRUSHES} regions, got {len(items)}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(as_brush(item))
        except MaskError as exc:
            raise MaskError(f"region {i}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"region {i}: {exc}") from None
    return tuple(out)
