"""The engine cache key and the verified on-disk store."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from engine.accel.tensorrt.cache import EngineKey, EngineStore, module_fingerprint

from .conftest import tiny_vae

BASE = EngineKey(
    part="unet",
    model="abc123",
    profile=(("sample", ([1, 4, 32, 32], [1, 4, 64, 64], [4, 4, 128, 128])),),
    precision="fp16",
    trt_version="11.0.0",
    compute_capability="sm_89",
    opset=17,
    extra=(("tome_ratio", 0.0),),
)

CHANGES = {
    "part": "vae_decoder",
    "model": "abc124",
    "profile": (("sample", ([1, 4, 32, 32], [2, 4, 64, 64], [4, 4, 128, 128])),),
    "precision": "fp32",
    "trt_version": "10.13.0",
    "compute_capability": "sm_86",
    "opset": 18,
    "extra": (("tome_ratio", 0.5),),
    "format": 99,
}


def test_key_is_stable_for_equal_inputs():
    same = EngineKey(**{f.name: getattr(BASE, f.name) for f in dataclasses.fields(BASE)})
    assert same.digest() == BASE.digest()
    assert EngineKey(**json.loads(json.dumps(dataclasses.asdict(BASE)))).digest() == BASE.digest()


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_key_changes_when_any_input_changes(field):
    assert set(CHANGES) == {f.name for f in dataclasses.fields(EngineKey)}
    assert dataclasses.replace(BASE, **{field: CHANGES[field]}).digest() != BASE.digest()


def test_fingerprint_follows_weights_and_nothing_else():
    a, b = tiny_vae(), tiny_vae()
    assert module_fingerprint(a) == module_fingerprint(b)
    with torch.no_grad():
        next(b.decoder.parameters()).view(-1)[0] += 1e-3
    assert module_fingerprint(a) != module_fingerprint(b)
    assert module_fingerprint(a) != module_fingerprint(a.half())


def test_store_round_trip_and_corruption(tmp_path):
    store = EngineStore(tmp_path)
    assert store.load(BASE) is None
    store.save(BASE, b"plan bytes")
    assert store.load(BASE) == b"plan bytes"
    other = dataclasses.replace(BASE, trt_version="10.0.0")
    assert store.load(other) is None, "another key never reads this plan"

    plan = store.plan_path(BASE)
    plan.write_bytes(b"plan byteX")  # same size, flipped content
    assert store.load(BASE) is None
    plan.write_bytes(b"plan")  # truncated
    assert store.load(BASE) is None

    store.save(BASE, b"plan bytes")
    store.meta_path(BASE).write_text("{not json")
    assert store.load(BASE) is None
    store.meta_path(BASE).unlink()
    assert store.load(BASE) is None, "a plan without metadata is not trusted"
