"""Built-in random-weight models: `random:tiny` for tests, full-size architectures for benchmarks.

Nothing is downloaded: every part is built from a config written here, with weights drawn from a
fixed seed (so two loads give the same model). The full-size specs reproduce the real architectures
(SD1.5, SD2.1/sd-turbo UNet and text encoder, TAESD), so they run at the real models' speed.
"""

from __future__ import annotations

import json
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

RANDOM_SPECS = ("tiny", "sd15", "sd-turbo")


@dataclass
class RandomParts:
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object
    family: str
    tome_max_downsample: int


def letter_tokenizer():
    """A CLIP tokenizer over single characters (no merges), written to and read from a temp folder."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + ",.!?-'":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    with tempfile.TemporaryDirectory(prefix="sd-bridge-tok-") as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer(
            str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77
        )


def lcm_scheduler():
    from diffusers import LCMScheduler

    return LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def random_unet(name: str):
    """The UNet of `random:<name>` (tiny, sd15, sd-turbo), random weights from the current seed."""
    from diffusers import UNet2DConditionModel

    if name == "tiny":
        return UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=8,
        )
    if name == "sd15":
        return UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    return UNet2DConditionModel(
        sample_size=64,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )


def _text_encoder(name: str, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    if name == "tiny":
        cfg = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    elif name == "sd15":
        cfg = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12)
        vocab_size = 49408
    else:
        cfg = dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_attention_heads=16,
            num_hidden_layers=23,
            hidden_act="gelu",
            projection_dim=1024,
        )
        vocab_size = 49408
    special = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1) if name == "tiny" else {}
    return CLIPTextModel(CLIPTextConfig(max_position_embeddings=77, vocab_size=vocab_size, **cfg, **special))


def random_vae(name: str, kind: str):
    """The VAE of `random:<name>`: TAESD's architecture for kind `tiny`, else the model's own."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    if kind == "tiny":
        small = dict(
            encoder_block_out_channels=(8,) * 4,
            decoder_block_out_channels=(8,) * 4,
            num_encoder_blocks=(1,) * 4,
            num_decoder_blocks=(1,) * 4,
        )
        vae = AutoencoderTiny(**(small if name == "tiny" else {}))
        last = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        torch.nn.init.constant_(last.bias, 0.5)  # TAESD decodes to [0, 1]: centre random output on grey
        return vae
    blocks = (8,) * 4 if name == "tiny" else (128, 256, 512, 512)
    return AutoencoderKL(
        block_out_channels=blocks,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1 if name == "tiny" else 2,
        norm_num_groups=8 if name == "tiny" else 32,
        latent_channels=4,
        scaling_factor=0.18215,
    )


def build_random(name: str, device: torch.device, dtype: torch.dtype, vae: str = "tiny") -> RandomParts:
    """Build `random:<name>` directly on `device` (weights are initialised there: fast on a GPU)."""
    if name not in RANDOM_SPECS:
        raise ValueError(
            f"unknown random model {name!r}; choose one of: random:{', random:'.join(RANDOM_SPECS)}"
        )
    tokenizer = letter_tokenizer()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(0)
        if device.type == "cuda":
            torch.cuda.manual_seed(0)
        unet = random_unet(name)
        text_encoder = _text_encoder(name, len(tokenizer.get_vocab()))
        vae_model = random_vae(name, vae)
    parts = [unet, text_encoder, vae_model]
    for m in parts:
        if dtype != torch.float32:
            m.to(dtype=dtype)
        m.eval().requires_grad_(False)
    return RandomParts(
        unet=unet,
        vae=vae_model,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=lcm_scheduler(),
        family={"tiny": "tiny", "sd15": "sd15", "sd-turbo": "sd21"}[name],
        tome_max_downsample=2 if name == "tiny" else 1,
    )
