"""Whether mDNS discovery can work here, which NDI's finder needs to see any source.

On Linux the NDI runtime discovers through avahi-daemon (over the system D-Bus); without it a finder
sees nothing, which looks exactly like "no sender is running". macOS (Bonjour) and Windows (NDI's own
mDNS) need nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

AVAHI_FIX = (
    "install and start avahi-daemon: apt-get install dbus avahi-daemon, then "
    "`systemctl start avahi-daemon` (or, without systemd: dbus-daemon --system --fork; "
    "avahi-daemon --daemonize --no-chroot)"
)


def mdns_problem() -> str | None:
    """None when discovery can work, else one line saying why not."""
    if not sys.platform.startswith("linux"):
        return None
    tool = shutil.which("avahi-daemon") or next(
        (p for p in ("/usr/sbin/avahi-daemon", "/sbin/avahi-daemon") if os.path.exists(p)), None
    )
    if tool is None:
        return "avahi-daemon is not installed (NDI discovery on Linux needs mDNS)"
    try:
        running = subprocess.run([tool, "--check"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None  # cannot tell; do not claim a problem we did not see
    return None if running else "avahi-daemon is not running (NDI discovery on Linux needs mDNS)"
