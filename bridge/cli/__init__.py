"""The `sd-bridge` command.

Each subcommand lives in its own module of this package and exposes `register(app)`; modules
are discovered here, so adding a command never touches this file. Command modules import
heavy packages (torch, diffusers, cyndilib) inside their functions, so `sd-bridge send` and
`sd-bridge --help` start fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="sd-bridge",
    help="Real-time Stable Diffusion for live video, steered over OSC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def _print_version(value: bool) -> None:
    """An eager option's callback runs while the command line is parsed, before click asks for a
    subcommand, so `sd-bridge --version` works on its own (a flag read in the group callback would
    come too late: "Missing command.")."""
    if value:
        from bridge import __version__

        typer.echo(f"sd-bridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Real-time Stable Diffusion for live video, steered over OSC."""


_register_commands()


def main() -> None:
    app()
