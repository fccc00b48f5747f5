from __future__ import annotations

from pathlib import Path

import pytest

from bridge.presets import PresetError, list_presets, load_preset, load_preset_arg
from bridge.runtime.settings import DEFAULT_MODEL, resolve_settings

SHIPPED = {"sd-turbo-1step", "lcm-sd15-2step", "screen-to-vcam", "td-spout-roundtrip", "ndi-roundtrip"}


def test_shipped_presets_load() -> None:
    assert set(list_presets()) >= SHIPPED
    for name in SHIPPED:
        p = load_preset(name)
        assert p.engine["model"] and p.engine["width"] % 8 == 0
    assert load_preset("lcm-sd15-2step").engine["t_index_list"] == [32, 45]
    assert load_preset("screen-to-vcam").run["sinks"] == ["vcam"]
    assert load_preset("ndi-roundtrip").run["source"].startswith("ndi:")


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("widht = 512", "widht", "known keys"),
        ("width = 500", "width", "multiple of 8"),
        ('width = "512"', "width", "an integer"),
        ("guidance = 50.0", "guidance", "a number in [0, 20]"),
        ('cfg_type = "bogus"', "cfg_type", "'none', 'full', 'self', 'initialize'"),
        ("t_index_list = [35, 99]", "t_index_list", "integers in [0, 49]"),
        ('source = "webcam"', "source", "a source spec"),
        ('sinks = ["vcam", "tv"]', "sinks", "'tv' is not one"),
        ('sinks = ["file:x.gif"]', "sinks", "(file:x.gif: cannot record .gif; use .mp4, .mov, .mkv, .avi)"),
        ('source = "screen:a"', "source", "(screen:a: expected a monitor number or a region x,y,w,h)"),
        ("filter = { enabled = true, speed = 3 }", "filter", "enabled, threshold, max_skip"),
        ("osc_port = 70000", "osc_port", "[0, 65535]"),
    ],
)
def test_bad_preset_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text + "\n")
    with pytest.raises(PresetError) as err:
        load_preset("bad", tmp_path)
    msg = str(err.value)
    assert str(f) in msg and repr(key) in msg and expected in msg
    assert "\n" not in msg


def test_invalid_toml_and_missing(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("model = \n")
    with pytest.raises(PresetError, match=r"broken\.toml: not valid TOML"):
        load_preset("broken", tmp_path)
    with pytest.raises(PresetError, match="not found.*available: broken"):
        load_preset("ghost", tmp_path)


@pytest.mark.parametrize("name", ["../etc/passwd", "..", "/abs/x", "a/b", "a\\b", "", " "])
def test_preset_names_are_never_paths(tmp_path: Path, name: str) -> None:
    with pytest.raises(PresetError, match="plain preset name"):
        load_preset(name, tmp_path)


def test_cli_flags_override_the_preset(tmp_path: Path) -> None:
    (tmp_path / "show.toml").write_text(
        'model = "random:tiny"\nwidth = 256\nheight = 256\nprompt = "neon"\n'
        'sinks = ["null"]\nosc_port = 9001\n'
    )
    s = resolve_settings("show", {"width": 128, "prompt": None, "source": "image:x.png"}, tmp_path)
    assert s.config.model == "random:tiny" and s.config.width == 128 and s.config.height == 256
    assert (
        s.config.prompt == "neon" and s.sinks == ["null"] and s.osc_port == 9001 and s.source == "image:x.png"
    )
    by_path = load_preset_arg(str(tmp_path / "show.toml"))
    assert by_path.engine["width"] == 256
    plain = resolve_settings(None, {})
    assert plain.config.model == DEFAULT_MODEL and plain.source == "pattern" and plain.sinks == ["auto"]
    with pytest.raises(PresetError, match="command line: key 'width' expects"):
        resolve_settings(None, {"width": 100})
