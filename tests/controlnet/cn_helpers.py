"""Helpers for the ControlNet suite: specs, forward-hook recording, and the bridge suite's helpers.

(Test modules import from here, never from `conftest`: with several test folders in one run that
name is another folder's module.)
"""

from __future__ import annotations

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from engine.controlnet import ControlNetSpec

# The daemon tests reuse the bridge suite's helpers (daemon_helpers, test_cli) and its NDI test
# sender fixture and NDI check (no copies).
_BRIDGE_TESTS = Path(__file__).resolve().parents[1] / "bridge"
if str(_BRIDGE_TESTS) not in sys.path:
    sys.path.insert(0, str(_BRIDGE_TESTS))
_spec = importlib.util.spec_from_file_location("bridge_tests_conftest", _BRIDGE_TESTS / "conftest.py")
bridge_conftest = sys.modules.get("bridge_tests_conftest") or importlib.util.module_from_spec(_spec)
if "bridge_tests_conftest" not in sys.modules:
    sys.modules["bridge_tests_conftest"] = bridge_conftest
    _spec.loader.exec_module(bridge_conftest)


def canny_spec(**live) -> ControlNetSpec:
    """A spec on the random net (canny unless another preprocessor is given)."""
    return ControlNetSpec(model="random:controlnet", preprocessor=live.pop("preprocessor", "canny"), **live)


class Calls:
    """Every call of a module: its positional args, keyword args and output, cloned."""

    def __init__(self) -> None:
        self.args: list[tuple] = []
        self.kwargs: list[dict] = []
        self.out: list = []


def _clone(v):
    if isinstance(v, torch.Tensor):
        return v.clone()
    if isinstance(v, (list, tuple)):
        return type(v)(_clone(x) for x in v)
    return v


@contextmanager
def recording(*modules: torch.nn.Module):
    """Yield one `Calls` per module, filled while the block runs (hooks removed afterwards)."""
    records = [Calls() for _ in modules]
    handles = []
    for m, rec in zip(modules, records, strict=True):

        def pre(_mod, args, kwargs, rec=rec):
            rec.args.append(_clone(args))
            rec.kwargs.append({k: _clone(v) for k, v in kwargs.items()})

        def post(_mod, _args, _kwargs, out, rec=rec):
            rec.out.append(_clone(out))

        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    try:
        yield records
    finally:
        for h in handles:
            h.remove()
