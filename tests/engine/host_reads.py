"""Counting, on the CPU, what would stall a GPU: host reads of device values, and glue kernels.

`HostReads` is a TorchDispatchMode (thread-local: it sees only the thread that enters it, e.g. the
engine thread) plus wrappers of the Python-level escapes that never reach the dispatcher. It counts

- `scalar_reads`: `aten._local_scalar_dense` (or `aten.item` / `is_nonzero`, which reach a mode whole under
  inference mode), which every `.item()`, `float(t)`, `bool(t)`, `int(t)` of a tensor becomes: on
  CUDA each is a blocking device->host copy;
- `to_host`: copies whose result is on the CPU while a source is not (`_to_copy`, `copy_`): zero by
  construction on the CPU, the blocking downloads on a GPU run;
- `host_calls`: `.numpy()`, `.tolist()`, `.cpu()`, `.item()` of a tensor on the counted thread.
  On the CPU these are how an engine tensor reaches the host (a `.cpu()` on CUDA waits for it);
  numpy views made once at build time and read later dispatch nothing and are not counted;
- `kernels`: non-view aten ops outside the three model seams (while `in_seam` is 0), i.e. the
  glue kernels a frame launches besides the UNet and the VAE.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
_COPIES = (aten._to_copy.default, aten.copy_.default, aten.to.dtype_layout)
_SCALAR_READS = (aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default)
_FREE = {aten.empty.memory_format, aten.empty_like.default, aten.empty_strided.default}


def _devices(x) -> set[str]:
    out: set[str] = set()
    if isinstance(x, torch.Tensor):
        out.add(x.device.type)
    elif isinstance(x, (list, tuple)):
        for y in x:
            out |= _devices(y)
    return out


class HostReads(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.scalar_reads = 0
        self.to_host = 0
        self.host_calls = 0
        self.kernels = 0
        self.in_seam = 0
        self._in_item = 0
        self.ops: Counter[str] = Counter()
        self.thread = threading.get_ident()
        """The thread whose `.numpy()` & co. `python_escapes` counts (set it to the engine thread)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SCALAR_READS:
            if not self._in_item:  # under inference mode `item` arrives whole, else decomposed
                self.scalar_reads += 1
            self._in_item += 1
            try:
                return func(*args, **kwargs)
            finally:
                self._in_item -= 1
        out = func(*args, **kwargs)
        if func in _COPIES and "cpu" in _devices(out) and _devices(args) - {"cpu"}:
            self.to_host += 1
        if not self.in_seam and not func.is_view and func not in _FREE:
            self.kernels += 1
            self.ops[str(func.overloadpacket.__name__)] += 1
        return out

    def reads(self) -> dict[str, int]:
        return {"scalar_reads": self.scalar_reads, "to_host": self.to_host, "host_calls": self.host_calls}

    @contextmanager
    def python_escapes(self):
        """Also count `.numpy()`, `.tolist()`, `.cpu()`, `.item()` called on this mode's thread."""
        names = ("numpy", "tolist", "cpu", "item")
        saved = {n: getattr(torch.Tensor, n) for n in names}

        def wrap(name):
            original = saved[name]

            def counted(t, *a, **kw):
                if threading.get_ident() == self.thread:
                    self.host_calls += 1
                return original(t, *a, **kw)

            return counted

        for n in names:
            setattr(torch.Tensor, n, wrap(n))
        try:
            yield self
        finally:
            for n, f in saved.items():
                setattr(torch.Tensor, n, f)


def exclude_seams(engine, reads: HostReads) -> None:
    """Wrap the engine's three model seams so `reads` does not count the kernels inside them."""

    def outside(fn):
        def seam(*args):
            reads.in_seam += 1
            try:
                return fn(*args)
            finally:
                reads.in_seam -= 1

        return seam

    engine.unet_fn = outside(engine.unet_fn)
    engine.vae_encode_fn = outside(engine.vae_encode_fn)
    engine.vae_decode_fn = outside(engine.vae_decode_fn)
