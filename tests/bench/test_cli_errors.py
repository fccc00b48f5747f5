"""Bad bench options fail at once with one clear line, before any model is built."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bridge.cli import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "500x512"], "multiples of 8"),
        (["--only", "speed"], "--only takes a comma-separated list of"),
        (["--accel", "cuda"], "--accel takes"),
        (["--frames", "1"], "--frames must be at least 2"),
    ],
)
def test_bad_option_is_one_line_error(args, message):
    result = CliRunner().invoke(app, ["bench", "--model", "random:tiny", *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
