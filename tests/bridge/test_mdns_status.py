"""The mDNS check behind NDI's "no source found" hint and `sd-bridge doctor`'s mdns line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.mdns_status import mdns_problem
from bridge.sources.ndi import _discovery_hint

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="avahi is Linux's mDNS")


def _avahi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, running: bool) -> None:
    """An `avahi-daemon` first on PATH whose `--check` answers like a stopped or running daemon."""
    tool = tmp_path / "avahi-daemon"
    tool.write_text(f"#!/bin/sh\nexit {0 if running else 1}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")


@linux_only
def test_agrees_with_the_real_daemon() -> None:
    real = Path("/usr/sbin/avahi-daemon")
    if not real.exists():
        print("SKIP: avahi-daemon is not installed here")
        pytest.skip("avahi-daemon is not installed here")
    running = subprocess.run([str(real), "--check"]).returncode == 0
    assert (mdns_problem() is None) == running


@linux_only
def test_a_stopped_daemon_is_named_with_its_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _avahi_on_path(tmp_path, monkeypatch, running=False)
    assert mdns_problem() == "avahi-daemon is not running (NDI discovery on Linux needs mDNS)"
    hint = _discovery_hint()
    assert "avahi-daemon is not running" in hint and "apt-get install dbus avahi-daemon" in hint


@linux_only
def test_a_running_daemon_adds_no_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _avahi_on_path(tmp_path, monkeypatch, running=True)
    assert mdns_problem() is None
    assert _discovery_hint() == ""


@linux_only
def test_doctor_warns_when_discovery_cannot_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.cli.doctor import WARN, run_checks

    _avahi_on_path(tmp_path, monkeypatch, running=False)
    mdns = next(c for c in run_checks(osc_port=0, model="random:tiny") if c.name == "mdns")
    assert mdns.status == WARN and "NDI sources will not be found" in mdns.detail
    assert "avahi-daemon" in mdns.fix
