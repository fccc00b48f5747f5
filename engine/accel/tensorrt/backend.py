"""Engines for one StreamDiffusion engine: export, build or load from the cache, and seams.

`prepare_runners()` does everything for the three parts and returns ready `TrtRunner`s; it is
what `sd-bridge build-engines` runs ahead of a show and what the background build runs at
start-up. `trt_seams()` turns the runners into the engine's `unet_fn` / `vae_*_fn`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..progress import Progress, silent
from ..seams import vae_scale_factor
from .builder import build_engine
from .cache import EngineKey, EngineStore, compute_capability, module_fingerprint
from .export import OPSET, UNetPart, VaeDecoderPart, VaeEncoderPart, export_part
from .profiles import PartSpec, ProfileRange, unet_spec, vae_decoder_spec, vae_encoder_spec
from .runtime import EngineLoadError, ShapeOutsideProfile, TrtRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildPlan:
    """Everything the engines depend on besides the weights."""

    height: int
    width: int
    unet_batch: int
    vae_batch: int
    max_batch: int
    precision: str
    extra: tuple = ()

    @classmethod
    def from_config(cls, config: Any, dtype: torch.dtype) -> BuildPlan:
        """From an `EngineConfig`: the UNet batch that stream batching and the CFG type produce
        (the profile's optimum), with room for a few more denoising steps set live."""
        fbs = config.frame_buffer_size
        steps = len(config.t_index_list) if config.use_denoising_batch else 1
        batch = steps * fbs
        if config.cfg_type == "full":
            batch *= 2
        elif config.cfg_type == "initialize":
            batch += fbs
        return cls(
            height=config.height,
            width=config.width,
            unet_batch=batch,
            vae_batch=fbs,
            max_batch=max(4, 2 * steps * fbs + fbs, batch),
            precision="fp16" if dtype == torch.float16 else "fp32",
            extra=(("tome_ratio", float(getattr(config, "tome_ratio", 0.0))),),
        )


@dataclass
class Part:
    spec: PartSpec
    export_module: torch.nn.Module
    weights: torch.nn.Module


def engine_parts(unet: torch.nn.Module, vae: torch.nn.Module, plan: BuildPlan) -> list[Part]:
    scale = vae_scale_factor(vae)
    unet_range = ProfileRange.around(plan.unet_batch, plan.height, plan.width, plan.max_batch)
    vae_range = ProfileRange.around(plan.vae_batch, plan.height, plan.width, plan.max_batch)
    return [
        Part(
            unet_spec(
                unet_range,
                in_channels=unet.config.in_channels,
                text_dim=unet.config.cross_attention_dim,
                scale=scale,
            ),
            UNetPart(unet),
            unet,
        ),
        Part(vae_encoder_spec(vae_range), VaeEncoderPart(vae), vae),
        Part(
            vae_decoder_spec(vae_range, latent_channels=vae.config.latent_channels, scale=scale),
            VaeDecoderPart(vae),
            vae,
        ),
    ]


class EngineBuilder:
    """Loads each part's engine from the store or exports and builds it; a bad cached engine is
    discarded and rebuilt once."""

    def __init__(
        self,
        trt: Any,
        store: EngineStore,
        plan: BuildPlan,
        device: torch.device,
        dtype: torch.dtype,
        *,
        progress: Progress = silent,
        capability: str | None = None,
        use_cuda_graph: bool = True,
        force: bool = False,
    ) -> None:
        self.trt, self.store, self.plan = trt, store, plan
        self.force = force
        self.device, self.dtype = device, dtype
        self.progress = progress
        self.capability = capability or compute_capability(device)
        self.use_cuda_graph = use_cuda_graph
        self.built: list[str] = []
        self._fingerprints: dict[int, str] = {}

    def key(self, part: Part) -> EngineKey:
        ident = id(part.weights)
        if ident not in self._fingerprints:
            self._fingerprints[ident] = module_fingerprint(part.weights)
        return EngineKey(
            part=part.spec.name,
            model=self._fingerprints[ident],
            profile=part.spec.profile_fields(),
            precision=self.plan.precision,
            trt_version=str(self.trt.__version__),
            compute_capability=self.capability,
            opset=OPSET,
            extra=self.plan.extra,
        )

    def build(self, part: Part, key: EngineKey) -> bytes:
        """Export to a scratch folder, build, store; the ONNX file is dropped afterwards."""
        self.progress(f"exporting {part.spec.name} to ONNX", None)
        scratch = Path(tempfile.mkdtemp(prefix=f"onnx-{part.spec.name}-", dir=self._scratch_root()))
        try:
            onnx_path = export_part(
                part.export_module, part.spec, scratch / "model.onnx", device=self.device, dtype=self.dtype
            )
            data = build_engine(
                self.trt,
                onnx_path,
                part.spec,
                precision=self.plan.precision,
                timing_cache=self.store.timing_cache_path(key.trt_version, key.compute_capability),
                progress=self.progress,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.store.save(key, data)
        self.built.append(part.spec.name)
        return data

    def _scratch_root(self) -> Path:
        root = self.store.root / "onnx"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def runner(self, part: Part) -> TrtRunner:
        key = self.key(part)
        data = None if self.force else self.store.load(key)
        if data is None:
            data = self.build(part, key)
        try:
            return TrtRunner(
                self.trt, data, self.device, use_cuda_graph=self.use_cuda_graph, copy_outputs=False
            )
        except EngineLoadError as exc:
            log.warning("cached engine %s does not load (%s); rebuilding", part.spec.name, exc)
            self.store.discard(key)
            data = self.build(part, key)
            return TrtRunner(
                self.trt, data, self.device, use_cuda_graph=self.use_cuda_graph, copy_outputs=False
            )

    def all_cached(self, parts: list[Part]) -> bool:
        return all(self.store.load(self.key(p)) is not None for p in parts)


def prepare_runners(builder: EngineBuilder, parts: list[Part]) -> dict[str, TrtRunner]:
    runners = {}
    for part in parts:
        runners[part.spec.name] = builder.runner(part)
    builder.progress("TensorRT engines ready", 1.0)
    return runners


class WithFallback:
    """A TensorRT seam that hands shapes outside its engine's profile to the torch seam.

    The UNet batch changes live (guidance crossing 1 adds the unconditional rows, prompt blends
    multiply the text rows); a batch the engine was not built for must cost speed, not a frame.
    """

    def __init__(self, name: str, fast, fallback) -> None:
        self.name, self.fast, self.fallback = name, fast, fallback
        self.rejected: set[tuple] = set()

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        shapes = tuple(tuple(a.shape) for a in args)
        if shapes not in self.rejected:
            try:
                return self.fast(*args)
            except ShapeOutsideProfile as exc:
                log.warning("%s: %s; running that shape with torch", self.name, exc)
                self.rejected.add(shapes)
        return self.fallback(*args)


def trt_seams(runners: dict[str, TrtRunner], fallback=None):
    """The engine's three seams backed by TensorRT runners; shapes outside an engine's profile go
    to `fallback` (the torch seams, same order) when given."""
    unet, encoder, decoder = runners["unet"], runners["vae_encoder"], runners["vae_decoder"]

    def unet_fn(latent: torch.Tensor, timestep: torch.Tensor, ehs: torch.Tensor) -> torch.Tensor:
        if timestep.dim() == 0:
            timestep = timestep.expand(latent.shape[0])
        return unet(sample=latent, timestep=timestep, encoder_hidden_states=ehs)["noise_pred"]

    def vae_encode_fn(images: torch.Tensor) -> torch.Tensor:
        return encoder(images=images)["latents"]

    def vae_decode_fn(latents: torch.Tensor) -> torch.Tensor:
        return decoder(latents=latents)["images"]

    seams = (unet_fn, vae_encode_fn, vae_decode_fn)
    if fallback is None:
        return seams
    names = ("unet", "vae_encoder", "vae_decoder")
    return tuple(WithFallback(n, fast, slow) for n, fast, slow in zip(names, seams, fallback, strict=True))
