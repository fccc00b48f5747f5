"""No plugin may drift from the parameter table, nor name an address the daemon doesn't know."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys

import pytest
from plugin_fakes import ROOT, fake_obspython, load_module, wait_for

from bridge.control.osc_map import COMMANDS, ROUTES
from bridge.control.osc_stats import STAT_FIELDS
from bridge.control.params import PARAMS, PARAMS_BY_NAME
from plugins import generate

KNOWN = set(ROUTES) | set(COMMANDS) | {"/sd/stats/" + f.name for f in STAT_FIELDS} | {"/sd/error"}
"""Every address the daemon accepts or sends."""

sys.modules.setdefault("obspython", fake_obspython())
td = load_module("plugins/touchdesigner/SdBridgeExt.py", "SdBridgeExt_drift")
obs = load_module("plugins/obs/sd_bridge_obs.py", "sd_bridge_obs_drift")


def test_committed_files_match_the_generator():
    stale = [str(p.relative_to(ROOT)) for p in generate.drifted()]
    assert stale == [], f"run `python -m plugins.generate`: {stale} differ from bridge/control/params.py"


def test_generate_check_exits_nonzero_on_drift(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "TOUCHOSC.md"
    copy.write_text("hand-edited\n", encoding="utf-8")
    real = generate.outputs()
    monkeypatch.setattr(generate, "outputs", lambda: {copy: real[generate.TOUCHOSC_MAP]})
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    assert generate.main(["--check"]) == 1
    assert "TOUCHOSC.md differs" in capsys.readouterr().out
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0


@pytest.mark.parametrize("module", [td, obs], ids=["touchdesigner", "obs"])
def test_plugin_tables_match_params(module):
    assert module.PARAMS, "empty table"
    for row in module.PARAMS:
        name, address, kind, default, lo, hi = row[:6]
        p = PARAMS_BY_NAME[name]
        assert (address, kind, default, lo, hi) == (p.address, p.kind.value, p.default, p.minimum, p.maximum)
        assert address in ROUTES


def test_td_parameter_names_are_valid_and_unique():
    names = [row[7] for row in td.PARAMS]
    assert len(set(names)) == len(names)
    for n in names:
        assert re.fullmatch(r"[A-Z][a-z0-9]*", n), n  # TouchDesigner's rule for custom parameters
    assert [s for s, _ in td.STATS] == [f.name for f in STAT_FIELDS]


def test_obs_script_offers_what_the_issue_asks():
    wanted = {"prompt", "negative_prompt", "guidance", "delta", "strength", "seed", "preset", "bypass"}
    wanted |= {"feedback", "cache_attention"}  # issue 18: the temporal knobs a streamer reaches for
    wanted |= {"controlnet.0.scale", "controlnet.0.enabled"}  # issue 17: the first ControlNet slot
    assert {row[0] for row in obs.PARAMS} == wanted


def _session_widgets(node):
    for child in node.get("widgets", []) + node.get("tabs", []):
        yield child
        yield from _session_widgets(child)


def test_open_stage_control_session_parses_and_names_only_known_addresses():
    session = json.loads(generate.OSC_SESSION.read_text(encoding="utf-8"))
    assert session["type"] == "session" and session["content"]["type"] == "root"
    widgets = list(_session_widgets(session["content"]))
    ids = [w["id"] for w in widgets]
    assert len(ids) == len(set(ids)), "duplicate widget ids"
    addresses = {w["address"] for w in widgets if w["type"] not in ("tab", "panel")}
    assert addresses <= KNOWN, addresses - KNOWN
    norm_faders = {w["address"] for w in widgets if w["type"] == "fader"}
    assert norm_faders == {p.address + "/norm" for p in PARAMS if p.has_norm}
    for w in widgets:
        if w["type"] == "fader":
            assert w["range"] == {"min": 0, "max": 1}
    inputs = {w["address"] for w in widgets if w["type"] == "input"}
    assert {"/sd/prompt", "/sd/negative_prompt"} <= inputs
    toggles = {w["address"] for w in widgets if w.get("mode") == "toggle"}
    assert {"/sd/bypass", "/sd/pause"} <= toggles
    presets = [w["on"] for w in widgets if w.get("address") == "/sd/preset"]
    assert presets == generate.preset_names()
    assert {"/sd/stats/" + f.name for f in STAT_FIELDS} <= {
        w["address"] for w in widgets if w["type"] == "text"
    }


def test_every_session_widget_is_accepted_by_the_daemon(daemon):
    """Send what each widget sends (a fader at 0.25, a toggle on, a tapped button's value) to a real
    daemon: no /sd/error comes back and each parameter's value changes."""
    store, server = daemon
    session = json.loads(generate.OSC_SESSION.read_text(encoding="utf-8"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    expected = {}
    try:
        for w in _session_widgets(session["content"]):
            if w["type"] in ("tab", "panel", "text"):
                continue
            if w["type"] == "fader":
                value = 0.25
            elif w["type"] == "input":
                value = 99 if w["typeTags"] == "i" else "neon city"
            else:
                value = w["on"]
            args = [] if value == "" else [value]
            sock.sendto(obs.encode_message(w["address"], args), server.address)
            route = ROUTES.get(w["address"])
            if route is not None:
                expected[route.param.name] = route.param.from_norm(value) if route.norm else value
        assert wait_for(lambda: all(_same(store.get(n), v) for n, v in expected.items())), expected
        replies = []
        with contextlib.suppress(TimeoutError):
            while True:
                replies += obs.decode_packet(sock.recvfrom(65536)[0])
        assert [r for r in replies if r[0] == "/sd/error"] == []
        assert any(r[0] == "/sd/status" for r in replies)
        assert len(server.subscribers()) == 1
    finally:
        sock.close()


def _same(stored, value):
    return stored == pytest.approx(value) if isinstance(value, float) else stored == value


def test_touchosc_mapping_names_only_known_addresses():
    text = generate.TOUCHOSC_MAP.read_text(encoding="utf-8")
    named = set(re.findall(r"`(/sd/[^`]*)`", text))
    assert named <= KNOWN, named - KNOWN
    assert {p.address + "/norm" for p in PARAMS if p.has_norm} <= named


def test_presets_named_by_the_plugins_are_the_shipped_presets():
    shipped = sorted(p.stem for p in (ROOT / "presets").glob("*.toml"))
    assert shipped, "presets/ ships no presets"
    assert list(td.PRESETS) == shipped == list(obs.PRESETS)


def _plugin_addresses() -> set[str]:
    session = json.loads(generate.OSC_SESSION.read_text(encoding="utf-8"))
    named = {w["address"] for w in _session_widgets(session["content"]) if "address" in w}
    named |= set(re.findall(r"`(/sd/[^`]*)`", generate.TOUCHOSC_MAP.read_text(encoding="utf-8")))
    named |= {row[1] for row in td.PARAMS} | {row[1] for row in obs.PARAMS}
    named |= {"/sd/stats/" + s for s, _ in td.STATS} | {"/sd/status", "/sd/subscribe"}
    return named


def test_plugins_use_only_addresses_documented_in_osc_md():
    doc = (ROOT / "docs" / "OSC.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(/sd/[A-Za-z0-9_/]+)`", doc))
    missing = {a for a in _plugin_addresses() if a not in documented}
    assert not missing, f"plugins use addresses docs/OSC.md doesn't list: {sorted(missing)}"
