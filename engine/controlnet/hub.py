"""Which nets (and which depth model) a config's ControlNet slots load, and what of them comes from the hub.

`build_stack` loads through `resolve_slots` and `resolve_depth_model`, and `sd-bridge fetch` / `doctor`
(through `hub_parts`) ask the same functions, so what a fetch downloads is what a run then reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .spec import MAX_CONTROLNETS, ControlNetSpec, resolve_model, spec_from_dict

if TYPE_CHECKING:
    from ..config import EngineConfig

NET_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json")
"""What `ControlNetModel.from_pretrained(use_safetensors=True)` reads (no variant: not the fp16 copies)."""
NET_IGNORE = ("*.fp16.*",)
DEPTH_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json")
"""What `DepthAnythingForDepthEstimation.from_pretrained(use_safetensors=True)` reads."""
DEPTH_WHAT = "depth model"


@dataclass(frozen=True)
class HubPart:
    """One hub repository the ControlNet stack reads, and which of its files."""

    what: str
    """e.g. `ControlNet 0 (depth)` or DEPTH_WHAT"""
    repo: str | None
    """None: an `auto` net whose pick waits for the base model's family (not known yet)"""
    files: tuple[str, ...]
    ignore: tuple[str, ...] = ()

    @property
    def fetch_hint(self) -> str:
        """How to fetch it, for a one-line error (it is not a base model: `sd-bridge fetch ID` is wrong)."""
        from ..errors import depth_fetch_hint, net_fetch_hint

        return depth_fetch_hint() if self.what == DEPTH_WHAT else net_fetch_hint(self.repo or "NET")


def slot_specs(config: EngineConfig) -> list[ControlNetSpec]:
    """`config.controlnets` as specs (dicts from presets parsed); ValueError if too many or bad."""
    specs = list(config.controlnets or [])
    if len(specs) > MAX_CONTROLNETS:
        raise ValueError(f"at most {MAX_CONTROLNETS} ControlNets at once, got {len(specs)}")
    return [
        raw if isinstance(raw, ControlNetSpec) else spec_from_dict(dict(raw), f"controlnets[{i}]")
        for i, raw in enumerate(specs)
    ]


def resolve_slots(config: EngineConfig, base_spec: str, family: str) -> list[tuple[ControlNetSpec, str]]:
    """Each slot's spec and the net it loads on this base model (`auto` resolved); ValueError if none fits."""
    return [(spec, resolve_model(spec, base_spec, family)) for spec in slot_specs(config)]


def uses_depth(specs: list[ControlNetSpec]) -> bool:
    """Whether a slot starts with the depth preprocessor (then the depth model is needed at once)."""
    return any(spec.preprocessor == "depth" for spec in specs)


def on_hub(name: str) -> bool:
    """A Hugging Face id (not random:, a .safetensors file, or a local folder or path)."""
    from ..models import _looks_like_path

    return (
        not name.startswith("random:")
        and not name.lower().endswith(".safetensors")
        and not Path(name).expanduser().exists()
        and not _looks_like_path(name)
    )


def hub_parts(config: EngineConfig, base_spec: str, family: str | None) -> list[HubPart]:
    """The nets and depth model loading `config` on `base_spec` reads from the hub.

    `family` None: the base model's family is not known yet (it is not cached), so an `auto` net is
    listed with repo None. Raises ValueError as `build_stack` would (too many slots, no net for a family).
    """
    from .depth import resolve_depth_model

    specs = slot_specs(config)
    parts: list[HubPart] = []
    for i, spec in enumerate(specs):
        what = f"ControlNet {i} ({spec.preprocessor})"
        if family is None and spec.model == "auto" and not base_spec.startswith("random:"):
            parts.append(HubPart(what, None, NET_FILES, NET_IGNORE))
            continue
        name = resolve_model(spec, base_spec, family or "other")
        if on_hub(name):
            parts.append(HubPart(what, name, NET_FILES, NET_IGNORE))
    depth = resolve_depth_model(config.depth_model, base_spec)
    if uses_depth(specs) and on_hub(depth):
        parts.append(HubPart(DEPTH_WHAT, depth, DEPTH_FILES))
    return parts
