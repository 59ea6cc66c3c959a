"""The serving backend: a YOLO model exported to ONNX, run with onnxruntime. No torch anywhere.

Pre- and post-processing (shared with the OpenVINO backend) live in `exported.py`; this only runs the batch.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from .exported import Dims, ExportedDetector


class OnnxDetector(ExportedDetector):
    """Batched YOLO inference with onnxruntime.

    >>> det = OnnxDetector("models/street-v1/model.onnx", DetectorSettings(conf=0.3), threads=2)
    >>> [d] = det.detect([cv2.imread("street.jpg")])
    >>> d.data["class_name"], d.confidence, d.xyxy
    """

    backend = "onnx"

    def _open(self) -> tuple[Dims, int | None]:
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: a spinning pool takes the cores from the work beside
        # inference (the service decoding uploads, the night job decoding video), which costs more than it saves.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        n_out = self.session.get_outputs()[0].shape[1]
        return [d if isinstance(d, int) else None for d in inp.shape], n_out if isinstance(n_out, int) else None

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]
