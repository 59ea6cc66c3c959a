"""The cameras' report journals on a cluster, kept where the cluster's own state lives: the head node.

A frame is acknowledged (200) once its reports are in the ledger, or (202, the database is away) once they are
in the camera's journal, fsync'ed. A journal on the camera actor's own node would die with that node, and the
camera, re-created elsewhere, could not replay it: an acknowledged report lost. So each camera's journal is
kept by `JournalKeeper`, one actor pinned to the node `serve --ray` runs on (the head, whose loss ends the
Ray cluster anyway; its disk is still there when the cluster starts again). The camera's owner uses it through
`KeptQueue`, the ordinary `ReportQueue` with its file operations sent to the keeper, so the journal's format,
order and replay are the one-process service's.

While the database is away the keeper also keeps each camera's newest engine state (a `CameraCheckpoint` the
ledger could not take), so that a camera moved to another node during an outage goes on from it.

The keeper is only called while the ledger fails (a normal frame writes no journal), so one actor suffices.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from urllib.parse import quote

from pipeline.live.camera_state import CameraCheckpoint
from pipeline.live.report_queue import ReportQueue, append_synced, replace_synced, truncate_synced

KEEPER_NAME = "journals"  # the actor's name in calls.NAMESPACE


class JournalKeeper:
    """The Ray actor: one journal file (and one state file) per camera under `root`, on its node's disk."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str, suffix: str = ".jsonl") -> Path:
        return self.root / (quote(name, safe="") + suffix)  # a camera id never names a path outside root

    def read(self, name: str) -> bytes | None:
        path = self._path(name)
        return path.read_bytes() if path.exists() else None

    def append(self, name: str, data: bytes) -> None:
        append_synced(self._path(name), data)

    def truncate(self, name: str) -> None:
        truncate_synced(self._path(name))

    def replace(self, name: str, data: bytes) -> None:
        replace_synced(self._path(name), data)

    def keep_state(self, checkpoint: CameraCheckpoint) -> bool:
        """Keep a camera's state the ledger could not take, if newer than the one kept; returns whether it was."""
        kept = self.state(checkpoint.camera_id)
        if kept is not None and kept.version >= checkpoint.version:
            return False
        replace_synced(self._path(checkpoint.camera_id, ".state"), pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL))
        return True

    def state(self, name: str) -> CameraCheckpoint | None:
        path = self._path(name, ".state")
        return pickle.loads(path.read_bytes()) if path.exists() else None

    def drop_state(self, name: str, version: int) -> None:
        """The ledger holds a state at least as new as `version`: the kept one (if not newer) is no longer needed."""
        kept = self.state(name)
        if kept is not None and kept.version <= version:
            self._path(name, ".state").unlink(missing_ok=True)


class KeptQueue(ReportQueue):
    """A camera's `ReportQueue` whose journal the keeper holds (see the module doc)."""

    def __init__(self, keeper, name: str) -> None:
        self.keeper, self.name = keeper, name
        super().__init__(Path(f"{KEEPER_NAME}:{name}"))  # durable: persisted entries are fsync'ed on the head node

    def _call(self, method: str, *args):
        import ray

        try:
            return ray.get(getattr(self.keeper, method).remote(self.name, *args), timeout=60)
        except Exception as e:  # the keeper unreachable: as a journal that cannot be written (the queue says so: 503)
            raise OSError(f"the journal keeper did not answer: {type(e).__name__}: {e}") from e

    def _append(self, data: bytes) -> None:
        self._call("append", data)

    def _truncate(self) -> None:
        self._call("truncate")

    def _read(self) -> bytes | None:
        return self._call("read")

    def _replace(self, data: bytes) -> None:
        self._call("replace", data)
