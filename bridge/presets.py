"""Presets: TOML files in presets/ that set up a whole show (model, resolution, prompt, source, sinks...).

A preset is flat TOML; every key is checked here, and a bad one is reported as one line naming the
file, the key and what was expected. Live parameters are validated by the same `Param` table as
OSC (bridge.control.params), so a preset can never hold a value OSC would refuse.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bridge.control.controlnet_params import controlnet_store_values, controlnets_from_preset
from bridge.control.params import ParamError, is_safe_name, param
from bridge.control.region_params import region_values_from_preset
from bridge.errors import BridgeError
from engine import EngineConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CHECKOUT_PRESETS = Path(__file__).resolve().parents[1] / "presets"
"""The presets of a checkout (what `./sd-bridge.sh` and install.bat's editable installs use)."""
WHEEL_PRESETS = Path("share") / "sd-bridge" / "presets"
"""Where a wheel puts them, under the install's data prefix (pyproject's data-files)."""


class PresetError(BridgeError):
    """A preset that cannot be used; the message names the file, the key and what was expected."""


def presets_dir() -> Path:
    """$SD_BRIDGE_PRESETS, else the checkout's presets/, else those a wheel installed."""
    if os.environ.get("SD_BRIDGE_PRESETS"):
        return Path(os.environ["SD_BRIDGE_PRESETS"])
    if CHECKOUT_PRESETS.is_dir():
        return CHECKOUT_PRESETS
    schemes = [sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")]
    installed = [Path(sysconfig.get_path("data", scheme)) / WHEEL_PRESETS for scheme in schemes]
    return next((p for p in installed if p.is_dir()), installed[0])


@dataclass
class Preset:
    name: str
    path: Path
    engine: dict[str, Any] = field(default_factory=dict)
    """EngineConfig fields."""
    run: dict[str, Any] = field(default_factory=dict)
    """Daemon settings: engine (kind), source, sinks, osc_port, fps, fit, transition."""

    def apply_to(self, config: EngineConfig) -> EngineConfig:
        return config.with_changes(**self.engine)


# -- key checkers: each takes the raw value and returns the checked one or raises ValueError(expected) --
def _choice(*options: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v not in options:
            raise ValueError("one of " + ", ".join(repr(o) for o in options))
        return v

    return check


def _int(lo: int, hi: int, multiple: int = 1) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi or v % multiple:
            extra = f", a multiple of {multiple}" if multiple > 1 else ""
            raise ValueError(f"an integer in [{lo}, {hi}]{extra}")
        return v

    return check


def _float(lo: float, hi: float) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"a number in [{lo:g}, {hi:g}]")
        return float(v)

    return check


def _str(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def _param(name: str) -> Callable[[Any], Any]:
    """Check with the live parameter table, refusing (not clamping) out-of-range values."""
    p = param(name)

    def check(v: Any) -> Any:
        try:
            coerced = p.coerce(v)
        except ParamError:
            raise ValueError(p.expects()) from None
        if coerced != v and not (isinstance(v, int) and coerced == float(v)):
            raise ValueError(p.expects())
        return coerced

    return check


def _source(v: Any) -> Any:
    from bridge.sources import SOURCE_SPECS, open_source

    if not isinstance(v, str):
        raise ValueError(f"a source spec ({SOURCE_SPECS})")
    try:
        open_source(v)
    except BridgeError as exc:
        raise ValueError(f"a source spec ({SOURCE_SPECS}){_why(exc, SOURCE_SPECS)}") from None
    return v


def _why(exc: BridgeError, specs: str) -> str:
    """The spec's own reason (`cannot record .gif; use ...`), unless it only repeats the list of specs."""
    return "" if specs in str(exc) else f" ({exc})"


def _sinks(v: Any) -> Any:
    from bridge.sinks import SINK_SPECS, make_sink

    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        raise ValueError(f"a list of sink specs ({SINK_SPECS})")
    for s in items:
        try:
            make_sink(s)
        except BridgeError as exc:
            raise ValueError(
                f"a list of sink specs ({SINK_SPECS}); {s!r} is not one{_why(exc, SINK_SPECS)}"
            ) from None
    return items


def _filter(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"similarity_filter": v}
    if not isinstance(v, dict):
        raise ValueError("true/false or a table {enabled, threshold, max_skip}")
    out: dict[str, Any] = {}
    keys = {"enabled": "similarity_filter", "threshold": "similarity_threshold", "max_skip": "max_skip_frame"}
    for k, raw in v.items():
        if k not in keys:
            raise ValueError("a table with keys enabled, threshold, max_skip")
        out[keys[k]] = _param(f"filter.{k}")(raw)
    return out


# preset key -> (EngineConfig field or None for a daemon setting, checker)
_ENGINE_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "model": ("model", _str),
    "width": ("width", _int(64, 2048, 8)),
    "height": ("height", _int(64, 2048, 8)),
    "t_index_list": ("t_index_list", _param("t_index")),
    "num_inference_steps": ("num_inference_steps", _int(1, 1000)),
    "frame_buffer_size": ("frame_buffer_size", _int(1, 16)),
    "mode": ("mode", _choice("img2img", "txt2img")),
    "cfg_type": ("cfg_type", _choice("none", "full", "self", "initialize")),
    "guidance": ("guidance_scale", _param("guidance")),
    "delta": ("delta", _param("delta")),
    "prompt": ("prompt", _param("prompt")),
    "negative_prompt": ("negative_prompt", _param("negative_prompt")),
    "seed": ("seed", _param("seed")),
    "vae": ("vae", _choice("tiny", "full")),
    "lcm_lora": ("lcm_lora", _str),
    "tome_ratio": ("tome_ratio", _float(0.0, 0.9)),
    "accel": ("accel", _choice("auto", "torch", "compile", "tensorrt")),
    "dtype": ("dtype", _choice("auto", "float16", "float32")),
    "device": ("device", _str),
    # temporal stability (issue 18)
    "feedback": ("feedback", _param("feedback")),
    "cache_attention": ("cache_attention", _param("cache_attention")),
    "cache_frames": ("cache_frames", _param("cache_frames")),
    "cache_interval": ("cache_interval", _param("cache_interval")),
    "depth_model": ("depth_model", _str),  # ControlNet's depth preprocessor (issue 17)
}
_RUN_KEYS: dict[str, Callable[[Any], Any]] = {
    "engine": _choice("stream", "passthrough"),
    "source": _source,
    "sinks": _sinks,
    "osc_port": _int(0, 65535),
    "fps": _float(1.0, 240.0),
    "fit": _choice("crop", "letterbox", "stretch"),
    "transition": _param("transition"),
}
_IGNORED = {"description"}
KNOWN_KEYS = sorted([*_ENGINE_KEYS, *_RUN_KEYS, "filter", "regions", "controlnets", *_IGNORED])

assert {f for f, _ in _ENGINE_KEYS.values()} <= {f.name for f in fields(EngineConfig)}


def parse_preset(data: dict[str, Any], path: Path) -> Preset:
    preset = Preset(name=path.stem, path=path)
    for key, raw in data.items():
        try:
            if key in _ENGINE_KEYS:
                target, check = _ENGINE_KEYS[key]
                preset.engine[target] = check(raw)
            elif key == "filter":
                preset.engine.update(_filter(raw))
            elif key == "regions":
                preset.run["regions"] = region_values_from_preset(raw)
            elif key == "controlnets":  # the nets (a rebuild when they change) and their live values
                preset.engine["controlnets"] = controlnets_from_preset(raw)
                preset.run["controlnets"] = controlnet_store_values(preset.engine["controlnets"])
            elif key in _RUN_KEYS:
                preset.run[key] = _RUN_KEYS[key](raw)
            elif key not in _IGNORED:
                raise PresetError(f"{path}: unknown key {key!r}; known keys: {', '.join(KNOWN_KEYS)}")
        except ValueError as exc:
            shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:57] + "..."
            raise PresetError(f"{path}: key {key!r} expects {exc}, got {shown}") from None
    return preset


def load_preset_file(path: Path) -> Preset:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PresetError(f"{path}: no such preset file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML ({exc})") from None
    return parse_preset(data, path)


def check_name(name: str) -> str:
    """A preset name as OSC may send it: a plain name, never a path."""
    name = name.strip()
    if name.endswith(".toml"):
        name = name[:-5]
    if not is_safe_name(name):
        raise PresetError(
            f"preset {name!r}: expected a plain preset name (letters, digits, - _ .), not a path"
        )
    return name


def load_preset(name: str, folder: Path | None = None) -> Preset:
    """Load presets/NAME.toml; NAME must be a plain name (OSC and `--preset NAME`)."""
    name = check_name(name)
    folder = folder or presets_dir()
    path = folder / f"{name}.toml"
    if not path.is_file():
        have = ", ".join(list_presets(folder)) or "none"
        raise PresetError(f"preset {name!r} not found in {folder} (available: {have})")
    return load_preset_file(path)


def load_preset_arg(arg: str, folder: Path | None = None) -> Preset:
    """`--preset NAME|PATH`: a path (has a separator or ends in .toml and exists) or a name."""
    p = Path(arg).expanduser()
    if os.sep in arg or "/" in arg or (arg.endswith(".toml") and p.is_file()):
        return load_preset_file(p)
    return load_preset(arg, folder)


def list_presets(folder: Path | None = None) -> list[str]:
    folder = folder or presets_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def preset_models(folder: Path | None = None) -> set[str]:
    """Models named by the shipped presets (the runtime's model allow-list includes them)."""
    models = set()
    for name in list_presets(folder):
        try:
            m = load_preset(name, folder).engine.get("model")
        except PresetError:
            continue
        if m:
            models.add(m)
    return models
