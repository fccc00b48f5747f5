"""`sd-bridge send ADDRESS [ARGS...]`: one OSC message to a running daemon, typed from the parameter table.

    sd-bridge send /sd/prompt "neon city"        # a string
    sd-bridge send /sd/seed 5                    # an int, because /sd/seed is an int parameter
    sd-bridge send /sd/guidance/norm 0.5         # a float in 0..1
    sd-bridge send /sd/status                    # a question: waits for the reply and prints it
    sd-bridge send /sd/guidance 5 --wait         # a change, confirmed with the value now held

Arguments are typed by the address (never guessed from how they look), so `send /sd/prompt 5`
sends the text "5" and `send /sd/seed five` is refused here, with the daemon's own wording,
before anything goes on the wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import typer

from bridge.control.osc_map import COMMANDS, ROUTES, Route
from bridge.control.params import Kind, ParamError


class SendError(ValueError):
    """A message that can't be built; the text is the one-line error shown to the user."""


COMMAND_TYPES: dict[str, str] = {
    "/sd/status": "",
    "/sd/get": "s?",
    "/sd/subscribe": "f?",
    "/sd/unsubscribe": "",
    "/sd/quit": "",
}
"""Argument types of the addresses that ask rather than set (`?`: optional)."""
QUESTIONS = ("/sd/status", "/sd/get")
"""Addresses whose whole point is the reply: `send` waits for it without `--wait`."""


def _number(text: str, integral: bool, address: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise SendError(
            f"{address} expects {'an integer' if integral else 'a number'}, got {text!r}"
        ) from None
    if integral:
        if not value.is_integer():
            raise SendError(f"{address} expects an integer, got {text!r}")
        return int(value)
    return value


def _bool(text: str, address: str) -> int:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "on", "yes"):
        return 1
    if lowered in ("0", "false", "off", "no"):
        return 0
    raise SendError(f"{address} expects 0 or 1 (or on/off), got {text!r}")


WORD_TYPES: dict[Kind, Callable[[str, str], Any]] = {
    Kind.FLOAT: lambda t, a: _number(t, False, a),
    Kind.FLOAT_LIST: lambda t, a: _number(t, False, a),
    Kind.INT: lambda t, a: _number(t, True, a),
    Kind.INT_LIST: lambda t, a: _number(t, True, a),
    Kind.INT_PAIR: lambda t, a: _number(t, True, a),
    Kind.BOOL: _bool,
}
"""How one command-line word becomes one OSC argument, for the kinds whose arguments are all alike
(STR and the weighted lists are shaped above)."""


def typed_args(address: str, texts: list[str]) -> list[Any]:
    """Turn command-line words into the OSC arguments `address` takes; raise SendError if it can't."""
    if address in COMMANDS:
        spec = COMMAND_TYPES.get(address, "")
        if not spec and texts:
            raise SendError(f"{address} takes no arguments, got {len(texts)}")
        if spec and len(texts) > 1:
            raise SendError(f"{address} takes at most one argument, got {len(texts)}")
        if spec.startswith("f") and texts:
            return [_number(texts[0], False, address)]
        return list(texts)
    route: Route | None = ROUTES.get(address)
    if route is None:
        guesses = ("/" + address.lstrip("/"), "/sd/" + address.lstrip("/").replace(".", "/"))
        known = [g for g in guesses if g in ROUTES or g in COMMANDS]
        hint = f" (did you mean {known[0]}?)" if known else ""
        raise SendError(f"unknown address {address!r}{hint}; see docs/OSC.md for the list")
    if not texts:
        raise SendError(f"{address} expects {route.expects()}, got no arguments")
    kind = route.param.kind
    if route.norm:
        values: list[Any] = [_number(t, False, address) for t in texts]
    elif kind is Kind.STR:
        values = [" ".join(texts)]  # `send /sd/prompt neon city` without quotes is one prompt
    elif kind in (Kind.WEIGHTED_STR, Kind.WEIGHTED_INT):
        if len(texts) % 2:
            raise SendError(f"{address} expects {route.expects()}, got {len(texts)} words")
        key = (lambda t: t) if kind is Kind.WEIGHTED_STR else (lambda t: _number(t, True, address))
        values = [key(t) if i % 2 == 0 else _number(t, False, address) for i, t in enumerate(texts)]
    else:
        word = WORD_TYPES.get(kind)
        if word is None:  # a Kind added to the table without a word here: tests/bridge/test_send_cli.py
            raise SendError(f"{address}: unsupported parameter kind {kind}")
        values = [word(t, address) for t in texts]
    try:  # the daemon's own check, so the error reads the same here and there
        from bridge.control.osc_map import decode

        decode(route, values)
    except ParamError as exc:
        raise SendError(str(exc)) from None
    return values


def encode(address: str, args: list[Any]) -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def format_message(address: str, args: list[Any]) -> str:
    shown = []
    for arg in args:
        if isinstance(arg, float):
            shown.append(f"{arg:.6g}")
        elif isinstance(arg, str):
            shown.append(repr(arg) if (" " in arg or not arg) else arg)
        else:
            shown.append(str(arg))
    return " ".join([address, *shown])


def send(
    messages: list[tuple[str, list[Any]]],
    host: str = "127.0.0.1",
    port: int = 7000,
    wait: float = 0.0,
    expect: str | None = None,
    reply_port: int | None = None,
) -> list[tuple[str, list[Any]]]:
    """Send messages from one socket; with `wait` > 0, collect replies until one on `expect`
    (any reply if None) or an `/sd/error` arrives, or the timeout passes.

    `reply_port`: send from (and listen on) this local port, for a daemon started with
    `--osc-reply-port` that port: it answers there, not to the port a message came from."""
    from pythonosc.osc_packet import OscPacket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if reply_port:
            try:
                sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", reply_port))
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot listen for replies on UDP port {reply_port} ({exc.strerror}); "
                    "another program (your controller?) holds it",
                ) from None
        for address, args in messages:
            sock.sendto(encode(address, args), (host, port))
        replies: list[tuple[str, list[Any]]] = []
        deadline = time.monotonic() + wait
        while wait > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, _ = sock.recvfrom(65536)
            except (TimeoutError, ConnectionResetError):
                continue
            try:
                received = [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]
            except Exception:
                continue
            replies += received
            if any(expect is None or a in (expect, "/sd/error") for a, _ in received):
                break
        return replies


def plan(address: str, args: list[Any], wait: bool) -> tuple[list[tuple[str, list[Any]]], str | None]:
    """What to send and which reply ends the wait. Waiting on a change asks `/sd/get` for it back,
    so `--wait` confirms the value the daemon now holds (clamped, if it clamped it)."""
    messages = [(address, args)]
    if address == "/sd/status":
        return messages, "/sd/status"
    if address == "/sd/get":
        if not args:
            return messages, None
        target = str(args[0])
        return messages, target if target.startswith("/") else "/sd/" + target.replace(".", "/")
    if wait and address in ROUTES:
        messages.append(("/sd/get", [address]))
        return messages, address
    return messages, None


def register(app: typer.Typer) -> None:
    @app.command("send")
    def send_command(
        address: str = typer.Argument(
            ..., help="OSC address, e.g. /sd/prompt, /sd/guidance/norm, /sd/status."
        ),
        args: list[str] = typer.Argument(None, help="Values; typed from the parameter table."),
        host: str = typer.Option("127.0.0.1", "--host", help="Daemon host."),
        port: int = typer.Option(7000, "--port", help="Daemon OSC port."),
        wait: bool = typer.Option(
            False,
            "--wait",
            help="Wait for the reply (or an /sd/error) and print it; /sd/status and /sd/get always wait.",
        ),
        timeout: float = typer.Option(2.0, "--timeout", help="Seconds --wait waits.", min=0.05),
        reply_port: int = typer.Option(
            None,
            "--reply-port",
            help="Listen for replies on this port (the daemon's --osc-reply-port, if it has one).",
        ),
    ) -> None:
        """Send one OSC message to a running sd-bridge (for scripts and for testing a setup)."""
        try:
            values = typed_args(address, list(args or []))
        except SendError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        wait = wait or address in QUESTIONS
        messages, expect = plan(address, values, wait)
        try:
            replies = send(messages, host, port, timeout if wait else 0.0, expect, reply_port)
        except OSError as exc:
            typer.echo(f"error: cannot send to {host}:{port}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None
        if not wait:
            return
        if not replies:
            typer.echo(
                f"error: no reply from {host}:{port} within {timeout:g} s (is sd-bridge running? "
                "if it was started with --osc-reply-port N, add --reply-port N)",
                err=True,
            )
            raise typer.Exit(1)
        failed = False
        for reply_address, reply_args in replies:
            typer.echo(format_message(reply_address, reply_args))
            failed = failed or reply_address == "/sd/error"
        if failed:
            raise typer.Exit(1)
