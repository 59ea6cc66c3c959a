"""The serving backend: a YOLO model exported to ONNX, run with onnxruntime. No torch anywhere.

Pre- and post-processing follow ultralytics' predictor (letterbox, sigmoid class scores, best class per box,
class-aware NMS, max_det) so both backends give the same boxes for the same weights.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

from .base import DetectorSettings, make_detections
from .letterbox import letterbox


class OnnxDetector:
    """Batched YOLO inference with onnxruntime.

    >>> det = OnnxDetector("models/street-v1/model.onnx", DetectorSettings(conf=0.3), threads=2)
    >>> [d] = det.detect([cv2.imread("street.jpg")])
    >>> d.data["class_name"], d.confidence, d.xyxy
    """

    def __init__(self, path: str | Path, settings: DetectorSettings | None = None, threads: int | None = None, batch_size: int = 8) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        self.settings = settings or DetectorSettings()
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        names = ast.literal_eval(meta["names"]) if "names" in meta else None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        fixed = [d for d in inp.shape[2:] if isinstance(d, int)]
        exported = ast.literal_eval(meta["imgsz"])[0] if "imgsz" in meta else (fixed[0] if fixed else 640)
        self.imgsz = self.settings.imgsz or int(exported)
        if fixed and fixed[0] != self.imgsz:
            raise ValueError(f"{self.path} has a fixed input of {fixed[0]} px; imgsz {self.imgsz} is not possible")
        self.dynamic_batch = not isinstance(inp.shape[0], int)
        self.batch_size = batch_size if self.dynamic_batch else int(inp.shape[0])
        n_out = self.session.get_outputs()[0].shape[1]
        nc = n_out - 4 if isinstance(n_out, int) else len(names or [])
        self.names: tuple[str, ...] = tuple(names[i] for i in range(nc)) if names else tuple(str(i) for i in range(nc))
        self.keep_ids = self.settings.class_ids(self.names)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        out: list[sv.Detections] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self._detect_batch(images[start : start + self.batch_size]))
        return out

    def _detect_batch(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        boxed = [letterbox(im, self.imgsz) for im in images]
        batch = np.stack([b[0] for b in boxed])[..., ::-1].transpose(0, 3, 1, 2)  # BGR HWC -> RGB CHW
        batch = np.ascontiguousarray(batch, dtype=np.float32) / 255.0
        if not self.dynamic_batch and len(images) < self.batch_size:  # pad a fixed-batch model
            batch = np.concatenate([batch, np.zeros((self.batch_size - len(images), *batch.shape[1:]), np.float32)])
        preds = self.session.run(None, {self.input_name: batch})[0]  # (B, 4 + nc, anchors)
        return [self._postprocess(preds[i], im, box) for i, (im, (_, box)) in enumerate(zip(images, boxed))]

    def _postprocess(self, pred: np.ndarray, image: np.ndarray, box) -> sv.Detections:
        s = self.settings
        pred = pred.T  # (anchors, 4 + nc)
        scores_all = pred[:, 4:]
        cls = scores_all.argmax(axis=1)
        scores = scores_all[np.arange(len(cls)), cls]
        keep = scores > s.conf
        if self.keep_ids is not None:  # filter after choosing the best class, as ultralytics does
            keep &= np.isin(cls, self.keep_ids)
        if not keep.any():
            return make_detections(np.zeros((0, 4)), [], [], self.names)
        cxcywh, scores, cls = pred[keep, :4], scores[keep], cls[keep]
        if len(scores) > 30000:  # ultralytics' max_nms
            top = np.argsort(-scores)[:30000]
            cxcywh, scores, cls = cxcywh[top], scores[top], cls[top]
        xywh = np.column_stack([cxcywh[:, 0] - cxcywh[:, 2] / 2, cxcywh[:, 1] - cxcywh[:, 3] / 2, cxcywh[:, 2], cxcywh[:, 3]])
        idx = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), cls.tolist(), s.conf, s.iou), dtype=int).reshape(-1)
        idx = idx[np.argsort(-scores[idx], kind="stable")][: s.max_det]
        xyxy = np.column_stack([xywh[idx, 0], xywh[idx, 1], xywh[idx, 0] + xywh[idx, 2], xywh[idx, 1] + xywh[idx, 3]])
        h, w = image.shape[:2]
        return make_detections(box.boxes_to_source(xyxy, w, h), scores[idx], cls[idx], self.names)
