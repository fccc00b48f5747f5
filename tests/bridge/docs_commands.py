"""Every shell command that README.md and docs/*.md show, extracted from their fenced blocks, and how
a test runs it here: against a real daemon, bounded in time, on loopback, offline.

What cannot run on this machine (Windows, TensorRT, a system change, a download) is matched by a rule
in docs_commands.toml, which says why and how far it is still checked; a command that neither runs nor
matches a rule fails its test, so a new doc command is never silently unchecked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = Path(__file__).with_name("docs_commands.toml")

SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh", "bat", "cmd", "batch", "powershell", "ps1"}
WINDOWS_LANGS = {"bat", "cmd", "batch", "powershell", "ps1"}
PROGRAMS = (
    "sd-bridge",
    "./sd-bridge.sh",
    "python",
    "python3",
    "install.bat",
    ".venv",
    "pip",
    "curl",
    "oscsend",
)
"""In an unlabelled block, only lines starting with one of these are commands (the rest: diagrams)."""
SD_BRIDGE = {"sd-bridge", "sd-bridge.exe", ".venv/bin/sd-bridge", ".venv\\Scripts\\sd-bridge"}

ENV_WORD = re.compile(r"[A-Z_][A-Z0-9_]*=\S*")
CLIENTS = ("curl", "oscsend")
"""Other programs talking to the daemon: run against the test's daemon (7000 / 7001 -> its ports)."""
RUN_SECONDS = 1.0
"""A documented `run` is bounded to this many seconds (or fewer, if the doc says fewer)."""
SIZE = ("64", "64")


@dataclass(frozen=True)
class DocCommand:
    file: str
    line: int
    text: str
    windows: bool = False

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    def words(self) -> list[str]:
        if self.windows:  # backslashes are path separators there, not escapes
            return [
                t[1:-1] if len(t) > 1 and t[0] == t[-1] == '"' else t
                for t in shlex.split(self.text, posix=False)
            ]
        return shlex.split(self.text, comments=True)

    def env(self) -> dict[str, str]:
        """`NAME=value` words before the program (`SD_BRIDGE_TORCH=cpu ./sd-bridge.sh run`)."""
        out: dict[str, str] = {}
        for word in self.words():
            if not ENV_WORD.fullmatch(word):
                break
            name, value = word.split("=", 1)
            out[name] = value
        return out

    def argv(self) -> list[str]:
        """The command without its leading environment assignments."""
        words = self.words()
        return words[len(self.env()) :]


@dataclass(frozen=True)
class Rule:
    match: str
    action: str
    """parse: only parsed here; expect-error: runs and must fail in one clear line holding `expect`;
    not-here: a command for another OS or one that changes the machine (checked only as far as it can be)."""
    reason: str
    expect: str = ""
    env: dict[str, str] = field(default_factory=dict)
    """module: the environment it runs with here (e.g. CUDA hidden)."""

    def applies(self, command: DocCommand) -> bool:
        return re.search(self.match, command.text) is not None


@dataclass
class Plan:
    """What the test does with one documented command."""

    command: DocCommand
    action: str
    """run | parse | expect-error | not-here | module | script | synopsis | unknown"""
    reason: str = ""
    argv: list[str] = field(default_factory=list)
    """The sd-bridge arguments (after the program name), as documented."""
    expect: str = ""
    env: dict[str, str] = field(default_factory=dict)


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


_FENCE = re.compile(r"^(?P<fence>```|~~~)(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$", re.S | re.M)


def extract(root: Path = ROOT) -> list[DocCommand]:
    """Every command line of every fenced shell block (and command-looking lines of unlabelled blocks)."""
    commands: list[DocCommand] = []
    for path in doc_files(root):
        text = path.read_text(encoding="utf-8")
        for block in _FENCE.finditer(text):
            lang = block["lang"].lower()
            if lang and lang not in SHELL_LANGS:
                continue
            first_line = text.count("\n", 0, block.start("body")) + 1
            windows = lang in WINDOWS_LANGS
            pending, start = "", 0
            for offset, raw in enumerate(block["body"].splitlines()):
                line = raw.strip()
                if line.startswith("$ "):
                    line = line[2:]
                if not pending:
                    start = first_line + offset
                if line.endswith("\\") and not windows or line.endswith("^") and windows:
                    pending += line[:-1] + " "
                    continue
                line, pending = (pending + line).strip(), ""
                if not line or line.startswith("#") or line.lower().startswith("rem "):
                    continue
                if not lang and not ENV_WORD.sub("", line).strip().startswith(PROGRAMS):
                    continue
                commands.append(DocCommand(str(path.relative_to(root)), start, line, windows))
    return commands


def load_rules(path: Path = RULES_FILE) -> list[Rule]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Rule(**rule) for rule in data["rule"]]


def sd_bridge_args(argv: list[str]) -> list[str] | None:
    """The arguments after the program if `argv` invokes sd-bridge (any documented spelling), else None."""
    if not argv:
        return None
    program = argv[0].removesuffix(".exe")
    if program in SD_BRIDGE:
        return argv[1:]
    is_python = Path(program).name in ("python", "python3") or program.endswith(("\\python", "/python"))
    if is_python and argv[1:3] == ["-m", "bridge"]:
        return argv[3:]
    return None


def plan(command: DocCommand, rules: list[Rule]) -> Plan:
    argv = command.argv()
    args = sd_bridge_args(argv)
    if args and any(re.fullmatch(r"\[?--[\w-]+.*\]|[A-Z]+\|.*|.*\|[A-Z.]+", a) for a in args):
        return Plan(command, "synopsis", "a usage synopsis: its options must exist", args)
    for rule in rules:
        if rule.applies(command):
            return Plan(command, rule.action, rule.reason, args or [], rule.expect, rule.env)
    if argv and argv[0] in CLIENTS:
        return Plan(command, "client", "talks to a daemon: sent to the test's daemon on its ports", argv)
    if argv and argv[0] == "./sd-bridge.sh":
        return Plan(
            command,
            "script",
            "installs into ./.venv (network, minutes): run with SD_BRIDGE_DRY_RUN=1, which checks the "
            "machine, prints the torch build it would install and the command it would run",
            argv[1:],
        )
    if args is not None:
        return Plan(command, "run", "", args)
    return Plan(command, "unknown", "no rule in tests/bridge/docs_commands.toml matches this command")


def _option(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _set(args: list[str], name: str, value: str | None) -> list[str]:
    """`args` with option `name` (taking a value, or a flag if value is None) set to `value`."""
    out: list[str] = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == name:
            skip = value is not None and i + 1 < len(args)
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out + ([name] if value is None else [name, value])


def bounded(args: list[str], osc_port: int, daemon_port: int) -> list[str]:
    """The documented sd-bridge arguments made safe to run here: bounded in time, on free loopback
    ports, on a tiny random-weight model where the doc names a model (nothing is downloaded), else
    passthrough (loading even a tiny model costs seconds a command). What the doc says about
    sources, sinks, prompts and the rest is kept."""
    if not args:
        return args
    command, rest = args[0], list(args[1:])
    if command == "run":
        if _option(rest, "--model") is not None and _option(rest, "--engine") != "passthrough":
            rest = _set(rest, "--model", "random:tiny")  # the doc is about the model: a tiny real one
        elif _option(rest, "--engine") is None:
            rest = _set(rest, "--engine", "passthrough")  # about sources, sinks, presets: no model needed
        if _option(rest, "--width") is None and _option(rest, "--height") is None:
            rest = _set(_set(rest, "--width", SIZE[0]), "--height", SIZE[1])
        seconds = _option(rest, "--seconds")
        limit = min(float(seconds), RUN_SECONDS) if seconds else RUN_SECONDS
        rest = _set(rest, "--seconds", f"{limit:g}")
        frames = _option(rest, "--frames")
        if frames is not None:
            rest = _set(rest, "--frames", str(min(int(frames), 5)))
        rest = _set(_set(rest, "--osc-port", str(osc_port)), "--osc-query-port", str(osc_port + 1))
        if _option(rest, "--osc-host") not in (None, "127.0.0.1", "::1"):
            rest = _set(rest, "--osc-host", "127.0.0.1")  # nothing from the network in a test
    elif command == "send":
        rest = _set(_set(rest, "--port", str(daemon_port)), "--timeout", "10")
    elif command == "osc-monitor":
        rest = _set(_set(rest, "--osc-port", str(osc_port)), "--seconds", "1")
        if _option(rest, "--osc-query-port") is not None:
            rest = _set(rest, "--osc-query-port", "0")
    elif command == "bench":
        for name, value in (("--model", "random:tiny"), ("--frames", "2"), ("--warmup", "1")):
            rest = _set(rest, name, value)
        rest = _set(_set(_set(rest, "--quick", None), "--accel", "torch"), "--sizes", "64x64")
        if _option(rest, "--only") is None:  # every section is tests/bench's job; here: the command runs
            rest = _set(rest, "--only", "throughput")
    elif command == "doctor":
        rest = _set(rest, "--osc-port", str(osc_port))
    return [command, *rest]


def to_daemon(argv: list[str], osc_port: int, query_port: int) -> list[str]:
    """A client command with the default ports (OSC 7000, OSCQuery 7001) pointed at the test's daemon."""
    out = []
    for word in argv:
        word = "127.0.0.1" if word == "localhost" else word.replace("localhost:", "127.0.0.1:")
        word = re.sub(r"(127\.0\.0\.1:)7001\b", rf"\g<1>{query_port}", word)
        out.append(str(osc_port) if word == "7000" else word)
    return out


def dry_parse(args: list[str]) -> str | None:
    """Parse `sd-bridge ARGS` as the real command line would, without running anything; the error, or
    None if it parses (options exist, values have the right types, arguments are all there)."""
    import click
    from typer.main import get_command

    from bridge.cli import app

    group = get_command(app)
    try:
        with group.make_context("sd-bridge", list(args), resilient_parsing=False) as ctx:
            rest = [*ctx._protected_args, *ctx.args]  # noqa: SLF001 - click keeps the subcommand's words here
            if not rest:
                return None
            name, sub, sub_args = group.resolve_command(ctx, rest)
            assert sub is not None
            with sub.make_context(name or "", sub_args, parent=ctx):
                return None
    except click.exceptions.Exit:
        return None
    except click.ClickException as exc:
        return exc.format_message()


def option_names(args: list[str]) -> list[str]:
    return [re.sub(r"[\[\]]", "", a).split("=")[0] for a in args if re.sub(r"[\[\]]", "", a).startswith("--")]
