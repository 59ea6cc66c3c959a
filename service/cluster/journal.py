"""The cameras' report journals on a cluster, kept where the cluster's own state lives: the head node.

A frame is acknowledged (200) once its reports are in the ledger, or (202, the database is away) once they are
in the camera's journal, fsync'ed. A journal on the camera actor's own node would die with that node, and the
camera, re-created elsewhere, could not replay it: an acknowledged report lost. So each camera's journal, and
the engine states journaled beside it during an outage (`pipeline/live/report_queue.py`), are kept by
`JournalKeeper`, one actor pinned to the node `serve --ray` runs on (the head, whose loss ends the Ray cluster
anyway; its disk is still there when the cluster starts again). The camera's owner uses the ordinary
`ReportQueue` with `KeptJournal` as its storage, so the journal's format, order, replay and states are the
one-process service's; only where the bytes are fsync'ed differs.

The keeper is only called while the ledger fails (a frame that reaches the ledger writes no journal), so one
actor suffices.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from pipeline.live.report_queue import LocalJournal, ReportQueue

KEEPER_NAME = "journals"  # the actor's name in calls.NAMESPACE


class JournalKeeper:
    """The Ray actor: one `LocalJournal` per camera under `root`, on its node's disk."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _journal(self, name: str) -> LocalJournal:
        return LocalJournal(self.root / (quote(name, safe="") + ".jsonl"))  # a camera id never names a path outside root

    def call(self, name: str, method: str, *args):
        """`LocalJournal.<method>(*args)` on camera `name`'s journal."""
        if method not in ("append", "truncate", "read", "replace", "write_state", "remove_state", "states"):
            raise ValueError(f"no journal operation {method!r}")
        return getattr(self._journal(name), method)(*args)


class KeptJournal:
    """`JournalFiles` whose bytes the keeper holds (see the module doc); a keeper that does not answer is a journal
    that cannot be written (OSError: the queue says so, and the frame is answered 503)."""

    def __init__(self, keeper, name: str) -> None:
        self.keeper, self.name = keeper, name

    def _call(self, method: str, *args):
        import ray

        try:
            return ray.get(self.keeper.call.remote(self.name, method, *args), timeout=60)
        except Exception as e:
            raise OSError(f"the journal keeper did not answer: {type(e).__name__}: {e}") from e

    def append(self, data: bytes) -> None:
        self._call("append", data)

    def truncate(self) -> None:
        self._call("truncate")

    def read(self) -> bytes | None:
        return self._call("read")

    def replace(self, data: bytes) -> None:
        self._call("replace", data)

    def write_state(self, key: str, data: bytes) -> None:
        self._call("write_state", key, data)

    def remove_state(self, key: str) -> None:
        self._call("remove_state", key)

    def states(self) -> list[tuple[str, bytes]]:
        return self._call("states")


def kept_queue(keeper, name: str) -> ReportQueue:
    """A camera owner's queue, journaled on the head node."""
    return ReportQueue(Path(f"{KEEPER_NAME}:{name}"), files=KeptJournal(keeper, name))
