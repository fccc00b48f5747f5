"""`sd-bridge osc-monitor`: serve the OSC address space without an engine and print every change.

For checking a controller's mapping before the show (or without a GPU): every accepted change
is printed with who sent it, every refusal is logged with the reason, and `/sd/status`,
`/sd/get`, the echo and OSCQuery answer as they will in the daemon.
"""

from __future__ import annotations

import threading
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("osc-monitor")
    def osc_monitor(
        osc_host: str = typer.Option("127.0.0.1", "--osc-host", help="Address to listen on (0.0.0.0: all)."),
        osc_port: int = typer.Option(7000, "--osc-port", help="UDP port (0: any free port)."),
        osc_allow: list[str] = typer.Option(
            [], "--osc-allow", help="Only accept packets from this address or network (repeatable)."
        ),
        osc_reply_port: int | None = typer.Option(
            None, "--osc-reply-port", help="Send replies to this port on the sender's address."
        ),
        osc_query_port: int | None = typer.Option(
            None, "--osc-query-port", help="Serve OSCQuery (HTTP + JSON) on this TCP port (0: any free port)."
        ),
        seconds: float = typer.Option(0.0, "--seconds", help="Stop after N seconds (0: until Ctrl+C)."),
    ) -> None:
        """Listen for OSC without an engine and print every accepted change."""
        import logging

        from bridge.control import ParamStore
        from bridge.control.osc import OscOrigin, OscServer

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        store = ParamStore()

        def show(name: str, value: Any, origin: Any) -> None:
            who = f"{origin.client[0]}:{origin.client[1]}" if isinstance(origin, OscOrigin) else str(origin)
            typer.echo(f"{store.spec(name).address} = {value!r}  (from {who})")

        store.subscribe(show)
        try:
            server = OscServer(
                store,
                host=osc_host,
                port=osc_port,
                reply_port=osc_reply_port,
                allow=list(osc_allow) or None,
                query_port=osc_query_port,
            )
            server.start()
        except (OSError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        host, port = server.address
        typer.echo(f"listening for OSC on {host}:{port}")
        if server.query_address:
            typer.echo(f"OSCQuery on http://{server.query_address[0]}:{server.query_address[1]}/")
        done = threading.Event()
        try:
            done.wait(timeout=seconds if seconds > 0 else None)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            typer.echo(
                f"accepted {server.accepted}, rejected {server.rejected}, "
                f"dropped (not allowed) {server.dropped_not_allowed}"
            )
