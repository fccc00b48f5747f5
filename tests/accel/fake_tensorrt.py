"""A stand-in for the `tensorrt` module, faithful at its Python API boundary.

TensorRT can't run without an NVIDIA GPU, so tests hand this object to our builder and runtime
code in its place. It implements the calls we use with TensorRT 10/11 names and semantics:
`Builder.create_network/create_builder_config/create_optimization_profile/
build_serialized_network`, `OnnxParser.parse_from_file`, timing caches, `IProgressMonitor`
callbacks, `Runtime.deserialize_cuda_engine` (None for a bad plan), and the name-based I/O of
`ICudaEngine` / `IExecutionContext` (`set_input_shape`, `get_tensor_shape`, `set_tensor_address`,
`execute_async_v3`). A "plan" is a header plus the ONNX model; executing it runs onnxruntime on the
CPU, reading and writing the raw memory at the addresses we bound, as the GPU would.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types

import numpy as np

MAGIC = b"FAKETRT1"


def make_fake_tensorrt(version: str = "11.0.0", progress_monitor: bool = True) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []  # (what, detail) in call order, for assertions
    trt.builds = []  # names of the networks built

    class Logger:
        WARNING = 2
        ERROR = 1

        def __init__(self, severity: int = 2) -> None:
            self.severity = severity

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1
        INT64 = 2

    class TensorIOMode(enum.Enum):
        INPUT = 1
        OUTPUT = 2

    class ExecutionContextAllocationStrategy(enum.Enum):
        STATIC = 0
        ON_PROFILE_CHANGE = 1
        USER_MANAGED = 2

    class BuilderFlag(enum.Enum):
        FP16 = 0

    class MemoryPoolType(enum.Enum):
        WORKSPACE = 0

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class TimingCache:
        def __init__(self, blob: bytes) -> None:
            self.entries = json.loads(blob) if blob else {"builds": 0}

        def serialize(self) -> bytes:
            return json.dumps(self.entries).encode()

    class OptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, list] = {}

        def set_shape(self, name, min, opt, max) -> None:  # noqa: A002 - TensorRT's keyword names
            self.shapes[name] = [list(min), list(opt), list(max)]

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.onnx: bytes | None = None
            self.inputs: list[str] = []
            self.outputs: list[str] = []

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.network = network
            self.errors: list[str] = []

        def parse_from_file(self, path: str) -> bool:
            import onnx

            try:
                model = onnx.load(path)
                onnx.checker.check_model(model)
            except Exception as exc:
                self.errors.append(f"invalid ONNX: {exc}")
                return False
            self.network.onnx = model.SerializeToString()
            self.network.inputs = [i.name for i in model.graph.input]
            self.network.outputs = [o.name for o in model.graph.output]
            trt.calls.append(("parse", path))
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> str:
            return self.errors[i]

    class BuilderConfig:
        def __init__(self) -> None:
            self.flags: set = set()
            self.profiles: list[OptimizationProfile] = []
            self.cache: TimingCache | None = None
            self.progress_monitor = None
            self.pools: dict = {}

        def set_flag(self, flag) -> None:
            if trt_major() >= 11:
                raise AttributeError("BuilderFlag.FP16 was removed in TensorRT 11")
            self.flags.add(flag)

        def set_memory_pool_limit(self, pool, size) -> None:
            self.pools[pool] = size

        def add_optimization_profile(self, profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, blob: bytes) -> TimingCache:
            return TimingCache(bytes(blob))

        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            self.cache = cache
            return True

        def get_timing_cache(self) -> TimingCache:
            return self.cache

    class Builder:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network:
            return Network(flags)

        def create_builder_config(self) -> BuilderConfig:
            return BuilderConfig()

        def create_optimization_profile(self) -> OptimizationProfile:
            return OptimizationProfile()

        def build_serialized_network(self, network: Network, config: BuilderConfig):
            if network.onnx is None or len(config.profiles) != 1:
                return None
            shapes = config.profiles[0].shapes
            if sorted(shapes) != sorted(network.inputs):  # every dynamic input needs a profile
                return None
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.phase_start("Tactic selection", "Building engine", 3)
                for step in range(3):
                    monitor.step_complete("Tactic selection", step)
                monitor.phase_finish("Tactic selection")
                monitor.step_complete("Building engine", 0)
                monitor.step_complete("Building engine", 1)
                monitor.phase_finish("Building engine")
            if config.cache is not None:
                config.cache.entries["builds"] += 1
            header = {
                "inputs": network.inputs,
                "outputs": network.outputs,
                "profile": shapes,
                "fp16": BuilderFlag.FP16 in config.flags,
            }
            trt.builds.append(network.inputs[0])
            blob = json.dumps(header).encode()
            return MAGIC + len(blob).to_bytes(4, "little") + blob + network.onnx

    class ExecutionContext:
        def __init__(self, engine: CudaEngine, strategy) -> None:
            self.engine = engine
            self.user_managed = strategy == ExecutionContextAllocationStrategy.USER_MANAGED
            self.device_memory: tuple[int, int] | None = None
            self.input_shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}
            self._out_shapes: dict[tuple, dict[str, tuple]] = {}

        def set_input_shape(self, name: str, shape) -> bool:
            low, _, high = self.engine.header["profile"][name]
            shape = tuple(int(s) for s in shape)
            if len(shape) != len(low) or any(
                not lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True)
            ):
                return False
            self.input_shapes[name] = shape
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            if name in self.input_shapes:
                return self.input_shapes[name]
            key = tuple(sorted(self.input_shapes.items()))
            if key not in self._out_shapes:
                feeds = {n: np.zeros(s, np.float32) for n, s in self.input_shapes.items()}
                outs = self.engine.session.run(None, feeds)
                self._out_shapes[key] = {n: o.shape for n, o in zip(self.engine.outputs, outs, strict=True)}
            return self._out_shapes[key][name]

        def update_device_memory_size_for_shapes(self) -> int:
            # Scratch memory grows with the shapes actually set, like TensorRT's.
            return 256 * sum(int(np.prod(s)) for s in self.input_shapes.values())

        def set_device_memory(self, ptr: int, size: int) -> None:
            if size < self.update_device_memory_size_for_shapes():
                raise ValueError("device memory too small for the current shapes")
            self.device_memory = (int(ptr), int(size))
            trt.calls.append(("device_memory", size))

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addresses[name] = int(ptr)
            return True

        def _view(self, name: str, shape) -> np.ndarray:
            count = int(np.prod(shape))
            raw = (ctypes.c_float * count).from_address(self.addresses[name])
            return np.frombuffer(raw, dtype=np.float32).reshape(shape)

        def execute_async_v3(self, stream_handle: int) -> bool:
            trt.calls.append(("execute", stream_handle))
            if set(self.addresses) != set(self.engine.inputs + self.engine.outputs):
                return False
            if self.user_managed and self.device_memory is None:
                return False
            feeds = {n: self._view(n, self.input_shapes[n]).copy() for n in self.engine.inputs}
            outs = self.engine.session.run(None, feeds)
            for name, value in zip(self.engine.outputs, outs, strict=True):
                np.copyto(self._view(name, value.shape), value)
            return True

    class CudaEngine:
        def __init__(self, header: dict, onnx_bytes: bytes) -> None:
            import onnxruntime

            self.header = header
            self.inputs, self.outputs = header["inputs"], header["outputs"]
            self.session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])

        @property
        def num_io_tensors(self) -> int:
            return len(self.inputs) + len(self.outputs)

        def get_tensor_name(self, i: int) -> str:
            return (self.inputs + self.outputs)[i]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return TensorIOMode.INPUT if name in self.inputs else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> DataType:
            return DataType.FLOAT

        def create_execution_context(
            self, strategy=ExecutionContextAllocationStrategy.STATIC
        ) -> ExecutionContext:
            return ExecutionContext(self, strategy)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes):
            data = bytes(data)
            trt.calls.append(("deserialize", len(data)))
            if not data.startswith(MAGIC):
                return None  # TensorRT logs an error and returns None for a bad plan
            try:
                size = int.from_bytes(data[8:12], "little")
                header = json.loads(data[12 : 12 + size])
                return CudaEngine(header, data[12 + size :])
            except Exception:
                return None

    def trt_major() -> int:
        return int(version.split(".")[0])

    names = dict(
        Logger=Logger,
        DataType=DataType,
        TensorIOMode=TensorIOMode,
        BuilderFlag=BuilderFlag,
        ExecutionContextAllocationStrategy=ExecutionContextAllocationStrategy,
        MemoryPoolType=MemoryPoolType,
        Builder=Builder,
        OnnxParser=OnnxParser,
        Runtime=Runtime,
    )
    if progress_monitor:
        names["IProgressMonitor"] = IProgressMonitor
    for name, value in names.items():
        setattr(trt, name, value)
    return trt
