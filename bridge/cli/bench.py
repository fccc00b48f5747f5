"""`sd-bridge bench`: measured speed of the engine and the whole pipeline, side by side, in one run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command(name="bench")(bench)


def bench(
    model: str = typer.Option("random:sd-turbo", help="Model spec: an HF id, a folder, a file, or random:*."),
    frames: int = typer.Option(None, help="Timed engine calls per row (30; 6 with --quick)."),
    warmup: int = typer.Option(None, help="Untimed calls per row before timing (5; 2 with --quick)."),
    sizes: str = typer.Option(
        None, help="WIDTHxHEIGHT list; the first is used by every comparison (512x512,768x512)."
    ),
    accel: str = typer.Option("available", help="Backends: torch, compile, tensorrt, or available."),
    only: str = typer.Option(
        None, help="Run a subset: throughput, batch, cfg, filter, pipeline, stages, memory."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Few frames at small sizes (64x64,96x64): a smoke run."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    json_path: Path = typer.Option(None, "--json", help="Also write the full results as JSON here."),
    markdown_path: str = typer.Option(
        None, "--markdown", help="Also write the tables as Markdown here ('-' prints them)."
    ),
) -> None:
    """Measure fps, latency, per-stage time and memory; every comparison is a ratio inside this run."""
    import json
    import sys
    import time

    from rich.console import Console
    from rich.markup import escape

    from bridge.bench import run_bench
    from bridge.bench.options import OptionError, build_options
    from bridge.bench.render import print_report, to_markdown

    err = Console(stderr=True)
    try:
        options = build_options(
            model=model, frames=frames, warmup=warmup, sizes=sizes, accel=accel, only=only,
            device=device, quick=quick,
        )  # fmt: skip
    except OptionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    def progress(message: str) -> None:
        err.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {escape(message)}", highlight=False)

    report = run_bench(options, log=progress)
    # With `--markdown -` stdout carries only the Markdown (to paste or redirect); the tables go to stderr.
    print_report(report, err if markdown_path == "-" else None)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if markdown_path == "-":
        sys.stdout.write(to_markdown(report))
    elif markdown_path:
        Path(markdown_path).write_text(to_markdown(report), encoding="utf-8")
    if any(row.error for section in report.sections for row in section.rows):
        typer.echo(
            "warning: some rows could not be measured; their errors are listed under each table", err=True
        )
