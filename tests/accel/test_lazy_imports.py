"""TensorRT and CUDA stay unimported on the torch path (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_accel_imports_and_torch_backend_run_without_tensorrt_or_cuda():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["tensorrt"] = None  # as if absent: any import of it raises ImportError
        import torch
        import engine.accel as accel
        from engine.accel import tensorrt, compile_backend, graphs  # noqa: F401
        from engine.accel.tensorrt import backend, builder, cache, runtime  # noqa: F401
        sys.path.insert(0, "tests")
        from accel.conftest import AccelConfig, TinyEngine, unet_inputs
        engine = TinyEngine()
        assert accel.apply(engine, AccelConfig(accel="auto")) == "torch"
        with torch.no_grad():
            engine.unet_fn(*unet_inputs(1))
        assert sys.modules["tensorrt"] is None, "nothing tried to import tensorrt for real"
        assert not torch.cuda.is_initialized(), "CUDA was never initialised"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_installed_tensorrt_is_found_but_not_imported_on_the_cpu(tmp_path):
    """A `tensorrt` package that is installed but must not be imported: probing finds it, and
    `auto` on a machine without a GPU serves with torch without ever importing it."""
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('tensorrt was imported')\n")
    script = textwrap.dedent(
        """
        import sys
        import engine.accel as accel
        from engine.accel.choose import tensorrt_importable
        assert tensorrt_importable()
        sys.path.insert(0, "tests")
        from accel.conftest import AccelConfig, TinyEngine
        assert accel.apply(TinyEngine(), AccelConfig(accel="auto")) == "torch"
        assert "tensorrt" not in sys.modules
        print("ok")
        """
    )
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
