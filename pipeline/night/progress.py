"""The ledger's record of how far a night got (table `night_progress`), and where each unit resumes.

A night is identified by a run key: the footage folder and everything that changes what the job finds (config,
model, sampling, threshold). The same night run again resumes (a finished one does nothing); a changed setting
is a new night. A source whose file changed, or a unit whose sources changed order, starts that unit again:
posting is idempotent, so the ledger stays right either way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, defer

from ..config import StreetOrderConfig
from ..db.engine import Database
from ..db.tables.night import NightProgress
from .messages import Checkpoint
from .units import Job, NightSettings, Resume, Unit


def run_key(footage: Path, config: StreetOrderConfig, settings: NightSettings) -> str:
    from ..detect.registry import resolve_model

    ref = resolve_model(settings.model)
    model = [ref.name] + [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in (ref.onnx, ref.pt) if p is not None]
    what = {
        "footage": str(Path(footage).resolve()),
        "config": config.model_dump(mode="json"),
        "model": model,
        "backend": settings.backend,
        "conf": settings.conf,
        "every_s": settings.every_s,
        "gate": settings.gate,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class UnitPlan:
    """Where a unit starts this run, and what an earlier run already finished."""

    resume: Resume | None = None
    done_before: int = 0  # sources finished (or failed) in an earlier run, not decoded again
    failed_before: list[dict] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.resume is not None and self.resume.item < 0


class ProgressBook:
    """Reads and writes `night_progress` rows of one night."""

    def __init__(self, db: Database, key: str) -> None:
        self.db = db
        self.key = key
        self._frames: dict[str, int] = {}  # frames recorded per source, to add this run's to

    def forget(self) -> int:
        """Start the night over (`--fresh`)."""
        with self.db.transaction() as s:
            return s.execute(delete(NightProgress).where(NightProgress.run_key == self.key)).rowcount

    def plan(self, unit: Unit) -> UnitPlan:
        with self.db.transaction() as s:  # the engine state is read only when the unit starts (`Engine.restore`)
            q = select(NightProgress).options(defer(NightProgress.state)).where(NightProgress.run_key == self.key, NightProgress.unit == unit.id)
            rows = {r.source: r for r in s.scalars(q)}
            has_state = set(s.scalars(select(NightProgress.source).where(NightProgress.run_key == self.key, NightProgress.unit == unit.id, NightProgress.state.is_not(None))))
        for r in rows.values():
            self._frames[r.source] = r.frames
        latest, plan = None, UnitPlan()
        for i, src in enumerate(unit.sources):
            r = rows.get(src.key)
            if r is None:
                break
            if r.fingerprint != src.fingerprint or r.item != i:
                with self.db.transaction() as s:  # the footage changed since: this unit again from the start
                    s.execute(delete(NightProgress).where(NightProgress.run_key == self.key, NightProgress.unit == unit.id))
                self._frames = {k: v for k, v in self._frames.items() if k not in rows}
                return UnitPlan()
            if r.source in has_state:
                latest = (i, r)
            if r.status == "partial":
                break
        if latest is None:
            return UnitPlan()
        i, r = latest
        for src in unit.sources[: i + (r.status != "partial")]:
            plan.done_before += 1
            row = rows[src.key]
            if row.status == "failed":
                plan.failed_before.append({"path": src.key, "error": f"{row.error} (in an earlier run)", "outcome": "failed"})
        if r.status == "partial":
            plan.resume = Resume(i, r.position, None, r.frames, state_of=r.source)
        elif i + 1 < len(unit.sources):
            plan.resume = Resume(i + 1, 0.0, None, state_of=r.source)
        else:
            plan.resume = Resume(-1, 0.0)  # nothing left to do
        return plan

    def with_state(self, job: Job) -> Job:
        """`job` with its unit's saved engine state read in: called as the job starts, so the states of
        a thousand waiting cameras are never in memory together."""
        r = job.resume
        if r is None or r.state_of is None or r.state is not None:
            return job
        with self.db.transaction() as s:
            state = s.scalar(select(NightProgress.state).where(NightProgress.run_key == self.key, NightProgress.source == r.state_of))
        return replace(job, resume=replace(r, state=state))

    def record(self, s: Session, ckpt: Checkpoint) -> None:
        """Inside the transaction that posts the cases up to `ckpt`."""
        frames = self._frames.get(ckpt.source, 0) + ckpt.counts.frames + ckpt.counts.photos
        self._frames[ckpt.source] = frames
        row = s.get(NightProgress, (self.key, ckpt.source))
        if row is None:
            row = NightProgress(run_key=self.key, source=ckpt.source)
            s.add(row)
        row.unit, row.item, row.fingerprint = ckpt.unit, ckpt.item, ckpt.fingerprint
        row.status, row.position, row.frames, row.error = ckpt.status, float(ckpt.position), frames, ckpt.error
        row.state, row.updated_at = ckpt.state, datetime.now(UTC)
        s.flush()
        s.execute(
            update(NightProgress)
            .where(NightProgress.run_key == self.key, NightProgress.unit == ckpt.unit, NightProgress.source != ckpt.source, NightProgress.state.is_not(None))
            .values(state=None)
        )
