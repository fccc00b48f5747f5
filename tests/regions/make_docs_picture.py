"""Render docs/regions_before_after.png with the tiny random model (run from the repo root).

python tests/regions/make_docs_picture.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from engine import EngineConfig, load_engine
from engine.regions import Brush

SIZE, SCALE = 64, 3
OUT = Path(__file__).resolve().parents[2] / "docs" / "regions_before_after.png"


def test_card() -> torch.Tensor:
    """A simple input: a colour gradient with a bright disc."""
    y, x = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    disc = (((x - 0.5) ** 2 + (y - 0.55) ** 2) < 0.06).float()
    rgb = torch.stack([x, 0.3 + 0.4 * y, 1 - x]) * (1 - disc) + disc
    return rgb[None].clamp(0, 1)


def run(regions: list[Brush] | None, frame: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    eng = load_engine(EngineConfig(model="random:tiny", width=SIZE, height=SIZE, prompt="a city", seed=7))
    if regions:
        eng.update(regions=regions)
    out = frame
    for _ in range(len(eng.t_index_list)):
        out = eng(frame)
    return out


def stretched(img: torch.Tensor) -> np.ndarray:
    """Random weights give nearly grey pictures: stretch the contrast so the eye sees them."""
    x = img[0].permute(1, 2, 0).numpy()
    return 0.5 + (x - x.mean()) / (4 * x.std() + 1e-6)


def panel(img: torch.Tensor | np.ndarray, label: str) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        img = img[0].permute(1, 2, 0).numpy()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    u8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    big = cv2.resize(u8, (SIZE * SCALE, SIZE * SCALE), interpolation=cv2.INTER_NEAREST)
    bar = np.full((22, big.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, big], axis=0)


def main() -> None:
    frame = test_card()
    left = torch.zeros(SIZE, SIZE)
    left[:, : SIZE // 2] = 1
    plain = run(None, frame)
    painted = run([Brush("a wall of fire", left)], frame)
    diff = (painted - plain).abs().mean(dim=1)[0].numpy()
    diff = diff / max(float(diff.max()), 1e-6)
    row = [
        panel(frame, "input"),
        panel(left.numpy(), "brush mask"),
        panel(stretched(plain), "prompt only"),
        panel(stretched(painted), "prompt + brush"),
        panel(diff, "difference"),
    ]
    gap = np.full((row[0].shape[0], 6, 3), 160, np.uint8)
    parts = [p for r in row for p in (r, gap)][:-1]
    image = np.concatenate(parts, axis=1)
    cv2.imwrite(str(OUT), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
