"""What one ControlNet slot is: which net, which preprocessor, and its starting live values.

A `ControlNetSpec` lives in `EngineConfig.controlnets`. Only `model` identifies the net: two specs
with the same model compare equal whatever their live values (scale, preprocessor, thresholds),
so a preset that changes only those applies them live instead of rebuilding the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

MAX_CONTROLNETS = 4
PREPROCESSORS = ("canny", "depth", "softedge", "passthrough")
SOURCES = ("auto", "input", "control")
"""Where a net's image comes from: `input` the video frame, `control` the control source (the net
waits until it has sent), `auto` the control source once it has sent, else the video frame."""
LIVE_FIELDS = ("preprocessor", "scale", "enabled", "start", "end", "canny_low", "canny_high", "source")
RANDOM_NET = "random:controlnet"

# Nets a bare `--controlnet canny` picks per base family (hub ids; fetched like any model).
DEFAULT_NETS: dict[str, dict[str, str]] = {
    "sd15": {
        "canny": "lllyasviel/control_v11p_sd15_canny",
        "depth": "lllyasviel/control_v11f1p_sd15_depth",
        "softedge": "lllyasviel/control_v11p_sd15_softedge",
    },
    "sd21": {
        "canny": "thibaud/controlnet-sd21-canny-diffusers",
        "depth": "thibaud/controlnet-sd21-depth-diffusers",
        "softedge": "thibaud/controlnet-sd21-hed-diffusers",
    },
}


@dataclass
class ControlNetSpec:
    model: str = "auto"
    """A diffusers ControlNetModel: hub id, folder, one `.safetensors`, `random:controlnet`, or `auto`
    (random:controlnet on random base models, else the family's net for the preprocessor)."""
    preprocessor: str = field(default="canny", compare=False)
    scale: float = field(default=1.0, compare=False)
    enabled: bool = field(default=True, compare=False)
    start: float = field(default=0.0, compare=False)
    """Fraction of the denoising schedule before which the net is left out (diffusers'
    control_guidance_start)."""
    end: float = field(default=1.0, compare=False)
    canny_low: float = field(default=0.1, compare=False)
    canny_high: float = field(default=0.2, compare=False)
    source: str = field(default="auto", compare=False)
    """auto, input or control (see SOURCES)."""

    def live(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in LIVE_FIELDS}


def check_live(values: dict[str, Any], where: str = "controlnet") -> dict[str, Any]:
    """Validate live values of one slot; returns them normalised. Raises ValueError naming the key."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in LIVE_FIELDS:
            raise ValueError(f"{where}: unknown key {key!r}; known: {', '.join(LIVE_FIELDS)}")
        if key == "preprocessor":
            if value not in PREPROCESSORS:
                raise ValueError(
                    f"{where}.preprocessor must be one of {', '.join(PREPROCESSORS)}, got {value!r}"
                )
            out[key] = value
        elif key == "source":
            if value not in SOURCES:
                raise ValueError(f"{where}.source must be one of {', '.join(SOURCES)}, got {value!r}")
            out[key] = value
        elif key == "enabled":
            if value not in (True, False, 0, 1):
                raise ValueError(f"{where}.enabled must be true or false, got {value!r}")
            out[key] = bool(value)
        else:
            hi = 2.0 if key == "scale" else 1.0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}.{key} must be a finite number, got {value!r}")
            if not 0.0 <= value <= hi:
                raise ValueError(f"{where}.{key} must be in [0, {hi:g}], got {value!r}")
            out[key] = float(value)
    return out


def spec_from_dict(entry: dict[str, Any], where: str = "controlnet") -> ControlNetSpec:
    """A spec from a preset table / dict; unknown keys and bad values raise ValueError."""
    known = {f.name for f in fields(ControlNetSpec)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
    model = entry.get("model", "auto")
    if not isinstance(model, str) or not model.strip():
        raise ValueError(
            f"{where}.model must be a model id, folder, .safetensors file or 'auto', got {model!r}"
        )
    live = check_live({k: v for k, v in entry.items() if k != "model"}, where)
    return ControlNetSpec(model=model.strip(), **live)


def parse_cli_spec(text: str) -> ControlNetSpec:
    """`--controlnet PREPROCESSOR[=NET][@SCALE]`, e.g. `canny`, `depth=random:controlnet@0.8`."""
    body, _, scale = text.strip().partition("@")
    pre, _, model = body.partition("=")
    entry: dict[str, Any] = {"preprocessor": pre.strip()}
    if model.strip():
        entry["model"] = model.strip()
    if scale.strip():
        try:
            entry["scale"] = float(scale)
        except ValueError:
            raise ValueError(f"--controlnet {text!r}: scale after @ must be a number") from None
    return spec_from_dict(entry, f"--controlnet {text!r}")


def resolve_model(spec: ControlNetSpec, base_spec: str, family: str) -> str:
    """The net a spec names once the base model is known (`auto` picks one)."""
    if spec.model != "auto":
        return spec.model
    if base_spec.startswith("random:"):
        return RANDOM_NET
    nets = DEFAULT_NETS.get(family, {})
    if spec.preprocessor not in nets:
        raise ValueError(
            f"no default ControlNet for preprocessor {spec.preprocessor!r} on a {family} model; "
            "name one (--controlnet PRE=NET, or model = ... in the preset)"
        )
    return nets[spec.preprocessor]
