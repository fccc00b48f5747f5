"""`sd-bridge osc-docs`: print or write docs/OSC.md from the parameter table."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("osc-docs")
    def osc_docs(
        write: Path | None = typer.Option(None, "--write", help="Write the text to this file (docs/OSC.md)."),
        check: Path | None = typer.Option(
            None, "--check", help="Exit 1 if this file differs from the generated text."
        ),
    ) -> None:
        """Print the OSC address reference (generated from the parameter store)."""
        from bridge.control.osc_docs import render

        text = render()
        if check is not None:
            current = check.read_text(encoding="utf-8") if check.exists() else ""
            if current != text:
                typer.echo(f"{check} is out of date: run `sd-bridge osc-docs --write {check}`", err=True)
                raise typer.Exit(1)
            typer.echo(f"{check} is up to date")
        if write is not None:
            write.parent.mkdir(parents=True, exist_ok=True)
            write.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {write}")
        if write is None and check is None:
            typer.echo(text, nl=False)
