"""What every runtime for an exported YOLO model shares: metadata, letterbox, decoding, class filter, NMS.

A backend (onnxruntime, OpenVINO) only opens the `.onnx` file and runs a float32 NCHW batch; everything else
lives here once, following ultralytics' predictor (letterbox, sigmoid class scores, best class per box, class-aware
NMS, max_det) so every backend gives the same boxes for the same weights.
"""

from __future__ import annotations

import ast
import mmap
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from .base import DetectorSettings, make_detections, with_other_settings
from .letterbox import Letterbox, letterbox

Dims = list[int | None]  # a tensor shape; None where the model leaves a dimension dynamic


def _varint(buf, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, payload) for each protobuf field in buf[start:end]; payload is (start, end) for bytes fields."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, value
        elif wire == 2:
            n, i = _varint(buf, i)
            yield number, (i, i + n)
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The `metadata_props` of an ONNX file (ultralytics writes `names`, `imgsz`, ... there), without `onnx`.

    Walks only the top level of the ModelProto (field 14 holds key/value entries), skipping the graph unread.
    A file that is not valid protobuf gives {}; the runtime that opens it reports the real problem.
    """
    out: dict[str, str] = {}
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for number, payload in _fields(buf, 0, len(buf)):
                if number == 14 and isinstance(payload, tuple):
                    entry = {n: bytes(buf[v[0] : v[1]]).decode("utf-8", "replace") for n, v in _fields(buf, *payload) if isinstance(v, tuple)}
                    if 1 in entry:
                        out[entry[1]] = entry.get(2, "")
    except (ValueError, IndexError, OSError):
        return {}
    return out


@dataclass(frozen=True)
class Prepared:
    """One image as a model's input: letterboxed, RGB, CHW float32 in [0, 1]; and how to map boxes back."""

    tensor: np.ndarray
    box: Letterbox
    size: tuple[int, int]  # the source image's (height, width)

    @property
    def nbytes(self) -> int:
        return self.tensor.nbytes


class _InputBuffers:
    """A few model input buffers (about 5 MB each at 640 px) kept for the next image instead of freed.

    The service fixes glibc's mmap threshold so that freed image memory leaves the process (`service/runtime/memory.py`);
    an input buffer above it is then fresh pages every time (with the threshold at 1 MiB, a 640 px input's
    thousand page faults measured 2-3 ms of each request's preparation; at 8 MiB, inputs above about 830 px). A
    buffer comes back here when its `Prepared` is dropped; at most `keep` wait, outside the image memory budget
    (which counts the buffers in use)."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        with self._lock:
            for i, buf in enumerate(self._free):
                if buf.shape == shape:
                    return self._free.pop(i)
        return np.empty(shape, np.float32)

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(buf)


class ExportedDetector:
    """Batched inference of a YOLO model exported to ONNX; subclasses supply the runtime.

    A subclass sets `backend` and implements `_open` (load the file, report input shape and output channels),
    optionally `_compile` (called once `imgsz` and the batch size are known) and `_infer` (float32 NCHW batch in,
    raw `(B, 4 + nc, anchors)` predictions out).
    """

    backend = "exported"
    preparable = True  # `prepare`, `infer_prepared` and `finish`: the service runs all but the model on request threads

    def __init__(self, path: str | Path, settings: DetectorSettings | None = None, threads: int | None = None, batch_size: int = 8) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        self.settings = settings or DetectorSettings()
        self.threads = threads
        in_shape, out_channels = self._open()
        meta = self._metadata()
        names = ast.literal_eval(meta["names"]) if "names" in meta else None
        fixed = [d for d in in_shape[2:] if d is not None]
        exported = ast.literal_eval(meta["imgsz"])[0] if "imgsz" in meta else (fixed[0] if fixed else 640)
        self.imgsz = self.settings.imgsz or int(exported)
        if fixed and fixed[0] != self.imgsz:
            raise ValueError(f"{self.path} has a fixed input of {fixed[0]} px; imgsz {self.imgsz} is not possible")
        self.fixed_size = bool(fixed)  # an export with a fixed input takes the square only
        self.dynamic_batch = in_shape[0] is None
        self.batch_size = batch_size if self.dynamic_batch else int(in_shape[0])
        nc = out_channels - 4 if out_channels is not None else len(names or [])
        self.names: tuple[str, ...] = tuple(names[i] for i in range(nc)) if names else tuple(str(i) for i in range(nc))
        self.keep_ids = self.settings.class_ids(self.names)
        self._buffers = _InputBuffers()
        self._compile()

    # ---- what a runtime supplies -------------------------------------------------------------------------
    def _open(self) -> tuple[Dims, int | None]:
        """Load `self.path`; return the input shape (N, C, H, W) and the output's channel count (4 + nc)."""
        raise NotImplementedError

    def _metadata(self) -> dict[str, str]:
        """The export's metadata (`names`, `imgsz`, ...): the ONNX file's `metadata_props`."""
        return read_onnx_metadata(self.path)

    def _compile(self) -> None:
        """Finish loading now that `self.imgsz`, `self.batch_size` and `self.dynamic_batch` are known."""

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 (B, 3, h, w) RGB in [0, 1] (h, w: `letterbox.input_shape`) -> (B, 4 + nc, anchors)."""
        raise NotImplementedError

    # ---- shared ------------------------------------------------------------------------------------------
    def with_settings(self, settings: DetectorSettings) -> ExportedDetector:
        """The same loaded model with other thresholds or class filter (the input size cannot change)."""
        return with_other_settings(self, settings)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        return self.detect_prepared([self.prepare(im) for im in images])

    def prepare(self, image: np.ndarray) -> Prepared:
        """The image as this model's input. Split from `detect_prepared` so that a caller with spare threads
        (the service, one per request) prepares images while the model runs on the previous batch."""
        boxed, box = letterbox(image, self.imgsz, rect=self.rect)
        tensor = self._buffers.take((3, *boxed.shape[:2]))  # BGR HWC -> RGB CHW in [0, 1]
        for plane, channel in zip(tensor, cv2.split(boxed)[::-1]):  # one pass a plane: 40% less than a strided copy
            np.divide(channel, np.float32(255.0), out=plane, dtype=np.float32)
        prepared = Prepared(tensor, box, image.shape[:2])
        weakref.finalize(prepared, self._buffers.give, tensor)
        return prepared

    @property
    def rect(self) -> bool:
        """Inputs are letterboxed to a rectangle (the settings ask for it and the export's input size is free)."""
        return self.settings.rect and not self.fixed_size

    def detect_prepared(self, prepared: Sequence[Prepared]) -> list[sv.Detections]:
        return [self.finish(raw, p) for raw, p in zip(self.infer_prepared(prepared), prepared)]

    def infer_prepared(self, prepared: Sequence[Prepared]) -> list[np.ndarray]:
        """The model's raw output for each prepared image, (4 + nc, anchors). Split from `finish` so that the
        thread that owns the model only runs the model: the service decodes boxes on each request's thread."""
        out: list[np.ndarray | None] = [None] * len(prepared)
        by_shape: dict[tuple[int, ...], list[int]] = {}  # a batch is one shape: images of one camera share it
        for i, p in enumerate(prepared):
            by_shape.setdefault(p.tensor.shape, []).append(i)
        for idx in by_shape.values():
            for start in range(0, len(idx), self.batch_size):
                part = idx[start : start + self.batch_size]
                for i, raw in zip(part, self._infer_tensors([prepared[i].tensor for i in part])):
                    out[i] = raw
        return out

    def _infer_tensors(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        """At most `batch_size` prepared tensors through the model, as one input (padded for a fixed batch);
        one image goes as a view of its own tensor, not a copy."""
        if len(tensors) == 1 and (self.dynamic_batch or self.batch_size == 1):
            batch = tensors[0][None]
        else:
            batch = np.stack(tensors)
            if not self.dynamic_batch and len(tensors) < self.batch_size:  # pad a fixed-batch model
                batch = np.concatenate([batch, np.zeros((self.batch_size - len(tensors), *batch.shape[1:]), np.float32)])
        preds = self._infer(batch)
        return [preds[i] for i in range(len(tensors))]

    def finish(self, raw: np.ndarray, prepared: Prepared) -> sv.Detections:
        """One image's detections from its raw output: scores, NMS, boxes back on the source image."""
        return self._postprocess(raw, prepared.size, prepared.box)

    def _postprocess(self, pred: np.ndarray, size: tuple[int, int], box: Letterbox) -> sv.Detections:
        s = self.settings
        scores_all = pred[4:]  # (nc, anchors): the best score of each anchor, over contiguous rows
        keep = scores_all.max(axis=0) > s.conf
        kept = np.flatnonzero(keep)
        cls = scores_all[:, kept].argmax(axis=0)  # the best class only where it can pass (argmax of all anchors was most of the time)
        scores = scores_all[cls, kept]
        if self.keep_ids is not None:  # filter after choosing the best class, as ultralytics does
            wanted = np.isin(cls, self.keep_ids)
            kept, cls, scores = kept[wanted], cls[wanted], scores[wanted]
        if not len(kept):
            return make_detections(np.zeros((0, 4)), [], [], self.names)
        cxcywh = pred[:4, kept].T
        if len(scores) > 30000:  # ultralytics' max_nms
            top = np.argsort(-scores)[:30000]
            cxcywh, scores, cls = cxcywh[top], scores[top], cls[top]
        xywh = np.column_stack([cxcywh[:, 0] - cxcywh[:, 2] / 2, cxcywh[:, 1] - cxcywh[:, 3] / 2, cxcywh[:, 2], cxcywh[:, 3]])
        idx = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), cls.tolist(), s.conf, s.iou), dtype=int).reshape(-1)
        idx = idx[np.argsort(-scores[idx], kind="stable")][: s.max_det]
        xyxy = np.column_stack([xywh[idx, 0], xywh[idx, 1], xywh[idx, 0] + xywh[idx, 2], xywh[idx, 1] + xywh[idx, 3]])
        h, w = size
        return make_detections(box.boxes_to_source(xyxy, w, h), scores[idx], cls[idx], self.names)
