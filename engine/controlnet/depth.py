"""Depth control images from a Depth Anything model (transformers), on the device.

`random:depth` builds a small Depth Anything (V2 Small's layout, scaled down) with random weights
from a fixed seed, for tests and benchmarks; anything else is a hub id or folder loaded with
`DepthAnythingForDepthEstimation.from_pretrained` (default: Depth Anything V2 Small).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ModelNotAvailable, depth_fetch_hint
from ..models import is_offline

RANDOM_DEPTH = "random:depth"
RANDOM_DEPTH_SMALL = "random:depth-small"
"""Depth Anything V2 Small's architecture (transformers' DepthAnythingConfig defaults), random weights:
the real model's cost, for benchmarks."""
DEFAULT_DEPTH = "depth-anything/Depth-Anything-V2-Small-hf"
PATCH = 14
MAX_SIDE = 518  # Depth Anything's training resolution
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def resolve_depth_model(setting: str, base_spec: str) -> str:
    """`auto`: the random depth model for random base models (no download), else V2 Small."""
    if setting != "auto":
        return setting
    return RANDOM_DEPTH if base_spec.startswith("random:") else DEFAULT_DEPTH


def random_depth_model(small: bool = False) -> torch.nn.Module:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    if small:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            return DepthAnythingForDepthEstimation(DepthAnythingConfig())

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=70,
        patch_size=PATCH,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        model = DepthAnythingForDepthEstimation(config)
        # He initialisation: transformers' default (std 0.02) makes a random head output ~0 everywhere
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                torch.nn.init.normal_(mod.weight, std=(2.0 / mod.weight[0].numel()) ** 0.5)
                if mod.bias is not None:
                    torch.nn.init.constant_(mod.bias, 0.01)
        return model


class DepthEstimator:
    """frames (N, 3, H, W) in [0, 1] -> relative depth as (N, 3, H, W) in [0, 1], near = bright."""

    def __init__(self, spec: str, device: torch.device, dtype: torch.dtype) -> None:
        self.spec = spec
        if spec in (RANDOM_DEPTH, RANDOM_DEPTH_SMALL):
            model = random_depth_model(small=spec == RANDOM_DEPTH_SMALL)
        elif spec.startswith("random:"):
            raise ValueError(
                f"unknown random depth model {spec!r}; use {RANDOM_DEPTH} or {RANDOM_DEPTH_SMALL}"
            )
        else:
            model = _load(spec, dtype)
        self.model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.mean = torch.tensor(_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
        self.std = torch.tensor(_STD, device=device, dtype=dtype).view(1, 3, 1, 1)

    @staticmethod
    def input_size(height: int, width: int) -> tuple[int, int]:
        """The model's input size: the frame's aspect, long side at most 518, multiples of 14."""
        scale = min(1.0, MAX_SIDE / max(height, width))
        return (
            max(PATCH, round(height * scale / PATCH) * PATCH),
            max(PATCH, round(width * scale / PATCH) * PATCH),
        )

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[-2:]
        x = frames.to(self.mean.dtype)
        x = F.interpolate(x, size=self.input_size(h, w), mode="bilinear", align_corners=False)
        depth = self.model(pixel_values=(x - self.mean) / self.std).predicted_depth.unsqueeze(1)
        depth = F.interpolate(depth.float(), size=(h, w), mode="bilinear", align_corners=False)
        lo = depth.amin(dim=(-2, -1), keepdim=True)
        hi = depth.amax(dim=(-2, -1), keepdim=True)
        depth = ((depth - lo) / (hi - lo).clamp_min(1e-8)).nan_to_num_(0.0)
        return depth.to(frames.dtype).expand(-1, 3, -1, -1)


def _load(spec: str, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import DepthAnythingForDepthEstimation

    try:
        # no dtype argument (named torch_dtype or dtype depending on the transformers version):
        # DepthEstimator casts the model after loading
        return DepthAnythingForDepthEstimation.from_pretrained(
            spec, use_safetensors=True, local_files_only=is_offline()
        )
    except Exception as exc:  # missing offline, unknown id, a folder without weights
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelNotAvailable(spec, first, depth_fetch_hint()) from None
