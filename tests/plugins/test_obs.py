"""The OBS script, outside OBS (obspython faked at its import boundary), against the daemon's real socket."""

from __future__ import annotations

import random
import select
import shlex
import socket
import struct
import sys

import pytest
from plugin_fakes import STATS, fake_obspython, load_module, wait_for
from plugin_values import changed_value, same
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.control.osc import OscServer
from bridge.control.store import ParamStore

sys.modules["obspython"] = obs = fake_obspython()
script = load_module("plugins/obs/sd_bridge_obs.py", "sd_bridge_obs")


# -- the self-contained OSC codec, checked against python-osc ------------------------------------
def test_encoder_matches_python_osc_decoder():
    rng = random.Random(7)
    for _ in range(300):
        args = []
        for _ in range(rng.randint(0, 5)):
            pick = rng.randint(0, 3)
            if pick == 0:
                args.append(rng.randint(-(2**31), 2**31 - 1))
            elif pick == 1:
                args.append(struct.unpack(">f", struct.pack(">f", rng.uniform(-1e6, 1e6)))[0])
            elif pick == 2:
                args.append("".join(rng.choice("ab c\u00e9\u4e2d/") for _ in range(rng.randint(0, 9))))
            else:
                args.append(rng.random() < 0.5)
        address = "/sd/" + "x" * rng.randint(0, 6)
        decoded = OscMessage(script.encode_message(address, args))
        assert decoded.address == address
        assert decoded.params == [int(a) if isinstance(a, bool) else a for a in args]


def test_decoder_reads_python_osc_messages_and_bundles():
    builder = OscMessageBuilder("/sd/status")
    for v in (24.5, 41.0, "text ü", 3, True, None):
        builder.add_arg(v)
    message = builder.build()
    assert script.decode_packet(message.dgram) == [("/sd/status", [24.5, 41.0, "text ü", 3, True, None])]
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(message)
    inner = OscMessageBuilder("/sd/stats/fps")
    inner.add_arg(12.0)
    bundle.add_content(inner.build())
    decoded = script.decode_packet(bundle.build().dgram)
    assert [a for a, _ in decoded] == ["/sd/status", "/sd/stats/fps"]
    with pytest.raises(ValueError):
        script.decode_packet(b"/sd/x\x00\x00\x00,i\x00\x00")  # an int tag with no int
    with pytest.raises(TypeError):
        script.encode_message("/sd/x", [object()])


# -- the script's OBS life cycle -----------------------------------------------------------------
@pytest.fixture
def obs_script(daemon):
    store, server = daemon
    settings: dict = {}
    script.script_defaults(settings)
    settings["port"] = server.address[1]
    script.script_load(settings)
    yield store, server, settings
    script.script_unload()
    assert obs.timers == []


def test_every_property_change_reaches_the_daemon_store(obs_script):
    store, _server, settings = obs_script
    for name, _address, kind, default, lo, hi, _label in script.PARAMS:
        value = changed_value(name, kind, default, lo, hi)
        settings[name] = value
        script.script_update(settings)  # what OBS calls after a property edit
        script._link.flush(settle=0.0)  # as the timer does once typing pauses
        assert wait_for(lambda n=name, v=value: same(store.get(n), v)), (name, store.get(name), value)


def test_only_changes_are_sent_and_text_waits_for_typing_to_pause(obs_script, monkeypatch):
    store, _server, settings = obs_script
    link = script._link
    script.script_update(settings)  # first update: everything goes, text included
    sends = []
    monkeypatch.setattr(link, "send", lambda a, args: sends.append((a, args)) or True)
    script.script_update(settings)
    assert sends == []
    settings["guidance"] = 5.0
    assert link.update(script._values(settings), now=100.0) == ["/sd/guidance"]
    assert link.update(script._values(settings), now=100.1) == []
    settings["prompt"] = "neon"
    assert link.update(script._values(settings), now=100.2) == []  # still typing
    settings["prompt"] = "neon city"
    assert link.update(script._values(settings), now=100.3) == []
    assert link.flush(now=100.5) == []
    assert link.flush(now=100.3 + script.TEXT_SETTLE_S) == ["/sd/prompt"]
    assert sends[-1] == ("/sd/prompt", ["neon city"])


def test_poll_reads_status_and_errors_without_blocking(obs_script):
    _store, _server, settings = obs_script
    link = script._link
    # script_load sent the panel, and the daemon echoes every change to every client, the sender
    # too: poll takes those in, and once nothing is waiting it returns at once with 0
    assert wait_for(lambda: link.connected, poll=lambda: link.poll())
    assert wait_for(lambda: link.poll(now=0.0) == 0)
    assert wait_for(lambda: link.last_status != "", poll=lambda: link.poll(now=1000.5))
    assert float(link.last_status.split()[0]) == STATS["fps"]
    link.send("/sd/preset", ["../../secrets"])
    assert wait_for(lambda: "/sd/preset" in link.last_error, poll=link.poll)


def test_unreachable_daemon_never_raises():
    link = script.Link("127.0.0.1", 9)  # discard port: nobody answers
    try:
        assert link.update({"guidance": 2.0, "prompt": "x"}) != []
        for _ in range(3):
            link.poll()
    finally:
        link.close()


def test_properties_cover_the_table():
    props = script.script_properties()
    by_name = {p["name"]: p for p in props}
    for name, _address, kind, _default, lo, hi, _label in script.PARAMS:
        prop = by_name[name]
        if name == "preset":
            assert prop["kind"] == "list"
            assert [v for _, v in prop["items"]][1:] == list(script.PRESETS)
        else:
            assert (
                prop["kind"] == {"str": "text", "float": "float_slider", "int": "int", "bool": "bool"}[kind]
            )
        if kind in ("float", "int"):
            assert prop["rest"][:2] == (lo, hi)
    assert {"start", "stop", "resend", "host", "port", "command"} <= set(by_name)


def test_start_and_stop_the_daemon(obs_script):
    _store, server, settings = obs_script
    assert script._start_daemon(settings).startswith("a daemon already answers") or script._start_daemon(
        settings
    ).startswith(f"port {server.address[1]} is taken")
    settings["port"] = _free_port()  # nobody there
    script.script_update(settings)
    settings["command"] = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'"
    settings["extra"] = "--source ndi:OBS"
    assert script._start_daemon(settings).startswith("started")
    proc = script._daemon.proc
    assert proc.poll() is None
    assert "--source" in proc.args and "--osc-port" in proc.args
    assert script._start_daemon(settings).startswith("sd-bridge already running")
    assert script._daemon.stop().startswith("stopping sd-bridge")  # /sd/quit first, then SIGTERM
    notes: list[str] = []
    assert wait_for(lambda: notes.append(script._daemon.check() or "") or notes[-1], timeout=10)
    assert notes[-1].startswith("sd-bridge stopped") and proc.returncode is not None
    settings["command"] = "/nonexistent/sd-bridge"
    assert script._start_daemon(settings).startswith("could not start")


def _free_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_loading_the_script_sends_the_panel(daemon):
    store, server = daemon
    settings: dict = {}
    script.script_defaults(settings)
    settings.update(port=server.address[1], guidance=3.25, prompt="from the saved scene", bypass=True)
    script.script_load(settings)
    try:
        want = {"guidance": 3.25, "prompt": "from the saved scene", "bypass": True}
        assert wait_for(lambda: {n: store.get(n) for n in want} == want)
    finally:
        script.script_unload()


def test_a_restarted_daemon_gets_the_panel_again(obs_script):
    store, server, settings = obs_script
    settings["seed"] = 4321
    script.script_update(settings)
    script._link.flush(settle=0.0)  # as the timer does once typing pauses
    assert wait_for(lambda: store.get("seed") == 4321)
    link, port = script._link, server.address[1]
    server.stop()
    for i in range(script.RECONNECT_AFTER_ASKS + 1):
        link.poll(now=1000.0 + i * script.STATUS_PERIOD_S)  # asks go unanswered
    fresh = ParamStore()
    with OscServer(fresh, host="127.0.0.1", port=port, stats=lambda: dict(STATS), advertise=False):
        t = [2000.0]

        def ask():
            t[0] += script.STATUS_PERIOD_S
            link.poll(now=t[0])

        assert wait_for(lambda: fresh.get("seed") == 4321, poll=ask)


def test_values_set_before_the_daemon_starts_arrive_when_it_answers():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    link = script.Link("127.0.0.1", port)
    try:
        link.update({"seed": 77, "prompt": "before the daemon"})  # sent into the void
        store = ParamStore()
        with OscServer(store, host="127.0.0.1", port=port, stats=lambda: dict(STATS), advertise=False):
            t = [0.0]

            def ask():
                t[0] += script.STATUS_PERIOD_S
                link.poll(now=t[0])

            assert wait_for(
                lambda: (store.get("seed"), store.get("prompt")) == (77, "before the daemon"), poll=ask
            )
    finally:
        link.close()


# -- the defects a real OBS showed (tests/plugins/test_obs_real.py checks them in OBS) -------------
def test_the_none_label_is_no_preset():
    by_name = {p["name"]: p for p in script.script_properties()}
    assert by_name["preset"]["rest"][0] == obs.OBS_COMBO_TYPE_LIST  # stores values, not labels
    assert by_name["preset"]["items"][0] == ("(none)", "")
    link = script.Link("127.0.0.1", 9)
    try:
        assert "/sd/preset" not in link.update({"preset": "(none)", "guidance": 2.0})
    finally:
        link.close()
    settings: dict = {}
    script.script_defaults(settings)
    settings.update(port=9, preset="(none)")  # as an older version of the script saved it
    script.script_load(settings)
    try:
        assert settings["preset"] == ""
        assert script.daemon_command("sd-bridge run", script.clean_preset("(none)"), "", 7000) == [
            "sd-bridge",
            "run",
            "--osc-port",
            "7000",
        ]
    finally:
        script.script_unload()


def test_a_chosen_preset_goes_at_once_and_never_over_the_panel():
    link = script.Link("127.0.0.1", 9)
    try:
        panel = {"preset": "td-spout-roundtrip", "guidance": 3.0, "prompt": "panel"}
        sent = link.update(panel, now=0.0, everything=True)  # load, reconnect, Send everything again
        assert "/sd/preset" not in sent and {"/sd/guidance", "/sd/prompt"} <= set(sent)
        assert link.update({**panel, "preset": "ndi-roundtrip"}, now=1.0) == ["/sd/preset"]  # a choice
        assert link.update({**panel, "preset": "ndi-roundtrip"}, now=2.0) == []
    finally:
        link.close()


def test_changes_made_elsewhere_come_back_into_the_panel(obs_script):
    store, server, settings = obs_script
    link = script._link
    assert wait_for(lambda: link.connected, poll=script._tick)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        other.sendto(script.encode_message("/sd/guidance", [9.0]), server.address)
        assert wait_for(lambda: settings.get("guidance") == 9.0, poll=script._tick)
        settings["strength"] = 0.9
        script.script_update(settings)  # our own change: its echo must not be applied twice
        assert wait_for(lambda: store.get("strength") == pytest.approx(0.9))
        for _ in range(20):
            script._tick()
        assert settings["strength"] == 0.9 and link.sent["/sd/guidance"] == 9.0  # not sent back
    finally:
        other.close()


def test_stop_on_exit_acts_only_when_obs_closes(daemon):
    _store, _server = daemon
    settings: dict = {}
    script.script_defaults(settings)
    settings.update(
        port=_free_port(), command=f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'"
    )
    script.script_load(settings)
    assert script._start_daemon(settings).startswith("started")
    proc = script._daemon.proc
    script.script_unload()  # a reload, a removal, a collection switch
    assert proc.poll() is None
    script.script_load(settings)  # the reloaded script still knows its daemon
    assert script._start_daemon(settings) == f"sd-bridge already running (pid {proc.pid})"
    obs.event_callbacks[-1](obs.OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN)  # OBS is closing
    script.script_unload()
    assert proc.wait(timeout=5) is not None
    script._daemon.check()


def test_host_and_port_are_used_once_typing_pauses(obs_script, monkeypatch):
    _store, server, settings = obs_script
    link = script._link
    for typed in (1, 17, 177):
        settings["port"] = typed
        script.script_update(settings)
        script._tick()
    assert link.target == ("127.0.0.1", server.address[1])  # not yet: still typing
    settings["port"] = server.address[1] + 1
    script.script_update(settings)
    monkeypatch.setattr(script, "TARGET_SETTLE_S", 0.0)
    script._tick()
    assert link.target == ("127.0.0.1", server.address[1] + 1)


def test_send_errors_and_connection_changes_reach_the_log(obs_script, capsys):
    _store, server, settings = obs_script
    assert wait_for(lambda: script._link.connected, poll=script._tick)
    assert f"connected to 127.0.0.1:{server.address[1]}" in capsys.readouterr().out
    link = script.Link("no-such-host.invalid", 7000)
    try:
        assert wait_for(lambda: link.send("/sd/status", []) is False and link.notes)
        assert link.notes[-1].startswith("cannot send to no-such-host.invalid:7000: cannot resolve")
    finally:
        link.close()


def test_a_late_reply_from_the_previous_target_is_not_the_new_one(obs_script):
    _store, server, _settings = obs_script
    link = script._link
    link.poll(now=1000.0)  # asks the daemon for its status: the panel shows it
    assert wait_for(lambda: link.poll(now=1000.0) >= 0 and link.last_status != ""), "no status"
    link.send("/sd/status", [])  # asks again...
    assert select.select([link.sock], [], [], 5)[0], "no reply"  # ...whose reply is on its way...
    link.retarget("127.0.0.1", _free_port())  # ...when the user picks another port
    link.poll(now=1000.5)
    assert not link.connected and not link.answering()
    assert link.last_status == "" and link.stats == {}  # nothing shown is the old daemon's
