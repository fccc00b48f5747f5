"""docs/OSC.md is generated from PARAMS and must match what the command writes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bridge.cli import app
from bridge.control import PARAMS
from bridge.control.osc_docs import render
from bridge.control.osc_map import COMMANDS
from bridge.control.osc_stats import STAT_FIELDS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "OSC.md"


def test_committed_docs_match_the_generated_text():
    assert DOCS.read_text(encoding="utf-8") == render(), (
        "docs/OSC.md is out of date: run `python -m bridge osc-docs --write docs/OSC.md`"
    )


def test_docs_list_every_address():
    text = render()
    for p in PARAMS:
        assert f"`{p.address}`" in text
        if p.has_norm:
            assert f"`{p.address}/norm`" in text
    for address in COMMANDS:
        assert f"`{address}`" in text
    for field in STAT_FIELDS:
        assert f"`/sd/stats/{field.name}`" in text


def test_command_writes_and_checks(tmp_path):
    runner = CliRunner()
    target = tmp_path / "OSC.md"
    assert runner.invoke(app, ["osc-docs", "--check", str(target)]).exit_code == 1
    result = runner.invoke(app, ["osc-docs", "--write", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == render()
    assert runner.invoke(app, ["osc-docs", "--check", str(target)]).exit_code == 0
    printed = runner.invoke(app, ["osc-docs"])
    assert printed.exit_code == 0 and printed.output == render()
