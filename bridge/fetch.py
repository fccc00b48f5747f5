"""What a model or a preset needs from Hugging Face, whether it is in the local cache, and its size.

The file lists and picks are the engine loader's own (engine.models.model_files, TINY_VAE_FILES,
LORA_FILES; engine.controlnet.hub for ControlNets and the depth model),
so what `sd-bridge fetch` downloads and what `doctor` calls cached is exactly what a run reads.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

from engine import EngineConfig

IGNORED = ("*ema*", "*.bin", "*.ckpt")
"""Never fetched (the loader's ignore list): EMA copies and pickled weights."""


@dataclass(frozen=True)
class Need:
    """One Hugging Face repository a run needs, and which of its files."""

    repo: str
    what: str
    """model | tiny VAE (TAESD) | LCM-LoRA | ControlNet N (PREPROCESSOR) | depth model"""
    files: tuple[str, ...]
    """allow-patterns, as snapshot_download takes them"""
    required: tuple[str, ...]
    """globs a complete copy has at least one file for each of"""
    ignore: tuple[str, ...] = IGNORED


def _uses_fp16(config: EngineConfig) -> bool:
    """Whether the engine would run in fp16 here (and so read the fp16 weight files)."""
    try:
        import torch

        from engine.models import resolve_device, resolve_dtype

        return resolve_dtype(config.dtype, resolve_device(config.device)) == torch.float16
    except Exception:  # a device asked for that is not here: the plain weights
        return False


def _is_hub_id(spec: str) -> bool:
    from engine.models import _looks_like_path

    return (
        not spec.startswith("random:") and not Path(spec).expanduser().exists() and not _looks_like_path(spec)
    )


def needs(config: EngineConfig, cache_dir: Path | None = None) -> list[Need]:
    """The repositories (and files) loading `config` reads from the hub; [] for random or local models."""
    from engine.models import (
        FAMILIES,
        LORA_FILES,
        TINY_VAE_FILES,
        choose_lcm_lora,
        model_files,
        model_parts,
    )

    spec = config.model.strip()
    if spec.startswith("random:"):
        return controlnet_needs(config, "other")  # random nets and depth unless named
    out: list[Need] = []
    family = "sd15"  # until the model's own config says otherwise (choose_lcm_lora skips turbo/LCM names)
    known_family: str | None = "other"  # for the ControlNets' `auto` pick; None: the model is not cached
    if _is_hub_id(spec) and not spec.lower().endswith(".safetensors"):
        fp16 = _uses_fp16(config)
        parts = model_parts(config.vae)
        required = ("tokenizer/*", "scheduler/*.json", *(f"{p}/*.safetensors*" for p in parts))
        ignore = IGNORED if fp16 else (*IGNORED, "*.fp16.*")
        out.append(Need(spec, "model", tuple(model_files(config.vae, fp16)), required, ignore))
        folder = cached_folder(out[-1], cache_dir)
    else:  # a local folder holds its own config; random and single-file models have no unet/ folder
        folder = Path(spec).expanduser() if Path(spec).expanduser().is_dir() else None
    unet = folder / "unet" / "config.json" if folder else None
    if unet is not None and unet.is_file():
        family = FAMILIES.get(
            json.loads(unet.read_text(encoding="utf-8")).get("cross_attention_dim"), "other"
        )
        known_family = family
    elif out:  # a hub model not cached yet
        known_family = None
    if config.vae == "tiny" and _is_hub_id(config.tiny_vae):
        out.append(Need(config.tiny_vae, "tiny VAE (TAESD)", tuple(TINY_VAE_FILES), ("*.safetensors",)))
    try:
        lora = choose_lcm_lora(config.lcm_lora, spec, family)
    except Exception:  # an SD2.x model with lcm_lora=auto: the run says why; nothing to fetch for it
        lora = None
    if lora is not None and _is_hub_id(lora):
        out.append(Need(lora, "LCM-LoRA", tuple(LORA_FILES), ("*.safetensors",)))
    return out + controlnet_needs(config, known_family)


UNPICKED = "auto"
"""The repo of an `auto` ControlNet while the base model's family is unknown: never cached."""


def controlnet_needs(config: EngineConfig, family: str | None) -> list[Need]:
    """The nets and depth model `config`'s ControlNet slots load, as the stack resolves them."""
    from engine.controlnet.hub import hub_parts

    try:
        parts = hub_parts(config, config.model.strip(), family)
    except ValueError:  # no net for this family, too many slots: the run says why; nothing to fetch
        return []
    return [
        Need(p.repo or UNPICKED, p.what, p.files, ("config.json", "*.safetensors"), (*IGNORED, *p.ignore))
        for p in parts
    ]


def cached_folder(need: Need, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot folder of `need.repo`, or None (never touches the network)."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            need.repo, allow_patterns=list(need.files), local_files_only=True, cache_dir=cache_dir
        )
    except Exception:
        return None
    return Path(folder)


def is_cached(need: Need, cache_dir: Path | None = None) -> bool:
    """Whether the cache holds a complete copy: a snapshot with a file for every required glob."""
    folder = None if need.repo == UNPICKED else cached_folder(need, cache_dir)
    return folder is not None and all(any(folder.glob(g)) for g in need.required)


def remote_size(need: Need) -> int | None:
    """Bytes of the files `need` downloads, from the hub's file list; None if it can't be had."""
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(need.repo, files_metadata=True)
    except Exception:
        return None
    total = 0
    for sibling in info.siblings or []:
        name = sibling.rfilename
        if any(fnmatch.fnmatch(name, p) for p in need.files) and not any(
            fnmatch.fnmatch(name, p) for p in need.ignore
        ):
            total += sibling.size or 0
    return total


def human(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} B"  # pragma: no cover


def preset_config(name: str) -> EngineConfig:
    from bridge.presets import load_preset_arg

    return load_preset_arg(name).apply_to(EngineConfig())


def presets_cached(cache_dir: Path | None = None) -> dict[str, bool]:
    """For each shipped preset: whether everything it needs from the hub is cached."""
    from bridge.presets import list_presets

    status: dict[str, bool] = {}
    for name in list_presets():
        try:
            status[name] = all(is_cached(n, cache_dir) for n in needs(preset_config(name), cache_dir))
        except Exception:  # a broken preset is `run`'s error to report, not doctor's crash
            status[name] = False
    return status
