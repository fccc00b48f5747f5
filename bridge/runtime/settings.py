"""What `sd-bridge run` runs: defaults, then a preset, then command-line flags, all checked once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.presets import Preset, load_preset_arg, parse_preset
from engine import EngineConfig

DEFAULT_MODEL = "stabilityai/sd-turbo"
OFFLINE_MODEL = "random:sd-turbo"


@dataclass
class RunSettings:
    config: EngineConfig
    engine: str = "stream"
    source: str = "pattern"
    sinks: list[str] = field(default_factory=lambda: ["auto"])
    osc_port: int = 7000
    fps: float = 30.0
    fit: str = "crop"
    transition: float | None = None
    preset: Preset | None = None


def resolve_settings(
    preset_arg: str | None, overrides: dict[str, Any], folder: Path | None = None
) -> RunSettings:
    """Defaults < preset < flags. `overrides` uses preset keys (None values are ignored); they are
    validated like a preset, so a bad flag reads: "command line: key 'width' expects ..."."""
    preset = load_preset_arg(preset_arg, folder) if preset_arg else None
    flags = parse_preset({k: v for k, v in overrides.items() if v is not None}, Path("command line"))
    config = EngineConfig(model=DEFAULT_MODEL)
    run: dict[str, Any] = {}
    for layer in (preset, flags):
        if layer is not None:
            config = layer.apply_to(config)
            run.update(layer.run)
    settings = RunSettings(config=config, preset=preset)
    for key in ("engine", "source", "sinks", "osc_port", "fps", "fit", "transition"):
        if key in run:
            setattr(settings, key, run[key])
    return settings
