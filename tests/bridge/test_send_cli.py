"""`sd-bridge send` against a real daemon: one message of every parameter kind, and --osc-reply-port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from daemon_process import Daemon, free_port, offline_env

from bridge.control.params import Kind

ONE_OF_EACH_KIND: dict[Kind, tuple[str, list[str], str]] = {
    Kind.FLOAT: ("/sd/guidance", ["1.5"], "/sd/guidance 1.5"),
    Kind.INT: ("/sd/seed", ["7"], "/sd/seed 7"),
    Kind.BOOL: ("/sd/filter/enabled", ["on"], "/sd/filter/enabled 1"),
    Kind.STR: ("/sd/prompt", ["neon", "city"], "/sd/prompt 'neon city'"),
    Kind.INT_LIST: ("/sd/t_index", ["20", "30"], "/sd/t_index 20 30"),
    Kind.INT_PAIR: ("/sd/resolution", ["128", "64"], "/sd/resolution 128 64"),
    Kind.FLOAT_LIST: ("/sd/region/0/rect", ["0", "0", "0.5", "1"], "/sd/region/0/rect 0 0 0.5 1"),
    Kind.WEIGHTED_STR: ("/sd/prompts", ["fire", "0.7", "ice", "0.3"], "/sd/prompts fire 0.7 ice 0.3"),
    Kind.WEIGHTED_INT: ("/sd/seeds", ["3", "0.5", "4", "0.5"], "/sd/seeds 3 0.5 4 0.5"),
}
"""Kind -> (address, command-line words, the `/sd/get` reply `send` prints once the daemon holds it)."""


def _send(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "send", *args],
        cwd=cwd,
        env=offline_env(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_table_above_covers_every_kind() -> None:
    assert set(ONE_OF_EACH_KIND) == set(Kind), "a new Kind needs a row here (and a way to type it in send)"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("send")
    with Daemon(["--engine", "passthrough", "--width", "64", "--height", "64", "--sink", "null"], cwd) as d:
        yield d


@pytest.mark.parametrize("kind", list(ONE_OF_EACH_KIND), ids=lambda k: k.value)
def test_send_sets_every_kind_on_a_real_daemon(daemon: Daemon, kind: Kind) -> None:
    address, words, shown = ONE_OF_EACH_KIND[kind]
    r = _send(address, *words, "--wait", "--port", str(daemon.osc_port), cwd=daemon.cwd)
    assert r.returncode == 0, r.stderr + daemon.output()
    assert r.stdout.strip().splitlines()[-1] == shown, r.stdout


def test_send_with_the_daemons_reply_port(tmp_path: Path) -> None:
    reply = free_port()
    args = ["--engine", "passthrough", "--width", "64", "--height", "64", "--sink", "null"]
    with Daemon([*args, "--osc-reply-port", str(reply)], tmp_path) as d:
        lost = _send("/sd/status", "--port", str(d.osc_port), "--timeout", "0.5", cwd=tmp_path)
        assert lost.returncode == 1 and f"--reply-port {'N'}" in lost.stderr  # the hint, before the fix
        r = _send("/sd/status", "--port", str(d.osc_port), "--reply-port", str(reply), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("/sd/status "), r.stdout
