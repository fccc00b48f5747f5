"""Running a serialized engine with TensorRT's name-based tensor API, on torch's CUDA stream.

Buffers are allocated once per input-shape set and reused every frame; with CUDA graphs on, the
engine's launch is captured once per shape set and replayed. Inputs are copied into the static
buffers (casting dtype on the way), so callers pass whatever they have.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..graphs import StaticInputs

log = logging.getLogger(__name__)

TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "BOOL": torch.bool,
}


class EngineLoadError(RuntimeError):
    """The plan could not be deserialized (corrupt, or built by another TensorRT or GPU)."""


class ShapeOutsideProfile(ValueError):
    """An input shape the engine was not built for (its caller can fall back to torch)."""


class TrtRunner:
    """One engine, one execution context, static I/O buffers."""

    def __init__(
        self,
        trt: Any,
        plan: bytes,
        device: torch.device,
        *,
        use_cuda_graph: bool = True,
        copy_outputs: bool = True,
    ) -> None:
        self.trt = trt
        self.device = device
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineLoadError("TensorRT could not deserialize the engine")
        # Device memory sized for the shapes actually in use, not the profile's maximum (batch 8 at
        # 1024x1024 would reserve gigabytes for a 512x512 show): TensorRT 10+'s user-managed strategy.
        strategy = getattr(trt, "ExecutionContextAllocationStrategy", None)
        self.user_memory = strategy is not None and hasattr(strategy, "USER_MANAGED")
        if self.user_memory:
            self.context = self.engine.create_execution_context(strategy.USER_MANAGED)
        else:
            self.context = self.engine.create_execution_context()
        self.workspace: torch.Tensor | None = None
        if self.context is None:
            raise EngineLoadError("TensorRT could not create an execution context (out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self.dtypes = {n: TORCH_DTYPES[self.engine.get_tensor_dtype(n).name] for n in names}
        self.use_cuda_graph = use_cuda_graph and device.type == "cuda"
        self.copy_outputs = copy_outputs
        self.buffers: dict[str, torch.Tensor] = {}
        self.shapes: tuple | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.allocations = 0

    def _stream_handle(self) -> int:
        return torch.cuda.current_stream(self.device).cuda_stream if self.device.type == "cuda" else 0

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self._stream_handle()):
            raise RuntimeError("TensorRT execution failed")

    def _prepare(self, shapes: tuple) -> None:
        """Set input shapes, allocate every buffer, bind addresses, and capture a graph if enabled."""
        self.graph = None
        self.shapes = None  # until fully prepared: a rejected shape leaves nothing half-set behind
        for name, shape in zip(self.inputs, shapes, strict=True):
            if not self.context.set_input_shape(name, shape):
                raise ShapeOutsideProfile(f"input {name} of shape {shape} is outside the engine's profile")
        # Normal (not inference-mode) tensors: the buffers are written in place on every call,
        # whether or not the caller runs under torch.inference_mode().
        with torch.inference_mode(False):
            if self.user_memory:
                size = int(self.context.update_device_memory_size_for_shapes())
                self.workspace = torch.empty(max(size, 1), dtype=torch.uint8, device=self.device)
                try:
                    self.context.set_device_memory(self.workspace.data_ptr(), size)
                except TypeError:  # TensorRT 10.0's binding takes the address only
                    self.context.set_device_memory(self.workspace.data_ptr())
            self.buffers = {}
            for name in self.inputs + self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                self.buffers[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
                self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        self.allocations += 1
        self._inputs = StaticInputs([self.buffers[n] for n in self.inputs])
        self.shapes = shapes
        if self.use_cuda_graph:
            self._capture()

    def _capture(self) -> None:
        # TensorRT does shape-dependent setup on the first launch after a shape change; run it
        # outside the capture, then record one launch on a capture stream.
        self._execute()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._execute()
        except Exception as exc:
            log.warning("TensorRT launch could not be captured in a CUDA graph; running without: %s", exc)
            self.use_cuda_graph = False
            return
        self.graph = graph

    def __call__(self, **feeds: torch.Tensor) -> dict[str, torch.Tensor]:
        shapes = tuple(tuple(feeds[n].shape) for n in self.inputs)
        if shapes != self.shapes:
            self._prepare(shapes)
        self._inputs.fill([feeds[n] for n in self.inputs])  # unchanged timesteps/embeds: no copy
        if self.graph is not None:
            self.graph.replay()
        else:
            self._execute()
        if self.copy_outputs:
            return {n: self.buffers[n].clone() for n in self.outputs}
        return {n: self.buffers[n] for n in self.outputs}

    def close(self) -> None:
        """Release in dependency order: a CUDA graph must go before the context it launches."""
        self.graph = None
        self.buffers = {}
        self.context = None
        self.engine = None
        self.workspace = None
