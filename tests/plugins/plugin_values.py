"""A non-default value for each parameter a plugin sends, to see it arrive."""

from __future__ import annotations

from typing import Any

import pytest


def changed_value(name: str, kind: str, default: Any, lo: Any, hi: Any) -> Any:
    if name == "preset":
        return "td-spout-roundtrip"
    if name.endswith(".preprocessor"):  # ControlNet (issue 17): one of a few names
        return "depth"
    if name.endswith(".source") and name.startswith("controlnet."):
        return "control"
    if kind == "str":
        return f"neon city, {name} ü"
    if kind == "bool":
        return not default
    if kind == "int":
        return int(lo) + 7 if int(lo) + 7 != default else int(lo) + 8
    if kind == "float":
        return lo + (hi - lo) * 0.37
    raise AssertionError(kind)


def same(stored: Any, sent: Any) -> bool:
    if isinstance(sent, float):
        return stored == pytest.approx(sent, rel=1e-6)  # float32 on the wire
    return stored == sent
