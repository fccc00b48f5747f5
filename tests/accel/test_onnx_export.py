"""ONNX export of the UNet and both VAE halves: one dynamic export, checked at two resolutions
(and two batch sizes) against torch with onnxruntime on the CPU."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

from engine.accel.tensorrt.export import UNetPart, VaeDecoderPart, VaeEncoderPart, export_part
from engine.accel.tensorrt.profiles import ProfileRange, unet_spec, vae_decoder_spec, vae_encoder_spec

from .conftest import TEXT_DIM, image_inputs, tiny_unet, tiny_vae, unet_inputs

RANGE = ProfileRange(opt_batch=1, opt_height=64, opt_width=64, min_size=32, max_size=128)
SIZES = [(1, 64, 64), (2, 96, 64)]  # (batch, height, width) in pixels; both from one export


def _session(module, spec, tmp_path):
    path = export_part(
        module, spec, tmp_path / spec.name / "model.onnx", device=torch.device("cpu"), dtype=torch.float32
    )
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check(session, module, feeds: dict[str, torch.Tensor], atol: float) -> None:
    with torch.no_grad():
        expected = module(*feeds.values())
    (got,) = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    assert got.shape == tuple(expected.shape)
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=atol, rtol=1e-4)


def test_unet_export_matches_torch_at_two_sizes(tmp_path):
    module = UNetPart(tiny_unet())
    spec = unet_spec(RANGE, in_channels=4, text_dim=TEXT_DIM)
    session = _session(module, spec, tmp_path)
    assert [i.name for i in session.get_inputs()] == list(spec.inputs)
    for batch, h, w in SIZES:
        sample, timestep, ehs = unet_inputs(batch, h // 8, w // 8, seed=batch)
        _check(session, module, {"sample": sample, "timestep": timestep, "encoder_hidden_states": ehs}, 1e-4)


@pytest.mark.parametrize("half", ["encoder", "decoder"])
def test_vae_export_matches_torch_at_two_sizes(tmp_path, half):
    vae = tiny_vae()
    if half == "encoder":
        module, spec = VaeEncoderPart(vae), vae_encoder_spec(RANGE)
    else:
        module, spec = VaeDecoderPart(vae), vae_decoder_spec(RANGE, latent_channels=4)
    session = _session(module, spec, tmp_path)
    for batch, h, w in SIZES:
        if half == "encoder":
            feeds = {"images": image_inputs(batch, h, w, seed=batch)}
        else:
            feeds = {
                "latents": torch.randn(
                    batch, 4, h // 8, w // 8, generator=torch.Generator().manual_seed(batch)
                )
            }
        _check(session, module, feeds, 1e-5)


def test_profile_covers_range_with_preset_as_optimum():
    spec = unet_spec(ProfileRange.around(2, 512, 768), in_channels=4, text_dim=1024)
    low, opt, high = spec.profile["sample"]
    assert low == (1, 4, 32, 32) and opt == (2, 4, 64, 96) and high == (4, 4, 128, 128)
    assert spec.profile["encoder_hidden_states"][1] == (2, 77, 1024)
    with pytest.raises(ValueError):
        ProfileRange(opt_batch=5, opt_height=512, opt_width=512, max_batch=4)
