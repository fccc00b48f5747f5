"""The TouchDesigner builder script, run against a recording stand-in for TouchDesigner's globals.

TouchDesigner itself can't run here, so this checks the builder up to that boundary: it runs top
to bottom, makes a custom parameter for every row of the extension's generated table (with the
table's ranges and defaults), wires the DATs that call the extension, sets only parameters that
exist on the real operators (names from the TouchDesigner operator reference), and saves the .tox.
"""

from __future__ import annotations

import os
import types

import pytest
from plugin_fakes import ROOT

BUILDER = ROOT / "plugins" / "touchdesigner" / "build_sd_bridge.py"

OSC_DAT_PARS = {"active", "protocol", "address", "port", "localaddress", "shared", "splitbundle", "callbacks"}
"""The OSC Out and OSC In DATs share these parameters."""

KNOWN_PARS = {
    "baseCOMP": {"ext0object", "ext0name", "ext0promote", "reinitextensions"},
    "textDAT": set(),
    "tableDAT": set(),
    "oscoutDAT": OSC_DAT_PARS,
    "oscinDAT": OSC_DAT_PARS,
    "parameterexecuteDAT": {"active", "op", "pars", "valuechange", "onpulse", "custom", "builtin"},
    "executeDAT": {"active", "start", "create", "exit", "framestart", "frameend"},
    "inTOP": set(),
    "outTOP": set(),
    "switchTOP": {"index", "blend"},
    "ndioutTOP": {"active", "name", "fps"},
    "ndiinTOP": {"active", "name"},
    "syphonspoutoutTOP": {"active", "sendername"},
    "syphonspoutinTOP": {"active", "sendername"},
}


class Par:
    def __init__(self, name):
        self.name, self.val, self.expr = name, None, None
        self.pulsed = 0

    def pulse(self):
        self.pulsed += 1


class ParSet:
    """Only the parameters the real operator type has; setting another one fails the test."""

    def __init__(self, optype, custom):
        object.__setattr__(self, "_pars", {n: Par(n) for n in KNOWN_PARS[optype]})
        object.__setattr__(self, "_custom", custom)

    def __getattr__(self, name):
        pars = object.__getattribute__(self, "_pars")
        custom = object.__getattribute__(self, "_custom")
        if name in pars:
            return pars[name]
        if name in custom:
            return custom[name]
        raise AttributeError(name)

    def __setattr__(self, name, value):
        getattr(self, name).val = value


class Page:
    def __init__(self, comp, name):
        self.comp, self.name = comp, name

    def _append(self, style):
        def append(name, label=None):
            assert name[:1].isupper() and name[1:] == name[1:].lower(), name
            assert name not in self.comp.custom, f"duplicate custom parameter {name}"
            p = Par(name)
            p.style, p.label, p.page = style, label, self.name
            self.comp.custom[name] = p
            return [p]

        return append

    def __getattr__(self, attr):
        if attr.startswith("append"):
            return self._append(attr[len("append") :])
        raise AttributeError(attr)


class Connector:
    def __init__(self, owner):
        self.owner, self.source = owner, None

    def connect(self, source):
        self.source = source


class Op:
    def __init__(self, optype, name, parent=None):
        self.optype, self.name, self.parent = optype, name, parent
        self.path = (parent.path if parent else "") + "/" + name
        self.custom = {}
        self.par = ParSet(optype, self.custom)
        self.children = {}
        self.pages = []
        self.text = ""
        self.rows = []
        self.inputConnectors = [Connector(self) for _ in range(4)]
        self.saved = None

    def create(self, optype, name):
        child = Op(optype, name, self)
        self.children[name] = child
        return child

    def op(self, name):
        return self.children.get(name)

    def destroy(self):
        del self.parent.children[self.name]

    def appendCustomPage(self, name):  # noqa: N802
        page = Page(self, name)
        self.pages.append(name)
        return page

    def clear(self):
        self.rows = []

    def appendRow(self, row):  # noqa: N802
        self.rows.append(row)

    def save(self, path):
        self.saved = path

    @property
    def module(self):
        mod = types.ModuleType(self.name)
        exec(compile(self.text, self.name, "exec"), mod.__dict__)
        return mod


def run_builder(tmp_path, monkeypatch, nt: bool):
    ext_dir = tmp_path / "td"
    ext_dir.mkdir()
    (ext_dir / "SdBridgeExt.py").write_text(
        (ROOT / "plugins/touchdesigner/SdBridgeExt.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    project = Op("baseCOMP", "project1")
    env = {name: name for name in KNOWN_PARS}
    env.update({"op": lambda path: project, "SD_BRIDGE_DIR": str(ext_dir), "__name__": "textport"})
    monkeypatch.setattr(os, "name", "nt" if nt else "posix")  # os.path is bound already: only the check moves
    try:
        exec(compile(BUILDER.read_text(encoding="utf-8"), str(BUILDER), "exec"), env)
    finally:
        monkeypatch.undo()
    return project.op("sd_bridge"), ext_dir


@pytest.mark.parametrize("nt", [True, False], ids=["windows", "other"])
def test_builder_creates_the_component_and_saves_the_tox(tmp_path, monkeypatch, nt):
    comp, ext_dir = run_builder(tmp_path, monkeypatch, nt)
    ext = comp.op("SdBridgeExt").module
    for name, _address, kind, default, lo, hi, label, parname, page in ext.PARAMS:
        p = comp.custom[parname]
        assert p.page == page and p.label == label
        if name == "preset":
            assert p.style == "StrMenu" and p.menuNames == ["", *ext.PRESETS]
            continue
        assert p.style == {"float": "Float", "int": "Int", "bool": "Toggle", "str": "Str"}[kind]
        assert p.default == default
        if kind in ("float", "int"):
            assert (p.min, p.max, p.clampMin, p.clampMax) == (lo, hi, True, True)
    for stat, _ in ext.STATS:
        assert comp.custom[ext.stat_parname(stat)].page == "Info"
    for pulse in ("Resync", "Startdaemon", "Stopdaemon", "Askstatus"):
        assert comp.custom[pulse].style == "Pulse"
    assert comp.par.ext0object.val == "op('./SdBridgeExt').module.SdBridgeExt(me)"
    assert comp.par.ext0promote.val is True and comp.par.reinitextensions.pulsed == 1

    oscout, oscin = comp.op("oscout"), comp.op("oscin")
    assert oscout.par.address.expr == "parent().par.Host" and oscout.par.port.expr == "parent().par.Port"
    assert oscout.par.callbacks.val is comp.op("osc_callbacks") is oscin.par.callbacks.val
    assert oscout.par.splitbundle.val is True
    assert "OnOSC(address, args)" in comp.op("osc_callbacks").text
    parexec = comp.op("parexec")
    assert parexec.par.op.val == comp.path and parexec.par.custom.val is True
    assert "OnParValueChange(par)" in parexec.text and "OnPulse(par)" in parexec.text
    assert comp.op("poll").par.framestart.val is True and "Poll()" in comp.op("poll").text
    for callbacks in ("osc_callbacks", "parexec", "poll"):
        compile(comp.op(callbacks).text, callbacks, "exec")

    ndi_out = comp.op("ndi_out")
    assert ndi_out.inputConnectors[0].source is comp.op("in1")
    assert comp.op("out1").inputConnectors[0].source is comp.op("result")
    assert (comp.op("spout_out") is not None) == nt
    if nt:
        assert comp.op("spout_out").par.sendername.expr == "parent().par.Sendername"
        assert comp.op("result").inputConnectors[0].source is comp.op("spout_in")
    assert comp.saved == str(ext_dir / "sd_bridge.tox")


def test_builder_refuses_a_missing_folder(tmp_path):
    env = {name: name for name in KNOWN_PARS}
    env.update({"op": lambda path: None, "SD_BRIDGE_DIR": str(tmp_path / "nowhere")})
    with pytest.raises(RuntimeError, match="set SD_BRIDGE_DIR"):
        exec(compile(BUILDER.read_text(encoding="utf-8"), str(BUILDER), "exec"), env)
