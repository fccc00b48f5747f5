"""Presets carry the temporal knobs (issue 18), checked by the same table as OSC."""

from __future__ import annotations

import pytest

from bridge.presets import PresetError, load_preset_file
from bridge.runtime.control import ENGINE_FIELD_TO_PARAM


def test_a_preset_sets_feedback_the_cache_and_a_brushs_feedback(tmp_path):
    path = tmp_path / "calm.toml"
    path.write_text(
        "feedback = 0.3\ncache_attention = true\ncache_frames = 2\ncache_interval = 4\n"
        '[[regions]]\nprompt = "fire"\nfeedback = 0.0\n'
        '[[regions]]\nprompt = "ice"\nfeedback = 0.7\n',
        encoding="utf-8",
    )
    preset = load_preset_file(path)
    assert {
        k: preset.engine[k] for k in ("feedback", "cache_attention", "cache_frames", "cache_interval")
    } == {
        "feedback": 0.3,
        "cache_attention": True,
        "cache_frames": 2,
        "cache_interval": 4,
    }
    regions = preset.run["regions"]
    assert regions["region.0.feedback"] == 0.0 and regions["region.1.feedback"] == 0.7
    # loaded live, each goes to the store under its OSC name
    assert {f: ENGINE_FIELD_TO_PARAM[f] for f in ("feedback", "cache_attention")} == {
        "feedback": "feedback",
        "cache_attention": "cache_attention",
    }


@pytest.mark.parametrize(
    "line, key", [("cache_frames = 0", "cache_frames"), ('cache_attention = "yes"', "cache_attention")]
)
def test_a_bad_temporal_value_names_the_file_and_key(tmp_path, line, key):
    path = tmp_path / "bad.toml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(PresetError, match=f"bad.toml: key '{key}' expects"):
        load_preset_file(path)
