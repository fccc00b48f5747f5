"""Loading the model parts an engine needs, from any spec, with one clear error when it can't.

A spec is one of:
- `random:tiny`, `random:sd15`, `random:sd-turbo`: random weights, no download (see random_models);
- a local diffusers folder (with unet/, text_encoder/, tokenizer/, scheduler/ and vae/ for `vae="full"`);
- one `.safetensors` checkpoint file (diffusers' `from_single_file`; pickled .ckpt/.pt/.bin are refused);
- a Hugging Face id, fetched into the usual cache unless offline (`HF_HUB_OFFLINE=1`).

Only the parts the engine uses are loaded (no safety checker, no full VAE with TAESD), weights only
from safetensors. Models that are neither LCM nor turbo get LCM-LoRA fused in (`lcm_lora="auto"`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import EngineConfig
from .errors import EngineError, ModelNotAvailable

Progress = Callable[[str], None]

LCM_LORA_SD15 = "latent-consistency/lcm-lora-sdv1-5"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


@dataclass
class Models:
    """Everything an engine runs on, already on `device` in `dtype`, in eval mode."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object
    """An `LCMScheduler` built from the model's scheduler config."""
    device: torch.device
    dtype: torch.dtype
    spec: str
    family: str
    """`sd15`, `sd21`, `tiny` or `other` (from the UNet's cross-attention width)."""
    tome_max_downsample: int = 1
    scheduler_class: str = ""
    """The class named by the model's own scheduler config (LCM models ship an LCMScheduler)."""

    @property
    def vae_scaling_factor(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise EngineError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("device cuda asked for, but this torch has no CUDA (install a CUDA build of torch)")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in ("float16", "float32"):
        raise EngineError(f"unknown dtype {name!r}: use auto, float16 or float32")
    return getattr(torch, name)


def is_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - a broken hub install is the loader's problem
        return False


FAMILIES = {768: "sd15", 1024: "sd21", 2048: "sdxl"}
"""Model family by the UNet's cross-attention width (the text encoder's hidden size)."""


def family_of(unet) -> str:
    return FAMILIES.get(getattr(unet.config, "cross_attention_dim", None), "other")


def choose_lcm_lora(setting: str | None, spec: str, family: str, scheduler_class: str = "") -> str | None:
    """Which LCM-LoRA to fuse into a model, or None.

    `auto` fuses the SD1.5 LCM-LoRA into SD1.5-family models that are neither LCM nor turbo (by their
    name or an LCMScheduler config); random models never get one. SD2.x has no published LCM-LoRA, so
    `auto` on a plain SD2.x model is an error that says what to do. Any other value is a LoRA id/path.
    """
    if setting is None or str(setting).strip().lower() in ("", "none", "off", "false"):
        return None
    if setting != "auto":
        return setting
    name = spec.lower()
    if name.startswith("random:") or "lcm" in name or "turbo" in name or scheduler_class == "LCMScheduler":
        return None
    if family == "sd15":
        return LCM_LORA_SD15
    if family == "sd21":
        raise EngineError(
            f"{spec!r} is an SD2.x model that is neither LCM nor turbo, and no LCM-LoRA exists for SD2.x: "
            "use sd-turbo or an LCM model, give lcm_lora a LoRA id/path, or set lcm_lora to none"
        )
    return None


def load_models(config: EngineConfig, progress: Progress | None = None) -> Models:
    """Load every part named by `config` (model, vae, lcm_lora, device, dtype)."""
    say = progress or (lambda _msg: None)
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    spec = config.model.strip()
    if config.vae not in ("tiny", "full"):
        raise EngineError(f"vae must be 'tiny' or 'full', got {config.vae!r}")
    if spec.startswith("random:"):
        from .random_models import build_random

        say(f"building {spec} (random weights)")
        try:
            parts = build_random(spec.removeprefix("random:"), device, dtype, config.vae)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        return Models(
            unet=parts.unet,
            vae=parts.vae,
            text_encoder=parts.text_encoder,
            tokenizer=parts.tokenizer,
            scheduler=parts.scheduler,
            device=device,
            dtype=dtype,
            spec=spec,
            family=parts.family,
            tome_max_downsample=parts.tome_max_downsample,
        )
    if spec.lower().endswith(PICKLE_SUFFIXES):
        raise EngineError(
            f"refusing to load {spec!r}: pickled checkpoints can run code when loaded; "
            "convert it to .safetensors (or use a diffusers folder)"
        )
    if spec.lower().endswith(".safetensors"):
        models = _load_single_file(spec, device, dtype, config, say)
    else:
        folder = _fetch_components(spec, config.vae, dtype, say)
        models = _load_folder(folder, spec, device, dtype, config, say)
    lora = choose_lcm_lora(config.lcm_lora, spec, models.family, models.scheduler_class)
    if lora is not None:
        fuse_lora(models, lora, say)
    return models


# -- where the files are ------------------------------------------------------------------------
def _looks_like_path(spec: str) -> bool:
    """Hugging Face ids are `name` or `owner/name`; anything else path-like is a (missing) path."""
    drive = len(spec) > 1 and spec[1] == ":"
    return drive or spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1


def _fetch_components(spec: str, vae: str, dtype: torch.dtype, say: Progress) -> Path:
    """The folder of a local model, or of a hub model's snapshot holding just the parts we load:
    fp16 weight files when running in fp16 and the repo has them for every part, else the plain ones."""
    parts = model_parts(vae)
    if dtype == torch.float16 and not Path(spec).expanduser().is_dir():
        folder = _local_or_hub(spec, model_files(vae, fp16=True), say)
        if all(any((folder / p).glob("*.fp16.safetensors*")) for p in parts):
            return folder
    return _local_or_hub(spec, model_files(vae, fp16=False), say, ignore=["*.fp16.*"])


def model_parts(vae: str) -> list[str]:
    """The subfolders of a diffusers model whose weights the engine loads."""
    return ["unet", "text_encoder"] + (["vae"] if vae == "full" else [])


def model_files(vae: str, fp16: bool) -> list[str]:
    """The files of a hub model the engine loads (allow-patterns): configs, the tokenizer, and the
    fp16 or plain safetensors weights of `model_parts` (no safety checker, no pickles, no EMA)."""
    parts = model_parts(vae)
    common = ["model_index.json", "scheduler/*.json", "tokenizer/*"] + [f"{p}/config.json" for p in parts]
    kind = "*.fp16.safetensors" if fp16 else "*.safetensors"
    return common + [f"{p}/{kind}{ext}" for p in parts for ext in ("", ".index.json")]


TINY_VAE_FILES = ["config.json", "*.safetensors"]
LORA_FILES = ["*.safetensors", "*.json"]


def fetch_files(config: EngineConfig, say: Progress) -> list[Path]:
    """Download (or find in the cache) everything `load_models(config)` will read from the hub: the
    model's parts, TAESD, the LCM-LoRA `lcm_lora` chooses for it, and the ControlNets and depth model
    its `controlnets` load (`auto` picked for the model's family); return the folders. The files
    and the choices are the loader's own, so what `sd-bridge fetch` gets is what a run then needs."""
    import json

    spec = config.model.strip()
    folders: list[Path] = []
    family = "other"
    if not spec.startswith("random:") and not spec.lower().endswith(".safetensors"):
        dtype = resolve_dtype(config.dtype, resolve_device(config.device))
        folder = _fetch_components(spec, config.vae, dtype, say)
        folders.append(folder)
        unet_config = folder / "unet" / "config.json"
        if unet_config.is_file():
            width = json.loads(unet_config.read_text(encoding="utf-8")).get("cross_attention_dim")
            family = FAMILIES.get(width, "other")
    if config.vae == "tiny" and not spec.startswith("random:"):
        folders.append(_local_or_hub(config.tiny_vae, TINY_VAE_FILES, say))
    lora = None if spec.startswith("random:") else choose_lcm_lora(config.lcm_lora, spec, family)
    if lora is not None and not Path(lora).expanduser().is_file():
        folders.append(_local_or_hub(lora, LORA_FILES, say))
    from .controlnet.hub import hub_parts  # the ControlNet stack's own picks (engine.controlnet imports us)

    try:
        parts = hub_parts(config, spec, family)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    for part in parts:
        if part.repo is not None:
            folders.append(
                _local_or_hub(part.repo, list(part.files), say, list(part.ignore), part.fetch_hint)
            )
    return folders


def _local_or_hub(
    spec: str,
    patterns: list[str] | None,
    say: Progress,
    ignore: list[str] | None = None,
    fetch_hint: str | None = None,
) -> Path:
    """A local folder as is, else the snapshot folder of a Hugging Face id (downloading if allowed)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if _looks_like_path(spec):
        raise EngineError(f"no such model folder: {spec}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a dependency of diffusers
        raise EngineError("huggingface_hub is missing: pip install huggingface_hub") from exc
    offline = is_offline()
    say(f"{'looking up' if offline else 'fetching'} {spec}")
    try:
        folder = snapshot_download(
            spec,
            allow_patterns=patterns,
            ignore_patterns=["*ema*", "*.bin", "*.ckpt", *(ignore or [])],
            local_files_only=offline,
        )
    except Exception as exc:  # the hub raises many kinds; all mean "not here"
        reason = "offline and not in the local cache" if offline else _short(exc)
        raise ModelNotAvailable(spec, reason, fetch_hint) from None
    return Path(folder)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def _variant(folder: Path, sub: str, dtype: torch.dtype) -> str | None:
    """`fp16` when the folder has fp16 weights for `sub` and we run in fp16."""
    if dtype == torch.float16 and any((folder / sub).glob("*.fp16.safetensors")):
        return "fp16"
    return None


def _load_folder(folder: Path, spec: str, device, dtype, config: EngineConfig, say: Progress) -> Models:
    from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if (folder / "text_encoder_2").exists():
        raise EngineError(f"{spec!r} is an SDXL model; sd-bridge runs SD1.5, SD2.1 and sd-turbo families")
    missing = [s for s in ("unet", "text_encoder", "tokenizer", "scheduler") if not (folder / s).is_dir()]
    if config.vae == "full" and not (folder / "vae").is_dir():
        missing.append("vae")
    if missing:
        raise ModelNotAvailable(spec, f"its folder {folder} lacks {', '.join(missing)}")
    try:
        say(f"loading {spec}: unet")
        unet = UNet2DConditionModel.from_pretrained(
            folder,
            subfolder="unet",
            torch_dtype=dtype,
            variant=_variant(folder, "unet", dtype),
            use_safetensors=True,
        )
        say(f"loading {spec}: text encoder")
        text_encoder = CLIPTextModel.from_pretrained(
            folder,
            subfolder="text_encoder",
            dtype=dtype,
            variant=_variant(folder, "text_encoder", dtype),
            use_safetensors=True,
        )
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        scheduler_cfg = LCMScheduler.load_config(folder, subfolder="scheduler")
        scheduler_class = scheduler_cfg.get("_class_name", "")
        scheduler = LCMScheduler.from_config(scheduler_cfg)
        if config.vae == "full":
            say(f"loading {spec}: vae")
            vae = AutoencoderKL.from_pretrained(
                folder,
                subfolder="vae",
                torch_dtype=dtype,
                variant=_variant(folder, "vae", dtype),
                use_safetensors=True,
            )
        else:
            vae = load_tiny_vae(config.tiny_vae, dtype, say)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(spec, _short(exc)) from None
    models = _finish(unet, vae, text_encoder, tokenizer, scheduler, device, dtype, spec)
    models.scheduler_class = scheduler_class
    return models


def load_tiny_vae(spec: str, dtype: torch.dtype, say: Progress):
    """TAESD (`AutoencoderTiny`) from an id or folder; it serves SD1.x and SD2.x latents alike."""
    from diffusers import AutoencoderTiny

    folder = _local_or_hub(spec, TINY_VAE_FILES, say)
    say(f"loading tiny VAE {spec}")
    try:
        return AutoencoderTiny.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(spec, _short(exc)) from None


def _load_single_file(spec: str, device, dtype, config: EngineConfig, say: Progress) -> Models:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise EngineError(f"no such checkpoint file: {spec}")
    from diffusers import LCMScheduler, StableDiffusionPipeline

    offline = is_offline()
    say(f"loading {path.name} (single file)")
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path), torch_dtype=dtype, local_files_only=offline, safety_checker=None
        )
    except Exception as exc:
        reason = _short(exc)
        if offline:
            reason = (
                "the single-file loader needs the base model's configs from the Hugging Face cache; " + reason
            )
        raise ModelNotAvailable(spec, reason) from None
    vae = pipe.vae if config.vae == "full" else load_tiny_vae(config.tiny_vae, dtype, say)
    scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    models = _finish(pipe.unet, vae, pipe.text_encoder, pipe.tokenizer, scheduler, device, dtype, spec)
    models.scheduler_class = type(pipe.scheduler).__name__
    return models


def _finish(unet, vae, text_encoder, tokenizer, scheduler, device, dtype, spec: str) -> Models:
    for m in (unet, vae, text_encoder):
        m.to(device=device, dtype=dtype).eval().requires_grad_(False)
    family = family_of(unet)
    if family == "sdxl":
        raise EngineError(f"{spec!r} is an SDXL model; sd-bridge runs SD1.5, SD2.1 and sd-turbo families")
    return Models(unet, vae, text_encoder, tokenizer, scheduler, device, dtype, spec, family)


def fuse_lora(models: Models, lora: str, say: Progress) -> None:
    """Fuse a LoRA (LCM-LoRA) into the UNet and text encoder weights, then drop the adapters."""
    path = Path(lora).expanduser()
    if path.is_file():
        source, weight_name = str(path.parent), path.name
    else:
        source, weight_name = str(_local_or_hub(lora, LORA_FILES, say)), None
    try:
        import peft  # noqa: F401  (diffusers' LoRA loading needs it)
    except ImportError:
        raise EngineError(
            f"fusing {lora} needs the peft package: pip install peft "
            "(or use an LCM/turbo model, or lcm_lora=none)"
        ) from None
    from diffusers import StableDiffusionPipeline

    say(f"fusing LoRA {lora}")
    with warnings.catch_warnings():  # the pipeline only carries the parts: its config advice is noise
        warnings.simplefilter("ignore", FutureWarning)
        pipe = StableDiffusionPipeline(
            vae=models.vae,
            text_encoder=models.text_encoder,
            tokenizer=models.tokenizer,
            unet=models.unet,
            scheduler=models.scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    try:
        pipe.load_lora_weights(source, weight_name=weight_name)
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(f"could not fuse LoRA {lora}: {_short(exc)}") from None
