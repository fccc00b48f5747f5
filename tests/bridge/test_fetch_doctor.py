"""`sd-bridge fetch` and what doctor says about models and torch builds, without any network: the
list of what a preset needs, cache detection on a Hugging Face cache built on disk, the offline errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_process import free_port, offline_env

from bridge.fetch import Need, is_cached, needs, preset_config
from engine import EngineConfig

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_snapshot(hub: Path, repo: str, files: dict[str, str]) -> Path:
    """A repository in the Hugging Face cache layout, as snapshot_download leaves it."""
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT
    for name, text in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text(text)
    return snapshot


SD_TURBO = {
    "model_index.json": "{}",
    "scheduler/scheduler_config.json": "{}",
    "tokenizer/vocab.json": "{}",
    "unet/config.json": json.dumps({"cross_attention_dim": 1024}),
    "unet/diffusion_pytorch_model.safetensors": "weights",
    "text_encoder/config.json": "{}",
    "text_encoder/model.safetensors": "weights",
}
TAESD = {"config.json": "{}", "diffusion_pytorch_model.safetensors": "weights"}
DEPTH_NET = "thibaud/controlnet-sd21-depth-diffusers"  # `auto` depth net on sd-turbo (SD2.1 family)
DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
NET = {"config.json": "{}", "diffusion_pytorch_model.safetensors": "weights"}
DEPTH = {"config.json": "{}", "model.safetensors": "weights"}


def _run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=home,
        env={**offline_env(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_what_each_preset_needs() -> None:
    turbo = needs(preset_config("sd-turbo-1step"))
    assert [(n.repo, n.what) for n in turbo] == [
        ("stabilityai/sd-turbo", "model"),
        ("madebyollin/taesd", "tiny VAE (TAESD)"),
    ]
    files = turbo[0].files
    assert "unet/*.safetensors" in files and "tokenizer/*" in files and "text_encoder/*.safetensors" in files
    assert not any("vae/" in f for f in files), "TAESD replaces the model's VAE: its weights are not needed"
    lcm = needs(preset_config("lcm-sd15-2step"))
    assert [n.repo for n in lcm] == [
        "KBlueLeaf/kohaku-v2.1",
        "madebyollin/taesd",
        "latent-consistency/lcm-lora-sdv1-5",
    ]
    assert needs(EngineConfig(model="random:sd-turbo")) == []
    full_vae = needs(EngineConfig(model="stabilityai/sd-turbo", vae="full"))
    assert [n.repo for n in full_vae] == ["stabilityai/sd-turbo"] and "vae/*.safetensors" in full_vae[0].files


def test_cache_detection_on_a_cache_built_on_disk(tmp_path: Path) -> None:
    hub = tmp_path / "hf" / "hub"
    turbo, taesd = needs(preset_config("sd-turbo-1step"))
    assert not is_cached(turbo, hub)
    snapshot = _fake_snapshot(hub, "stabilityai/sd-turbo", SD_TURBO)
    assert is_cached(turbo, hub)
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()  # an interrupted download
    assert not is_cached(turbo, hub)
    _fake_snapshot(hub, "madebyollin/taesd", TAESD)
    assert is_cached(taesd, hub)
    assert not is_cached(Need("someone/else", "model", ("*",), ("*.safetensors",)), hub)


def test_doctor_and_fetch_list_what_is_cached(tmp_path: Path) -> None:
    hub = tmp_path / "hf" / "hub"
    _fake_snapshot(hub, "stabilityai/sd-turbo", SD_TURBO)
    _fake_snapshot(hub, "madebyollin/taesd", TAESD)
    doctor = _run(["doctor", "--osc-port", str(free_port())], tmp_path)
    presets = next(ln for ln in doctor.stdout.splitlines() if " presets " in ln)
    cached, missing = presets.split("not cached:")
    assert "sd-turbo-1step" in cached and "lcm-sd15-2step" in missing, presets
    assert "sd-bridge fetch --preset NAME" in presets
    model = next(ln for ln in doctor.stdout.splitlines() if " model " in ln)
    assert model.startswith("ok") and "stabilityai/sd-turbo" in model, model
    listed = _run(["fetch", "--preset", "sd-turbo-1step"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "stabilityai/sd-turbo (model): cached" in listed.stdout and "runs offline" in listed.stdout


def test_fetch_offline_is_one_line_naming_the_command(tmp_path: Path) -> None:
    r = _run(["fetch", "--preset", "lcm-sd15-2step"], tmp_path)
    assert r.returncode == 1
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 1 and "offline" in errors[0], r.stderr
    assert "sd-bridge fetch --preset lcm-sd15-2step" in errors[0]
    assert "KBlueLeaf/kohaku-v2.1 (model): not cached" in r.stdout


def test_the_offline_model_error_names_sd_bridge_fetch(tmp_path: Path) -> None:
    r = _run(["run", "--osc-port", "0", "--frames", "1"], tmp_path)
    assert r.returncode == 1
    line = next(ln for ln in r.stderr.splitlines() if "not available" in ln)
    assert "sd-bridge fetch stabilityai/sd-turbo" in line and "--model random:sd-turbo" in line, line


@pytest.fixture
def nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in `nvidia-smi` on PATH that reports a driver version (no NVIDIA driver can exist here)."""

    def install(version: str) -> None:
        exe = tmp_path / "bin" / "nvidia-smi"
        exe.parent.mkdir(exist_ok=True)
        exe.write_text(f"#!/bin/sh\necho '{version}'\n")
        exe.chmod(0o755)
        monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin:/bin")

    return install


def test_doctor_says_why_a_cuda_build_cannot_use_cuda(nvidia_smi, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from bridge.cli import doctor

    monkeypatch.setattr(torch.version, "cuda", "13.0")  # as a CUDA 13 build reports itself
    nvidia_smi("575.51.03")
    check = doctor.check_cuda()
    assert check.status == doctor.FAIL
    assert "CUDA 13.0 build but CUDA is unusable" in check.detail and "575.51.03 is too old" in check.detail
    assert "SD_BRIDGE_TORCH=cu128 ./sd-bridge.sh" in check.fix
    monkeypatch.setenv("PATH", "/nonexistent")
    check = doctor.check_cuda()
    assert check.status == doctor.FAIL and "no NVIDIA driver" in check.detail


def test_doctor_on_a_cpu_build_names_the_installer_not_system_pip(nvidia_smi) -> None:
    import torch

    from bridge.cli import doctor

    assert torch.version.cuda is None, "this test is about the CPU build installed here"
    nvidia_smi("590.10")
    check = doctor.check_cuda()
    assert "CPU build, but an NVIDIA driver (590.10)" in check.detail
    assert check.fix == "install the CUDA build: SD_BRIDGE_TORCH=cu130 ./sd-bridge.sh doctor"
    fixes = [c.fix for c in doctor.run_checks(free_port()) if c.fix]
    assert not any(f.startswith("pip ") for f in fixes), fixes


def test_doctor_checks_recording_with_the_file_sink_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `file` line records with PyAV, as `--sink file:` does (not with OpenCV's writer), and its fix
    names this environment's pip and `av`."""
    from bridge.cli import doctor

    check = doctor.check_file_sink()
    assert check.status == doctor.OK and "recording works" in check.detail, check
    (tmp_path / "a-file").write_text("not a folder")
    check = doctor.check_file_sink(str(tmp_path / "a-file" / "sub"))
    assert check.status == doctor.FAIL and "cannot make the folder" in check.detail, check
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError, as without PyAV
    check = doctor.check_file_sink()
    assert check.status == doctor.FAIL and "PyAV" in check.detail, check
    assert check.fix == f"{doctor.pip()} install av"
    assert Path(doctor.pip().removesuffix(" -m pip")).name == Path(sys.executable).name


def test_a_controlnet_preset_needs_its_net_and_the_depth_model(tmp_path: Path) -> None:
    """The `auto` net is the one the stack picks for the cached model's family; before the model is
    cached it waits for it; the depth preprocessor brings the depth model; random models need none."""
    hub = tmp_path / "hf" / "hub"
    before = needs(preset_config("depth-controlnet"), hub)
    assert [(n.repo, n.what) for n in before][2:] == [
        ("auto", "ControlNet 0 (depth)"),
        (DEPTH_MODEL, "depth model"),
    ]
    assert not is_cached(before[2], hub)
    _fake_snapshot(hub, "stabilityai/sd-turbo", SD_TURBO)
    after = needs(preset_config("depth-controlnet"), hub)
    assert [(n.repo, n.what) for n in after][2:] == [
        (DEPTH_NET, "ControlNet 0 (depth)"),
        (DEPTH_MODEL, "depth model"),
    ]
    net, depth = after[2:]
    assert "*.safetensors" in net.files and "*.fp16.*" in net.ignore, "the loader reads the plain weights"
    assert not is_cached(net, hub)
    _fake_snapshot(hub, DEPTH_NET, NET)
    assert is_cached(net, hub)
    _fake_snapshot(hub, DEPTH_MODEL, DEPTH)
    assert is_cached(depth, hub)
    sd15 = needs(EngineConfig(model="random:sd15", controlnets=[{"preprocessor": "depth"}]))
    assert sd15 == [], "random base models get the random net and depth model"
    named = needs(
        EngineConfig(model="random:sd15", controlnets=[{"model": "some/net", "preprocessor": "canny"}])
    )
    assert [(n.repo, n.what) for n in named] == [("some/net", "ControlNet 0 (canny)")]


def test_fetch_list_and_doctor_count_the_nets(tmp_path: Path) -> None:
    hub = tmp_path / "hf" / "hub"
    for repo, files in [("stabilityai/sd-turbo", SD_TURBO), ("madebyollin/taesd", TAESD)]:
        _fake_snapshot(hub, repo, files)
    listed = _run(["fetch", "--preset", "depth-controlnet", "--list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{DEPTH_NET} (ControlNet 0 (depth)): not cached" in listed.stdout, listed.stdout
    assert f"{DEPTH_MODEL} (depth model): not cached" in listed.stdout, listed.stdout
    offline = _run(["fetch", "--preset", "depth-controlnet"], tmp_path)
    errors = offline.stderr.strip().splitlines()
    assert offline.returncode == 1 and len(errors) == 1, offline.stderr
    assert "sd-bridge fetch --preset depth-controlnet" in errors[0] and DEPTH_NET in errors[0], errors
    assert "stabilityai/sd-turbo," not in errors[0], "only what is missing is named"
    presets = _doctor_presets(tmp_path)
    assert "depth-controlnet" in presets.split("not cached:")[1], presets
    _fake_snapshot(hub, DEPTH_NET, NET)
    _fake_snapshot(hub, DEPTH_MODEL, DEPTH)
    assert "depth-controlnet" in _doctor_presets(tmp_path).split("not cached:")[0]
    cli = _run(["fetch", "--controlnet", "depth", "--controlnet", "canny=some/net", "--list"], tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert f"{DEPTH_NET} (ControlNet 0 (depth)): cached" in cli.stdout, cli.stdout
    assert "some/net (ControlNet 1 (canny)): not cached" in cli.stdout, cli.stdout
    assert f"{DEPTH_MODEL} (depth model): cached" in cli.stdout, cli.stdout
    bad = _run(["fetch", "--controlnet", "sketch", "--list"], tmp_path)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "preprocessor must be one of" in bad.stderr


def _doctor_presets(home: Path) -> str:
    doctor = _run(["doctor", "--osc-port", str(free_port())], home)
    return next(ln for ln in doctor.stdout.splitlines() if " presets " in ln)


FETCH_FILES = """
from bridge.fetch import preset_config
from engine.models import fetch_files
try:
    print(*fetch_files(preset_config("depth-controlnet"), lambda msg: None), sep="\\n")
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
"""


def test_fetch_files_gets_the_nets_the_stack_loads(tmp_path: Path) -> None:
    """What `sd-bridge fetch` downloads (engine.models.fetch_files), offline on a cache built on disk:
    the model, TAESD, then the depth net picked for the model's family and the depth model."""
    hub = tmp_path / "hf" / "hub"
    for repo, files in [("stabilityai/sd-turbo", SD_TURBO), ("madebyollin/taesd", TAESD)]:
        _fake_snapshot(hub, repo, files)

    def fetch_files() -> str:
        r = subprocess.run(
            [sys.executable, "-c", FETCH_FILES],
            env=offline_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    missing = fetch_files()
    assert missing.startswith("ModelNotAvailable") and DEPTH_NET in missing, missing
    assert f"sd-bridge fetch --controlnet PRE={DEPTH_NET}" in missing, "a net is not fetched as a base model"
    net = _fake_snapshot(hub, DEPTH_NET, NET)
    depth = _fake_snapshot(hub, DEPTH_MODEL, DEPTH)
    folders = fetch_files().splitlines()
    assert len(folders) == 4 and folders[2:] == [str(net), str(depth)], folders
