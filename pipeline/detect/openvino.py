"""A second serving backend: the exported `.onnx` (or an OpenVINO IR `.xml`, as the INT8 variant is shipped),
compiled by OpenVINO for the CPU. No torch anywhere.

Pre- and post-processing are shared with the onnxruntime backend (`exported.py`). The model is reshaped to a
static input (batch 1, each input rectangle its own compiled model), which OpenVINO's CPU plugin runs fastest,
and compiled with a LATENCY hint; a batch is run image by image. Inference runs in the precision asked for, f32
by default: the CPU plugin's own default on bf16-capable CPUs is bf16, which is faster but moves scores by up to
~0.05, so bf16 is served only as a variant that passed the accuracy gate (`variants.py`).
"""

from __future__ import annotations

import threading

import numpy as np
import openvino as ov

from .exported import Dims, ExportedDetector, read_onnx_metadata
from .letterbox import input_shape
from .streams import MAX_AUTO_STREAMS, available_cores

IR_METADATA = "streetorder_metadata"  # rt_info section of an IR that carries the ONNX export's metadata_props

_CORE: ov.Core | None = None


def runtime_streams(threads: int | None, cores: int) -> dict[str, object]:
    """OpenVINO properties for `threads` threads per call on `cores` cores. Fewer threads than cores means the
    cores are shared out between detector streams (`detect.streams`), each calling this detector from a thread of
    its own: the compiled model then needs as many streams of its own, or OpenVINO runs the calls one at a time
    (one stream: two threads calling a 1-thread model got 0.9-1.2x one thread's throughput, two streams 1.9-2x),
    and unpinned threads, or each model pins its first stream to the same core (a street and a cue model called
    at once ran no faster than one after the other). A lone caller still runs on `threads` threads. At most
    `MAX_AUTO_STREAMS`, as many as `auto` runs: each runtime stream holds its own buffers, and a detector does not
    know how many streams will call it (`--threads 1` on 64 cores would compile 64)."""
    if not threads:
        return {}
    threads = int(threads)
    streams = max(1, min(cores // threads, MAX_AUTO_STREAMS))
    if streams == 1:
        return {"INFERENCE_NUM_THREADS": threads}
    return {"INFERENCE_NUM_THREADS": threads * streams, "NUM_STREAMS": streams, "ENABLE_CPU_PINNING": False}


def _core() -> ov.Core:
    global _CORE
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE


class OpenVinoDetector(ExportedDetector):
    """Batched YOLO inference with OpenVINO on the CPU.

    >>> det = OpenVinoDetector("models/street-v1/model.onnx", DetectorSettings(conf=0.3), threads=2)
    >>> [d] = det.detect([cv2.imread("street.jpg")])
    """

    backend = "openvino"

    def __init__(self, path, settings=None, threads: int | None = None, batch_size: int = 8, precision: str = "f32") -> None:
        if precision not in ("f32", "bf16"):
            raise ValueError(f"precision must be f32 or bf16, got {precision!r}")
        self.precision = precision  # INFERENCE_PRECISION_HINT: how the layers left in float run
        super().__init__(path, settings, threads=threads, batch_size=batch_size)

    def _open(self) -> tuple[Dims, int | None]:
        self.model = _core().read_model(str(self.path))
        shape = self.model.inputs[0].get_partial_shape()
        out = self.model.outputs[0].get_partial_shape()
        return [d.get_length() if d.is_static else None for d in shape], out[1].get_length() if out[1].is_static else None

    def _metadata(self) -> dict[str, str]:
        if self.path.suffix != ".xml":
            return read_onnx_metadata(self.path)
        if not self.model.has_rt_info(IR_METADATA):
            return {}
        section = self.model.get_rt_info()[IR_METADATA]
        section = section if isinstance(section, dict) else section.astype(dict)
        return {k: v.astype(str) if hasattr(v, "astype") else str(v) for k, v in section.items()}

    def _compile(self) -> None:
        # Static shapes, batch 1 when the export leaves batch dynamic (faster than a dynamic or a batch-8 shape
        # here), one compiled model per input shape: a camera's frames are all one rectangle, so a service sees a
        # handful (at most 2 * imgsz / 32 rectangles), each compiled on first sight (~0.2 s).
        self._run_batch = self.batch_size if not self.dynamic_batch else 1
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.precision} | runtime_streams(self.threads, available_cores())
        self._compiled: dict[tuple[int, int], ov.CompiledModel] = {}
        self._compile_lock = threading.Lock()
        self._local = threading.local()  # an infer request is not thread-safe: one per thread and shape
        self._compiled_for((self.imgsz, self.imgsz))  # the square now: a model that cannot compile fails at load, not on a frame

    def _compiled_for(self, hw: tuple[int, int]) -> ov.CompiledModel:
        compiled = self._compiled.get(hw)
        if compiled is None:
            with self._compile_lock:
                compiled = self._compiled.get(hw)
                if compiled is None:
                    model = self.model.clone()
                    model.reshape({model.inputs[0]: ov.PartialShape([self._run_batch, 3, *hw])})
                    compiled = self._compiled[hw] = _core().compile_model(model, "CPU", self._config)
        return compiled

    def warm(self, sizes) -> None:
        """Compile the input rectangle of each (height, width) now, not on its first image, and run it once: a
        compiled model's first inference pays the runtime's lazy set-up, on any thread (the cue model at 640x384:
        33 ms against 15, and 17 after a first one on another thread)."""
        for height, width in sizes:
            hw = input_shape(height, width, self.imgsz, self.rect)
            if hw not in self._compiled:
                self._compiled_for(hw).create_infer_request().infer({0: np.zeros((self._run_batch, 3, *hw), np.float32)})

    def _request(self, hw: tuple[int, int]) -> ov.InferRequest:
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        request = requests.get(hw)
        if request is None:
            request = requests[hw] = self._compiled_for(hw).create_infer_request()
        return request

    def _infer_tensors(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        if self._run_batch != 1:
            return super()._infer_tensors(tensors)
        # image by image, each read in place (the call is synchronous; no stacked copy, no input copy)
        request = self._request(tensors[0].shape[1:])
        return [request.infer({0: t[None]}, share_inputs=True, share_outputs=False)[0][0] for t in tensors]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        request, n = self._request(batch.shape[2:]), self._run_batch
        outs = [request.infer({0: batch[i : i + n]}, share_inputs=False, share_outputs=False)[0] for i in range(0, len(batch), n)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)
