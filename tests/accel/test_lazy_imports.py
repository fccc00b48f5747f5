"""TensorRT and CUDA stay unimported on the torch path (checked in a fresh interpreter, with a
`tensorrt` package installed that fails if anything imports it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_installed_tensorrt_is_found_but_not_imported_on_the_cpu(tmp_path):
    """A `tensorrt` package that is installed but must not be imported: probing finds it, and
    `auto` on a machine without a GPU serves with torch without ever importing it or CUDA, and
    every accel module imports without them."""
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
        import torch
        from engine.accel import compile_backend, graphs  # noqa: F401
        from engine.accel.tensorrt import backend, builder, cache, export, runtime  # noqa: F401
        from accel.conftest import unet_inputs
        engine = TinyEngine()
        assert accel.apply(engine, AccelConfig(accel="auto")) == "torch"
        with torch.no_grad():
            assert engine.unet_fn(*unet_inputs(1)).shape == (1, 4, 8, 8)
        assert "tensorrt" not in sys.modules, "tensorrt was imported"
        assert not torch.cuda.is_initialized(), "CUDA was initialised"
        print("ok")
        """
    )
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
