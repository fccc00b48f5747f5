"""Loading ControlNet models and checking that they fit the base model's UNet.

`random:controlnet` is built from the base UNet itself (diffusers' `ControlNetModel.from_unet`)
with its zero-initialised output convolutions redrawn from a fixed seed, so a random net really
steers the image (a freshly made ControlNet adds exact zeros) and nothing downloads.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import EngineError, ModelNotAvailable, net_fetch_hint
from ..models import Models, family_of, is_offline
from .spec import RANDOM_NET


def load_controlnet(spec: str, models: Models) -> torch.nn.Module:
    """The ControlNetModel named by `spec`, on the models' device and dtype, eval, checked."""
    if spec == RANDOM_NET:
        net = random_controlnet(models.unet)
    elif spec.startswith("random:"):
        raise EngineError(f"unknown random ControlNet {spec!r}; the built-in one is {RANDOM_NET}")
    else:
        net = _load_pretrained(spec, models.dtype)
    check_fits(net, models.unet, spec, models.spec, models.family)
    net = net.to(device=models.device)
    if next(net.parameters()).dtype != models.dtype:
        net = net.to(dtype=models.dtype)
    return net.eval().requires_grad_(False)


def random_controlnet(unet: torch.nn.Module) -> torch.nn.Module:
    """A ControlNet with the UNet's own layout and weights, its zero convolutions drawn at random."""
    from diffusers import ControlNetModel

    tiny = tuple(unet.config.block_out_channels)[0] < 64
    channels = (8, 8, 16, 16) if tiny else (16, 32, 96, 256)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=channels)
        zero_convs = [
            *net.controlnet_down_blocks,
            net.controlnet_mid_block,
            net.controlnet_cond_embedding.conv_out,
        ]
        for conv in zero_convs:
            torch.nn.init.normal_(conv.weight, std=0.1)
            torch.nn.init.normal_(conv.bias, std=0.1)
    return net.float()


def check_fits(
    net: torch.nn.Module, unet: torch.nn.Module, net_spec: str, base_spec: str, base_family: str = ""
) -> None:
    """Refuse a net made for another base model, naming both families and widths."""
    nc, uc = net.config, unet.config
    net_width, unet_width = nc.cross_attention_dim, uc.cross_attention_dim
    same_blocks = tuple(nc.block_out_channels) == tuple(uc.block_out_channels)
    if net_width != unet_width or not same_blocks:
        raise EngineError(
            f"ControlNet {net_spec!r} is for the {family_of(net)} family (cross_attention_dim {net_width}, "
            f"blocks {tuple(nc.block_out_channels)}) but the model {base_spec!r} is of the "
            f"{base_family or family_of(unet)} family "
            f"(cross_attention_dim {unet_width}, blocks {tuple(uc.block_out_channels)}): use a net trained "
            "for this base model"
        )


def _load_pretrained(spec: str, dtype: torch.dtype) -> torch.nn.Module:
    with warnings.catch_warnings():  # huggingface_hub's deprecation noise around a one-line error
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return _load_pretrained_quietly(spec, dtype)


def _load_pretrained_quietly(spec: str, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import ControlNetModel

    path = Path(spec).expanduser()
    try:
        if spec.lower().endswith(".safetensors"):
            if not path.is_file():
                raise EngineError(f"no such ControlNet file: {spec}")
            return ControlNetModel.from_single_file(str(path), torch_dtype=dtype)
        if spec.lower().endswith((".ckpt", ".pt", ".pth", ".bin", ".pkl")):
            raise EngineError(
                f"refusing to load {spec!r}: pickled checkpoints can run code; use .safetensors"
            )
        if path.is_dir() or spec.startswith((".", "/", "~")):
            if not (path / "config.json").is_file():
                raise EngineError(f"no ControlNet folder (with config.json) at {spec}")
            return ControlNetModel.from_pretrained(str(path), torch_dtype=dtype, use_safetensors=True)
        return ControlNetModel.from_pretrained(
            spec, torch_dtype=dtype, use_safetensors=True, local_files_only=is_offline()
        )
    except EngineError:
        raise
    except Exception as exc:  # the hub and diffusers raise many kinds; all mean "cannot have it"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelNotAvailable(spec, first, net_fetch_hint(spec)) from None
