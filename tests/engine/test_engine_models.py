"""Model specs: local folders, the offline error, refused pickles, LCM-LoRA choice, token merging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import EngineConfig, EngineError, ModelNotAvailable, load_engine
from engine.models import LCM_LORA_SD15, choose_lcm_lora, load_models
from engine.stream import StreamEngine


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_folder(tiny_models, tmp_path_factory):
    """random:tiny saved as a diffusers folder, with its TAESD-shaped VAE in a folder of its own."""
    root = tmp_path_factory.mktemp("tiny-model")
    tiny_models.unet.save_pretrained(root / "unet")
    tiny_models.text_encoder.save_pretrained(root / "text_encoder")
    tiny_models.tokenizer.save_pretrained(root / "tokenizer")
    tiny_models.scheduler.save_pretrained(root / "scheduler")
    tiny_models.vae.save_pretrained(root.parent / "tiny-taesd")
    return root


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_offline_missing_model_is_one_clear_error(offline, dtype):
    with pytest.raises(ModelNotAvailable) as info:
        load_engine(EngineConfig(model="sd-bridge-tests/no-such-model", dtype=dtype))
    msg = str(info.value)
    assert "sd-bridge-tests/no-such-model" in msg and "offline" in msg
    assert "huggingface-cli download" in msg and "random:sd-turbo" in msg
    assert "\n" not in msg


def test_missing_local_paths_and_pickles_refused(tmp_path):
    with pytest.raises(EngineError, match="no such model folder"):
        load_models(EngineConfig(model=str(tmp_path / "nope")))
    with pytest.raises(EngineError, match="no such checkpoint file"):
        load_models(EngineConfig(model=str(tmp_path / "nope.safetensors")))
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not even a pickle")
    with pytest.raises(EngineError, match="refusing to load.*safetensors"):
        load_models(EngineConfig(model=str(ckpt)))
    with pytest.raises(EngineError, match="random:tiny"):
        load_models(EngineConfig(model="random:huge"))


def test_local_folder_loads_the_same_model(tiny_models, tiny_folder, offline, frames):
    cfg = dict(width=64, height=64, prompt="a red fox", seed=3, lcm_lora=None)
    from_folder = load_engine(
        EngineConfig(model=str(tiny_folder), tiny_vae=str(tiny_folder.parent / "tiny-taesd"), **cfg)
    )
    builtin = StreamEngine(tiny_models, EngineConfig(model="random:tiny", **cfg))
    torch.testing.assert_close(from_folder(frames[0]), builtin(frames[0]))


def test_local_folder_without_taesd_offline_names_taesd(tiny_folder, offline):
    with pytest.raises(ModelNotAvailable, match="madebyollin/taesd"):
        load_models(EngineConfig(model=str(tiny_folder), lcm_lora=None))


def test_lcm_lora_choice():
    assert choose_lcm_lora("auto", "runwayml/stable-diffusion-v1-5", "sd15") == LCM_LORA_SD15
    assert choose_lcm_lora("auto", "SimianLuo/LCM_Dreamshaper_v7", "sd15") is None
    assert choose_lcm_lora("auto", "stabilityai/sd-turbo", "sd21") is None
    assert choose_lcm_lora("auto", "/models/my-model", "sd15", "LCMScheduler") is None
    assert choose_lcm_lora("auto", "random:sd15", "sd15") is None
    assert choose_lcm_lora(None, "runwayml/stable-diffusion-v1-5", "sd15") is None
    assert choose_lcm_lora("none", "runwayml/stable-diffusion-v1-5", "sd15") is None
    assert choose_lcm_lora("me/my-lora", "x/y", "sd15") == "me/my-lora"
    with pytest.raises(EngineError, match="no LCM-LoRA exists for SD2"):
        choose_lcm_lora("auto", "stabilityai/stable-diffusion-2-1", "sd21")


def test_lcm_lora_that_cannot_be_had_is_a_clear_error(tiny_folder, offline):
    cfg = EngineConfig(
        model=str(tiny_folder), tiny_vae=str(tiny_folder.parent / "tiny-taesd"), lcm_lora=LCM_LORA_SD15
    )
    with pytest.raises(ModelNotAvailable, match="latent-consistency/lcm-lora-sdv1-5.*offline"):
        load_models(cfg)


def test_token_merging_changes_the_unet(frames):
    base = dict(model="random:tiny", width=64, height=64, cfg_type="none")
    plain = load_engine(EngineConfig(**base))
    merged = load_engine(EngineConfig(**base, tome_ratio=0.5))
    assert hasattr(merged.unet, "_tome_info") and not hasattr(plain.unet, "_tome_info")
    assert not torch.allclose(plain(frames[0]), merged(frames[0]), atol=1e-6)
    with pytest.raises(ValueError, match="tome_ratio"):
        load_engine(EngineConfig(**base, tome_ratio=1.5))


def test_missing_tomesd_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tomesd", None)
    with pytest.raises(EngineError, match=r"pip install 'sd-bridge\[tome\]'"):
        load_engine(EngineConfig(model="random:tiny", width=64, height=64, tome_ratio=0.3))


def test_importing_engine_loads_no_model_library():
    code = "import sys, engine; print('diffusers' in sys.modules, 'transformers' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.split() == ["False", "False"]
