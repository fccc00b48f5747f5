"""Configuration of a StreamDiffusion engine.

Everything here is fixed for the life of one engine: changing any field that the live
`update()` call does not accept means building a new engine (the runtime does that in the
background). Live values given here are only the starting values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .controlnet.spec import ControlNetSpec

CfgType = Literal["none", "full", "self", "initialize"]
Mode = Literal["img2img", "txt2img"]
Accel = Literal["auto", "torch", "compile", "tensorrt"]


@dataclass
class EngineConfig:
    """What an engine is built from. Defaults are the fast sd-turbo, 1-step img2img setting."""

    model: str = "stabilityai/sd-turbo"
    """A Hugging Face id, a local diffusers folder, a `.safetensors` file, or `random:tiny|sd15|sd-turbo`."""
    width: int = 512
    height: int = 512
    t_index_list: list[int] = field(default_factory=lambda: [35])
    """Indices into the LCM scheduler's `num_inference_steps` timesteps; one UNet step per entry."""
    num_inference_steps: int = 50
    frame_buffer_size: int = 1
    mode: Mode = "img2img"
    cfg_type: CfgType = "self"
    guidance_scale: float = 1.2
    delta: float = 1.0
    prompt: str = "a psychedelic painting, vivid colours"
    negative_prompt: str = ""
    seed: int = 2
    do_add_noise: bool = True
    use_denoising_batch: bool = True
    similarity_filter: bool = False
    similarity_threshold: float = 0.98
    max_skip_frame: int = 10
    transition_frames: int = 0
    """Frames a prompt change takes to morph into the new one (0 cuts at once)."""
    transition_curve: Literal["linear", "slerp"] = "slerp"
    feedback: float = 0.0
    """Latent feedback 0..1: how much of the previous output's latent enters each new frame."""
    cache_attention: bool = False
    """Cached attention: self-attention also attends to K/V of up to `cache_frames` earlier frames."""
    cache_frames: int = 4
    cache_interval: int = 1
    """Every how many frames the attention cache takes a new frame."""
    vae: Literal["tiny", "full"] = "tiny"
    """`tiny` uses TAESD (AutoencoderTiny); `full` the model's own VAE."""
    tiny_vae: str = "madebyollin/taesd"
    """Id or folder of the AutoencoderTiny used when vae="tiny" (TAESD serves SD1.x and SD2.x alike)."""
    lcm_lora: str | None = "auto"
    """`auto` fuses LCM-LoRA into models that are neither LCM nor turbo; None never; or an id/path."""
    tome_ratio: float = 0.0
    device: str = "auto"
    """`auto` picks cuda when available, else cpu."""
    dtype: Literal["auto", "float16", "float32"] = "auto"
    """`auto` is float16 on CUDA and float32 on the CPU."""
    accel: Accel = "auto"
    engine_dir: str | None = None
    """Where compiled (TensorRT) engines are cached; None means the user cache folder."""
    # -- ControlNet (issue 17): the nets are fixed per engine, their scales etc. are live ----------
    controlnets: list[ControlNetSpec | dict[str, Any]] = field(default_factory=list)
    """Up to 4 `engine.controlnet.ControlNetSpec`s (or dicts of their fields); adding one rebuilds."""
    depth_model: str = "auto"
    """Depth Anything model for the `depth` preprocessor: `auto` (random:depth on random base models,
    else depth-anything/Depth-Anything-V2-Small-hf), `random:depth`, a hub id or a folder."""

    def with_changes(self, **changes: object) -> EngineConfig:
        """A copy with some fields changed (for rebuilds)."""
        return replace(self, **changes)  # type: ignore[arg-type]
