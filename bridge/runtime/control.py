"""Control: the live parameters, drained from the store between frames and applied to the engine.

Runs on the engine thread (so an update never races a frame). Cheap values go to `engine.update`;
model and resolution ask the rebuild room for a new engine; a preset is applied whole or not at
all (its live values wait for the rebuild it needs, and are dropped if that rebuild fails).
Aux-source frames join here too: a fresh mask becomes a regions update, a fresh frame of the
ControlNet control source the engine's `control_image` (the engine holds it until the next).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.control.controlnet_params import CONTROL_SOURCE, ControlNetFeed
from bridge.control.params import PARAMS, ParamError
from bridge.errors import BridgeError
from engine import EngineConfig

from .engines import one_line
from .log import log

if TYPE_CHECKING:
    from .daemon import Runtime

ENGINE_FIELD_TO_PARAM: dict[str, str] = {
    p.engine_key: p.name for p in PARAMS if p.engine_key and p.name not in ("prompts", "seeds", "strength")
}
"""EngineConfig field -> the live parameter that carries it (guidance_scale -> guidance, ...)."""

PARAM_FROM_CONFIG: dict[str, Callable[[EngineConfig], Any]] = {
    name: (lambda c, f=f: getattr(c, f)) for f, name in ENGINE_FIELD_TO_PARAM.items()
}
_ENGINE_KEY = {p.name: p.engine_key for p in PARAMS}


class ControlRoom:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.live: dict[str, Any] = {}
        """Engine updates accepted so far: carried over to every rebuilt engine."""
        self.t_index = list(rt.config.t_index_list)
        self.transition_s = float(rt.store.get("transition"))
        self._mask_frame = None
        self._controlnets = ControlNetFeed()
        self._ignore: dict[str, Any] = {}
        """Values the runtime itself wrote back into the store (not requests to act on)."""
        self._start_model = rt.config.model
        """Always allowed: switching back to the model the daemon started with."""
        self.serving_preset = str(rt.store.get("preset") or "")
        """The last preset applied whole (what `preset` goes back to when one fails)."""

    # -- each frame -----------------------------------------------------------------------
    def apply(self) -> None:
        rt = self.rt
        changes = rt.store.drain()
        for name, value in list(self._ignore.items()):
            if name in changes and changes[name] == value:
                del changes[name], self._ignore[name]
        fresh_mask = rt.aux_frame("mask")
        if fresh_mask is not None:
            self._mask_frame = fresh_mask
        fresh_control = rt.aux_frame(CONTROL_SOURCE)
        if not changes and fresh_mask is None and fresh_control is None:
            return
        updates: dict[str, Any] = {}
        if fresh_control is not None:  # ControlNet: the newest control image; the engine holds it
            updates["control_image"] = fresh_control
        slots = self._controlnets.poll(changes, rt.store.snapshot())
        if slots is not None:  # ControlNet: every slot's live values as one update
            updates["controlnets"] = slots
        for name, value in changes.items():
            try:
                self._apply_one(name, value, updates)
            except Exception as exc:  # one bad control message never stops the loop
                rt.once.warn(f"control:{name}:{one_line(exc)}", f"/sd/{name}: {one_line(exc)}")
        self._poll_regions(changes, fresh_mask is not None, updates)
        self.update_engine(rt.engine, updates)

    def write_back(self, values: dict[str, Any], origin: Any) -> None:
        """Put values into the store that describe what the runtime is doing (not requests)."""
        self._ignore.update(values)
        self.rt.store.update(values, origin=origin)

    def _poll_regions(self, changes: dict[str, Any], fresh_mask: bool, updates: dict[str, Any]) -> None:
        """Region parameters and mask-source frames become one `regions=[...]` engine update."""
        rt = self.rt
        if not hasattr(rt.engine, "set_conditioning"):  # passthrough: nothing to paint with
            return
        try:
            regions = rt._regions.poll(changes, rt.store.snapshot(), self._mask_frame, fresh_mask)
        except Exception as exc:
            rt.once.warn(f"regions:{one_line(exc)}", f"regions: {one_line(exc)}")
            return
        for problem in rt._regions.problems:
            rt.once.warn(f"regions:{problem}", f"regions: {problem}")
        if regions is not None:
            updates["regions"] = regions

    def _apply_one(self, name: str, value: Any, updates: dict[str, Any]) -> None:
        rt = self.rt
        target = rt.rebuild.target
        if name == "bypass":
            rt.bypass = bool(value)
        elif name == "pause":
            rt.pause = bool(value)
        elif name == "transition":
            self.transition_s = float(value)
        elif name == "preset":
            if value:
                self.load_preset(value)
        elif name == "resolution":
            w, h = value
            if (w, h) != (target.width, target.height):
                rt.rebuild.request(width=w, height=h)
        elif name == "model":
            if value and value != target.model:  # the store's check allowed it
                rt.rebuild.request(model=value)
        else:
            key = _ENGINE_KEY.get(name)
            if key is None:
                return
            if key == "prompt":
                fps = rt._stats.fps() or rt.options.fps
                updates["transition_frames"] = int(round(self.transition_s * fps))
            updates[key] = value

    def update_engine(self, engine: Any, updates: dict[str, Any]) -> None:
        """Apply what the engine accepts; each refusal is logged once, the rest still applies."""
        if not updates:
            return
        rt = self.rt
        try:
            engine.update(**updates)
            accepted = updates
        except ValueError:
            accepted = {}
            for k, v in updates.items():  # apply what is valid, report what is not
                try:
                    engine.update(**{k: v})
                    accepted[k] = v
                except ValueError as exc:
                    rt.once.warn(f"update:{k}:{one_line(exc)}", f"engine refused {k}={v!r}: {one_line(exc)}")
        except Exception as exc:
            rt.once.warn(f"update:{one_line(exc)}", f"engine update failed: {one_line(exc)}")
            return
        self.live.update(accepted)
        if "t_index_list" in accepted:
            self.t_index = list(accepted["t_index_list"])

    def carry_over(self, engine: Any) -> None:
        """Give a freshly built engine the live values the old one had."""
        for k, v in self.live.items():
            if k == "transition_frames":
                continue
            try:
                engine.update(**{k: v})
            except Exception as exc:
                self.rt.once.warn(f"carry:{k}", f"the new engine refused {k}={v!r}: {one_line(exc)}")

    # -- store checks ---------------------------------------------------------------------
    def check_model(self, value: str) -> None:
        """`/sd/model` switches among the models the configuration and the presets name, nothing else."""
        allowed = self.allowed_models()
        if value and value not in allowed:
            raise ParamError(f"model {value!r} is not allowed here; allowed: {', '.join(sorted(allowed))}")

    def check_preset(self, name: str) -> None:
        """`/sd/preset` names a preset that exists and reads cleanly, or the sender hears why at once."""
        from bridge.presets import load_preset

        if name:
            try:
                load_preset(name, self.rt.options.presets_folder)
            except BridgeError as exc:
                raise ParamError(str(exc)) from None

    def allowed_models(self) -> set[str]:
        from bridge.presets import preset_models

        rt = self.rt
        presets = preset_models(rt.options.presets_folder)
        return {self._start_model, rt.config.model, *rt.options.allowed_models, *presets}

    # -- presets --------------------------------------------------------------------------
    def load_preset(self, name: str) -> None:
        """Apply presets/NAME.toml whole or not at all.

        Without a rebuild its live values go through the store at once. With one (another model or
        size), they wait for the new engine: applied when it swaps in, dropped (with an /sd/error
        and the store put back) when it fails, so the show never runs half a preset.
        """
        from bridge.presets import load_preset

        rt = self.rt
        preset = load_preset(name, rt.options.presets_folder)
        live = {ENGINE_FIELD_TO_PARAM[f]: v for f, v in preset.engine.items() if f in ENGINE_FIELD_TO_PARAM}
        if "transition" in preset.run:
            live["transition"] = preset.run["transition"]
        live.update(preset.run.get("regions", {}))
        live.update(preset.run.get("controlnets", {}))  # the slots' values; the nets are in preset.engine
        for k, v in live.items():  # a bad value refuses the whole preset, before anything changes
            rt.store.validate(k, v)
        target = rt.rebuild.target
        rebuild = {
            f: v
            for f, v in preset.engine.items()
            if f not in ENGINE_FIELD_TO_PARAM and getattr(target, f) != v
        }
        fit = preset.run.get("fit")

        def apply_live() -> None:
            if fit is not None:
                rt._fit = fit
            rt.store.update(live, origin="preset")
            self.serving_preset = preset.name

        if rebuild:
            rt.rebuild.request(then=(preset.name, apply_live), **rebuild)
        else:
            apply_live()
        start_only = [k for k in ("source", "sinks", "osc_port", "engine") if k in preset.run]
        log.info(
            "preset %s %s%s",
            preset.name,
            f"waits for a rebuild for {', '.join(sorted(rebuild))}" if rebuild else "loaded",
            f"; {', '.join(start_only)} apply at start only" if start_only else "",
        )
