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
    assert "sd-bridge fetch" in msg and "random:sd-turbo" in msg
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


def _tiny_lora(unet_folder: Path, out: Path) -> torch.nn.Module:
    """A random LoRA on the tiny UNet's attention, saved as diffusers saves LoRAs (what LCM-LoRA is).
    Returns the UNet with the adapter still attached: the reference for what fusing must give."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(unet_folder)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (a no-op LoRA); make this one do something
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=layers, safe_serialization=True)
    return unet.eval()


def test_a_lora_file_is_fused_into_the_unet(tiny_folder, offline, tmp_path):
    """`lcm_lora=PATH` (how LCM-LoRA is applied to SD1.5 models) really fuses: the loaded UNet
    computes what the UNet with the adapter attached computes, and no adapter is left behind."""
    with_adapter = _tiny_lora(tiny_folder / "unet", tmp_path)
    lora_file = tmp_path / "pytorch_lora_weights.safetensors"
    common = dict(model=str(tiny_folder), tiny_vae=str(tiny_folder.parent / "tiny-taesd"))
    plain = load_models(EngineConfig(**common, lcm_lora=None)).unet
    fused = load_models(EngineConfig(**common, lcm_lora=str(lora_file))).unet
    assert not any("lora" in name for name, _ in fused.named_modules())
    gen = torch.Generator().manual_seed(1)
    sample = torch.randn(1, 4, 8, 8, generator=gen)
    text = torch.randn(1, 77, fused.config.cross_attention_dim, generator=gen)
    with torch.no_grad():
        want = with_adapter(sample, 500, text).sample
        got = fused(sample, 500, text).sample
        before = plain(sample, 500, text).sample
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (got - before).abs().max() > 1e-2  # the LoRA changed the UNet


def test_a_broken_lora_file_is_a_clear_error(tiny_folder, offline, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    common = dict(model=str(tiny_folder), tiny_vae=str(tiny_folder.parent / "tiny-taesd"))
    with pytest.raises(EngineError, match="could not fuse LoRA .*broken.safetensors"):
        load_models(EngineConfig(**common, lcm_lora=str(bad)))


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
