"""Whatever the store accepts, the engine accepts: a refusal is an /sd/error, never a log line later.

The engine checks its live values itself (`engine/stream.py` `_validate`, `engine/schedule.py`
`validate_t_index_list`); the store must check at least as much, or a controller hears an echo
for a value the engine then refuses (`/sd/t_index 40 30`, issue 19.5). These tests feed random
values, valid and not, to both: the store's accepted ones go into a real tiny engine.
"""

from __future__ import annotations

import random

import pytest
import torch

from bridge.control import PARAMS, Kind, ParamError
from bridge.control.params import Param
from engine import EngineConfig
from engine.models import load_models
from engine.schedule import validate_t_index_list
from engine.stream import StreamEngine


def _number(rng: random.Random) -> float | int:
    x = rng.choice([rng.uniform(-5, 120), rng.randrange(-3, 60), 0, 1, 0.5, 20.0, 100.5, 2**31, -1e-9])
    return x


def _candidates(p: Param, rng: random.Random, n: int) -> list:
    out: list = []
    for _ in range(n):
        k = p.kind
        if k in (Kind.FLOAT, Kind.INT):
            out.append(_number(rng))
        elif k is Kind.BOOL:
            out.append(rng.choice([0, 1, 2, 0.5, True, False, "on", "off", "maybe"]))
        elif k is Kind.STR:
            out.append(rng.choice(["", "neon city", "x" * rng.choice([10, 1999, 2000, 2001]), "a\x00b"]))
        elif k in (Kind.INT_LIST, Kind.INT_PAIR, Kind.FLOAT_LIST):
            out.append([_number(rng) for _ in range(rng.randrange(0, 6))])
        elif k is Kind.WEIGHTED_STR:
            out.append(
                [x for _ in range(rng.randrange(0, 4)) for x in (rng.choice(["a", "b", ""]), _number(rng))]
            )
        else:
            out.append([x for _ in range(rng.randrange(0, 4)) for x in (rng.randrange(-2, 9), _number(rng))])
    return out


@pytest.fixture(scope="module")
def engine() -> StreamEngine:
    torch.set_num_threads(1)
    config = EngineConfig(model="random:tiny", width=64, height=64, prompt="a red fox", seed=3)
    return StreamEngine(load_models(config), config)


ENGINE_PARAMS = [p for p in PARAMS if p.engine_key]


@pytest.mark.parametrize("p", ENGINE_PARAMS, ids=[p.name for p in ENGINE_PARAMS])
def test_every_value_the_store_accepts_the_engine_accepts(engine, p):
    rng = random.Random(p.name)
    accepted = 0
    trials = 12 if p.kind in (Kind.STR, Kind.WEIGHTED_STR) else 150  # text goes through the encoder
    for value in _candidates(p, rng, trials):
        try:
            stored = p.coerce(value)
        except ParamError:
            continue
        accepted += 1
        if p.kind is Kind.BOOL:
            stored = bool(stored)
        engine.update(**{p.engine_key: stored})  # raises ValueError if the engine refuses it
    assert accepted > 0, f"no random value was valid for {p.name}: the test proves nothing"


def test_t_index_rules_are_the_engines():
    """For lists the store's size limit allows, the store and the engine's own validator agree."""
    t_index = next(p for p in PARAMS if p.name == "t_index")
    rng = random.Random(19)
    agree = {True: 0, False: 0}
    for _ in range(3000):
        value = [rng.randrange(-2, 52) for _ in range(rng.randrange(0, 17))]
        if rng.random() < 0.5:
            value.sort()
        try:
            engine_ok = validate_t_index_list(value, 50) == value
        except ValueError:
            engine_ok = False
        try:
            store_ok = t_index.coerce(value) == value
        except ParamError:
            store_ok = False
        assert store_ok == engine_ok, value
        agree[store_ok] += 1
    assert agree[True] > 100 and agree[False] > 100, agree
    with pytest.raises(ParamError, match="strictly increasing"):
        t_index.coerce([40, 30])
