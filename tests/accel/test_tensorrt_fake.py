"""Our TensorRT code (export, build, cache, runtime, seams) against a fake `tensorrt` module that
is faithful at the API boundary and runs the engine with onnxruntime on the CPU."""

from __future__ import annotations

import pytest
import torch

from engine.accel.seams import module_seams
from engine.accel.tensorrt.backend import (
    BuildPlan,
    EngineBuilder,
    WithFallback,
    engine_parts,
    prepare_runners,
    trt_seams,
)
from engine.accel.tensorrt.builder import EngineBuildError, build_engine
from engine.accel.tensorrt.cache import EngineStore
from engine.accel.tensorrt.profiles import ProfileRange, vae_decoder_spec
from engine.accel.tensorrt.runtime import ShapeOutsideProfile

from .conftest import AccelConfig, image_inputs, tiny_unet, tiny_vae, unet_inputs
from .fake_tensorrt import make_fake_tensorrt

CPU = torch.device("cpu")


def _builder(trt, tmp_path, events=None):
    plan = BuildPlan.from_config(AccelConfig(), torch.float32)
    report = (lambda m, f: events.append((m, f))) if events is not None else (lambda m, f: None)
    return EngineBuilder(
        trt,
        EngineStore(tmp_path),
        plan,
        CPU,
        torch.float32,
        progress=report,
        capability="sm_89",
        use_cuda_graph=False,
    )


@pytest.fixture(scope="module")
def modules():
    return tiny_unet(), tiny_vae()


def test_build_then_run_matches_torch(tmp_path, modules):
    unet, vae = modules
    trt = make_fake_tensorrt()
    events: list = []
    builder = _builder(trt, tmp_path, events)
    parts = engine_parts(unet, vae, builder.plan)
    runners = prepare_runners(builder, parts)
    assert builder.built == ["unet", "vae_encoder", "vae_decoder"]
    assert len(trt.builds) == 3
    assert ("TensorRT engines ready", 1.0) in events
    assert any(m.startswith("building unet") and f == 1.0 for m, f in events), "IProgressMonitor reached us"

    ours = trt_seams(runners)
    ref = module_seams(unet, vae)
    latent, t, ehs = unet_inputs(batch=2)
    images = image_inputs(batch=1, h=64, w=96)
    with torch.no_grad():
        torch.testing.assert_close(ours[0](latent, t, ehs), ref[0](latent, t, ehs), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours[1](images), ref[1](images), atol=1e-5, rtol=1e-4)
        lat = ref[1](images)
        torch.testing.assert_close(ours[2](lat), ref[2](lat), atol=1e-5, rtol=1e-4)
    # Buffers are reused while the shape stays, re-made when it changes.
    before = runners["vae_decoder"].allocations
    ours[2](lat)
    assert runners["vae_decoder"].allocations == before
    ours[2](torch.cat([lat, lat]))
    assert runners["vae_decoder"].allocations == before + 1
    assert (tmp_path / "timing-11.0.0-sm_89.cache").exists()
    assert not any((tmp_path / "onnx").iterdir()), "ONNX scratch files are removed after the build"


def test_cached_engines_load_without_rebuild_and_corrupt_ones_rebuild(tmp_path, modules):
    unet, vae = modules
    trt = make_fake_tensorrt()
    first = _builder(trt, tmp_path)
    parts = engine_parts(unet, vae, first.plan)
    prepare_runners(first, parts)
    assert len(trt.builds) == 3

    second = _builder(trt, tmp_path)
    assert second.all_cached(parts)
    prepare_runners(second, parts)
    assert second.built == [] and len(trt.builds) == 3, "cached engines are loaded, not rebuilt"

    # A damaged file (wrong bytes) is caught by the checksum and rebuilt.
    unet_key = second.key(parts[0])
    path = second.store.plan_path(unet_key)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    third = _builder(trt, tmp_path)
    assert not third.all_cached(parts)
    prepare_runners(third, parts)
    assert third.built == ["unet"]

    # A plan whose checksum matches but that TensorRT can't deserialize is rebuilt too.
    decoder_key = third.key(parts[2])
    third.store.save(decoder_key, b"not an engine")
    fourth = _builder(trt, tmp_path)
    runners = prepare_runners(fourth, parts)
    assert fourth.built == ["vae_decoder"]
    assert runners["vae_decoder"].engine is not None


def test_changed_weights_build_new_engines(tmp_path, modules):
    unet, vae = modules
    trt = make_fake_tensorrt()
    prepare_runners(_builder(trt, tmp_path), engine_parts(unet, vae, _builder(trt, tmp_path).plan))
    other_vae = tiny_vae()
    with torch.no_grad():
        next(other_vae.decoder.parameters()).view(-1)[0] += 0.5
    builder = _builder(trt, tmp_path)
    prepare_runners(builder, engine_parts(unet, other_vae, builder.plan))
    assert builder.built == ["vae_encoder", "vae_decoder"]


def test_precision_flags_per_tensorrt_major(tmp_path, modules):
    _, vae = modules
    spec = vae_decoder_spec(ProfileRange(1, 64, 64, min_size=32, max_size=128), latent_channels=4)
    from engine.accel.tensorrt.export import VaeDecoderPart, export_part

    onnx_path = export_part(VaeDecoderPart(vae), spec, tmp_path / "m.onnx", device=CPU, dtype=torch.float32)
    for version, expect_flag in (("10.13.0", True), ("11.0.0", False)):
        trt = make_fake_tensorrt(version)
        plan = build_engine(trt, onnx_path, spec, precision="fp16", timing_cache=tmp_path / "tc")
        assert (b'"fp16": true' in plan) is expect_flag
    assert b'"builds": 2' in (tmp_path / "tc").read_bytes(), "timing cache is loaded and saved each build"


def test_no_progress_monitor_falls_back_to_heartbeat_and_bad_onnx_is_an_error(tmp_path, modules):
    _, vae = modules
    spec = vae_decoder_spec(ProfileRange(1, 64, 64, min_size=32, max_size=128), latent_channels=4)
    from engine.accel.tensorrt.export import VaeDecoderPart, export_part

    onnx_path = export_part(VaeDecoderPart(vae), spec, tmp_path / "m.onnx", device=CPU, dtype=torch.float32)
    events: list = []
    trt = make_fake_tensorrt(progress_monitor=False)
    build_engine(trt, onnx_path, spec, precision="fp32", progress=lambda m, f: events.append((m, f)))
    assert events and events[0] == ("building vae_decoder", None)

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(EngineBuildError, match="could not parse bad.onnx"):
        build_engine(trt, bad, spec, precision="fp32")


def test_shape_outside_profile_is_a_clear_error(tmp_path, modules):
    unet, vae = modules
    builder = _builder(make_fake_tensorrt(), tmp_path)
    decoder = builder.runner(engine_parts(unet, vae, builder.plan)[2])
    ok = torch.randn(1, 4, 8, 8)
    first = decoder(latents=ok)["images"]
    with pytest.raises(ShapeOutsideProfile, match="outside the engine's profile"):
        decoder(latents=torch.zeros(1, 4, 200, 200))
    torch.testing.assert_close(decoder(latents=ok)["images"], first, msg="a rejected shape leaves no trace")
    with torch.inference_mode():
        decoder(latents=torch.randn(1, 4, 16, 8))
    decoder(latents=torch.randn(1, 4, 16, 8))  # buffers made under inference mode still refill outside


def test_out_of_profile_batch_falls_back_to_torch(tmp_path, modules):
    unet, vae = modules
    builder = _builder(make_fake_tensorrt(), tmp_path)
    runner = builder.runner(engine_parts(unet, vae, builder.plan)[0])
    reference = module_seams(unet, vae)[0]
    calls = []

    def torch_unet(*args):
        calls.append(args[0].shape[0])
        return reference(*args)

    def trt_unet(latent, t, ehs):
        return runner(sample=latent, timestep=t, encoder_hidden_states=ehs)["noise_pred"]

    unet_fn = WithFallback("unet", trt_unet, torch_unet)
    big = unet_inputs(batch=builder.plan.max_batch + 1)
    small = unet_inputs(batch=2)
    with torch.no_grad():
        torch.testing.assert_close(unet_fn(*big), reference(*big), atol=1e-4, rtol=1e-4)
        unet_fn(*big)
        torch.testing.assert_close(unet_fn(*small), reference(*small), atol=1e-4, rtol=1e-4)
    assert calls == [builder.plan.max_batch + 1] * 2, "only the out-of-profile batch ran in torch"


def test_device_memory_follows_the_shapes_in_use(tmp_path, modules):
    unet, vae = modules
    trt = make_fake_tensorrt()
    decoder = _builder(trt, tmp_path).runner(engine_parts(unet, vae, _builder(trt, tmp_path).plan)[2])
    decoder(latents=torch.randn(1, 4, 8, 8))
    decoder(latents=torch.randn(2, 4, 16, 16))
    sizes = [size for what, size in trt.calls if what == "device_memory"]
    assert sizes == [256 * 1 * 4 * 8 * 8, 256 * 2 * 4 * 16 * 16]
