"""The queue of what intake has not yet written to the ledger: incident reports and camera frame times, in order.

In memory it is the order of posting; with a `journal` path it is also an append-only JSON-lines file, fsync'ed
before the service acknowledges a frame whose reports wait in it, so neither SIGTERM nor kill -9 nor a power
cut loses them. The journal is local on purpose: it is what keeps reports while the database itself is down.

Lines are `{"seq", "queued_at", "report": {...}}`, `{"seq", "queued_at", "frame": {"camera_id", "taken_at"}}`
and `{"done": seq}` once an entry reached the ledger (or its quarantine). On open, entries without a `done`
line are pending again, in `seq` order; a torn last line (a crash mid-write) is skipped. The file is emptied
when nothing is pending, and rewritten without the finished entries when opened.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..cases.evidence_store import fsync_dir
from ..domain import IncidentReport

log = logging.getLogger(__name__)


@dataclass
class QueueEntry:
    """One thing to write to the ledger: a report (`payload`), or a camera's frame time (`camera_id`, `taken_at`)."""

    seq: int
    queued_at: datetime
    payload: dict[str, Any] | None = None
    camera_id: str | None = None
    taken_at: datetime | None = None
    durable: bool = False
    quarantine: tuple[int, str] | None = None  # (quarantine id, reason) once the ledger refused it
    _report: IncidentReport | None = field(default=None, repr=False)

    @property
    def is_report(self) -> bool:
        return self.payload is not None

    @property
    def incident_id(self) -> str:
        return str((self.payload or {}).get("incident_id", ""))

    def report(self) -> IncidentReport:
        """The report, validated (a journal line that no longer validates is refused here, and quarantined)."""
        if self._report is None:
            self._report = IncidentReport.model_validate(self.payload)
        return self._report

    def line(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "queued_at": self.queued_at.isoformat()}
        if self.is_report:
            out["report"] = self.payload
        else:
            out["frame"] = {"camera_id": self.camera_id, "taken_at": self.taken_at.isoformat()}
        return out

    @classmethod
    def of_line(cls, data: dict[str, Any]) -> QueueEntry:
        queued_at = datetime.fromisoformat(data["queued_at"])
        if "report" in data:
            return cls(int(data["seq"]), queued_at, payload=data["report"], durable=True)
        frame = data["frame"]
        return cls(int(data["seq"]), queued_at, camera_id=frame["camera_id"], taken_at=datetime.fromisoformat(frame["taken_at"]), durable=True)


class JournalError(OSError):
    """The journal could not be written: entries not yet durable are only in memory."""


class ReportQueue:
    """FIFO of `QueueEntry`; durable when `journal` is given. Not thread-safe: intake holds the engine lock."""

    def __init__(self, journal: Path | None = None) -> None:
        self.journal = Path(journal) if journal else None
        self.pending: deque[QueueEntry] = deque()
        self._seq = 0
        if self.journal is not None:
            self._load()

    def __len__(self) -> int:
        return len(self.pending)

    @property
    def reports(self) -> list[QueueEntry]:
        return [e for e in self.pending if e.is_report]

    def leading_frames(self, limit: int) -> list[QueueEntry]:
        """The frame times at the head of the queue, up to the first report (at most `limit`): they may go to the
        ledger together, newest per camera, since a frame time only ever moves forward."""
        out: list[QueueEntry] = []
        for e in self.pending:
            if e.is_report or len(out) >= limit:
                break
            out.append(e)
        return out

    def frame_marks(self) -> dict[str, datetime]:
        """Newest queued frame time per camera (frames the engine has seen, not yet stored in the ledger)."""
        return newest_per_camera(self.pending)

    # ---- adding -------------------------------------------------------------------------------------

    def _next(self) -> tuple[int, datetime]:
        self._seq += 1
        return self._seq, datetime.now(UTC)

    def add_report(self, report: IncidentReport) -> QueueEntry:
        seq, now = self._next()
        entry = QueueEntry(seq, now, payload=report.model_dump(mode="json"), _report=report)
        self.pending.append(entry)
        return entry

    def add_frame(self, camera_id: str, taken_at: datetime) -> QueueEntry:
        seq, now = self._next()
        entry = QueueEntry(seq, now, camera_id=camera_id, taken_at=taken_at)
        self.pending.append(entry)
        return entry

    def persist(self) -> int:
        """Write every entry not yet in the journal, in one append and one fsync; returns how many. Without a
        journal nothing is written (the queue lives as long as the process)."""
        fresh = [e for e in self.pending if not e.durable]
        if self.journal is None or not fresh:
            return 0
        data = "".join(json.dumps(e.line(), ensure_ascii=False) + "\n" for e in fresh).encode()
        try:
            self._append(data)
        except OSError as e:
            raise JournalError(f"cannot write the report journal {self.journal}: {e}") from e
        for e in fresh:
            e.durable = True
        return len(fresh)

    # ---- removing -----------------------------------------------------------------------------------

    def done(self, entry: QueueEntry) -> None:
        """`entry`, the first pending one, reached the ledger: forget it (durably, if it was journaled)."""
        self.done_many([entry])

    def done_many(self, entries: list[QueueEntry]) -> None:
        """`entries`, the first pending ones in order, reached the ledger: forget them with one write and fsync."""
        for entry in entries:
            assert self.pending and self.pending[0] is entry, "entries leave the queue in order"
            self.pending.popleft()
        durable = [e for e in entries if e.durable]
        if self.journal is None or not durable:
            return
        if not any(e.durable for e in self.pending):
            self._truncate()
        else:
            self._append("".join(json.dumps({"done": e.seq}) + "\n" for e in durable).encode())

    # ---- the file (the methods a journal kept elsewhere overrides: service/cluster/journal.py) -------

    def _append(self, data: bytes) -> None:
        append_synced(self.journal, data)

    def _truncate(self) -> None:
        truncate_synced(self.journal)

    def _read(self) -> bytes | None:
        """The journal's bytes, None when there is none yet."""
        return self.journal.read_bytes() if self.journal.exists() else None

    def _replace(self, data: bytes) -> None:
        replace_synced(self.journal, data)

    def _load(self) -> None:
        raw = self._read()
        if raw is None:
            return
        entries: dict[int, QueueEntry] = {}
        done: set[int] = set()
        lines = raw.split(b"\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if "done" in data:
                    done.add(int(data["done"]))
                else:
                    entry = QueueEntry.of_line(data)
                    entries[entry.seq] = entry
            except (ValueError, KeyError, TypeError) as e:
                level = logging.WARNING if n >= len(lines) - 1 else logging.ERROR  # a torn last line is expected after a crash
                log.log(level, "%s:%d: unreadable journal line skipped (%s)", self.journal, n, e)
        self.pending = deque(entries[s] for s in sorted(entries) if s not in done)
        self._seq = max([*entries, *done], default=0)
        self._rewrite()
        if self.pending:
            log.warning("report journal %s: %d entr(ies) from before the restart are queued for the ledger", self.journal, len(self.pending))

    def _rewrite(self) -> None:
        """Replace the journal by the pending entries alone (atomically)."""
        self._replace("".join(json.dumps(e.line(), ensure_ascii=False) + "\n" for e in self.pending).encode())


def append_synced(path: Path, data: bytes) -> None:
    """Append `data` to `path` and fsync it (and its folder when the file is new)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_dir(path.parent)


def truncate_synced(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_synced(path: Path, data: bytes) -> None:
    """Replace `path` by `data` atomically: a temp file, fsync, rename, fsync of the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)

def newest_per_camera(entries: Iterable[QueueEntry]) -> dict[str, datetime]:
    """The newest frame time of each camera among `entries` (patrol entries, with no camera, are passed over)."""
    out: dict[str, datetime] = {}
    for e in entries:
        if e.camera_id is not None and (e.camera_id not in out or e.taken_at > out[e.camera_id]):
            out[e.camera_id] = e.taken_at
    return out
