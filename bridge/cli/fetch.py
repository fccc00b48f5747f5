"""`sd-bridge fetch [MODEL | --preset NAME]`: download everything a model or preset needs, before the show.

Into the normal Hugging Face cache (HF_HOME), with a progress bar per file; an interrupted fetch
resumes where it stopped when run again. `--list` says what is needed and what is cached, offline.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(
        help="Download what a model or preset needs (UNet, text encoder, tokenizer, TAESD, LCM-LoRA)."
    )(fetch)


def fetch(
    model: str = typer.Argument(
        None, help="A Hugging Face id (default: the default model, stabilityai/sd-turbo)."
    ),
    preset: str = typer.Option(None, "--preset", "-p", help="Fetch what this preset needs (NAME or PATH)."),
    list_only: bool = typer.Option(False, "--list", help="Only list what is needed and what is cached."),
) -> None:
    from bridge.errors import BridgeError
    from bridge.fetch import human, is_cached, needs, preset_config, remote_size
    from bridge.runtime.settings import DEFAULT_MODEL
    from engine import EngineConfig

    if model and preset:
        typer.echo("error: give a MODEL or --preset NAME, not both", err=True)
        raise typer.Exit(2)
    try:
        config = preset_config(preset) if preset else EngineConfig(model=model or DEFAULT_MODEL)
    except BridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    wanted = needs(config)
    if not wanted:
        typer.echo(f"{config.model}: nothing to download (built in, or a local file/folder)")
        return
    missing = [n for n in wanted if not is_cached(n)]
    for n in wanted:
        state = "cached" if n not in missing else "not cached"
        typer.echo(f"{n.repo} ({n.what}): {state}")
    if list_only or not missing:
        if not missing:
            typer.echo(f"everything {preset or config.model} needs is cached: it runs offline")
        return
    from engine.models import is_offline

    if is_offline():
        typer.echo(
            "error: offline (HF_HUB_OFFLINE is set), so nothing can be fetched: unset it and run "
            f"`sd-bridge fetch {'--preset ' + preset if preset else config.model}` again, while online",
            err=True,
        )
        raise typer.Exit(1)
    from engine import EngineError
    from engine.models import fetch_files

    for n in missing:
        typer.echo(f"fetching {n.repo} ({n.what}), {human(remote_size(n))}")
    try:
        folders = fetch_files(config, say=lambda msg: typer.echo(f"  {msg}"))
    except EngineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for folder in folders:
        typer.echo(f"  in {folder}")
    how = f"--preset {preset}" if preset else f"--model {config.model}"
    typer.echo(f"done: `sd-bridge run {how}` now runs offline")
