"""What a bench run measures: the command line's options, parsed and checked once."""

from __future__ import annotations

from dataclasses import dataclass, field

SECTIONS: tuple[str, ...] = (
    "throughput",
    "batch",
    "cfg",
    "filter",
    "regions",
    "temporal",
    "controlnet",
    "pipeline",
    "stages",
    "memory",
)
"""Every section, in the order they run and print; `--only` picks a subset."""

ACCELS: tuple[str, ...] = ("torch", "compile", "tensorrt")

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((512, 512), (768, 512))
QUICK_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (96, 64))
QUICK_FRAMES = 6
QUICK_WARMUP = 2


class OptionError(ValueError):
    """A bench option that cannot be used; the message says what is expected."""


@dataclass
class BenchOptions:
    model: str = "random:sd-turbo"
    frames: int = 30
    """Measured calls per row, after the warm-up."""
    warmup: int = 5
    """Calls per row before timing starts (model warm-up, stream-batch buffer fill); never timed."""
    sizes: list[tuple[int, int]] = field(default_factory=lambda: list(DEFAULT_SIZES))
    """(width, height); the first size is the one every comparison section uses."""
    accels: list[str] = field(default_factory=lambda: ["available"])
    """Backends for the throughput section; `available` means every one this machine can run."""
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    device: str = "auto"
    quick: bool = False

    @property
    def main_size(self) -> tuple[int, int]:
        return self.sizes[0]


def parse_size(text: str) -> tuple[int, int]:
    """`512x512` -> (512, 512); sides must be positive multiples of 8 (the VAE's downsampling)."""
    parts = text.lower().strip().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise OptionError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 512x512")
    width, height = int(parts[0]), int(parts[1])
    if width <= 0 or height <= 0 or width % 8 or height % 8:
        raise OptionError(f"size {text!r}: width and height must be positive multiples of 8")
    return width, height


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = [parse_size(s) for s in text.split(",") if s.strip()]
    if not sizes:
        raise OptionError("--sizes needs at least one WIDTHxHEIGHT")
    return list(dict.fromkeys(sizes))


def parse_sections(text: str) -> list[str]:
    wanted = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown or not wanted:
        raise OptionError(f"--only takes a comma-separated list of: {', '.join(SECTIONS)} (got {text!r})")
    return [s for s in SECTIONS if s in wanted]


def parse_accels(text: str) -> list[str]:
    wanted = [s.strip().lower() for s in text.split(",") if s.strip()]
    allowed = (*ACCELS, "available")
    unknown = [s for s in wanted if s not in allowed]
    if unknown or not wanted:
        raise OptionError(f"--accel takes a comma-separated list of: {', '.join(allowed)} (got {text!r})")
    return list(dict.fromkeys(wanted))


def build_options(
    *,
    model: str,
    frames: int | None,
    warmup: int | None,
    sizes: str | None,
    accel: str,
    only: str | None,
    device: str,
    quick: bool,
) -> BenchOptions:
    """The options a command line asks for; `--quick` changes only the defaults it was not given."""
    frames = frames if frames is not None else (QUICK_FRAMES if quick else BenchOptions.frames)
    warmup = warmup if warmup is not None else (QUICK_WARMUP if quick else BenchOptions.warmup)
    if frames < 2:
        raise OptionError(f"--frames must be at least 2 (got {frames})")
    if warmup < 0:
        raise OptionError(f"--warmup must be 0 or more (got {warmup})")
    if not model.strip():
        raise OptionError("--model must name a model")
    return BenchOptions(
        model=model.strip(),
        frames=frames,
        warmup=warmup,
        sizes=parse_sizes(sizes) if sizes else list(QUICK_SIZES if quick else DEFAULT_SIZES),
        accels=parse_accels(accel),
        sections=parse_sections(only) if only else list(SECTIONS),
        device=device,
        quick=quick,
    )
