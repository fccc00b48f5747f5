"""Preset names are names, never paths: checked once in the parameter layer."""

from __future__ import annotations

import pytest

from bridge.control import ParamError, is_safe_name, param, safe_name


@pytest.mark.parametrize("name", ["studio_b", "neon-city 02", "Set.v2", "a", "x" * 64, "console", "COM10x"])
def test_bare_names_are_accepted(name):
    assert is_safe_name(name)
    assert safe_name(name) == name
    assert param("preset").coerce(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../etc/passwd",
        "a/../b",
        "live/set1",
        "live\\set1",
        "/etc/passwd",
        "C:\\presets\\x",
        "C:x",
        ".hidden",
        "name.",
        "name ",
        "a..b",
        "x" * 65,
        "tab\there",
        "nul\x00",
        "~/x",
        "CON",
        "nul.toml",
        "com1",
    ],
)
def test_paths_and_odd_names_are_refused(name):
    assert not is_safe_name(name)
    with pytest.raises(ParamError):
        safe_name(name)
    with pytest.raises(ParamError, match=r"^/sd/preset expects a bare name"):
        param("preset").coerce(name)


def test_empty_preset_means_none_and_model_is_passed_through():
    assert param("preset").coerce("") == ""
    # /sd/model passes a name to the runtime, which checks it against the allowed models.
    assert param("model").coerce("stabilityai/sd-turbo") == "stabilityai/sd-turbo"
