"""Fine-tune the COCO model into the street model with ultralytics, reproducibly, and export it to ONNX.

Needs the `train` extra. Everything a run depends on is in `TrainConfig`; the config and the exact command
are saved next to the weights and go into the model card.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..detect.ultralytics import import_yolo  # importing it sets YOLO_OFFLINE before any import of ultralytics


class TrainConfig(BaseModel):
    """One training run, as data. Every field is recorded in the model card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("street-v1", description="Model version; output goes to models/<name>/")
    base: Path = Field(Path("../shared/models/yolo11n-coco.pt"), description="COCO-pretrained model: the pseudo-label teacher, and the starting weights unless `init` is set")
    init: Path | None = Field(None, description="Weights to fine-tune from, when not `base` (e.g. the previous street model with the same classes)")
    garbage_cn: Path = Field(Path("../shared/data/garbage-cn"), description="garbage-cn dataset root (train/, val/)")
    streets_in: Path = Field(Path("../shared/data/streets-in"), description="Violation-free street scenes used as background")
    streets_split: Path = Field(Path("datasets/streets-in-split.yaml"), description="Which streets-in images are excluded or held out")
    extra_data: tuple[Path, ...] = Field((), description="Reviewed-sample folders from `streetorder samples export`, added to training")
    pseudo_conf: float = Field(0.4, ge=0.05, le=0.95, description="Teacher confidence at or above which a COCO box becomes a label")
    imgsz: int = Field(320, ge=32, le=1280, multiple_of=32)
    epochs: int = Field(15, ge=1)
    close_mosaic: int = Field(5, ge=0, description="Final epochs trained without mosaic, on whole images as the camera sees them")
    warmup_epochs: float = Field(3.0, ge=0.0, description="Epochs of learning-rate warm-up (shorter when fine-tuning an already-trained street model)")
    batch: int = Field(16, ge=1)
    seed: int = 0
    night_p: float = Field(0.3, ge=0.0, le=1.0, description="Probability of the night augmentation per training image")
    workers: int = Field(2, ge=0, description="Dataloader worker processes (also on CPU)")
    threads: int = Field(os.cpu_count() or 1, ge=1, description="Torch CPU threads")
    device: str = Field("cpu", description="'cpu', or a CUDA index such as '0'")
    cue_model: str | None = Field(None, description="Model (under models/) that serves the COCO cue classes beside this one on vending and parking cameras; written to the card")
    cue_imgsz: int = Field(640, ge=128, le=1280, multiple_of=32, description="Input size of the cue model")
    compare_with: str | None = Field(None, description="Model whose card this one is compared with (the one it should replace)")
    workdir: Path = Field(Path("var/train"), description="Scratch space for the built dataset and ultralytics runs")
    models_dir: Path = Field(Path("models"), description="Where the shipped model folder is written")

    @property
    def run_dir(self) -> Path:
        return self.workdir / self.name

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def out_dir(self) -> Path:
        return self.models_dir / self.name


def _street_trainer(night_p: float, workers: int, threads: int):
    """A DetectionTrainer whose training set also sees night images (kept after mosaic closes, too).

    On a CPU, ultralytics uses one torch thread fewer than the cores and loads data in the training process
    (workers=0). On a 2-core machine that is one thread doing everything; this trainer uses every core and
    real dataloader workers, so augmentation overlaps the forward/backward pass.
    """
    import torch
    from ultralytics.models.yolo.detect import DetectionTrainer

    from .night import NightAugment

    class StreetTrainer(DetectionTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.device.type == "cpu":
                self.args.workers = workers
                torch.set_num_threads(threads)

        def build_dataset(self, img_path, mode="train", batch=None):
            dataset = super().build_dataset(img_path, mode, batch)
            if mode == "train" and night_p > 0:
                build = dataset.build_transforms

                def with_night(hyp=None):
                    transforms = build(hyp)
                    transforms.insert(-1, NightAugment(p=night_p))  # after colour jitter, before Format
                    return transforms

                dataset.build_transforms = with_night  # close_mosaic() rebuilds through this, too
                dataset.transforms = with_night(self.args)
            return dataset

    return StreetTrainer


def fit(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train on the built dataset; returns the best checkpoint."""
    YOLO = import_yolo()

    project = (cfg.run_dir / "runs").resolve()
    last = project / "fit" / "weights" / "last.pt"
    if resume and last.exists():
        model = YOLO(str(last))
        model.train(resume=True, trainer=_street_trainer(cfg.night_p, cfg.workers, cfg.threads))
    else:
        model = YOLO(str(cfg.init or cfg.base))
        model.train(
            trainer=_street_trainer(cfg.night_p, cfg.workers, cfg.threads),
            data=str((cfg.data_dir / "data.yaml").resolve()),
            imgsz=cfg.imgsz,
            epochs=cfg.epochs,
            close_mosaic=cfg.close_mosaic,
            warmup_epochs=cfg.warmup_epochs,
            batch=cfg.batch,
            seed=cfg.seed,
            deterministic=True,
            workers=cfg.workers,
            device=cfg.device,
            cache="ram",
            plots=False,  # plotting fetches a font
            amp=False if cfg.device == "cpu" else True,
            project=str(project),
            name="fit",
            exist_ok=True,
            verbose=True,
        )
    best = project / "fit" / "weights" / "best.pt"
    if not best.exists():
        raise RuntimeError(f"training finished without {best}")
    return best


def export(cfg: TrainConfig, best: Path) -> tuple[Path, Path]:
    """Copy the checkpoint to models/<name>/model.pt and export model.onnx (dynamic batch, fixed imgsz)."""
    YOLO = import_yolo()

    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    pt = cfg.out_dir / "model.pt"
    shutil.copyfile(best, pt)
    onnx_tmp = Path(YOLO(str(pt)).export(format="onnx", imgsz=cfg.imgsz, dynamic=True, simplify=True, opset=17, device="cpu"))
    onnx = cfg.out_dir / "model.onnx"
    shutil.move(str(onnx_tmp), onnx)
    return pt, onnx
