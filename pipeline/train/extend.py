"""Append classes to a trained YOLO detector without touching what it already knows.

Fine-tuning a 12-class checkpoint on a 17-class dataset would make ultralytics rebuild the detect head and
re-initialise every class row, so each old class would be learnt again from scratch. Instead the last 1x1
convolution of each class branch grows new output rows: old rows (and every other weight) are copied as they
are, the new rows start at zero weight and the prior bias ultralytics gives a fresh head, so the extended
model scores old classes exactly as before and new ones near zero until trained. Needs the train extra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path


def extend_classes(src: Path, dst: Path, names: Sequence[str]) -> list[str]:
    """Write `dst`, a copy of checkpoint `src` whose classes are `names` (its own, in order, then new ones).
    Returns the added names; raises ValueError if `names` does not start with the checkpoint's classes."""
    import torch
    from torch import nn

    ckpt = torch.load(str(src), map_location="cpu", weights_only=False)
    model = (ckpt.get("ema") or ckpt["model"]).float()
    old = [model.names[i] for i in range(len(model.names))]
    if list(names[: len(old)]) != old:
        raise ValueError(f"{src}: its classes {old} must come first, in order, in the new list {list(names)} (old ids must stay)")
    added = list(names[len(old) :])
    if added:
        head = model.model[-1]
        nc = len(names)
        for i, branch in enumerate(head.cv3):
            conv: nn.Conv2d = branch[-1]
            grown = nn.Conv2d(conv.in_channels, nc, conv.kernel_size, conv.stride, conv.padding, bias=True)
            with torch.no_grad():
                grown.weight.zero_()
                grown.weight[: len(old)] = conv.weight
                grown.bias[:] = math.log(5 / nc / (640 / float(head.stride[i])) ** 2)
                grown.bias[: len(old)] = conv.bias
            branch[-1] = grown
        head.nc = nc
        head.no = nc + head.reg_max * 4
        model.nc = nc
        model.yaml["nc"] = nc
    model.names = dict(enumerate(names))
    # A fresh start for training: the extended model as both model and EMA, no optimizer state of the old head.
    out = {k: v for k, v in ckpt.items() if k not in ("optimizer", "scaler", "ema", "updates", "best_fitness", "epoch")}
    out.update(model=model.half(), ema=None, optimizer=None, epoch=-1, best_fitness=None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, str(dst))
    return added
