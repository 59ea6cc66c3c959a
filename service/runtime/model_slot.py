"""The detector in use, and swapping it while the service runs.

A swap loads the new model completely first and only then replaces the reference in one assignment, so a
request sees either the old detector or the new one, never a half-loaded one, and a model that fails to load
leaves the old one serving. Only ONNX models are served (onnxruntime; torch is never imported here).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.detect import DetectorSettings, resolve_model
from pipeline.detect import Detector
from pipeline.detect.cascade import load_cue_cascade
from pipeline.detect.registry import current_name
from pipeline.detect.warm_up import WarmUp

from .errors import NotFound, Unavailable, Unprocessable

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    path: Path
    detector: Detector
    card: dict = field(default_factory=dict)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    warm_up: WarmUp | None = None  # what `ModelSlot.warm` built before it served


class ModelSlot:
    """Holds the current detector; `swap` replaces it atomically.

    `warm` (optional) runs on each loaded detector before it serves, as `load`'s last step: the service compiles
    its cameras' input shapes there (`pipeline.detect.warm_up`), so a swap's new model is warm while the old one
    still serves."""

    def __init__(
        self, models_dir: Path, settings: DetectorSettings, threads: int | None = None, persist: bool = False, warm: Callable[[Detector], WarmUp] | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.settings = settings
        self.threads = threads
        self.persist = persist
        self.warm = warm
        self.current: LoadedModel | None = None
        self.error: str | None = None  # why the model at startup did not load
        self._swap = threading.Lock()  # one swap at a time; readers never wait
        self._seen: str | None = None  # the CURRENT pointer as last followed
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

    def load(self, spec: str | Path | None) -> LoadedModel:
        """Load a model without touching the one serving. `spec`: a name in models_dir, a folder or an .onnx file;
        None means the one models_dir/CURRENT names."""
        try:
            if spec is None:
                spec = current_name(self.models_dir)
            text = str(spec)
            if NAME.match(text) and not text.endswith((".onnx", ".pt")):  # a name: only in models_dir
                target = self.models_dir / text
                if not target.is_dir():
                    raise FileNotFoundError(f"no model '{text}' in {self.models_dir} (known: {', '.join(self.names()) or 'none'})")
            else:
                target = Path(text)
            ref = resolve_model(target)
            if ref.onnx is None:
                raise FileNotFoundError(f"model '{ref.name}' has no model.onnx (the service runs ONNX models only)")
            detector = load_cue_cascade(target, backend="auto", settings=self.settings, threads=self.threads)
        except FileNotFoundError as e:
            raise NotFound(str(e)) from None
        except Exception as e:  # a corrupt or incompatible file: onnxruntime raises its own types
            raise Unprocessable(f"model '{spec}' failed to load: {type(e).__name__}: {e}") from None
        warmed = self.warm(detector) if self.warm is not None else None
        name = ref.name if ref.card.get("name") or ref.onnx.stem != "model" else ref.onnx.parent.name
        return LoadedModel(name=name, path=ref.onnx, detector=detector, card=ref.card, warm_up=warmed)

    def start(self, spec: str | Path | None) -> None:
        """Load the configured model at startup; a failure is kept in `error` so the service can still serve the
        ledger and the review page, and a later swap can fix it without a restart."""
        try:
            self.current = self.load(spec)
            log.info("serving model %s (%s)", self.current.name, self.current.path)
        except (NotFound, Unprocessable) as e:
            self.error = e.detail
            log.error("no model loaded: %s", e.detail)

    def follow_current(self, interval: float = 2.0) -> None:
        """Watch models_dir/CURRENT in a daemon thread: when `streetorder promote` or `rollback` rewrites it, swap
        to the model it names (loaded fully first, as any swap). A PUT /models/current is not undone: only a
        change of the file is followed."""
        self._seen = self.current_pointer()
        self._stop.clear()
        self._follower = threading.Thread(target=self._follow, args=(interval,), name="follow-CURRENT", daemon=True)
        self._follower.start()

    def _follow(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check_current()
            except Exception:  # the watcher must outlive any one bad read
                log.exception("following models/CURRENT failed")

    def check_current(self) -> LoadedModel | None:
        """Swap if CURRENT changed since last seen; returns the new model, or None (unchanged or failed to load,
        in which case the old model keeps serving and `error` says why)."""
        name = self.current_pointer()
        if name is None or name == self._seen:
            return None
        self._seen = name
        try:
            new = self.swap(name, persist=False)
        except (NotFound, Unprocessable) as e:
            self.error = f"models/CURRENT names '{name}', which did not load; still serving {self.current.name if self.current else 'nothing'}: {e.detail}"
            log.error(self.error)
            return None
        log.info("followed models/CURRENT to %s", name)
        return new

    def stop(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
            self._follower = None

    def swap(self, name: str, persist: bool | None = None) -> LoadedModel:
        """Serve the model `name` (a folder in models_dir). Raises NotFound/Unprocessable and keeps the old one."""
        self.check_name(name)
        with self._swap:
            new = self.load(name)
            self.current, self.error = new, None
            if (self.persist if persist is None else persist):
                self.write_pointer(name)
        log.info("model swapped to %s", new.name)
        return new

    def check_name(self, name: str) -> None:
        """A swap takes a model's folder name in models_dir, never a path."""
        if not NAME.match(name) or name.endswith((".onnx", ".pt")):
            raise NotFound(f"'{name}' is not a model name; give a folder name in {self.models_dir} (known: {', '.join(self.names()) or 'none'})")

    def write_pointer(self, name: str) -> None:
        """Rewrite models_dir/CURRENT to `name` (atomically), so a restart keeps the choice."""
        tmp = self.models_dir / "CURRENT.tmp"
        tmp.write_text(name + "\n")
        tmp.replace(self.models_dir / "CURRENT")
        self._seen = name

    def require(self) -> LoadedModel:
        model = self.current  # one read: the whole request uses the same model
        if model is None:
            raise Unavailable(f"no model loaded ({self.error or 'none configured'}); choose one with PUT /models/current")
        return model

    def names(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.iterdir() if p.is_dir() and NAME.match(p.name) and ((p / "model.onnx").exists() or (p / "model.pt").exists()))

    def current_pointer(self) -> str | None:
        try:
            return current_name(self.models_dir)
        except FileNotFoundError:
            return None
