"""Every command README.md and docs/*.md show works as written (tests/bridge/docs_commands.py says how
each is run here; docs_commands.toml lists what cannot run on this machine, and why)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docs_commands as dc
import pytest
from daemon_process import ROOT, Daemon, free_port_pair, offline_env

RULES = dc.load_rules()
PLANS = [dc.plan(c, RULES) for c in dc.extract()]
TIMEOUT = 240


def test_the_docs_show_commands() -> None:
    """The extraction finds the README's own commands (a broken extractor would check nothing)."""
    texts = [p.command.text for p in PLANS]
    assert any(t.startswith("./sd-bridge.sh run") for t in texts)
    assert any(t.startswith("sd-bridge send /sd/region/0/rect") for t in texts)
    assert sum(p.action == "run" for p in PLANS) >= 10


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like a fresh clone's: the commands run there, with the repo's presets/ and docs' files."""
    cwd = tmp_path_factory.mktemp("docs")
    for name in ("presets", "pyproject.toml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, cwd / name)
    return cwd


@pytest.fixture(scope="module")
def daemon(workdir: Path) -> Iterator[Daemon]:
    """The daemon documented `send` commands talk to."""
    with Daemon(
        ["--engine", "passthrough", "--width", "64", "--height", "64", "--sink", "null"], workdir
    ) as d:
        yield d


@pytest.fixture(scope="module")
def env(workdir: Path, xvfb: str) -> dict[str, str]:
    """Offline, this tree's code, `sd-bridge` on PATH (as after `source .venv/bin/activate`), a display."""
    env = offline_env(workdir)
    env["DISPLAY"] = xvfb
    return env


def _program(args: list[str], env: dict[str, str]) -> list[str]:
    exe = shutil.which("sd-bridge", path=env["PATH"])
    assert exe, (
        "sd-bridge is not on PATH next to this Python: install the project (./sd-bridge.sh or pip -e .)"
    )
    return [exe, *args]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(argv))
    r = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL
    )
    print(r.stdout[-3000:], r.stderr[-3000:], sep="\n")
    return r


@pytest.mark.parametrize("plan", PLANS, ids=[p.command.id for p in PLANS])
def test_documented_command(plan: dc.Plan, request: pytest.FixtureRequest) -> None:
    command = plan.command
    print(f"{command.id}: {command.text}")
    if plan.reason:
        print(f"{plan.action.upper()}: {plan.reason}")
    if plan.action == "unknown":
        pytest.fail(
            f"{command.id}: `{command.text}`: {plan.reason} (add a rule saying why it cannot run here)"
        )
    if plan.action == "synopsis":
        _check_synopsis(plan)
        return
    if plan.action == "parse":
        assert plan.argv, f"{command.id}: not an sd-bridge command"
        error = dc.dry_parse(plan.argv)
        assert error is None, f"{command.id}: `{command.text}` does not parse: {error}"
        return
    if plan.action == "not-here":
        _check_not_here(plan)
        return
    workdir: Path = request.getfixturevalue("workdir")
    env: dict[str, str] = request.getfixturevalue("env")
    env = {**env, **command.env()}
    if plan.action == "script":
        _check_script(plan, workdir, env)
        return
    if plan.action == "module":
        _check_module(plan, workdir, env)
        return
    if plan.action == "client":
        daemon = request.getfixturevalue("daemon")
        r = _run(dc.to_daemon(plan.argv, daemon.osc_port, daemon.query_port), workdir, env)
        assert r.returncode == 0, f"{command.id}: `{command.text}` exited {r.returncode}"
        if plan.argv[0] == "curl":  # an OSCQuery answer, not an error page
            assert "error" not in json.loads(r.stdout), r.stdout
        return
    daemon: Daemon = request.getfixturevalue("daemon") if plan.argv[:1] == ["send"] else None  # type: ignore[assignment]
    port = free_port_pair()
    args = dc.bounded(plan.argv, port, daemon.osc_port if daemon else 0)
    argv = _program(args, env) if command.argv()[0] != "python" else [sys.executable, "-m", "bridge", *args]
    r = _run(argv, workdir, env)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, f"{command.id}: a traceback"
    if plan.action == "expect-error":
        assert r.returncode == 1, f"{command.id}: expected the one-line error, exit {r.returncode}"
        lines = [ln for ln in r.stderr.splitlines() if plan.expect in ln]
        assert len(lines) == 1, f"{command.id}: expected one line holding {plan.expect!r}"
        return
    if args[0] == "doctor":  # doctor exits 1 when something is red (the model is not cached here)
        assert r.returncode in (0, 1) and re.search(r"(?m)^\S+\s+torch ", r.stdout), f"{command.id}: {out}"
        return
    assert r.returncode == 0, f"{command.id}: `{command.text}` exited {r.returncode}"
    if args[0] == "run":
        assert "stopped:" in r.stderr


def _check_synopsis(plan: dc.Plan) -> None:
    from typer.main import get_command

    from bridge.cli import app

    group = get_command(app)
    sub = group.commands.get(plan.argv[0]) if plan.argv else None  # type: ignore[attr-defined]
    assert sub is not None, f"{plan.command.id}: no command {plan.argv[:1]}"
    known = {opt for p in sub.params for opt in p.opts}
    missing = [o for o in dc.option_names(plan.argv) if o not in known]
    assert not missing, f"{plan.command.id}: sd-bridge {plan.argv[0]} has no {missing}"


def _check_not_here(plan: dc.Plan) -> None:
    argv = plan.command.argv()
    program = argv[0]
    if program.endswith((".bat", ".sh")):
        script = ROOT / program
        assert script.is_file(), f"{plan.command.id}: {program} does not exist"
        for arg in argv[1:]:  # each argument the doc passes is one the script handles
            assert arg in script.read_text(encoding="utf-8"), f"{plan.command.id}: {program} ignores {arg}"
    embedded = next(
        (i for i, a in enumerate(argv) if a.replace("\\", "/").endswith("Scripts/sd-bridge")), None
    )
    if embedded is not None:
        assert dc.dry_parse(argv[embedded + 1 :]) is None


def _check_module(plan: dc.Plan, cwd: Path, env: dict[str, str]) -> None:
    """`python -m MODULE ARGS` of this checkout, run with the rule's environment (e.g. CUDA hidden)."""
    argv = plan.command.argv()
    assert argv[:2] == ["python", "-m"], f"{plan.command.id}: not `python -m ...`"
    before = sorted(p.name for p in cwd.iterdir())
    r = _run([sys.executable, *argv[1:]], cwd, {**env, **plan.env})
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, f"{plan.command.id}: {r.stderr}"
    assert plan.expect in r.stdout, f"{plan.command.id}: expected {plan.expect!r}"
    assert sorted(p.name for p in cwd.iterdir()) == before, f"{plan.command.id}: it left files behind"


def _check_script(plan: dc.Plan, cwd: Path, env: dict[str, str]) -> None:
    """`./sd-bridge.sh ARGS`: the script itself runs (dry run: it checks Python and this machine,
    chooses torch and says why), and what it would hand to sd-bridge parses."""
    script_env = {k: v for k, v in env.items() if k != "SD_BRIDGE_TORCH"}  # the machine's own choice...
    script_env.update(plan.command.env(), SD_BRIDGE_DRY_RUN="1")  # ...unless the doc sets one
    r = _run(["bash", str(ROOT / "sd-bridge.sh"), *plan.argv], cwd, script_env)
    assert r.returncode == 0, f"{plan.command.id}: {r.stderr}"
    assert "==> torch: the " in r.stdout and "dry run: would run" in r.stdout
    if plan.command.env().get("SD_BRIDGE_TORCH"):
        assert f"the {plan.command.env()['SD_BRIDGE_TORCH']} build" in r.stdout
    if plan.argv[:1] != ["test"]:
        assert dc.dry_parse(plan.argv or ["run"]) is None
