"""Backend choice, `apply()` on each backend, the background TensorRT build and its swap-in."""

from __future__ import annotations

import logging

import pytest
import torch

import engine.accel as accel
from engine.accel.choose import AccelUnavailable, resolve_backend
from engine.accel.seams import module_seams

from .conftest import AccelConfig, image_inputs, unet_inputs
from .fake_tensorrt import make_fake_tensorrt


@pytest.mark.parametrize(
    ("requested", "trt", "cuda", "expected"),
    [
        ("auto", True, True, "tensorrt"),
        ("auto", False, True, "compile"),
        ("auto", True, False, "torch"),
        ("auto", False, False, "torch"),
        ("torch", True, True, "torch"),
        ("compile", False, False, "compile"),
        ("compile", True, True, "compile"),
        ("tensorrt", True, True, "tensorrt"),
    ],
)
def test_resolve_backend(requested, trt, cuda, expected):
    assert resolve_backend(requested, trt_importable=trt, cuda=cuda) == expected


def test_resolve_backend_errors_say_how_to_fix():
    with pytest.raises(AccelUnavailable, match=r'pip install "sd-bridge\[tensorrt\]"'):
        resolve_backend("tensorrt", trt_importable=False, cuda=True)
    with pytest.raises(AccelUnavailable, match="needs an NVIDIA GPU"):
        resolve_backend("tensorrt", trt_importable=True, cuda=False)
    with pytest.raises(ValueError, match="unknown accel backend 'fast'"):
        resolve_backend("fast", trt_importable=True, cuda=True)


def _outputs(engine):
    latent, t, ehs = unet_inputs(batch=2)
    images = image_inputs()
    with torch.no_grad():
        return engine.unet_fn(latent, t, ehs), engine.vae_decode_fn(engine.vae_encode_fn(images))


def test_torch_backend_keeps_engine_seams_and_serves(tiny_engine):
    own = tiny_engine.unet_fn
    assert accel.apply(tiny_engine, AccelConfig(accel="torch")) == "torch"
    assert tiny_engine.unet_fn is own
    assert not tiny_engine.unet.training and not any(p.requires_grad for p in tiny_engine.unet.parameters())
    assert tiny_engine.accel_status.active == "torch" and tiny_engine.accel_status.wait(0)


def test_torch_backend_switches_classic_attention_to_sdpa(tiny_engine):
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    tiny_engine.unet.set_attn_processor(AttnProcessor())
    accel.apply(tiny_engine, AccelConfig(accel="torch"))
    assert all(type(p) is AttnProcessor2_0 for p in tiny_engine.unet.attn_processors.values())


def test_auto_on_cpu_is_torch(tiny_engine, monkeypatch):
    monkeypatch.setattr(accel, "tensorrt_importable", lambda: True)  # even with TensorRT installed
    assert accel.apply(tiny_engine, AccelConfig(accel="auto")) == "torch"


def test_compile_backend_installs_compiled_seams(tiny_engine):
    """torch.compile itself is replaced by a recording compiler: the CPU has no time for inductor."""
    compiled = []

    def recording_compiler(fn, dynamic):
        assert dynamic is False, "shapes are specialised: recompile only on a new shape"
        compiled.append(fn)
        return fn

    expected = _outputs(tiny_engine)
    from engine.accel.compile_backend import apply_compile

    assert apply_compile(tiny_engine, torch.device("cpu"), compiler=recording_compiler) == "compile"
    assert compiled[0] is tiny_engine.unet and len(compiled) == 3
    for got, want in zip(_outputs(tiny_engine), expected, strict=True):
        torch.testing.assert_close(got, want)
    assert tiny_engine.unet_fn.failed is None


def test_compile_failure_at_first_frame_falls_back_to_eager(tiny_engine, caplog):
    """torch.compile compiles lazily; a compiler missing on the show machine costs speed, not frames."""

    def failing_compiler(fn, dynamic):
        def call(*args, **kwargs):
            raise RuntimeError("Cannot find a working triton installation.\nMore details...")

        return call

    expected = _outputs(tiny_engine)
    from engine.accel.compile_backend import apply_compile

    apply_compile(tiny_engine, torch.device("cpu"), compiler=failing_compiler)
    for got, want in zip(_outputs(tiny_engine), expected, strict=True):
        torch.testing.assert_close(got, want)
    _outputs(tiny_engine)
    assert tiny_engine.unet_fn.failed == "RuntimeError: Cannot find a working triton installation."
    assert caplog.text.count("torch.compile of unet failed") == 1


def test_tensorrt_without_tensorrt_is_a_one_line_error(tiny_engine, monkeypatch):
    monkeypatch.setattr(accel, "tensorrt_importable", lambda: False)
    monkeypatch.setattr(accel, "_gpu_present", lambda device: True)
    with pytest.raises(AccelUnavailable) as info:
        accel.apply(tiny_engine, AccelConfig(accel="tensorrt"))
    assert "\n" not in str(info.value) and "pip install" in str(info.value)


def test_tensorrt_builds_in_background_while_torch_serves(tiny_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "_gpu_present", lambda device: True)  # CUDA can't exist here
    expected = _outputs(tiny_engine)
    torch_seam = tiny_engine.unet_fn
    trt = make_fake_tensorrt()
    events = []
    config = AccelConfig(accel="auto", engine_dir=str(tmp_path))

    used = accel.apply(tiny_engine, config, progress=lambda m, f: events.append(m), trt=trt)
    assert used == "torch", "apply returns at once; torch serves while engines build"
    status = tiny_engine.accel_status
    assert status.wait(120), "background build finished"
    assert status.error is None and status.active == "tensorrt" and not status.building
    assert tiny_engine.unet_fn is not torch_seam
    assert any(m.startswith("building unet") for m in events)
    for got, want in zip(_outputs(tiny_engine), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    # Next start: everything cached, so TensorRT serves from the first frame.
    again = type(tiny_engine)()
    assert accel.apply(again, config, trt=trt) == "tensorrt"
    assert len(trt.builds) == 3


def test_failed_background_build_keeps_torch(tiny_engine, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(accel, "_gpu_present", lambda device: True)
    trt = make_fake_tensorrt()
    trt.Builder.build_serialized_network = lambda self, network, config: None  # TensorRT build failure
    torch_seam = tiny_engine.unet_fn
    with caplog.at_level(logging.ERROR):
        assert (
            accel.apply(tiny_engine, AccelConfig(accel="tensorrt", engine_dir=str(tmp_path)), trt=trt)
            == "torch"
        )
        assert tiny_engine.accel_status.wait(120)
    assert tiny_engine.accel_status.active == "torch"
    assert "failed to build unet" in tiny_engine.accel_status.error
    assert tiny_engine.unet_fn is torch_seam
    assert "staying on torch" in caplog.text


def test_failed_setup_falls_back_under_auto_and_is_an_error_when_asked_for(
    tiny_engine, tmp_path, monkeypatch
):
    monkeypatch.setattr(accel, "_gpu_present", lambda device: True)
    broken = make_fake_tensorrt()
    broken.Runtime.deserialize_cuda_engine = lambda self, data: None
    seam = tiny_engine.unet_fn
    config = AccelConfig(accel="auto", engine_dir=str(tmp_path / "x"))
    assert accel.apply(tiny_engine, config, background=False, trt=broken) == "torch"
    assert "deserialize" in tiny_engine.accel_status.error and tiny_engine.unet_fn is seam
    failing = make_fake_tensorrt()
    failing.Builder.build_serialized_network = lambda self, network, config: None
    with pytest.raises(AccelUnavailable, match="TensorRT setup failed: EngineBuildError"):
        accel.apply(
            type(tiny_engine)(),
            AccelConfig(accel="tensorrt", engine_dir=str(tmp_path / "y")),
            background=False,
            trt=failing,
        )


def test_module_seams_reference(tiny_engine):
    unet_fn, enc, dec = module_seams(tiny_engine.unet, tiny_engine.vae)
    latent, t, ehs = unet_inputs(batch=1)
    with torch.no_grad():
        assert unet_fn(latent, t[:1], ehs).shape == latent.shape
        assert dec(enc(image_inputs())).shape == (1, 3, 64, 64)


def test_token_merging_is_not_sent_to_tensorrt(tiny_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "_gpu_present", lambda device: True)
    monkeypatch.setattr("engine.accel.compile_backend.torch.compile", lambda fn, **kw: fn)
    config = AccelConfig(accel="auto", engine_dir=str(tmp_path), tome_ratio=0.5)
    assert accel.apply(tiny_engine, config, trt=make_fake_tensorrt(), background=False) == "compile"
    with pytest.raises(AccelUnavailable, match="token merging"):
        accel.apply(
            type(tiny_engine)(), AccelConfig(accel="tensorrt", tome_ratio=0.5), trt=make_fake_tensorrt()
        )
