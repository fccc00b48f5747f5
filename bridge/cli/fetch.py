"""`sd-bridge fetch [MODEL | --preset NAME] [--controlnet PRE[=NET]]`: download everything a model or preset
needs (its ControlNets and the depth model too), before the show.

Into the normal Hugging Face cache (HF_HOME), with a progress bar per file; an interrupted fetch
resumes where it stopped when run again. `--list` says what is needed and what is cached, offline.
"""

from __future__ import annotations

import typer

UNPICKED_TEXT = "auto, the net for the model's family (picked once the model is cached)"


def register(app: typer.Typer) -> None:
    app.command(
        help="Download what a model or preset needs (UNet, text encoder, tokenizer, TAESD, LCM-LoRA, "
        "ControlNets, depth model)."
    )(fetch)


def fetch(
    model: str = typer.Argument(
        None, help="A Hugging Face id (default: the default model, stabilityai/sd-turbo)."
    ),
    preset: str = typer.Option(None, "--preset", "-p", help="Fetch what this preset needs (NAME or PATH)."),
    controlnet: list[str] = typer.Option(
        None,
        "--controlnet",
        help="Also fetch this ControlNet, as `run --controlnet` names it: PREPROCESSOR[=NET][@SCALE] "
        "(repeatable; replaces a preset's nets, as in run). A depth net brings the depth model.",
    ),
    list_only: bool = typer.Option(False, "--list", help="Only list what is needed and what is cached."),
) -> None:
    from bridge.control.controlnet_params import controlnets_from_preset
    from bridge.control.params import ParamError
    from bridge.errors import BridgeError
    from bridge.fetch import UNPICKED, human, is_cached, needs, preset_config, remote_size
    from bridge.runtime.settings import DEFAULT_MODEL
    from engine import EngineConfig

    if model and preset:
        typer.echo("error: give a MODEL or --preset NAME, not both", err=True)
        raise typer.Exit(2)
    try:
        config = preset_config(preset) if preset else EngineConfig(model=model or DEFAULT_MODEL)
        if controlnet:
            config.controlnets = controlnets_from_preset(list(controlnet), "--controlnet")
    except (BridgeError, ParamError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    wanted = needs(config)
    if not wanted:
        typer.echo(f"{config.model}: nothing to download (built in, or a local file/folder)")
        return
    missing = [n for n in wanted if not is_cached(n)]
    for n in wanted:
        state = "cached" if n not in missing else "not cached"
        typer.echo(f"{n.what}: {UNPICKED_TEXT}" if n.repo == UNPICKED else f"{n.repo} ({n.what}): {state}")
    if list_only or not missing:
        if not missing:
            typer.echo(f"everything {preset or config.model} needs is cached: it runs offline")
        return
    from engine.models import is_offline

    command = " ".join(
        [f"--preset {preset}" if preset else config.model, *(f"--controlnet {c}" for c in controlnet or [])]
    )
    if is_offline():
        typer.echo(
            "error: offline (HF_HUB_OFFLINE is set), so nothing can be fetched: unset it and run "
            f"`sd-bridge fetch {command}` again, while online (missing: "
            f"{', '.join(n.repo if n.repo != UNPICKED else n.what for n in missing)})",
            err=True,
        )
        raise typer.Exit(1)
    from engine import EngineError
    from engine.models import fetch_files

    for n in missing:
        if n.repo == UNPICKED:
            typer.echo(f"fetching {n.what}: {UNPICKED_TEXT}")
        else:
            typer.echo(f"fetching {n.repo} ({n.what}), {human(remote_size(n))}")
    try:
        folders = fetch_files(config, say=lambda msg: typer.echo(f"  {msg}"))
    except EngineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for folder in folders:
        typer.echo(f"  in {folder}")
    how = " ".join(
        [f"--preset {preset}" if preset else f"--model {config.model}"]
        + [f"--controlnet {c}" for c in controlnet or []]
    )
    typer.echo(f"done: `sd-bridge run {how}` now runs offline")
