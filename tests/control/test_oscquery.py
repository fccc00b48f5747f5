"""OSCQuery over real HTTP: the JSON tree matches PARAMS and shows live values; mDNS finds it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from bridge.control import PARAMS, Kind, ParamStore
from bridge.control.osc import OscServer
from bridge.control.osc_map import COMMANDS, VARIABLE, encode, type_tags

from .osc_helpers import Client


def fetch(address: tuple[str, int], path: str) -> tuple[int, object]:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=5) as response:
        body = response.read()
        return response.status, json.loads(body) if body else None


@pytest.fixture
def query_server():
    store = ParamStore()
    with OscServer(store, port=0, query_port=0, advertise=False) as srv:
        yield srv, store


def node_at(tree: dict, address: str) -> dict:
    node = tree
    for part in address.strip("/").split("/"):
        node = node["CONTENTS"][part]
    return node


def test_tree_matches_params(query_server):
    srv, store = query_server
    status, tree = fetch(srv.query_address, "/")
    assert status == 200 and tree["FULL_PATH"] == "/"
    for p in PARAMS:
        node = node_at(tree, p.address)
        assert node["FULL_PATH"] == p.address
        assert node["DESCRIPTION"] == p.doc
        assert node["ACCESS"] == 3
        tags = type_tags(p, p.default)
        if p.kind in VARIABLE:  # a list of varying length: an OSC array of its current length
            assert node["TYPE"] == f"[{tags}]", p.address
        else:
            assert node["TYPE"] == tags and set(tags) <= set("ifs"), p.address
        if p.default is None:
            assert "VALUE" not in node
        else:
            expected = encode(p, p.default)  # the defaults are short decimals: shown exactly
            assert node["VALUE"] == ([expected] if p.kind in VARIABLE else expected), p.address
        if p.kind in (Kind.FLOAT, Kind.INT) and p.minimum is not None:
            assert node["RANGE"] == [{"MIN": p.minimum, "MAX": p.maximum}]
            assert node["CLIPMODE"] == ("both" if p.clamp else "none")
        if p.has_norm:
            norm = node["CONTENTS"]["norm"]
            assert norm["FULL_PATH"] == p.address + "/norm" and norm["TYPE"] == "f"
            assert norm["VALUE"] == [pytest.approx(p.to_norm(p.default), rel=1e-6)]
    for address in COMMANDS:
        assert node_at(tree, address)["FULL_PATH"] == address
    assert node_at(tree, "/sd/filter")["FULL_PATH"] == "/sd/filter"


def test_values_are_live_and_attributes_can_be_asked_alone(query_server):
    srv, store = query_server
    c = Client(srv.address)
    c.send("/sd/guidance", 5.0)
    c.send("/sd/resolution", 640, 384)
    c.sync()
    c.close()
    assert fetch(srv.query_address, "/sd/guidance?VALUE") == (200, {"VALUE": [5.0]})
    assert fetch(srv.query_address, "/sd/guidance/norm?VALUE") == (200, {"VALUE": [0.25]})
    status, node = fetch(srv.query_address, "/sd/resolution")
    assert node["VALUE"] == [640, 384] and node["TYPE"] == "ii"
    assert fetch(srv.query_address, "/sd/prompt?RANGE") == (204, None)


def test_values_show_the_float32_sent_without_noise_and_lists_as_arrays(query_server):
    """3.3 over OSC is a float32; OSCQuery shows 3.3, not 3.299999952316284 (issue 14.10)."""
    srv, store = query_server
    c = Client(srv.address)
    c.send("/sd/guidance", 3.3)
    c.send("/sd/t_index", 32, 45)
    c.send("/sd/prompts", "forest", 0.7, "fire", 0.3)
    c.sync()
    c.close()
    raw = urllib.request.urlopen(f"http://{srv.query_address[0]}:{srv.query_address[1]}/sd/guidance").read()
    assert b'"VALUE": [3.3]' in raw and b"3.2999" not in raw
    assert fetch(srv.query_address, "/sd/guidance/norm?VALUE") == (200, {"VALUE": [0.165]})
    status, node = fetch(srv.query_address, "/sd/t_index")
    assert node["TYPE"] == "[ii]" and node["VALUE"] == [[32, 45]]
    assert node["RANGE"] == [[{"MIN": 0, "MAX": 49}, {"MIN": 0, "MAX": 49}]]
    status, node = fetch(srv.query_address, "/sd/prompts")
    assert node["TYPE"] == "[sfsf]" and node["VALUE"] == [["forest", 0.7, "fire", 0.3]]


def test_host_info_names_the_osc_port(query_server):
    srv, _ = query_server
    status, info = fetch(srv.query_address, "/?HOST_INFO")
    assert status == 200
    assert info["OSC_PORT"] == srv.address[1] and info["OSC_TRANSPORT"] == "UDP"
    assert info["EXTENSIONS"]["VALUE"] is True and info["EXTENSIONS"]["LISTEN"] is False


def test_unknown_path_is_404(query_server):
    srv, _ = query_server
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(srv.query_address, "/sd/nope")
    assert err.value.code == 404


def test_mdns_advertisement_is_found_by_a_browser():
    zeroconf = pytest.importorskip("zeroconf", reason="zeroconf not installed: mDNS advertisement is off")
    from bridge.control.oscquery import OscQueryServer

    name = f"sd-bridge-test-{time.monotonic_ns() % 100000}"
    server = OscQueryServer(ParamStore(), osc_address=("127.0.0.1", 7000), port=0, name=name)
    server.start(advertise=True)
    found: list[str] = []

    class Listener:
        def add_service(self, zc, type_, service):
            found.append(service)

        def update_service(self, zc, type_, service):
            pass

        def remove_service(self, zc, type_, service):
            pass

    zc = zeroconf.Zeroconf(ip_version=zeroconf.IPVersion.V4Only)
    try:
        browser = zeroconf.ServiceBrowser(zc, "_oscjson._tcp.local.", Listener())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(s.startswith(name) for s in found):
            time.sleep(0.05)
        browser.cancel()
        assert any(s.startswith(name) for s in found), found
        info = zc.get_service_info("_oscjson._tcp.local.", next(s for s in found if s.startswith(name)), 3000)
        assert info is not None and info.port == server.address[1]
    finally:
        zc.close()
        server.stop()


def test_without_mdns_support_it_says_how_to_get_it(monkeypatch, caplog):
    import builtins

    from bridge.control import mdns

    real_import = builtins.__import__

    def no_zeroconf(name, *args, **kwargs):
        if name == "zeroconf":
            raise ImportError("no zeroconf")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_zeroconf)
    monkeypatch.setattr(mdns.shutil, "which", lambda tool: None)
    with caplog.at_level("INFO", logger="bridge.mdns"):
        ad = mdns.advertise("x", 1234)
    assert ad.backend == "none"
    assert "pip install zeroconf" in caplog.text
    ad.close()


def test_oscquery_obeys_the_allow_list():
    refused = OscServer(ParamStore(), port=0, query_port=0, advertise=False, allow=["10.9.9.9"])
    with refused as srv, pytest.raises((urllib.error.URLError, ConnectionError)):
        fetch(srv.query_address, "/?HOST_INFO")
    with OscServer(ParamStore(), port=0, query_port=0, advertise=False, allow=["127.0.0.1"]) as srv:
        assert fetch(srv.query_address, "/?HOST_INFO")[0] == 200


def test_closing_an_announcement_does_not_wait_for_the_goodbye():
    """zeroconf's goodbye takes a second or more; a stopping daemon leaves without it (a plugin's
    clean stop turns into a SIGTERM after 2 s), and the withdrawal still runs in the background."""
    import threading

    from bridge.control import mdns

    release, withdrawn = threading.Event(), threading.Event()

    def slow_goodbye() -> None:
        release.wait(10)
        withdrawn.set()

    ad = mdns.Advertisement("zeroconf")
    ad._closers.append(slow_goodbye)
    ad.close(wait=0.05)
    assert not withdrawn.is_set()  # close() came back while the goodbye was still going
    release.set()
    assert withdrawn.wait(5)  # ...and the goodbye went out all the same
    ad.close()  # closing twice is harmless
