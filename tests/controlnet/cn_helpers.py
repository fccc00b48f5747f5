"""Helpers for the ControlNet suite: record what crosses the UNet and the nets (forward hooks)."""

from __future__ import annotations

from contextlib import contextmanager

import torch


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
