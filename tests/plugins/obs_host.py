"""A real OBS Studio under Xvfb, for tests/plugins/test_obs_real.py.

`ObsHost` writes a fresh OBS configuration (global.ini, a profile, scene collections whose
`modules.scripts-tool` list preloads Python scripts with their settings), starts Xvfb on a free
display and OBS on it with software GL, reads OBS's log, and drives scripts through
`obs_driver.py` (which OBS loads next to the script under test). Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "obs_driver.py"


def obs_available() -> str | None:
    """Why a real OBS can't run here, or None when it can."""
    for tool in ("obs", "Xvfb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install obs-studio xvfb)"
    if not list(Path("/usr/lib").glob("*/obs-scripting/_obspython.so")) and not list(
        Path("/usr/lib").glob("obs-scripting/_obspython.so")
    ):
        return "this OBS has no Python scripting (_obspython.so)"
    return None


def _scene_collection(name: str, scripts: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "name": name,
        "current_scene": "Scene",
        "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}],
        "sources": [
            {
                "id": "scene",
                "versioned_id": "scene",
                "name": "Scene",
                "settings": {"items": [], "id_counter": 0},
            }
        ],
        "modules": {"scripts-tool": [{"path": str(p), "settings": s} for p, s in scripts]},
    }


class ObsHost:
    """One OBS process with its own HOME; use as a context manager."""

    def __init__(
        self,
        root: Path,
        collections: dict[str, list[tuple[Path, dict[str, Any]]]],
        env: dict[str, str] | None = None,
        target: str = "sd_bridge_obs",
    ) -> None:
        self.root = root
        self.home = root / "home"
        self.config = self.home / ".config" / "obs-studio"
        self.driver_dir = root / "driver"
        self.collections = collections
        self.first = next(iter(collections))
        self.env = env or {}
        self.target = target
        self.xvfb: subprocess.Popen | None = None
        self.proc: subprocess.Popen | None = None
        self._n = 0

    # -- set-up ---------------------------------------------------------------------------------
    def _write_config(self) -> None:
        scenes = self.config / "basic" / "scenes"
        profile = self.config / "basic" / "profiles" / "Test"
        for folder in (scenes, profile, self.driver_dir):
            folder.mkdir(parents=True, exist_ok=True)
        (self.config / "global.ini").write_text(
            "[General]\nFirstRun=true\nEnableAutoUpdates=false\nLastVersion=486539264\n"
            "[BasicWindow]\nSysTrayEnabled=false\n"
            f"[Basic]\nProfile=Test\nProfileDir=Test\nSceneCollection={self.first}\n"
            f"SceneCollectionFile={self.first}\nConfigOnNewProfile=false\n",
            encoding="utf-8",
        )
        (profile / "basic.ini").write_text(
            "[General]\nName=Test\n[Video]\nBaseCX=320\nBaseCY=180\nOutputCX=320\nOutputCY=180\n"
            "FPSType=1\nFPSInt=10\n",
            encoding="utf-8",
        )
        for name, scripts in self.collections.items():
            # The driver first, so that it watches host-name lookups before the script loads.
            with_driver = [(DRIVER, {"dir": str(self.driver_dir), "target": self.target}), *scripts]
            (scenes / f"{name}.json").write_text(
                json.dumps(_scene_collection(name, with_driver)), encoding="utf-8"
            )

    def __enter__(self) -> ObsHost:
        self._write_config()
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as f:  # Xvfb writes the display number it took, once it is ready
            display = f.readline().strip()
        if not display:
            raise RuntimeError("Xvfb did not start")
        # No inherited Qt settings: importing OpenCV (cv2) in the test process points
        # QT_QPA_PLATFORM_PLUGIN_PATH at its own Qt plugins, and OBS aborts on them.
        inherited = {k: v for k, v in {**os.environ, **self.env}.items() if not k.startswith("QT_")}
        env = {
            **inherited,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "DISPLAY": f":{display}",
            "LIBGL_ALWAYS_SOFTWARE": "1",
            "QT_QPA_PLATFORM": "xcb",
        }
        env.pop("PYTHONHOME", None)
        env.pop("VIRTUAL_ENV", None)
        self.proc = subprocess.Popen(
            ["obs", "--multi", "--disable-shutdown-check", "--disable-missing-files-check"],
            env=env,
            cwd=self.root,
            stdout=(self.root / "obs.stdout").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            self._stop_xvfb()

    def _stop_xvfb(self) -> None:
        if self.xvfb is not None:
            self.xvfb.terminate()
            try:
                self.xvfb.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.xvfb.kill()

    def close(self, timeout: float = 30.0) -> int | None:
        """Close OBS the way a user's quit does. SIGINT: OBS 29 then unloads its scripts and saves the
        collection; SIGTERM ends it at once, with neither."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise

    # -- reading --------------------------------------------------------------------------------
    def log(self) -> str:
        logs = sorted((self.config / "logs").glob("*.txt"))
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)

    def wait_log(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match[str]:
        """The first match of `pattern` in OBS's log (past character `after`), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern).search(self.log(), after)
            if match:
                return match
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"OBS exited ({self.proc.returncode}) before {pattern!r}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in OBS's log within {timeout} s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 60) -> str:
        """The end of OBS's log, and of its stdout/stderr once it has exited (a crash shows there)."""
        text = "\n".join(self.log().splitlines()[-lines:])
        if self.proc is not None and self.proc.poll() is not None:
            out = (self.root / "obs.stdout").read_text(encoding="utf-8", errors="replace")
            text += "\n--- OBS's own output ---\n" + "\n".join(out.splitlines()[-lines:])
        return text

    def saved_collection(self, name: str) -> dict[str, Any]:
        return json.loads((self.config / "basic" / "scenes" / f"{name}.json").read_text(encoding="utf-8"))

    # -- driving --------------------------------------------------------------------------------
    def do(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        """Run one driver command on OBS's UI thread and return its result."""
        n, self._n = self._n, self._n + 1
        (self.driver_dir / f"{n}.json.tmp").write_text(json.dumps({"op": op, **args}), encoding="utf-8")
        os.replace(self.driver_dir / f"{n}.json.tmp", self.driver_dir / f"{n}.json")
        done = self.driver_dir / f"{n}.done.json"
        deadline = time.monotonic() + timeout
        while not done.exists():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"OBS exited during {op}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"driver command {op} got no answer within {timeout} s:\n{self.tail()}")
            time.sleep(0.05)
        reply = json.loads(done.read_text(encoding="utf-8"))
        if not reply["ok"]:
            raise AssertionError(f"driver command {op} failed in OBS:\n{reply['result']}")
        return reply["result"]
