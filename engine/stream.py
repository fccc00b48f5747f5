"""The StreamDiffusion engine: stream batch, residual CFG, similarity filter, live parameters.

Notation: n = len(t_index_list) denoising stages, f = frame_buffer_size frames per call, B = n*f latent
rows. Row i*f + j holds slot j of stage i; stage 0 holds the newest frames. Every call runs one UNet
batch that moves every in-flight latent one stage further, so the output lags the input by n-1 calls.
All coefficients are per-row tensors computed when a parameter changes; the per-frame path is the
three seams (VAE encode, UNet, VAE decode) plus a few element-wise kernels on preallocated buffers.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from typing import TYPE_CHECKING, Any

import torch

from .accel.seams import module_seams
from .conditioning import SinglePrompt, TextConditioning
from .config import EngineConfig
from .models import Models
from .noise import normalize_seed, seeded_noise
from .prompts import PromptEncoder, Transition, check_text, normalize_weighted
from .protocol import LIVE_KEYS
from .regions.conditioning import build_conditioning
from .schedule import (
    StageCoefficients,
    select,
    stage_coefficients,
    t_index_from_strength,
    validate_t_index_list,
)
from .similarity import SimilarityFilter
from .temporal import TEMPORAL_KEYS, Temporal
from .timing import StageClock

if TYPE_CHECKING:
    from .accel.graphs import Capturer, Replay

log = logging.getLogger(__name__)

CFG_TYPES = ("none", "full", "self", "initialize")
MAX_TRANSITION = 100_000


class _UNetBatch:
    """One preallocated UNet input for R latent rows: [uncond rows | G text groups of R rows].

    `x` (the R latent rows being denoised) is a view of the first text group, so the common case
    (no CFG rows, one group) hands the UNet `x` itself without a copy.
    """

    def __init__(self, rows: int, uncond_rows: int, groups: int, latent_shape, emb_shape, device, dtype):
        self.rows, self.uncond_rows, self.groups = rows, uncond_rows, groups
        total = uncond_rows + groups * rows
        self.latents = torch.zeros((total, *latent_shape), device=device, dtype=dtype)
        self.x = self.latents[uncond_rows : uncond_rows + rows]
        self.timesteps = torch.zeros(total, device=device, dtype=torch.long)
        self.embeds = torch.zeros((total, *emb_shape), device=device, dtype=dtype)

    def set_timesteps(self, row_timesteps: torch.Tensor) -> None:
        ru, r, g = self.uncond_rows, self.rows, self.groups
        self.timesteps[:ru].copy_(row_timesteps[:ru])
        self.timesteps[ru:].view(g, r).copy_(row_timesteps.expand(g, r))

    def set_text(self, group_embeds: torch.Tensor) -> None:
        ru, r, g = self.uncond_rows, self.rows, self.groups
        text = self.embeds[ru:].view(g, r, *self.embeds.shape[1:])
        text.copy_(group_embeds.unsqueeze(1).expand_as(text))

    def set_uncond(self, embeds: torch.Tensor) -> None:
        if self.uncond_rows:
            self.embeds[: self.uncond_rows].copy_(embeds.expand_as(self.embeds[: self.uncond_rows]))

    def inputs(self, guided: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latents, timesteps, embeds) for the UNet; with `guided`, the uncond rows lead."""
        ru, r, g = self.uncond_rows, self.rows, self.groups
        if g > 1:
            rest = self.latents[ru + r :].view(g - 1, r, *self.x.shape[1:])
            rest.copy_(self.x.unsqueeze(0).expand_as(rest))
        if guided and ru:
            self.latents[:ru].copy_(self.x[:ru])
            return self.latents, self.timesteps, self.embeds
        return self.latents[ru:], self.timesteps[ru:], self.embeds[ru:]


class _Rows:
    """Per-row coefficients (B, 1, 1, 1) and noise (B, 4, h, w), on the device in the engine dtype."""

    names = ("a", "neg_bc", "alpha", "k1", "neg_k2", "noise", "noise_next", "beta_noise", "alpha_in")

    def __init__(self, **tensors: torch.Tensor) -> None:
        for k in self.names:
            setattr(self, k, tensors[k])

    def slice(self, start: int, stop: int) -> _Rows:
        return _Rows(**{k: getattr(self, k)[start:stop] for k in self.names})


class StreamEngine:
    """A StreamDiffusion engine over one loaded model (see `engine.load_engine`).

    Call it with frames (N, 3, H, W) in [0, 1] (None in txt2img; N = frame_buffer_size) to get a new
    tensor of the same shape back, in [0, 1], on `device` in `dtype` (fp16 on CUDA); in stream-batch
    mode it lags the input by `lag` = len(t_index_list) - 1 calls. `update(**params)` changes live
    parameters between frames; `stats()` counts frames and skips; `reset()` empties the stream.

    Replaceable seams (acceleration swaps these; the per-frame path calls the models only through
    them, looked up on every call):

    - ``unet_fn(latents (B, 4, h, w), timesteps (B,) long, encoder_hidden_states (B, 77, D))`` returns
      the noise prediction (B, 4, h, w). B depends on cfg_type and on whether guidance > 1 (full: 2n*f
      rows, initialize: (n+1)*f, self/none: n*f; times the conditioning's groups for the text rows).
    - ``vae_encode_fn(images (N, 3, H, W) in [-1, 1])`` returns raw latents (N, 4, H/8, W/8).
    - ``vae_decode_fn(raw latents)`` returns images in [-1, 1]. The VAE scaling factor is applied by
      the engine outside these two.

    The models stay reachable as ``unet``, ``vae``, ``text_encoder`` (and ``tokenizer``, ``scheduler``).
    With ``profile = True`` each call leaves ``last_timings`` = ms of "encode", "unet", "decode",
    "total" (synchronising CUDA around each stage); with it off nothing is timed.

    Live parameters take effect atomically between frames (a lock serialises `update` and calls).
    """

    def __init__(self, models: Models, config: EngineConfig) -> None:
        self.config = config.with_changes()
        self.models = models
        self.unet, self.vae, self.text_encoder = models.unet, models.vae, models.text_encoder
        self.tokenizer, self.scheduler = models.tokenizer, models.scheduler
        self.device, self.dtype = models.device, models.dtype
        self._cuda = self.device.type == "cuda"
        self._check_config(config)
        self.width, self.height = config.width, config.height
        self.frame_buffer_size = config.frame_buffer_size
        self.cfg_type = config.cfg_type
        self.mode = config.mode
        self.num_inference_steps = config.num_inference_steps
        self.do_add_noise = config.do_add_noise
        self.use_denoising_batch = config.use_denoising_batch
        factor = _vae_downscale(self.vae)
        self.latent_shape = (4, config.height // factor, config.width // factor)
        self._frame_shape = torch.Size((config.frame_buffer_size, 3, config.height, config.width))
        scaling = models.vae_scaling_factor
        self._scaling, self._inv_scaling = scaling, 1.0 / scaling

        # Closures over the models, not bound methods: a bound method stored on the engine is a
        # reference cycle, and a replaced engine would wait for a full gc to free its memory.
        self.unet_fn, self.vae_encode_fn, self.vae_decode_fn = module_seams(self.unet, self.vae)
        self.profile = False
        self.last_timings: dict[str, float] = {}
        self.step_capturer: Capturer | None = None
        """Set (e.g. to `engine.accel.graphs.CudaGraphCapturer()`) to replay the whole `_step` as one
        CUDA graph per (input shape, CFG rows on/off, buffer layout, seams); None: the eager step."""
        self._step_graphs: OrderedDict[tuple, Replay | None] = OrderedDict()
        self._stage_clock = StageClock(self.device)

        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self.encode_in_background = False
        """With True, an update whose texts are not encoded yet returns at once: its other values
        apply now, its prompt / negative prompt / regions once a worker thread has encoded them
        (the daemon sets this, so the engine thread never runs the text encoder)."""
        self._encoder_thread: ThreadPoolExecutor | None = None
        self.background_error: str | None = None
        self._encoder = PromptEncoder(self.tokenizer, self.text_encoder, self.device, self.dtype)
        self._conditioning: TextConditioning = SinglePrompt()
        live = self._validate(
            {
                "prompt": config.prompt,
                "negative_prompt": config.negative_prompt,
                "guidance_scale": config.guidance_scale,
                "delta": config.delta,
                "seed": config.seed,
                "t_index_list": list(config.t_index_list),
                "similarity_filter": config.similarity_filter,
                "similarity_threshold": config.similarity_threshold,
                "max_skip_frame": config.max_skip_frame,
                "transition_frames": config.transition_frames,
                "transition_curve": config.transition_curve,
            }
        )
        self.guidance_scale = live["guidance_scale"]
        self.delta = live["delta"]
        self.seed = live["seed"]
        self.prompt = live["prompt"]
        self.negative_prompt = live["negative_prompt"]
        self.similarity_filter = live["similarity_filter"]
        self.transition_frames = live["transition_frames"]
        self.transition_curve = live["transition_curve"]
        self._filter = SimilarityFilter(
            live["similarity_threshold"], live["max_skip_frame"], seed=config.seed
        )
        # Live scalars of the step held on the device (updated in place): the step never reads a
        # Python float that changes, so a captured graph or a compiled step stays valid.
        self._g = torch.zeros((), device=self.device, dtype=self.dtype)
        self._one_minus_g = torch.zeros_like(self._g)
        self._residual_scale = torch.zeros_like(self._g)
        self._half = torch.full((), 0.5, device=self.device, dtype=self.dtype)
        self._minus_one = torch.full((), -1.0, device=self.device, dtype=self.dtype)
        self._set_guidance()
        self._transition = Transition(self._encoder.blend(self.prompt))
        self._negative_embeds = self._encoder.encode(self.negative_prompt)
        self._noise_gen = torch.Generator(device=self.device)
        self._counters = {"frames": 0, "skipped": 0, "calls": 0, "unet_calls": 0}
        # Every index's scheduler coefficients, once: a live t_index change only picks rows of it.
        steps = self.num_inference_steps
        self._table = stage_coefficients(self.scheduler, range(steps), steps)
        # temporal stability (issue 18): latent feedback and cached attention, see engine/temporal
        self._temporal = Temporal(
            self.unet, self.frame_buffer_size, self.latent_shape, self.device, self.dtype, self._inv_scaling
        )
        self._temporal.apply(
            self._validate({k: getattr(config, k) for k in TEMPORAL_KEYS if hasattr(config, k)})
        )
        self._controlnets = None  # ControlNet (issue 17): an engine.controlnet.ControlNetStack
        self._build(live["t_index_list"])

    # -- building ------------------------------------------------------------------------------
    def _check_config(self, c: EngineConfig) -> None:
        for side, v in (("width", c.width), ("height", c.height)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 64 or v % 8:
                raise ValueError(f"{side} must be a multiple of 8 and at least 64, got {v!r}")
        if not isinstance(c.frame_buffer_size, int) or not 1 <= c.frame_buffer_size <= 64:
            raise ValueError(f"frame_buffer_size must be an integer in [1, 64], got {c.frame_buffer_size!r}")
        if c.cfg_type not in CFG_TYPES:
            raise ValueError(f"cfg_type must be one of {', '.join(CFG_TYPES)}, got {c.cfg_type!r}")
        if c.mode not in ("img2img", "txt2img"):
            raise ValueError(f"mode must be img2img or txt2img, got {c.mode!r}")
        most = int(getattr(self.scheduler.config, "original_inference_steps", 50))
        if not isinstance(c.num_inference_steps, int) or not 1 <= c.num_inference_steps <= most:
            raise ValueError(f"num_inference_steps must be in [1, {most}], got {c.num_inference_steps!r}")

    def _build(self, t_index_list: list[int]) -> None:
        """(Re)allocate every buffer for this many stages; the stream restarts from empty."""
        f = self.frame_buffer_size
        self.t_index_list = list(t_index_list)
        self._n = n = len(t_index_list)
        self._stage = select(self._table, t_index_list)
        self._stage_noise = seeded_noise(self.seed, (n, *self.latent_shape))
        self._rows_buf: torch.Tensor | None = None  # a new stage count: new row shapes
        self._rows = self._make_rows()
        self._stage_rows = [self._rows.slice(i * f, (i + 1) * f) for i in range(n)]
        self._batch = None
        self._alloc_batches()
        self._stock = torch.zeros((n * f, *self.latent_shape), device=self.device, dtype=self.dtype)
        if n > 1:
            self._stock[:f].copy_(self._rows.noise[:f])
        self._stock_next = torch.zeros_like(self._stock)
        self._seq_stock = torch.zeros((f, *self.latent_shape), device=self.device, dtype=self.dtype)
        self._x0 = torch.zeros_like(self._stock)
        self._eps = torch.zeros_like(self._stock)
        self._noise_gen.manual_seed(normalize_seed(self.seed)[0][0])
        self._last: torch.Tensor | None = None
        self._force = n
        self._temporal.reset()  # issue 18: a restarted stream blends and attends to nothing old
        if self._controlnets is not None:  # ControlNet: per-row control images follow the stages
            self._controlnets.layout(n, f)

    def _alloc_batches(self) -> None:
        f, n, g = self.frame_buffer_size, self._n, self._conditioning.groups
        emb_shape = self._transition.current.shape[1:]
        old = getattr(self, "_batch", None)
        ru = {"full": n * f, "initialize": f}.get(self.cfg_type, 0)
        self._batch = _UNetBatch(n * f, ru, g, self.latent_shape, emb_shape, self.device, self.dtype)
        self._step_graphs.clear()  # new buffers: graphs captured on the old ones are stale
        if old is not None and old.x.shape == self._batch.x.shape:
            self._batch.x.copy_(old.x)  # keep the in-flight frames
        self._stages = []
        for i in range(n):
            ru_i = f if self.cfg_type == "full" or (self.cfg_type == "initialize" and i == 0) else 0
            self._stages.append(_UNetBatch(f, ru_i, g, self.latent_shape, emb_shape, self.device, self.dtype))
        self._write_timesteps()
        self._write_text(self._transition.current)
        self._write_uncond()

    def _make_rows(self) -> _Rows:
        st: StageCoefficients = self._stage
        f = self.frame_buffer_size
        one = torch.ones(1, dtype=torch.float64)
        a = st.c_out / st.alpha + st.c_skip
        bc = st.c_out * st.beta / st.alpha
        ratio = torch.cat([st.alpha[1:], one]) / torch.cat([st.beta[1:], one])
        noise = self._stage_noise.repeat_interleave(f, 0)
        beta_noise = _per_row(st.beta, f) * noise
        if not self.do_add_noise:
            beta_noise[f:] = 0  # the stage-0 noising of a new frame always happens
        rows = {
            "a": _per_row(a, f),
            "neg_bc": _per_row(-bc, f),
            "alpha": _per_row(st.alpha, f),
            "k1": _per_row(ratio * a * st.beta, f),
            "neg_k2": _per_row(-ratio * bc, f),
            "noise": noise,
            "noise_next": self._stage_noise.roll(-1, 0).repeat_interleave(f, 0),
            "beta_noise": beta_noise,
            "alpha_in": _per_row(st.alpha * self._scaling, f),  # noising of fresh raw VAE latents
        }
        return self._upload_rows(rows)

    def _upload_rows(self, rows: dict[str, torch.Tensor]) -> _Rows:
        """All row tensors as views of one device buffer, filled by one upload: on CUDA from pinned
        memory without blocking (a t_index or seed change costs no host sync). The first call
        allocates the buffer; later ones (`_refresh_rows`) overwrite it in place, so every view and
        any captured graph stays valid."""
        host = torch.cat([v.to(self.dtype).reshape(-1) for v in rows.values()])
        buf = self._rows_buf
        if buf is None or buf.shape != host.shape:
            buf = self._rows_buf = torch.empty(host.shape, device=self.device, dtype=self.dtype)
        if self._cuda:
            buf.copy_(host.pin_memory(), non_blocking=True)
        else:
            buf.copy_(host)
        views, at = {}, 0
        for k, v in rows.items():
            views[k] = buf[at : at + v.numel()].view(v.shape)
            at += v.numel()
        return _Rows(**views)

    def _write_timesteps(self) -> None:
        f = self.frame_buffer_size
        rows = self._stage.timesteps.repeat_interleave(f)
        rows = rows.pin_memory().to(self.device, non_blocking=True) if self._cuda else rows
        if self.use_denoising_batch:
            self._batch.set_timesteps(rows)
            return
        for i, b in enumerate(self._stages):
            b.set_timesteps(rows[i * f : (i + 1) * f])

    def _batches_in_use(self) -> tuple[_UNetBatch, ...]:
        """The UNet batches this engine's mode feeds (the others are never read)."""
        return (self._batch,) if self.use_denoising_batch else tuple(self._stages)

    def _write_text(self, prompt_embeds: torch.Tensor) -> None:
        groups = self._conditioning.embeds(prompt_embeds)
        for b in self._batches_in_use():
            b.set_text(groups)

    def _write_uncond(self) -> None:
        for b in self._batches_in_use():
            b.set_uncond(self._negative_embeds)

    # -- the hot path --------------------------------------------------------------------------
    def _set_guidance(self) -> None:
        """Refresh the guidance scalars on the device and the host flag that picks the batch shape."""
        g = self.guidance_scale
        self._guided = self.cfg_type != "none" and g > 1.0
        self._g.fill_(g)
        self._one_minus_g.fill_(1.0 - g)
        self._residual_scale.fill_((1.0 - g) * self.delta)

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor | None = None) -> torch.Tensor:
        with self._lock:
            return self._frame(frames)

    def _frame(self, frames: torch.Tensor | None) -> torch.Tensor:
        """One call: validation, the similarity filter and a transition's text rows around `_step`.

        Nothing here reads a device value back: the filter decides from a similarity read one frame
        late (see `SimilarityFilter`), and `_last`/`_force` are host state, so around `_step` (the
        part that can be captured) there are only host branches and a few queued kernels.
        """
        f = self.frame_buffer_size
        images = None
        if self.mode != "txt2img":
            images = self._images(frames)
            skip_ok = self._last is not None and self._force == 0
            if self.similarity_filter and self._filter.should_skip(images, allow=skip_ok):
                self._counters["frames"] += f
                self._counters["skipped"] += f
                if self.profile:
                    self.last_timings = {"encode": 0.0, "unet": 0.0, "decode": 0.0, "total": 0.0}
                return self._last
        if self._transition.active:  # in place: the text rows keep their addresses
            self._write_text(self._transition.advance())
        self._temporal.begin_frame()  # issue 18: the cached attention's frame clock
        if self._controlnets is not None:  # ControlNet: this call's frames' control images enter stage 0
            self._controlnets.push(frames)
        clock = self._stage_clock if self.profile else None
        if clock is not None:
            clock.start()
        if self.step_capturer is not None and clock is None and images is not None:
            out = self._graphed_step(images)
        else:
            out = self._step(images, clock)
        if clock is not None:
            self.last_timings = clock.finish() or self.last_timings
        self._last = out
        self._counters["frames"] += f
        self._counters["calls"] += 1
        # Counted here, not in `_step`: a host counter there is a dynamo guard that changes every frame.
        self._counters["unet_calls"] += 1 if self.use_denoising_batch else self._n
        if self._force:
            self._force -= 1
        return out

    def _graphed_step(self, images: torch.Tensor) -> torch.Tensor:
        """`_step` through a captured graph. A graph is only valid for the buffers, the CFG layout
        and the seams it was captured with, so all three are part of its key (buffers: the graphs
        are dropped whenever `_alloc_batches` reallocates). The first frame of a new key runs the
        capturer's warm-up calls too (the stream advances on that frame a few extra steps); a
        capture that fails is remembered and that key runs eagerly."""
        seams = (id(self.unet_fn), id(self.vae_encode_fn), id(self.vae_decode_fn))
        key = (tuple(images.shape), images.dtype, self._guided, seams)
        if key not in self._step_graphs:
            engine = weakref.ref(self)  # a graph must not keep its engine alive (no reference cycle)

            def step(x: torch.Tensor) -> torch.Tensor:
                return engine()._step(x)

            try:
                self._step_graphs[key] = self.step_capturer(step, [images])
            except Exception as exc:  # an optimisation: serve the frame without it
                log.warning("capturing the engine step failed, running it eagerly: %s", exc)
                self._step_graphs[key] = None
            while len(self._step_graphs) > 4:
                self._step_graphs.popitem(last=False)
        replay = self._step_graphs[key]
        self._step_graphs.move_to_end(key)
        return self._step(images) if replay is None else replay([images])

    def _step(self, images: torch.Tensor | None, clock: StageClock | None = None) -> torch.Tensor:
        """The per-frame device work: encode and noise the new frames, one denoising step, decode.

        It reads and writes only buffers allocated by `_build` (addresses stable across frames) and
        live values held in device tensors, never a host value that changes between frames, so it
        can be compiled or captured whole (tests: dynamo sees no graph break, no recompile).
        """
        f = self.frame_buffer_size
        entry = self._batch.x[:f] if self.use_denoising_batch else self._stages[0].x
        if images is None:
            entry.normal_(generator=self._noise_gen)
        else:
            latents = self._temporal.entry(self.vae_encode_fn(images))  # issue 18: latent feedback
            torch.addcmul(self._rows.beta_noise[:f], self._rows.alpha_in[:f], latents, out=entry)
        if clock is not None:
            clock.mark("encode")
        x0 = self._denoise_batch() if self.use_denoising_batch else self._denoise_sequential()
        self._temporal.end_frame(x0)  # x0 stays untouched until the next frame's entry is made
        if clock is not None:
            clock.mark("unet")
        decoded = self.vae_decode_fn(x0 if self._inv_scaling == 1.0 else x0 * self._inv_scaling)
        # 0.5 + 0.5 * x in one kernel: the halving is exact, so this rounds once, as mul + add did.
        out = torch.add(self._half, decoded, alpha=0.5).clamp_(0.0, 1.0)
        if clock is not None:
            clock.mark("decode")
        return out

    def _images(self, frames: torch.Tensor | None) -> torch.Tensor:
        if frames is None:
            raise ValueError("img2img needs frames; pass a (N, 3, H, W) tensor (None is for txt2img)")
        if not isinstance(frames, torch.Tensor) or frames.shape != self._frame_shape:
            got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames must be a tensor shaped {tuple(self._frame_shape)}, got {got}")
        if not frames.is_floating_point():
            raise ValueError(f"frames must be floats in [0, 1], got dtype {frames.dtype}")
        # 2x - 1 in one kernel: the doubling is exact, so this rounds once, as mul + sub did.
        return torch.add(self._minus_one, frames.to(device=self.device, dtype=self.dtype), alpha=2.0)

    def _denoise_batch(self) -> torch.Tensor:
        """One UNet call over all n*f rows; returns the finished x0 of the oldest f frames."""
        b, r, f, n = self._batch, self._rows, self.frame_buffer_size, self._n
        guided = self._guided
        pred = self._predict(b, guided, 0)
        eps = self._guide(pred, b, self._stock, guided, self._eps)
        x = b.x
        x0 = torch.mul(x, r.a, out=self._x0).addcmul_(r.neg_bc, eps)
        if self.cfg_type in ("self", "initialize"):
            # The new residuals go through a scratch buffer and back into `_stock`, so both keep
            # their addresses (a captured step replays into the same pair every frame).
            stock, nxt = self._stock, self._stock_next
            if n > 1:  # row i's residual noise follows its latent into row i + f
                torch.addcmul(r.noise_next[:-f], r.k1[:-f], stock[:-f], out=nxt[f:])
                nxt[f:].addcmul_(r.neg_k2[:-f], eps[:-f])
                stock[f:].copy_(nxt[f:])
                stock[:f].copy_(r.noise[:f])
            else:  # one stage: the residual carries over to the next frame, as in the reference
                torch.addcmul(r.noise_next, r.k1, stock, out=nxt).addcmul_(r.neg_k2, eps)
                stock.copy_(nxt)
        if n > 1:
            torch.addcmul(r.beta_noise[f:], r.alpha[f:], x0[:-f], out=x[f:])
        return x0[-f:]

    def _denoise_sequential(self) -> torch.Tensor:
        """The same steps one stage at a time (n UNet calls): the baseline stream batch beats."""
        n, guided = self._n, self._guided
        uses_stock = self.cfg_type in ("self", "initialize")
        stock = self._seq_stock if n == 1 else self._stage_rows[0].noise.clone()
        x0 = self._x0
        for i, b in enumerate(self._stages):
            r = self._stage_rows[i]
            self._temporal.stream(i)  # issue 18: each stage has its own attention cache
            pred = self._predict(b, guided, i * self.frame_buffer_size)
            eps = self._guide(pred, b, stock, guided, None)
            x0 = torch.addcmul(b.x * r.a, r.neg_bc, eps)
            if uses_stock:
                stock = torch.addcmul(r.noise_next, r.k1, stock).addcmul_(r.neg_k2, eps)
            if i + 1 < n:
                nr = self._stage_rows[i + 1]
                torch.addcmul(nr.beta_noise, nr.alpha, x0, out=self._stages[i + 1].x)
        if n == 1 and uses_stock:
            self._seq_stock = stock
        return x0

    def _predict(self, b: _UNetBatch, guided: bool, first_row: int) -> torch.Tensor:
        """The UNet seam, or (ControlNet, issue 17) the UNet with the live nets' residuals added."""
        cn = self._controlnets
        if cn is None or not cn.active:
            return self.unet_fn(*b.inputs(guided))
        ru = b.uncond_rows if guided else 0
        return cn.predict(
            self.unet, *b.inputs(guided), rows=b.rows, uncond_rows=ru, groups=b.groups, first_row=first_row
        )

    def _guide(self, pred, b: _UNetBatch, stock, guided: bool, out) -> torch.Tensor:
        """Turn the UNet output into the guided noise estimate eps (residual CFG)."""
        ru = b.uncond_rows if guided else 0
        text = pred[ru:] if ru else pred
        if b.groups > 1:
            text = self._conditioning.fuse(text.view(b.groups, b.rows, *text.shape[1:]))
        if not guided:
            return text
        g = self._g
        if self.cfg_type == "full":
            return torch.mul(text, g, out=out).addcmul_(pred[:ru], self._one_minus_g)
        if ru:  # initialize: the stage-0 rows' residual is their real unconditional prediction
            stock[:ru].copy_(pred[:ru])
        return torch.mul(text, g, out=out).addcmul_(stock, self._residual_scale)

    # -- live parameters -----------------------------------------------------------------------
    def update(self, **params: Any) -> None:
        """Change live parameters; all are validated before any is applied (a bad one changes nothing).

        Keys: prompt (text or [(text, weight), ...]), negative_prompt, guidance_scale, delta,
        seed (int or [(seed, weight), ...]), t_index_list (same length: new coefficients; another
        length: the stream restarts), strength (0..1, mapped onto t_index_list keeping its length),
        similarity_filter, similarity_threshold, max_skip_frame, transition_frames, transition_curve,
        regions (list of `engine.regions.Brush` or dicts; [] or None: one prompt for the whole frame),
        feedback (0..1), cache_attention, cache_frames (1..8), cache_interval (see engine/temporal),
        controlnets (a list of dicts of live values per ControlNet slot: scale, enabled, preprocessor,
        start, end, canny_low, canny_high), control_image (an external control image, held until the next).
        """
        unknown = sorted(set(params) - set(LIVE_KEYS))
        if unknown:
            raise ValueError(
                f"unknown engine parameter(s) {', '.join(unknown)}; known: {', '.join(LIVE_KEYS)}"
            )
        if "strength" in params and "t_index_list" in params:
            raise ValueError("give t_index_list or strength, not both")
        live = self._validate(params)
        cn = self._controlnets  # ControlNet: validated (and a depth model loaded) off the frame lock
        cn_update = cn.prepare(params) if cn is not None else _no_controlnets(params)
        text_keys = {"prompt", "negative_prompt"} & set(live) | ({"regions"} & set(params))
        if self.encode_in_background and text_keys and not self._all_cached(live, params):
            now = {k: v for k, v in live.items() if k not in text_keys}
            later = {k: v for k, v in live.items() if k in text_keys}
            if now or cn_update is not None:
                self._apply_update(now, {}, cn, cn_update)
            self._prompt_worker().submit(self._apply_update_logged, later, params)
            return
        self._apply_update(live, params, cn, cn_update)

    def _apply_update(
        self, live: dict[str, Any], params: dict[str, Any], cn: Any = None, cn_update: Any = None
    ) -> None:
        with self._encode_lock:
            target = self._encoder.blend(live["prompt"]) if "prompt" in live else None
            negative = self._encoder.encode(live["negative_prompt"]) if "negative_prompt" in live else None
            regional = self._regional(params["regions"]) if "regions" in params else None
        with self._lock:
            self._apply(live, target, negative)
            if regional is not None:
                self._swap_conditioning(regional)
                self._force = max(self._force, self._n)
            if cn_update is not None and cn is self._controlnets and cn.commit(cn_update):
                self._force = max(self._force, self._n)

    def _apply_update_logged(self, live: dict[str, Any], params: dict[str, Any]) -> None:
        try:
            self._apply_update(live, params)
        except Exception as exc:  # validated already: only the encoder itself can fail here
            self.background_error = f"{type(exc).__name__}: {exc}"
            log.error("prompt update failed on the encoder thread: %s", self.background_error)

    def _all_cached(self, live: dict[str, Any], params: dict[str, Any]) -> bool:
        """True when every text of the update is encoded already (then applying it is instant)."""
        if "regions" in params and params["regions"]:
            return False
        texts = [t for t, _ in normalize_weighted(live["prompt"], "prompt", str)] if "prompt" in live else []
        if "negative_prompt" in live:
            texts.append(live["negative_prompt"])
        return all(self._encoder.cached(t) for t in texts)

    def _prompt_worker(self) -> ThreadPoolExecutor:
        if self._encoder_thread is None:  # one thread: prompt updates land in the order they came
            self._encoder_thread = ThreadPoolExecutor(1, thread_name_prefix="prompt-encoder")
        return self._encoder_thread

    def wait_for_updates(self, timeout: float | None = None) -> bool:
        """Wait until every prompt update handed to the encoder thread has been applied."""
        if self._encoder_thread is None:
            return True
        done = self._encoder_thread.submit(lambda: None)
        try:
            done.result(timeout)
        except TimeoutError:
            return False
        return True

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in params.items():
            if key == "prompt":
                pairs = normalize_weighted(value, "prompt", str)
                for text, _ in pairs:
                    check_text(text, "prompt")
                out[key] = value if isinstance(value, str) else [tuple(p) for p in value]
            elif key == "negative_prompt":
                out[key] = check_text(value, "negative_prompt")
            elif key in ("guidance_scale", "delta"):
                out[key] = _number(key, value, 0.0, 100.0)
            elif key == "seed":
                pairs = normalize_seed(value)
                out[key] = value if isinstance(value, int) else [tuple(p) for p in value]
                del pairs
            elif key == "t_index_list":
                out[key] = validate_t_index_list(value, self.num_inference_steps)
            elif key == "strength":
                s = _number(key, value, 0.0, 1.0)
                n = len(self.t_index_list)
                out["t_index_list"] = t_index_from_strength(s, n, self.num_inference_steps)
            elif key == "similarity_filter":
                if value not in (True, False, 0, 1):
                    raise ValueError(f"similarity_filter must be true or false, got {value!r}")
                out[key] = bool(value)
            elif key == "similarity_threshold":
                out[key] = _number(key, value, 0.0, 1.0)
            elif key in ("max_skip_frame", "transition_frames"):
                out[key] = int(_number(key, value, 0, MAX_TRANSITION, integral=True))
            elif key == "transition_curve":
                if value not in ("linear", "slerp"):
                    raise ValueError(f"transition_curve must be linear or slerp, got {value!r}")
                out[key] = value
            elif key in TEMPORAL_KEYS:  # issue 18
                out[key] = self._temporal.validate(key, value)
                if key == "cache_attention" and out[key]:
                    self._check_cache_backend()
        return out

    def _apply(self, live: dict[str, Any], target, negative) -> None:
        changes_output = self._temporal.apply(live)  # issue 18: feedback, cached attention
        if "transition_frames" in live:
            self.transition_frames = live["transition_frames"]
        if "transition_curve" in live:
            self.transition_curve = live["transition_curve"]
        if "similarity_filter" in live:
            self.similarity_filter = live["similarity_filter"]
            self._filter.reset()
        if "similarity_threshold" in live:
            self._filter.threshold = live["similarity_threshold"]
        if "max_skip_frame" in live:
            self._filter.max_skip_frame = live["max_skip_frame"]
        if "guidance_scale" in live:
            self.guidance_scale = live["guidance_scale"]
            changes_output = True
        if "delta" in live:
            self.delta = live["delta"]
            changes_output = True
        if "guidance_scale" in live or "delta" in live:
            self._set_guidance()
        if "t_index_list" in live and live["t_index_list"] != self.t_index_list:
            changes_output = True
            if len(live["t_index_list"]) != self._n:
                if "seed" in live:
                    self.seed = live.pop("seed")
                self._build(live["t_index_list"])
            else:
                self.t_index_list = live["t_index_list"]
                self._stage = select(self._table, self.t_index_list)
                self._refresh_rows()
                self._write_timesteps()
        if "seed" in live:
            self.seed = live["seed"]
            self._stage_noise = seeded_noise(self.seed, (self._n, *self.latent_shape))
            self._noise_gen.manual_seed(normalize_seed(self.seed)[0][0])
            self._refresh_rows()
            changes_output = True
        if negative is not None:
            self.negative_prompt = live["negative_prompt"]
            self._negative_embeds = negative
            self._write_uncond()
            changes_output = True
        if target is not None:
            self.prompt = live["prompt"]
            self._transition.retarget(target, self.transition_frames, self.transition_curve)
            if not self._transition.active:
                self._write_text(self._transition.current)
            changes_output = True
        if changes_output:  # let the new look through even if the input stands still
            self._force = self._n + (self.transition_frames if target is not None else 0)

    # -- ControlNet (issue 17) -------------------------------------------------------------------
    @property
    def controlnets(self):
        """The `engine.controlnet.ControlNetStack` in use, or None."""
        return self._controlnets

    def set_controlnets(self, stack) -> None:
        """Use a `ControlNetStack` (None: no ControlNet); its control images restart empty."""
        with self._lock:
            if stack is not None:
                stack.layout(self._n, self.frame_buffer_size)
            self._controlnets = stack
            self._force = max(self._force, self._n)

    def _refresh_rows(self) -> None:
        self._make_rows()  # refills `_rows_buf` in place: views and captured buffers stay valid

    # -- extension points & misc ---------------------------------------------------------------
    @property
    def conditioning(self) -> TextConditioning:
        return self._conditioning

    def set_conditioning(self, conditioning: TextConditioning) -> None:
        """Swap how text rows are built and fused (regional prompts); in-flight frames are kept."""
        if not isinstance(conditioning, TextConditioning) or conditioning.groups < 1:
            raise ValueError("conditioning must provide groups >= 1, embeds() and fuse()")
        with self._lock:
            self._swap_conditioning(conditioning)

    def _swap_conditioning(self, conditioning: TextConditioning) -> None:
        old = self._conditioning
        self._conditioning = conditioning
        self._temporal.set_conditioning(conditioning)  # issue 18: each brush's own feedback
        if conditioning.groups == old.groups:  # same batch layout: only the text rows change
            self._write_text(self._transition.current)
            return
        try:
            self._alloc_batches()
        except Exception:
            self._conditioning = old
            self._temporal.set_conditioning(old)
            self._alloc_batches()
            raise

    def _regional(self, regions: Any) -> TextConditioning:
        """Regional prompts (StreamMultiDiffusion) as a conditioning; validates and encodes them."""
        h, w = self.latent_shape[1:]
        return build_conditioning(
            regions, self._encoder.encode, (h, w), self.device, self.dtype, self.height // h
        )

    @property
    def prompt_embeds(self) -> torch.Tensor:
        """The prompt embeddings (1, 77, D) the last frame used (mid-transition: the blend)."""
        return self._transition.current

    @property
    def lag(self) -> int:
        """Calls between a frame going in and its result coming out."""
        return self._n - 1 if self.use_denoising_batch else 0

    def reset(self) -> None:
        """Empty the stream (in-flight frames, residuals, filter) keeping every parameter."""
        with self._lock:
            self._build(self.t_index_list)
            self._filter.reset()

    def _check_cache_backend(self) -> None:
        """Cached attention lives in the torch UNet's processors (issue 18): a TensorRT engine
        bypasses them, and a CUDA-graph replay would freeze the cache's length at capture time."""
        from .accel.graphs import GraphedFn

        status = getattr(self, "accel_status", None)
        if status is not None and getattr(status, "active", None) == "tensorrt":
            raise ValueError("cache_attention isn't exported to TensorRT yet; use --accel torch for it")
        if isinstance(self.unet_fn, GraphedFn):
            raise ValueError("cache_attention can't run inside CUDA graphs yet; use --accel torch for it")

    def settle_temporal_backend(self) -> str | None:
        """After acceleration is applied: switch a configured cache off if the backend can't run it.

        Returns why (for a one-line warning), or None when all is well.
        """
        if not self._temporal.cache_attention:
            return None
        try:
            self._check_cache_backend()
        except ValueError as exc:
            with self._lock:
                self._temporal.apply({"cache_attention": False})
            return str(exc)
        return None

    def stats(self) -> dict[str, Any]:
        return {
            **self._counters,
            **self._temporal.stats(),
            "prompt_encodes": self._encoder.encode_count,
            "lag": self.lag,
            "t_index_list": list(self.t_index_list),
            "cfg_type": self.cfg_type,
            "guidance_scale": self.guidance_scale,
            "unet_batch": self._unet_batch_size(),
            **(self._controlnets.stats() if self._controlnets is not None else {}),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def _unet_batch_size(self) -> int:
        b = self._batch if self.use_denoising_batch else self._stages[0]
        return (b.uncond_rows if self._guided else 0) + b.groups * b.rows


def _no_controlnets(params: dict[str, Any]) -> None:
    """Without nets, ControlNet values are accepted and ignored (a rebuild may bring nets)."""
    if "controlnets" in params and not isinstance(params["controlnets"], (list, tuple)):
        raise ValueError("controlnets must be a list of dicts of live values")


def _per_row(values: torch.Tensor, f: int) -> torch.Tensor:
    return values.repeat_interleave(f).view(-1, 1, 1, 1)


def _vae_downscale(vae) -> int:
    cfg = vae.config
    blocks = getattr(cfg, "block_out_channels", None) or getattr(cfg, "encoder_block_out_channels", None)
    return 2 ** (len(blocks) - 1) if blocks else 8


def _number(key: str, value: Any, lo: float, hi: float, integral: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    if integral and value != int(value):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{key} must be in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)
