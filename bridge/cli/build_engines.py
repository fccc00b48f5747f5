"""`sd-bridge build-engines --preset NAME`: build the TensorRT engines for a preset ahead of a show.

Engines land in the same cache the daemon reads (`--engine-dir`, default the user cache folder),
so the show starts on TensorRT from the first frame instead of building at start-up.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer


class CommandError(RuntimeError):
    """Shown as one line, exit status 1."""


def _load_preset_config(arg: str) -> Any:
    """The preset's engine settings on top of `EngineConfig` defaults (validated by the preset loader)."""
    from bridge.presets import PresetError, load_preset_arg
    from engine import EngineConfig

    try:
        return load_preset_arg(arg).apply_to(EngineConfig())
    except PresetError as exc:
        raise CommandError(str(exc)) from None


def build_engines(preset: str, engine_dir: str | None, model: str | None, force: bool) -> str:
    """Check prerequisites cheaply (no model load) before building; returns the summary line."""
    from engine.accel import AccelUnavailable, build_tensorrt_engines
    from engine.accel.choose import TRT_INSTALL_HINT, cuda_available, tensorrt_importable

    config = _load_preset_config(preset)
    changes: dict[str, Any] = {"accel": "tensorrt"}
    if engine_dir:
        changes["engine_dir"] = engine_dir
    if model:
        changes["model"] = model
    config = config.with_changes(**changes)
    if not tensorrt_importable():
        raise CommandError(f"TensorRT is not installed: {TRT_INSTALL_HINT}")
    if not cuda_available():
        raise CommandError("TensorRT needs an NVIDIA GPU with a CUDA build of torch (see docs/ACCEL.md)")
    from engine.accel.progress import TqdmProgress
    from engine.accel.tensorrt.cache import EngineStore
    from engine.models import load_models

    started = time.monotonic()
    models = load_models(config.with_changes(device="cuda"))
    bar = TqdmProgress(file=sys.stderr)
    try:
        built = build_tensorrt_engines(models, config, bar, force=force)
    except AccelUnavailable as exc:
        raise CommandError(str(exc)) from None
    finally:
        bar.close()
    where = EngineStore(config.engine_dir).root
    if not built:
        return f"all TensorRT engines for {preset!r} were already built and load fine ({where})"
    return f"built {', '.join(built)} for {preset!r} in {time.monotonic() - started:.0f} s ({where})"


def register(app: typer.Typer) -> None:
    @app.command("build-engines")
    def build_engines_command(
        preset: str = typer.Option(..., "--preset", "-p", help="presets/NAME.toml, or a .toml path."),
        engine_dir: str = typer.Option(None, "--engine-dir", help="Engine cache (default: user cache)."),
        model: str = typer.Option(None, "--model", help="Use this model instead of the preset's."),
        force: bool = typer.Option(False, "--force", help="Rebuild even engines that are cached and valid."),
    ) -> None:
        """Build the TensorRT engines for a preset ahead of a show (takes minutes; shows progress)."""
        try:
            typer.echo(build_engines(preset, engine_dir, model, force))
        except CommandError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
