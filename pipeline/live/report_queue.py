"""The queue of what intake has not yet written to the ledger: incident reports and camera frame times, in order.

In memory it is the order of posting; with a `journal` path it is also an append-only JSON-lines file, fsync'ed
before the service acknowledges a frame whose reports wait in it, so neither SIGTERM nor kill -9 nor a power
cut loses them. The journal is local on purpose: it is what keeps reports while the database itself is down.

Lines are `{"seq", "queued_at", "report": {...}}`, `{"seq", "queued_at", "frame": {"camera_id", "taken_at"}}`
and `{"done": seq}` once an entry reached the ledger (or its quarantine). On open, entries without a `done`
line are pending again, in `seq` order; a torn last line (a crash mid-write) is skipped. The file is emptied
when nothing is pending, and rewritten without the finished entries when opened.

A frame-time entry may carry its camera's engine state (`state`, a `CameraCheckpoint`), written to the ledger
in the transaction that stores that frame time (and posts that frame's reports, see `Intake.drain`). Only the
newest pending checkpoint of a camera is kept: adding one drops the state of the camera's earlier entries
(their frame times and reports still go; the newer state is saved after them, in order). Journaled, a state is
a file of its own beside the journal (`<journal>.states/<camera hash>-<seq>.state`), written before its
entry's line, and deleted once a newer one of the camera is journaled or its entry is done: so a restart
during a database outage restores each camera from the state that goes with the reports it acknowledged
(`states()`), never from the older one in the ledger; a crash between the steps leaves at worst two files of
a camera, and the newer one whose entry is pending wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..cases.evidence_store import fsync_dir
from ..domain import IncidentReport
from .camera_state import CameraCheckpoint

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
    state: CameraCheckpoint | None = None  # a frame time's: the camera's engine state as of that frame
    frame_seq: int | None = None  # a report's: the frame-time entry of the frame that made it (in memory only)
    state_durable: bool = False
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

    def __init__(self, journal: Path | None = None, files: JournalFiles | None = None) -> None:
        """`journal`: the journal's path, or its name when `files` keeps it elsewhere (a Ray camera actor's
        journal on the head node, service/cluster/journal.py)."""
        self.journal = Path(journal) if journal else None
        self.files = files or (LocalJournal(self.journal) if self.journal is not None else None)
        self.pending: deque[QueueEntry] = deque()
        self._seq = 0
        self._superseded: list[str] = []  # state files of checkpoints a newer one replaces
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

    def add_frame(self, camera_id: str, taken_at: datetime, state: CameraCheckpoint | None = None) -> QueueEntry:
        """A camera's frame time, with its engine state as of that frame if given (which replaces the state of
        the camera's earlier pending entries: only the newest is ever saved)."""
        seq, now = self._next()
        if state is not None:
            if state.camera_id != camera_id:
                raise ValueError(f"a state of camera '{state.camera_id}' given with a frame of camera '{camera_id}'")
            for e in self.pending:
                if e.state is not None and e.camera_id == camera_id:
                    if e.state_durable:
                        self._superseded.append(_state_key(e.camera_id, e.seq))  # deleted once the new one is journaled
                    e.state, e.state_durable = None, False
        entry = QueueEntry(seq, now, camera_id=camera_id, taken_at=taken_at, state=state)
        self.pending.append(entry)
        return entry

    def states(self) -> dict[str, CameraCheckpoint]:
        """The newest pending engine state of each camera (newer than the ledger's: not saved there yet)."""
        return {e.camera_id: e.state for e in self.pending if e.state is not None}

    def persist(self) -> int:
        """Write every entry not yet in the journal, in one append and one fsync; returns how many. Without a
        journal nothing is written (the queue lives as long as the process)."""
        fresh = [e for e in self.pending if not e.durable]
        states = [e for e in self.pending if e.state is not None and not e.state_durable]
        if self.journal is None or not (fresh or states):
            return 0
        data = "".join(json.dumps(e.line(), ensure_ascii=False) + "\n" for e in fresh).encode()
        try:
            for e in states:  # before the lines: a state file whose entry is not in the journal is removed on load
                self._write_state(e)
            if data:
                self._append(data)
        except OSError as e:
            raise JournalError(f"cannot write the report journal {self.journal}: {e}") from e
        for e in fresh:
            e.durable = True
        for e in states:
            e.state_durable = True
        self._drop_superseded()
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
            for e in entries:
                if e.state is not None and e.state_durable:
                    self.files.remove_state(_state_key(e.camera_id, e.seq))

    # ---- the file (its storage: `files`) --------------------------------------------------------------

    def _append(self, data: bytes) -> None:
        self.files.append(data)

    def _truncate(self) -> None:
        """Empty the journal and remove every state file beside it."""
        self.files.truncate()
        for key, _ in self.files.states():
            self.files.remove_state(key)
        self._superseded.clear()

    def _drop_superseded(self) -> None:
        for key in self._superseded:
            self.files.remove_state(key)
        self._superseded.clear()

    def _write_state(self, entry: QueueEntry) -> None:
        """The entry's state as `{"seq", "camera_id", "version", "frame_at"}\\n<blob>`, in a file of its own."""
        st = entry.state
        head = {"seq": entry.seq, "camera_id": st.camera_id, "version": st.version, "frame_at": st.frame_at.isoformat()}
        self.files.write_state(_state_key(st.camera_id, entry.seq), json.dumps(head, ensure_ascii=False).encode() + b"\n" + st.blob)

    def _load_states(self) -> None:
        """Give each pending frame time its state file back, the newest of each camera only; a file whose entry
        is done, or that a newer one replaces, or unreadable, goes."""
        by_seq = {e.seq: e for e in self.pending if not e.is_report}
        newest: dict[str, QueueEntry] = {}
        for key, content in sorted(self.files.states(), key=lambda kc: _seq_of(kc[0])):
            try:
                head, blob = content.split(b"\n", 1)
                data = json.loads(head)
                entry = by_seq.get(int(data["seq"]))
                if entry is None or entry.camera_id != data["camera_id"]:
                    self.files.remove_state(key)
                    continue
                entry.state = CameraCheckpoint(data["camera_id"], int(data["version"]), datetime.fromisoformat(data["frame_at"]), blob)
                entry.state_durable = True
                if (older := newest.get(entry.camera_id)) is not None:  # in seq order: this one is newer
                    self.files.remove_state(_state_key(older.camera_id, older.seq))
                    older.state, older.state_durable = None, False
                newest[entry.camera_id] = entry
            except (ValueError, KeyError, TypeError) as e:
                log.error("%s: unreadable camera state skipped (%s)", key, e)
                self.files.remove_state(key)

    def _load(self) -> None:
        raw = self.files.read()
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
        self._load_states()
        self._rewrite()
        if self.pending:
            log.warning("report journal %s: %d entr(ies) from before the restart are queued for the ledger", self.journal, len(self.pending))

    def _rewrite(self) -> None:
        """Replace the journal by the pending entries alone (atomically)."""
        self.files.replace("".join(json.dumps(e.line(), ensure_ascii=False) + "\n" for e in self.pending).encode())


class JournalFiles(Protocol):
    """Where a journal and its state files are kept: `LocalJournal` (a file and a folder beside it, fsync'ed), or
    a keeper on another machine (service/cluster/journal.py). Every write is durable when it returns."""

    def append(self, data: bytes) -> None: ...
    def truncate(self) -> None: ...
    def read(self) -> bytes | None: ...
    def replace(self, data: bytes) -> None: ...
    def write_state(self, key: str, data: bytes) -> None: ...
    def remove_state(self, key: str) -> None: ...
    def states(self) -> list[tuple[str, bytes]]: ...


class LocalJournal:
    """The journal as a local file, its engine states as files in `<journal>.states/` (see the module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.state_dir = self.path.with_name(self.path.name + ".states")

    def append(self, data: bytes) -> None:
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.path.parent)

    def truncate(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def replace(self, data: bytes) -> None:
        _write_atomically(self.path, data)

    def write_state(self, key: str, data: bytes) -> None:
        new_dir = not self.state_dir.exists()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if new_dir:
            fsync_dir(self.state_dir.parent)
        _write_atomically(self.state_dir / f"{key}.state", data)

    def remove_state(self, key: str) -> None:
        (self.state_dir / f"{key}.state").unlink(missing_ok=True)

    def states(self) -> list[tuple[str, bytes]]:
        if not self.state_dir.is_dir():
            return []
        return [(p.stem, p.read_bytes()) for p in sorted(self.state_dir.glob("*.state"))]


def _write_atomically(path: Path, data: bytes) -> None:
    """A temp file, fsync, rename, fsync of the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _state_key(camera_id: str, seq: int) -> str:
    return f"{hashlib.sha256(camera_id.encode()).hexdigest()[:32]}-{seq}"


def _seq_of(key: str) -> int:
    tail = key.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def newest_per_camera(entries: Iterable[QueueEntry]) -> dict[str, datetime]:
    """The newest frame time of each camera among `entries` (patrol entries, with no camera, are passed over)."""
    out: dict[str, datetime] = {}
    for e in entries:
        if e.camera_id is not None and (e.camera_id not in out or e.taken_at > out[e.camera_id]):
            out[e.camera_id] = e.taken_at
    return out
