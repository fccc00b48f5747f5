"""`sd-bridge send`: typed from the parameter table, against a real daemon socket."""

from __future__ import annotations

import socket

import pytest
from plugin_fakes import STATS, wait_for
from pythonosc.osc_message import OscMessage
from typer.testing import CliRunner

from bridge.cli import app
from bridge.cli.send import QUESTIONS, SendError, typed_args

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["send", *args])


@pytest.mark.parametrize(
    ("argv", "typetags", "params"),
    [
        (["/sd/seed", "5"], ",i", [5]),
        (["/sd/prompt", "neon city"], ",s", ["neon city"]),
        (["/sd/prompt", "5"], ",s", ["5"]),
        (["/sd/prompt", "neon", "city"], ",s", ["neon city"]),
        (["/sd/guidance", "3"], ",f", [3.0]),
        (["/sd/guidance/norm", "0.5"], ",f", [0.5]),
        (["/sd/bypass", "on"], ",i", [1]),
        (["/sd/resolution", "512", "384"], ",ii", [512, 384]),
        (["/sd/prompts", "cat", "1", "dog", "0.5"], ",sfsf", ["cat", 1.0, "dog", 0.5]),
        (["/sd/seeds", "1", "0.5", "2", "0.5"], ",ifif", [1, 0.5, 2, 0.5]),
        (["/sd/status"], ",", []),
        (["/sd/get", "/sd/seed"], ",s", ["/sd/seed"]),
    ],
)
def test_types_on_the_wire_come_from_the_table(argv, typetags, params):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(3)
    try:
        result = _run(*argv, "--port", str(listener.getsockname()[1]), "--timeout", "0.1")
        message = OscMessage(listener.recvfrom(65536)[0])
        # a question waits for an answer, and this listener gives none; a change does not wait
        assert result.exit_code == (1 if argv[0] in QUESTIONS else 0), result.output
    finally:
        listener.close()
    assert message.address == argv[0]
    assert "," + "".join(_tags(message)) == typetags
    assert message.params == params  # these floats are exact in float32


def _tags(message: OscMessage) -> list[str]:
    return [{int: "i", float: "f", str: "s"}[type(p)] for p in message.params]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["/sd/nope", "1"], "unknown address '/sd/nope'"),
        (["seed", "1"], "did you mean /sd/seed?"),
        (["/sd/seed", "five"], "/sd/seed expects an integer"),
        (["/sd/seed", "1.5"], "/sd/seed expects an integer"),
        (["/sd/guidance/norm", "2"], "/sd/guidance/norm expects a number in [0, 1]"),
        (["/sd/bypass", "maybe"], "/sd/bypass expects 0 or 1"),
        (["/sd/status", "x"], "/sd/status takes no arguments"),
        (["/sd/guidance"], "/sd/guidance expects one argument"),
        (["/sd/preset", "../etc"], "/sd/preset expects a bare name"),
    ],
)
def test_bad_input_is_one_clear_line(argv, words):
    result = _run(*argv, "--port", "9")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output


def test_sets_change_the_real_daemon(daemon):
    store, server = daemon
    port = str(server.address[1])
    assert _run("/sd/seed", "5", "--port", port).exit_code == 0
    assert _run("/sd/prompt", "neon city", "--port", port).exit_code == 0
    assert _run("/sd/strength/norm", "0.5", "--port", port).exit_code == 0
    assert wait_for(
        lambda: (store.get("seed"), store.get("prompt"), store.get("strength")) == (5, "neon city", 0.5)
    )


def test_wait_prints_status_and_confirms_values(daemon):
    store, server = daemon
    port = str(server.address[1])
    status = _run("/sd/status", "--port", port)  # a question waits for its answer unasked
    assert status.exit_code == 0, status.output
    words = status.output.split()
    assert words[0] == "/sd/status" and float(words[1]) == STATS["fps"] and int(words[5]) == STATS["dropped"]
    clamped = _run("/sd/guidance", "50", "--port", port, "--wait")
    assert clamped.exit_code == 0, clamped.output
    assert clamped.output.strip().splitlines()[-1] == "/sd/guidance 20"  # the daemon clamps to the range
    assert store.get("guidance") == 20.0
    got = _run("/sd/get", "seed", "--port", port, "--wait")
    assert got.output.strip() == "/sd/seed 2"


def test_wait_without_a_daemon_times_out_with_one_line():
    result = _run("/sd/status", "--port", "9", "--wait", "--timeout", "0.2")
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: no reply from 127.0.0.1:9 within 0.2 s")


def test_typed_args_directly():
    assert typed_args("/sd/t_index", ["20", "30"]) == [20, 30]
    assert typed_args("/sd/subscribe", ["4"]) == [4.0]
    with pytest.raises(SendError):
        typed_args("/sd/resolution", ["512"])
