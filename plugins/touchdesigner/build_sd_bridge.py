"""Build the sd_bridge component inside TouchDesigner and save it as sd_bridge.tox.

A .tox is binary and only TouchDesigner can write one, so the component ships as text: this
builder and the extension SdBridgeExt.py. Run it once (docs/TOUCHDESIGNER.md, steps 3-5):

- Textport (Alt+T), two lines:
      SD_BRIDGE_DIR = r"C:/sd-bridge/plugins/touchdesigner"
      exec(open(SD_BRIDGE_DIR + "/build_sd_bridge.py").read())
- or a Text DAT: paste this file, type the folder into SD_BRIDGE_DIR below, right-click > Run Script.

It creates /project1/sd_bridge (or PARENT below) with custom parameter pages, the OSC Out DAT
wiring (values sent on change only), Spout Out/In TOPs (Windows) and NDI Out/In TOPs, an Info
page fed by the daemon's /sd/stats/... messages, daemon start/stop, and saves sd_bridge.tox next
to this file. Running it again replaces the component.

Only TouchDesigner's own Python API is used (op, create, appendCustomPage, append*, sendOSC
wiring via DAT parameters); the names are those of TouchDesigner 2023 builds, with a fallback
for the older Extensions parameters.
"""

# ruff: noqa: F821  (op, baseCOMP, textDAT, absTime... are TouchDesigner's globals)
import os

SD_BRIDGE_DIR = globals().get("SD_BRIDGE_DIR", "")
"""The folder holding SdBridgeExt.py. Set it before running (see above), or type it in here."""
PARENT = "/project1"
NAME = "sd_bridge"

PARAMETER_CALLBACKS = """\
# Custom parameter changes of the sd_bridge component go to its extension.
def onValueChange(par, prev):
    par.owner.ext.SdBridgeExt.OnParValueChange(par)
    return

def onPulse(par):
    par.owner.ext.SdBridgeExt.OnPulse(par)
    return
"""

OSC_CALLBACKS = """\
# Everything the daemon sends back (replies, echoes, /sd/stats/...) goes to the extension.
def onReceiveOSC(dat, rowIndex, message, byteData, timeStamp, address, args, peer):
    parent().ext.SdBridgeExt.OnOSC(address, args)
    return
"""

POLL_CALLBACKS = """\
# About once a second: ask /sd/status (keeps the stats and echoes coming).
def onFrameStart(frame):
    if absTime.frame % 60 == 0:
        parent().ext.SdBridgeExt.Poll()
    return
"""


def _par(group):
    """append* returns a ParGroup on recent builds and a list of Par on older ones: the first Par."""
    return group[0]


def _add(page, kind, name, label, default=None, lo=None, hi=None, readonly=False):
    adders = {
        "float": page.appendFloat,
        "int": page.appendInt,
        "bool": page.appendToggle,
        "str": page.appendStr,
        "pulse": page.appendPulse,
        "menu": page.appendMenu,
        "strmenu": page.appendStrMenu,
    }
    p = _par(adders[kind](name, label=label))
    if lo is not None:
        p.min = p.normMin = lo
        p.clampMin = True
    if hi is not None:
        p.max = hi
        p.normMax = min(hi, 100000)  # the slider of a 32-bit seed would be unusable
        p.clampMax = True
    if default is not None:
        p.default = default
        p.val = default
    if readonly:
        p.readOnly = True
    return p


def build():
    if not SD_BRIDGE_DIR or not os.path.isfile(os.path.join(SD_BRIDGE_DIR, "SdBridgeExt.py")):
        raise RuntimeError(
            "sd-bridge: set SD_BRIDGE_DIR to the folder holding SdBridgeExt.py "
            f"(sd-bridge/plugins/touchdesigner); got {SD_BRIDGE_DIR!r}"
        )
    parent_comp = op(PARENT)
    old = parent_comp.op(NAME)
    if old is not None:
        old.destroy()
    comp = parent_comp.create(baseCOMP, NAME)

    ext_path = os.path.join(SD_BRIDGE_DIR, "SdBridgeExt.py")
    with open(ext_path, encoding="utf-8") as f:
        ext_text = f.read()
    ext_dat = comp.create(textDAT, "SdBridgeExt")
    ext_dat.text = ext_text  # embedded, so the saved .tox works without this folder
    table = ext_dat.module
    PARAMS, PRESETS, STATS = table.PARAMS, table.PRESETS, table.STATS

    # -- custom parameter pages, from the generated table ------------------------------------
    pages = {}
    for name, _address, kind, default, lo, hi, label, parname, pagename in PARAMS:
        if pagename not in pages:
            pages[pagename] = comp.appendCustomPage(pagename)
        page = pages[pagename]
        if name == "preset":
            p = _add(page, "strmenu", parname, label)
            p.menuNames = [""] + list(PRESETS)
            p.menuLabels = ["(none)"] + list(PRESETS)
            p.default = ""
        else:
            _add(page, kind, parname, label, default, lo, hi)

    conn = comp.appendCustomPage("Connection")
    _add(conn, "str", "Host", "Daemon host", "127.0.0.1")
    _add(conn, "int", "Port", "Daemon OSC port", 7000, 1, 65535)
    _add(conn, "int", "Replyport", "Reply port (0: replies come to the OSC Out DAT)", 0, 0, 65535)
    route = _add(conn, "menu", "Route", "Video route")
    route.menuNames = ["spout", "ndi"]
    route.menuLabels = ["Spout (Windows)", "NDI"]
    route.default = "spout" if os.name == "nt" else "ndi"
    route.val = route.default
    # The names the shipped presets expect: td-spout-roundtrip reads Spout "TDSpoutOut",
    # ndi-roundtrip the first NDI source whose name contains "TouchDesigner".
    _add(
        conn,
        "str",
        "Sendername",
        "Send to sd-bridge as",
        "TDSpoutOut" if os.name == "nt" else "TouchDesigner",
    )
    _add(conn, "str", "Receivename", "sd-bridge output name", "sd-bridge")
    _add(conn, "pulse", "Resync", "Send all values")

    daemon = comp.appendCustomPage("Daemon")
    _add(daemon, "str", "Daemoncmd", "sd-bridge command", "sd-bridge run")
    _add(daemon, "pulse", "Startdaemon", "Start sd-bridge")
    _add(daemon, "pulse", "Stopdaemon", "Stop sd-bridge")
    _add(daemon, "str", "Daemonstate", "State", "", readonly=True)

    info = comp.appendCustomPage("Info")
    for stat, label in STATS:
        _add(info, "str", table.stat_parname(stat), label, "", readonly=True)
    _add(info, "str", "Laststatus", "Last /sd/status", "", readonly=True)
    _add(info, "str", "Lasterror", "Last /sd/error", "", readonly=True)
    _add(info, "pulse", "Askstatus", "Ask status now")

    # -- the extension ------------------------------------------------------------------------
    definition = "op('./SdBridgeExt').module.SdBridgeExt(me)"
    if hasattr(comp.par, "ext0object"):  # 2022+ builds: a sequence of extension blocks
        comp.par.ext0object = definition
        comp.par.ext0name = "SdBridgeExt"
        comp.par.ext0promote = True
    else:
        comp.par.extension1 = definition
        comp.par.promoteextension1 = True
    comp.par.reinitextensions.pulse()

    # -- OSC: send on change, receive replies on the same socket -----------------------------
    osc_cb = comp.create(textDAT, "osc_callbacks")
    osc_cb.text = OSC_CALLBACKS
    oscout = comp.create(oscoutDAT, "oscout")
    oscout.par.address.expr = "parent().par.Host"
    oscout.par.port.expr = "parent().par.Port"
    oscout.par.callbacks = osc_cb
    oscin = comp.create(oscinDAT, "oscin")  # only for daemons started with --osc-reply-port
    oscin.par.port.expr = "parent().par.Replyport"
    oscin.par.active.expr = "parent().par.Replyport > 0"
    oscin.par.callbacks = osc_cb
    for dat in (oscout, oscin):
        # The stats push arrives as a bundle: one callback per message, not one per bundle.
        dat.par.splitbundle = True

    parexec = comp.create(parameterexecuteDAT, "parexec")
    parexec.text = PARAMETER_CALLBACKS
    parexec.par.op = comp.path
    parexec.par.pars = "*"
    parexec.par.custom = True
    parexec.par.builtin = False
    parexec.par.valuechange = True
    parexec.par.onpulse = True

    poll = comp.create(executeDAT, "poll")
    poll.text = POLL_CALLBACKS
    poll.par.framestart = True

    stats = comp.create(tableDAT, "stats")
    stats.clear()
    stats.appendRow(["stat", "value"])

    # -- video: input -> Spout/NDI out; Spout/NDI in -> output ------------------------------
    vin = comp.create(inTOP, "in1")
    outs, ins = [], []
    if os.name == "nt":
        spout_out = comp.create(syphonspoutoutTOP, "spout_out")
        spout_out.inputConnectors[0].connect(vin)
        spout_out.par.sendername.expr = "parent().par.Sendername"
        spout_in = comp.create(syphonspoutinTOP, "spout_in")
        spout_in.par.sendername.expr = "parent().par.Receivename"
        outs.append(spout_out)
        ins.append(spout_in)
    ndi_out = comp.create(ndioutTOP, "ndi_out")
    ndi_out.inputConnectors[0].connect(vin)
    ndi_out.par.name.expr = "parent().par.Sendername"
    ndi_out.par.active.expr = "parent().par.Route == 'ndi'"
    ndi_in = comp.create(ndiinTOP, "ndi_in")
    ndi_in.par.active.expr = "parent().par.Route == 'ndi'"
    # NDI In wants the full "MACHINE (name)": pick it from the node's Source Name menu once.
    outs.append(ndi_out)
    ins.append(ndi_in)
    switch = comp.create(switchTOP, "result")
    for i, src in enumerate(ins):
        switch.inputConnectors[i].connect(src)
    if len(ins) > 1:
        switch.par.index.expr = "0 if parent().par.Route == 'spout' else 1"
    vout = comp.create(outTOP, "out1")
    vout.inputConnectors[0].connect(switch)

    for i, node in enumerate([ext_dat, osc_cb, oscout, oscin, parexec, poll, stats]):
        node.nodeX, node.nodeY = -400, 300 - 120 * i
    for i, node in enumerate([vin, *outs]):
        node.nodeX, node.nodeY = 0, 300 - 150 * i
    for i, node in enumerate([*ins, switch, vout]):
        node.nodeX, node.nodeY = 300, 300 - 150 * i

    tox = os.path.join(SD_BRIDGE_DIR, NAME + ".tox")
    comp.save(tox)
    print(f"sd-bridge: built {comp.path} and saved {tox}")
    return comp


build()
