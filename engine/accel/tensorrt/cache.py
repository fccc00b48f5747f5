"""The on-disk engine cache: a key of everything an engine depends on, and verified loads.

An engine file is only valid for the exact weights, shape profile, batch range, precision,
TensorRT version and GPU architecture it was built for. All of these go into `EngineKey`; its
digest names the file. Next to each `.plan` lies a `.json` with the full key and the plan's
SHA-256, so a file that was cut short, overwritten or built for something else is found out
and rebuilt instead of loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bump when export or build changes in a way that makes old engines wrong."""


@dataclass(frozen=True)
class EngineKey:
    part: str
    model: str
    """Identity of the weights: `module_fingerprint()` or an `id@revision` string."""
    profile: tuple
    """`PartSpec.profile_fields()`: every input's (min, opt, max) shape, so batch and size ranges."""
    precision: str
    trt_version: str
    compute_capability: str
    opset: int
    extra: tuple = field(default_factory=tuple)
    """Anything else the exported graph depends on, as sorted (name, value) pairs."""
    format: int = CACHE_FORMAT

    def fields(self) -> dict:
        """The key as JSON-ready data (tuples become lists, as they do after a round trip)."""
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        blob = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def module_fingerprint(module: torch.nn.Module) -> str:
    """A hash of a module's architecture (class and config) and every byte of its weights.

    Hashing a 1.7 GB fp16 UNet takes a couple of seconds; that is paid only on the TensorRT path,
    once per start, and is the one identity that can't go stale (fused LoRAs, local edits).
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(type(module).__qualname__.encode())
    config = getattr(module, "config", None)
    if config is not None:
        h.update(json.dumps(dict(config), sort_keys=True, default=str).encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def compute_capability(device: torch.device | None = None) -> str:
    """`sm_89` style name of the GPU the engine is built on; engines don't move between archs."""
    if device is not None and device.type != "cuda":
        return device.type
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm_{major}{minor}"


def default_engine_dir() -> Path:
    """Per-user cache folder: %LOCALAPPDATA%\\sd-bridge\\engines on Windows, else XDG's cache."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sd-bridge" / "engines"


class EngineStore:
    """Plans and their metadata in one folder, written atomically."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root else default_engine_dir()

    def plan_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.part}-{key.digest()}.plan"

    def meta_path(self, key: EngineKey) -> Path:
        return self.plan_path(key).with_suffix(".json")

    def timing_cache_path(self, trt_version: str, capability: str) -> Path:
        """Shared by all parts: tactic timings for this TensorRT version on this GPU architecture."""
        return self.root / f"timing-{trt_version}-{capability}.cache"

    def load(self, key: EngineKey) -> bytes | None:
        """The plan's bytes if a complete, matching engine is cached; None (and why, logged) if not."""
        plan, meta = self.plan_path(key), self.meta_path(key)
        if not plan.exists():
            return None
        try:
            info = json.loads(meta.read_text())
            data = plan.read_bytes()
        except (OSError, ValueError) as exc:
            log.warning("engine %s: unreadable metadata (%s); rebuilding", plan.name, exc)
            return None
        if info.get("key") != key.fields():
            log.warning("engine %s: metadata does not match what is needed; rebuilding", plan.name)
            return None
        if len(data) != info.get("size") or hashlib.sha256(data).hexdigest() != info.get("sha256"):
            log.warning("engine %s: file is corrupt or incomplete; rebuilding", plan.name)
            return None
        return data

    def save(self, key: EngineKey, data: bytes) -> Path:
        """Write plan then metadata, each through a temporary file: a crash leaves no valid-looking half."""
        self.root.mkdir(parents=True, exist_ok=True)
        plan, meta = self.plan_path(key), self.meta_path(key)
        meta.unlink(missing_ok=True)
        _write_atomic(plan, data)
        info = {"key": key.fields(), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        _write_atomic(meta, json.dumps(info, indent=1).encode())
        return plan

    def discard(self, key: EngineKey) -> None:
        for path in (self.meta_path(key), self.plan_path(key)):
            path.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
