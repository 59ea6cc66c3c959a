"""The detector's own features as an embedding, from the ONNX model: no second model, no download, no torch.

The three feature maps that feed the YOLO detect head (P3, P4, P5) are made extra graph outputs; each is
average-pooled and the three are concatenated and L2-normalised. Frames the model 'sees' alike sit close, so
the distance to the training set's embeddings is a novelty score, and near-identical frames of a static
camera are near-duplicates. Needs the `onnx` package (train extra) for the graph edit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import supervision as sv

from ..detect.exported import Dims
from ..detect.onnx import OnnxDetector


def head_inputs(model) -> list[str]:
    """Names of the tensors entering the last `/model.N/` block (the detect head) from outside it."""
    blocks = [int(m.group(1)) for n in model.graph.node if (m := re.match(r"/model\.(\d+)/", n.name))]
    if not blocks:
        raise ValueError("not an ultralytics YOLO export (no /model.N/ nodes)")
    head = f"/model.{max(blocks)}/"
    producer = {o: n.name for n in model.graph.node for o in n.output}
    seen: list[str] = []
    for n in model.graph.node:
        if n.name.startswith(head):
            for i in n.input:
                if i in producer and not producer[i].startswith(head) and i not in seen:
                    seen.append(i)
    return seen


class EmbeddingDetector(OnnxDetector):
    """An `OnnxDetector` that also returns a pooled backbone embedding per image (`detect_and_embed`)."""

    def _open(self) -> tuple[Dims, int | None]:
        import onnx

        model = onnx.load(str(self.path))
        self.feature_names = head_inputs(model)
        for name in self.feature_names:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        n_out = self.session.get_outputs()[0].shape[1]
        self._features: list[np.ndarray] = []
        return [d if isinstance(d, int) else None for d in inp.shape], n_out if isinstance(n_out, int) else None

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        pred, *maps = self.session.run([self.output_name, *self.feature_names], {self.input_name: batch})
        pooled = np.concatenate([m.mean(axis=(2, 3)) for m in maps], axis=1)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True) + 1e-9
        self._features.append(pooled.astype(np.float32))
        return pred

    def detect_and_embed(self, images: Sequence[np.ndarray]) -> tuple[list[sv.Detections], np.ndarray]:
        self._features = []
        dets = self.detect(images)
        feats = np.concatenate(self._features)[: len(images)] if self._features else np.zeros((0, 0), np.float32)
        return dets, feats


def load_embedder(onnx: str | Path, conf: float = 0.05, threads: int | None = None) -> EmbeddingDetector:
    from ..detect import DetectorSettings

    return EmbeddingDetector(Path(onnx), DetectorSettings(conf=conf), threads=threads)
