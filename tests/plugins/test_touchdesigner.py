"""The TouchDesigner extension, outside TouchDesigner, against the daemon's real OSC socket."""

from __future__ import annotations

import shlex
import socket
import sys

import pytest
from plugin_fakes import STATS, FakeComp, FakeOscOutDAT, load_module, wait_for
from plugin_values import changed_value, same

from bridge.control.osc import OscServer
from bridge.control.params import PARAMS_BY_NAME
from bridge.control.store import ParamStore

ext_mod = load_module("plugins/touchdesigner/SdBridgeExt.py", "SdBridgeExt")


@pytest.fixture
def td(daemon):
    store, server = daemon
    oscout = FakeOscOutDAT(*server.address)
    comp = FakeComp(ext_mod, oscout)
    ext = ext_mod.SdBridgeExt(comp)
    yield store, server, comp, ext, oscout
    ext.StopDaemon()
    oscout.close()


def test_every_parameter_change_reaches_the_daemon_store(td):
    store, _server, comp, ext, _oscout = td
    for row in ext_mod.PARAMS:
        name, _address, kind, default, lo, hi, _label, parname, _page = row
        value = changed_value(name, kind, default, lo, hi)
        par = getattr(comp.par, parname)
        par.val = value
        ext.OnParValueChange(par)  # what the Parameter Execute DAT calls
        assert wait_for(lambda n=name, v=value: same(store.get(n), v)), (name, store.get(name), value)


def test_values_are_sent_with_the_parameter_types(td):
    _store, _server, comp, ext, oscout = td
    for parname, value, expected in (("Seed", 5.0, [5]), ("Guidance", 3, [3.0]), ("Bypass", True, [1])):
        getattr(comp.par, parname).val = value
        ext.OnParValueChange(getattr(comp.par, parname))
        assert oscout.sent[-1][1] == expected
        assert type(oscout.sent[-1][1][0]) is type(expected[0])


def test_only_changes_are_sent(td):
    store, _server, comp, ext, oscout = td
    comp.par.Guidance.val = 4.0
    ext.OnParValueChange(comp.par.Guidance)
    ext.OnParValueChange(comp.par.Guidance)
    ext.OnParValueChange(comp.par.Guidance)
    assert [m for m in oscout.sent if m[0] == "/sd/guidance"] == [("/sd/guidance", [4.0])]
    assert wait_for(lambda: store.get("guidance") == 4.0)


def test_empty_preset_is_not_sent_and_resync_sends_everything(td):
    store, _server, comp, ext, oscout = td
    assert ext_mod.message_for("Preset", "") is None
    comp.par.Delta.val = 0.5
    ext.OnPulse(types_par("Resync"))
    addresses = [a for a, _ in oscout.sent]
    expected = {row[1] for row in ext_mod.PARAMS if row[0] != "preset"}
    assert set(addresses) == expected
    assert wait_for(lambda: store.get("delta") == 0.5)


def test_an_echo_from_another_controller_updates_the_parameter_without_resending(td):
    store, _server, comp, ext, oscout = td
    comp.par.Guidance.val = 2.0
    ext.Poll()  # talk to the daemon once, so it counts us among its clients; it answers, we send all
    assert wait_for(lambda: store.get("guidance") == 2.0, poll=lambda: oscout.pump(ext.OnOSC))
    store.set("guidance", 7.5, origin="another controller")
    assert wait_for(lambda: comp.par.Guidance.val == 7.5, poll=lambda: oscout.pump(ext.OnOSC))
    before = len(oscout.sent)
    ext.OnParValueChange(comp.par.Guidance)  # TouchDesigner reports the change we just made
    assert len(oscout.sent) == before


def test_own_echoes_do_not_pull_a_dragged_slider_back_but_clamps_apply(td):
    store, _server, comp, ext, oscout = td
    ext.Poll()  # become one of the daemon's clients: from now on its echoes reach us
    assert wait_for(lambda: ext.connected, poll=lambda: oscout.pump(ext.OnOSC))
    for value in (0.1, 0.3, 0.7):  # a drag: three values out before any echo is read
        comp.par.Delta.val = value
        ext.OnParValueChange(comp.par.Delta)
    assert wait_for(lambda: store.get("delta") == pytest.approx(0.7))
    echoes: list = []
    own = ("/sd/delta", pytest.approx([0.7]))
    # the daemon echoes to the sender too
    assert wait_for(lambda: own in echoes, poll=lambda: oscout.pump(lambda a, v: echoes.append((a, v))))
    for address, args in [("/sd/delta", [0.1]), ("/sd/delta", [0.30000001192092896])]:
        ext.OnOSC(address, args)  # late echoes of the drag (float32 on the wire)
        assert comp.par.Delta.val == 0.7
    comp.par.Guidance.val = 99.0
    ext.OnParValueChange(comp.par.Guidance)
    hi = PARAMS_BY_NAME["guidance"].maximum
    assert wait_for(lambda: comp.par.Guidance.val == hi, poll=lambda: oscout.pump(ext.OnOSC))


def test_same_args_compares_at_float32_precision():
    assert ext_mod.same_args([0.3], [0.30000001192092896])
    assert not ext_mod.same_args([0.3], [0.31])
    assert not ext_mod.same_args(["a"], ["b"]) and ext_mod.same_args(["a", 1], ["a", 1.0])
    assert not ext_mod.same_args([1], [1, 2])


def test_status_stats_and_errors_show_on_the_info_page(td):
    _store, _server, comp, ext, oscout = td
    ext.Poll()
    assert wait_for(lambda: comp.par.Laststatus.val != "", poll=lambda: oscout.pump(ext.OnOSC))
    assert comp.par.Laststatus.val.split()[0] == str(STATS["fps"])
    oscout.sendOSC("/sd/subscribe", [10.0])
    assert wait_for(
        lambda: comp.par.Statfps.val == pytest.approx(STATS["fps"]), poll=lambda: oscout.pump(ext.OnOSC)
    )
    assert wait_for(
        lambda: comp.par.Statlatencyp50.val == pytest.approx(41.0), poll=lambda: oscout.pump(ext.OnOSC)
    )
    assert comp.op("stats").rows["dropped"] == STATS["dropped"]
    assert ext_mod.message_for("Preset", "../../etc/passwd") is None  # only presets the menu offers
    oscout.sendOSC("/sd/preset", ["../../etc/passwd"])
    assert wait_for(lambda: "/sd/preset" in comp.par.Lasterror.val, poll=lambda: oscout.pump(ext.OnOSC))


def test_poll_subscribes_to_stats_now_and_then(td):
    _store, server, _comp, ext, oscout = td
    for _ in range(ext_mod.SUBSCRIBE_EVERY_POLLS):
        ext.Poll()
    assert ("/sd/subscribe", []) in oscout.sent
    assert wait_for(lambda: len(server.subscribers()) == 1)


def test_daemon_command_follows_the_route():
    cmd = ext_mod.daemon_command("sd-bridge run", "td-spout-roundtrip", "spout", "TD out", "sdb", 7001)
    assert cmd == [
        "sd-bridge",
        "run",
        "--preset",
        "td-spout-roundtrip",
        "--source",
        "spout:TD out",
        "--sink",
        "spout:sdb",
        "--osc-port",
        "7001",
    ]
    assert ext_mod.daemon_command("x", "", "ndi", "a", "b", 7000)[1:3] == ["--source", "ndi:a"]
    with pytest.raises(ValueError, match="empty"):
        ext_mod.daemon_command("  ", "", "ndi", "a", "b", 7000)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_start_and_stop_a_daemon_process(td):
    _store, server, comp, ext, _oscout = td
    sleeper = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'"
    comp.par.Daemoncmd.val = sleeper
    ext.OnPulse(types_par("Startdaemon"))  # the test daemon holds the port: not a second one
    assert (
        comp.par.Daemonstate.val
        == f"port {server.address[1]} is taken (another sd-bridge?): not starting another"
    )
    comp.par.Port.val = _free_port()
    ext.OnPulse(types_par("Startdaemon"))
    assert ext.daemon.running()
    assert comp.par.Daemonstate.val.startswith("started sd-bridge (pid ")
    proc = ext.daemon.proc
    again = ext_mod.SdBridgeExt(comp)  # TouchDesigner re-initialised the extension
    again.OnPulse(types_par("Startdaemon"))
    assert comp.par.Daemonstate.val == f"already running (pid {proc.pid})"
    ext.OnPulse(types_par("Stopdaemon"))  # /sd/quit (nobody listens here), then SIGTERM
    assert wait_for(
        lambda: comp.par.Daemonstate.val.startswith("sd-bridge stopped"), timeout=10, poll=ext.Poll
    )
    assert proc.returncode is not None


def test_a_bad_daemon_command_is_reported_not_raised(td):
    _store, _server, comp, ext, _oscout = td
    comp.par.Port.val = _free_port()
    comp.par.Daemoncmd.val = "/nonexistent/sd-bridge run"
    ext.StartDaemon()
    assert comp.par.Daemonstate.val.startswith("could not start")
    assert not ext.daemon.running()


def test_a_daemon_that_exits_at_once_says_why(td):
    _store, _server, comp, ext, _oscout = td
    comp.par.Port.val = _free_port()
    fail = "import sys; print('error: cannot open source spout:TDSpoutOut'); sys.exit(1)"
    comp.par.Daemoncmd.val = f'{shlex.quote(sys.executable)} -c "{fail}"'
    ext.StartDaemon()
    assert wait_for(
        lambda: "exit code 1): error: cannot open source" in comp.par.Daemonstate.val, poll=ext.Poll
    )


def test_resync_never_sends_the_preset_over_the_pages(td):
    _store, _server, comp, ext, oscout = td
    comp.par.Preset.val = "td-spout-roundtrip"
    ext.SendAll()
    assert "/sd/preset" not in [a for a, _ in oscout.sent]
    ext.OnParValueChange(comp.par.Preset)  # choosing one sends it
    assert oscout.sent[-1] == ("/sd/preset", ["td-spout-roundtrip"])


def test_the_table_covers_the_issue_pages():
    names = {row[0] for row in ext_mod.PARAMS}
    wanted = {
        "prompt",
        "negative_prompt",
        "guidance",
        "delta",
        "strength",
        "seed",
        "transition",
        "bypass",
        "preset",
    }
    assert wanted <= names
    assert {n for n in names if n.startswith("filter.")} == {
        n for n in PARAMS_BY_NAME if n.startswith("filter.")
    }


def types_par(name: str):
    class _Pulse:
        pass

    p = _Pulse()
    p.name = name
    return p


def test_first_status_reply_sends_the_whole_panel(td):
    store, _server, comp, ext, oscout = td
    comp.par.Delta.val = 0.25  # set while the daemon wasn't listening: never sent
    comp.par.Prompt.val = "saved with the project"
    ext.Poll()
    assert wait_for(lambda: store.get("delta") == 0.25, poll=lambda: oscout.pump(ext.OnOSC))
    assert wait_for(lambda: store.get("prompt") == "saved with the project")
    assert ext.connected
    before = len(oscout.sent)
    ext.Poll()
    assert wait_for(lambda: oscout.pump(ext.OnOSC) > 0)
    assert [a for a, _ in oscout.sent[before:]] == ["/sd/status"]  # only once per connection


def test_a_restarted_daemon_gets_the_panel_again(td):
    store, server, comp, ext, oscout = td
    comp.par.Seed.val = 1234
    ext.Poll()
    assert wait_for(lambda: store.get("seed") == 1234, poll=lambda: oscout.pump(ext.OnOSC))
    port = server.address[1]
    server.stop()  # the daemon goes away...
    for _ in range(ext_mod.RECONNECT_AFTER_POLLS + 1):
        ext.Poll()  # ...and the component's polls go unanswered
    fresh = ParamStore()
    with OscServer(fresh, host="127.0.0.1", port=port, stats=lambda: dict(STATS), advertise=False):
        ext.Poll()
        assert wait_for(lambda: fresh.get("seed") == 1234, poll=lambda: oscout.pump(ext.OnOSC))


def test_a_new_host_or_port_is_a_new_daemon(td):
    _store, _server, comp, ext, oscout = td
    ext.Poll()
    assert wait_for(lambda: ext.connected, poll=lambda: oscout.pump(ext.OnOSC))
    comp.par.Port.val = _free_port()
    ext.OnParValueChange(comp.par.Port)
    assert not ext.connected and ext.sent == {}  # it gets every value once it answers
