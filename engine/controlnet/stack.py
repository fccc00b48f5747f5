"""Several ControlNets inside the stream batch: control images per in-flight row, one batched net call
per net per UNet call, residuals summed (as diffusers' MultiControlNetModel) into the same UNet call.

Which control image a row sees: its own frame's. Row i*f + j of the stream batch holds the latent of
the frame that entered i calls ago (stage i), so the stack keeps, per net, a buffer of n*f control
images that moves exactly as the latents do: each call the new frames' control images enter rows
0..f-1 and every other row shifts one stage down. A latent is therefore steered all through its
denoising by the shape of the frame it came from, and the finished frame matches its own control
image (steering old latents with the newest image would drag last frame's shape towards the new
one and ghost on fast motion). Each frame is preprocessed once, when it enters.

Under CFG, the unconditional rows the engine adds (cfg full: one per row; initialize: the stage-0
rows) get residuals from the same net call with the same control images as their text rows, as
diffusers' ControlNet pipelines do (the control image is duplicated for both halves, guess_mode off).
With regional prompts every text group of a row shares that row's control image.

Cost: a disabled net or one at scale 0 is not called and its frames are not preprocessed; when no
net is live the engine's plain UNet seam runs, bit for bit what it computes without ControlNet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import preprocess
from .spec import MAX_CONTROLNETS, check_live


@dataclass
class ControlUnit:
    """One loaded net, its live values and its per-row control images."""

    model: str
    net: torch.nn.Module
    live: dict[str, Any]
    images: torch.Tensor | None = None
    spare: torch.Tensor | None = None
    filled: bool = False
    cache: tuple[Any, torch.Tensor] | None = None
    """(key, control image) of the external image last preprocessed, reused while nothing changed."""
    calls: int = 0
    _plans: dict[tuple, Any] = field(default_factory=dict)

    @property
    def wanted(self) -> bool:
        live = self.live
        return bool(live["enabled"]) and live["scale"] > 0.0 and live["start"] < live["end"]


class ControlNetStack:
    """The engine's ControlNets. The engine calls `layout` when its stage count changes, `push`
    with each call's new frames, and `predict` in place of its UNet seam while `active`."""

    def __init__(
        self,
        units: Sequence[ControlUnit],
        height: int,
        width: int,
        device: torch.device,
        dtype: torch.dtype,
        depth_factory: Callable[[], Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> None:
        if not 1 <= len(units) <= MAX_CONTROLNETS:
            raise ValueError(f"1 to {MAX_CONTROLNETS} ControlNets at once, got {len(units)}")
        self.units = list(units)
        self.height, self.width = height, width
        self.device, self.dtype = device, dtype
        self._depth_factory = depth_factory
        self.depth: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._external: torch.Tensor | None = None
        self._external_version = 0
        self._n = self._f = 0
        if any(u.live["preprocessor"] == "depth" for u in self.units):
            self.ensure_depth()

    # -- set-up and live values -----------------------------------------------------------------
    def layout(self, stages: int, frame_buffer_size: int) -> None:
        """(Re)allocate the per-row control images for n stages of f frames (the stream restarts)."""
        self._n, self._f = stages, frame_buffer_size
        shape = (stages * frame_buffer_size, 3, self.height, self.width)
        for u in self.units:
            u.images = torch.zeros(shape, device=self.device, dtype=self.dtype)
            u.spare = torch.zeros_like(u.images)
            u.filled = False
            u._plans.clear()

    def validate(self, slots: Any) -> list[dict[str, Any]]:
        """Check `update(controlnets=[...])`: a list (at most 4) of dicts of live values per slot."""
        if not isinstance(slots, (list, tuple)) or len(slots) > MAX_CONTROLNETS:
            raise ValueError(f"controlnets must be a list of at most {MAX_CONTROLNETS} dicts of live values")
        out = []
        for i, slot in enumerate(slots):
            if not isinstance(slot, dict):
                raise ValueError(f"controlnets[{i}] must be a dict of live values, got {type(slot).__name__}")
            out.append(check_live(slot, f"controlnets[{i}]"))
        return out

    def needs_depth(self, slots: list[dict[str, Any]]) -> bool:
        return self.depth is None and any(
            s.get("preprocessor") == "depth" for s, _ in zip(slots, self.units, strict=False)
        )

    def ensure_depth(self) -> None:
        """Load the depth model (slow for a real one: the engine does it outside its frame lock)."""
        if self.depth is None:
            if self._depth_factory is None:
                raise ValueError("the depth preprocessor needs a depth model and none is configured")
            self.depth = self._depth_factory()

    def prepare(self, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Check an engine update's `controlnets` / `control_image` (raises ValueError, changes nothing)
        and load the depth model if a slot switches to it; `commit` applies the result."""
        if "controlnets" not in params and "control_image" not in params:
            return None
        slots = self.validate(params["controlnets"]) if "controlnets" in params else None
        if slots is not None and self.needs_depth(slots):
            try:
                self.ensure_depth()
            except ValueError:
                raise
            except Exception as exc:  # e.g. the depth model is not available offline: refuse the value
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ValueError(f"the depth preprocessor cannot load its model: {first}") from exc
        has_image = "control_image" in params
        return slots, has_image, self.prepare_image(params["control_image"]) if has_image else None

    def commit(self, prepared: tuple[Any, ...]) -> bool:
        """Apply what `prepare` checked, between frames. True when the output changes."""
        slots, has_image, image = prepared
        changed = self.apply(slots) if slots is not None else False
        if has_image:
            self.set_prepared(image)
            changed = changed or self.active
        return changed

    def apply(self, slots: list[dict[str, Any]]) -> bool:
        """Apply validated live values; slots without a loaded net are ignored. True if output changes."""
        changed = False
        for unit, values in zip(self.units, slots, strict=False):
            new = {**unit.live, **values}
            if new != unit.live:
                changed = True
                if not _same_image(unit.live, new):
                    unit.cache = None
                unit.live = new
                unit._plans.clear()
                if not unit.wanted:
                    unit.filled = False  # re-enabled later: refill every row with the then-current image
        return changed

    def prepare_image(self, image: Any) -> torch.Tensor | None:
        """An external control image as (1, 3, H, W) in [0, 1] on the device: any size (resized),
        uint8 or float, (H, W, C) or (C, H, W); NaN becomes 0. Raises ValueError on a non-image."""
        if image is None:
            return None
        try:
            tensor = image if isinstance(image, torch.Tensor) else torch.from_numpy(_contiguous(image))
        except TypeError as exc:
            raise ValueError(
                f"control_image must be an image array or tensor, got {type(image).__name__}"
            ) from exc
        return preprocess.as_control_image(tensor, self.height, self.width, self.device, self.dtype)[:1]

    def set_image(self, image: Any) -> None:
        """The newest external control image (a control source's frame); it is held until the next."""
        self.set_prepared(self.prepare_image(image))

    def set_prepared(self, image: torch.Tensor | None) -> None:
        self._external = image
        self._external_version += 1
        for u in self.units:
            u.cache = None

    @property
    def has_external_image(self) -> bool:
        return self._external is not None

    # -- the hot path ---------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return any(u.wanted and u.filled for u in self.units)

    def push(self, frames: torch.Tensor | None) -> None:
        """This call's new frames (f, 3, H, W) in [0, 1] (None in txt2img) enter stage 0."""
        f = self._f
        for u in self.units:
            if not u.wanted:
                continue
            image = self._control_image(u, frames)
            if image is None:
                continue
            if not u.filled or self._n == 1:
                u.images.copy_(image.expand(f, -1, -1, -1).repeat(self._n, 1, 1, 1))
                u.filled = True
                continue
            u.spare[f:].copy_(u.images[:-f])
            u.spare[:f].copy_(image.expand(f, -1, -1, -1))
            u.images, u.spare = u.spare, u.images

    def _control_image(self, u: ControlUnit, frames: torch.Tensor | None) -> torch.Tensor | None:
        source = u.live["source"]
        if source == "control" and self._external is None:
            return None  # waits for the control source
        if self._external is not None and source != "input":
            key = (self._external_version, _image_key(u.live))
            if u.cache is None or u.cache[0] != key:
                u.cache = (key, self._preprocess(u, self._external))
            return u.cache[1]
        if frames is None:
            return None
        image = frames.to(device=self.device, dtype=self.dtype)
        if image.shape[-2:] != (self.height, self.width):
            image = preprocess.as_control_image(image, self.height, self.width, self.device, self.dtype)
        return self._preprocess(u, image)

    def _preprocess(self, u: ControlUnit, image: torch.Tensor) -> torch.Tensor:
        live, kind = u.live, u.live["preprocessor"]
        if kind == "canny":
            out = preprocess.canny(image, live["canny_low"], live["canny_high"])
        elif kind == "softedge":
            out = preprocess.softedge(image)
        elif kind == "depth":
            self.ensure_depth()
            out = self.depth(image)  # type: ignore[misc]
        else:
            out = image.clamp(0.0, 1.0).nan_to_num(0.0)
        return out.to(self.dtype)

    def predict(
        self,
        unet: torch.nn.Module,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: torch.Tensor,
        *,
        rows: int,
        uncond_rows: int,
        groups: int,
        first_row: int = 0,
    ) -> torch.Tensor:
        """The UNet's noise prediction with every live net's residuals added.

        The batch is laid out as the engine's: `uncond_rows` rows (copies of the first latent rows)
        then `groups` text groups of `rows` rows; `first_row` is the stream row of its first latent.
        """
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        for u in self.units:
            if not (u.wanted and u.filled):
                continue
            plan = u._plans.get((rows, uncond_rows, groups, first_row))
            if plan is None:
                plan = u._plans[(rows, uncond_rows, groups, first_row)] = self._plan(
                    u, rows, uncond_rows, groups, first_row
                )
            index, scale = plan
            if scale is None:
                continue  # every row of this batch is outside the net's start..end
            cond = (
                u.images[first_row : first_row + rows] if index is None else u.images.index_select(0, index)
            )
            d, m = u.net(
                latents,
                timesteps,
                encoder_hidden_states=embeds,
                controlnet_cond=cond,
                conditioning_scale=scale,
                return_dict=False,
            )
            u.calls += 1
            if down is None:
                down, mid = list(d), m
            else:
                down = [a + b for a, b in zip(down, d, strict=True)]
                mid = mid + m
        kwargs = {}
        if down is not None:
            kwargs = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return unet(latents, timesteps, encoder_hidden_states=embeds, return_dict=False, **kwargs)[0]

    def _plan(self, u: ControlUnit, rows: int, uncond_rows: int, groups: int, first_row: int):
        """(index of each batch row's control image or None for a plain slice, its scale: a float when
        every row has the same, a (B, 1, 1, 1) tensor when start/end leave some stages out, None if all)."""
        latent_rows = [first_row + k for k in range(uncond_rows)] + [
            first_row + r for r in range(rows)
        ] * groups
        n, f = max(self._n, 1), max(self._f, 1)
        start, end, scale = u.live["start"], u.live["end"], float(u.live["scale"])
        keep = [not ((row // f) / n < start or (row // f + 1) / n > end) for row in latent_rows]
        index = None
        if uncond_rows or groups > 1:
            index = torch.tensor(latent_rows, device=self.device, dtype=torch.long)
        if not any(keep):
            return index, None
        if all(keep):
            return index, scale
        per_row = torch.tensor([scale if k else 0.0 for k in keep], device=self.device, dtype=self.dtype)
        return index, per_row.view(-1, 1, 1, 1)

    def stats(self) -> dict[str, Any]:
        return {
            "controlnets": len(self.units),
            "controlnet_calls": [u.calls for u in self.units],
            "controlnets_live": sum(1 for u in self.units if u.wanted and u.filled),
        }


def _image_key(live: dict[str, Any]) -> tuple:
    return (live["preprocessor"], live["canny_low"], live["canny_high"], live["source"])


def _same_image(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _image_key(a) == _image_key(b)


def _contiguous(array: Any) -> Any:
    import numpy as np

    return np.ascontiguousarray(array)
