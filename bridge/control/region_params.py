"""OSC addresses of the regional-prompt brushes, and how their values become engine regions.

Eight brush slots N = 0..7, each with ``/sd/region/N/...``:

=========  =========  ==================================================================
address    args       meaning
=========  =========  ==================================================================
prompt     s          the brush's prompt
enabled    i          1 paints, 0 leaves the slot out
strength   f 0..1     mix of the brush's prompt with the background prompt (1 = brush only)
alpha      f 0..1     opacity of the mask
blur       f 0..64    Gaussian blur of the mask's edge (std. dev. in output pixels)
rect       f f f f    x y w h, normalised 0..1 from the top-left corner
feedback   f 0..1     latent feedback inside the brush's mask (0 = reactive; the background's
                      value is ``/sd/feedback``)
mask       s          ``rect`` (default), ``ellipse`` (inside the rect), a PNG name from the
                      masks folder (``left.png``), or ``source:<channel>`` for a channel of
                      the mask source's newest frame (alpha, luma, red, green, blue)
=========  =========  ==================================================================

`REGION_PARAMS` is appended to the parameter table; `build_regions` turns a snapshot of the
store into the ``regions=[...]`` list that `FrameEngine.update` takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bridge.masks import (
    CHANNELS,
    MaskLibrary,
    MaskSourceError,
    check_mask_name,
    mask_from_ellipse,
    mask_from_frame,
    mask_from_rect,
)

from .params import Cost, Kind, Param, ParamError

if TYPE_CHECKING:
    from .store import ParamStore

REGION_SLOTS = 8
PREFIX = "region."
SHAPES = ("rect", "ellipse")


@dataclass(frozen=True)
class RectParam(Param):
    """A FLOAT_LIST of exactly four numbers x y w h in [0, 1] (one OSC message, four floats)."""

    def expects(self) -> str:
        return "four numbers x y w h in [0, 1]"

    def coerce(self, value: Any) -> list[float]:
        if isinstance(value, (list, tuple)) and len(value) != 4:
            raise self._error(value)
        return super().coerce(value)


@dataclass(frozen=True)
class MaskSpecParam(Param):
    """Where a brush's mask comes from: a shape, a PNG name, or a channel of the mask source."""

    def expects(self) -> str:
        chans = "|".join(CHANNELS)
        return f"'rect', 'ellipse', a PNG file name, or 'source:<{chans}>'"

    def coerce(self, value: Any) -> str:
        text = self._text(value).strip()
        if text in SHAPES:
            return text
        if text.startswith("source:"):
            if text[len("source:") :] in CHANNELS:
                return text
            raise self._error(value)
        try:
            return check_mask_name(text)
        except MaskSourceError:
            raise self._error(value) from None


def _slot_params(n: int) -> tuple[Param, ...]:
    base = f"{PREFIX}{n}."
    return (
        Param(base + "prompt", Kind.STR, "", Cost.ENCODE, f"Prompt of brush {n} (empty: slot unused)."),
        Param(base + "enabled", Kind.BOOL, False, Cost.FRAME, f"Brush {n} paints (1) or not (0)."),
        Param(
            base + "strength",
            Kind.FLOAT,
            1.0,
            Cost.FRAME,
            f"Brush {n}: mix of its prompt with the background prompt (1 = brush prompt only).",
            0.0,
            1.0,
            clamp=True,
        ),
        Param(base + "alpha", Kind.FLOAT, 1.0, Cost.FRAME, f"Brush {n}: mask opacity.", 0.0, 1.0, clamp=True),
        Param(
            base + "blur",
            Kind.FLOAT,
            8.0,
            Cost.FRAME,
            f"Brush {n}: mask edge blur, std. dev. in output pixels.",
            0.0,
            64.0,
            clamp=True,
        ),
        RectParam(
            base + "rect",
            Kind.FLOAT_LIST,
            [0.0, 0.0, 1.0, 1.0],
            Cost.FRAME,
            f"Brush {n}: rectangle x y w h (normalised, top-left origin) for the rect/ellipse mask.",
            0.0,
            1.0,
        ),
        Param(
            base + "feedback",
            Kind.FLOAT,
            0.0,
            Cost.FRAME,
            f"Brush {n}: latent feedback inside its mask (the background keeps /sd/feedback).",
            0.0,
            1.0,
            clamp=True,
        ),
        MaskSpecParam(
            base + "mask",
            Kind.STR,
            "rect",
            Cost.FRAME,
            f"Brush {n}: mask from 'rect', 'ellipse', a PNG in the masks folder, or 'source:<channel>'.",
        ),
    )


REGION_PARAMS: tuple[Param, ...] = tuple(p for n in range(REGION_SLOTS) for p in _slot_params(n))


def is_region_param(name: str) -> bool:
    return name.startswith(PREFIX)


def uses_mask_source(values: Mapping[str, Any]) -> bool:
    """Whether an enabled brush takes its mask from the mask source (so new frames matter)."""
    return any(
        values.get(f"{PREFIX}{n}.enabled")
        and values.get(f"{PREFIX}{n}.prompt")
        and str(values.get(f"{PREFIX}{n}.mask", "")).startswith("source:")
        for n in range(REGION_SLOTS)
    )


@dataclass
class RegionBuild:
    regions: list[dict[str, Any]] = field(default_factory=list)
    """Brush dicts for `FrameEngine.update(regions=...)`, in slot order."""
    problems: list[str] = field(default_factory=list)
    """One line per enabled slot that was left out, and why."""


def build_regions(
    values: Mapping[str, Any],
    size: tuple[int, int],
    library: MaskLibrary | None = None,
    mask_frame: np.ndarray | None = None,
) -> RegionBuild:
    """The enabled brushes in a snapshot of the store, with their masks drawn at `size` (H, W).

    A slot whose mask cannot be made (missing PNG, no mask-source frame yet) is left out and
    named in `problems`; the others still paint.
    """
    out = RegionBuild()
    for n in range(REGION_SLOTS):
        base = f"{PREFIX}{n}."
        prompt = values.get(base + "prompt") or ""
        if not values.get(base + "enabled") or not prompt:
            continue
        try:
            mask = _slot_mask(values, base, size, library, mask_frame)
        except (MaskSourceError, ParamError) as exc:
            out.problems.append(f"region {n}: {exc}")
            continue
        out.regions.append(
            {
                "prompt": prompt,
                "mask": mask,
                "blur": float(values.get(base + "blur", 8.0)),
                "alpha": float(values.get(base + "alpha", 1.0)),
                "strength": float(values.get(base + "strength", 1.0)),
                "feedback": float(values.get(base + "feedback", 0.0)),
            }
        )
    return out


def _slot_mask(
    values: Mapping[str, Any],
    base: str,
    size: tuple[int, int],
    library: MaskLibrary | None,
    mask_frame: np.ndarray | None,
) -> np.ndarray:
    spec = str(values.get(base + "mask") or "rect")
    x, y, w, h = values.get(base + "rect") or (0.0, 0.0, 1.0, 1.0)
    if spec == "rect":
        return mask_from_rect(x, y, w, h, size)
    if spec == "ellipse":
        if w <= 0 or h <= 0:
            return np.zeros(size, dtype=np.float32)
        return mask_from_ellipse(x + w / 2, y + h / 2, w / 2, h / 2, size)
    if spec.startswith("source:"):
        if mask_frame is None:
            raise MaskSourceError("no frame from the mask source yet")
        return mask_from_frame(mask_frame, spec[len("source:") :])
    if library is None:
        raise MaskSourceError(f"no masks folder configured for {spec!r}")
    return library.load(spec)


class RegionFeed:
    """Turns region parameters and mask frames into `engine.update(regions=...)`, between frames.

    ``regions = feed.poll(changes, store.snapshot(), mask_frame, fresh)``: `changes` is what
    `ParamStore.drain()` returned, `mask_frame` the mask source's newest frame (or None) and
    `fresh` whether that frame arrived since the last poll. It returns the list to pass to
    ``engine.update(regions=...)`` when the regions changed (a region parameter, or a fresh
    mask frame while a brush uses the mask source), else None. Slots left out (a missing PNG)
    are named in `problems`, for the caller to log.
    """

    def __init__(self, size: tuple[int, int], masks_dir: str | None = None) -> None:
        self.size = size
        self.library = MaskLibrary(masks_dir) if masks_dir else None
        self.problems: list[str] = []

    def check_masks(self, store: ParamStore) -> None:
        """Make `store` refuse a brush mask naming an image that is not in the masks folder, so
        the sender hears `/sd/error` at once instead of an echo for a brush that never paints."""
        for n in range(REGION_SLOTS):
            store.add_check(f"{PREFIX}{n}.mask", self._mask_check(n))

    def _mask_check(self, n: int) -> Callable[[str], None]:
        address = _BY_NAME[f"{PREFIX}{n}.mask"].address

        def check(spec: str) -> None:
            if spec in SHAPES or spec.startswith("source:"):
                return
            if self.library is None:
                raise ParamError(f"{address}: no masks folder is configured for {spec!r}")
            if not self.library.path(spec).is_file():
                raise ParamError(f"{address}: no mask {spec!r} in {self.library.folder}")

        return check

    def poll(
        self,
        changes: Mapping[str, Any],
        values: Mapping[str, Any],
        mask_frame: np.ndarray | None = None,
        fresh: bool = False,
    ) -> list[dict[str, Any]] | None:
        touched = any(is_region_param(n) for n in changes)
        if not touched and not (fresh and mask_frame is not None and uses_mask_source(values)):
            return None
        built = build_regions(values, self.size, self.library, mask_frame)
        self.problems = built.problems
        return built.regions


_PRESET_FIELDS = ("prompt", "enabled", "strength", "alpha", "blur", "rect", "mask", "feedback")
_BY_NAME = {p.name: p for p in REGION_PARAMS}


def region_values_from_preset(entries: Any) -> dict[str, Any]:
    """A preset's ``[[regions]]`` list as store values for all eight slots.

    Entry i fills slot i (``enabled`` defaults to true there); the slots after the last entry
    get their defaults (disabled), so loading a preset replaces the regions in use. Every value
    goes through the same `Param` as OSC; a bad one raises ParamError naming the entry and key.
    """
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ParamError("regions expects a list of tables ([[regions]] in TOML)")
    if len(entries) > REGION_SLOTS:
        raise ParamError(f"regions holds at most {REGION_SLOTS} entries, got {len(entries)}")
    values: dict[str, Any] = {p.name: p.default for p in REGION_PARAMS}
    for i, entry in enumerate(entries):
        unknown = sorted(set(entry) - set(_PRESET_FIELDS))
        if unknown:
            raise ParamError(f"regions[{i}]: unknown keys {unknown}; known: {', '.join(_PRESET_FIELDS)}")
        values[f"{PREFIX}{i}.enabled"] = True
        for key, raw in entry.items():
            name = f"{PREFIX}{i}.{key}"
            try:
                values[name] = _BY_NAME[name].coerce(raw)
            except ParamError as exc:
                raise ParamError(f"regions[{i}].{key}: {exc}") from None
    return values
