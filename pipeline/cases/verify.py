"""Auto-verification (自动核查): later frames from a fixed camera re-check its dispatched cases.

`pipeline.live.intake.Intake` calls `AutoVerifier.check` once per processed camera frame, after the engine, with what
the frame shows (and its privacy-blurred JPEG when the camera has a case to watch). For each dispatched case of
that camera:
- the spot stays clear (no detection of the case's type overlapping its box) for `gone_for_s` of frame time
  → rectified then verified, by actor `auto-verify`, with the frame that proved it as the `after` image;
- the problem is still there after the deadline → escalated once per dispatch (a flag, not a status).

Time is the frame's timestamp, never the wall clock, so batch re-runs decide exactly as live runs did.
The "clear since" timers live in memory: after a restart they start again, which can only delay a
verification, never make a wrong one. A gap between frames longer than `max_frame_gap_s` restarts them
too, because a spot nobody watched is not a spot seen clear.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..geometry import box_iou
from .config import AutoVerifyConfig
from .errors import InvalidTransition, LedgerError
from .lifecycle import CaseStatus
from .queries import WatchedCase
from .store import CaseStore
from .workflow import Step

log = logging.getLogger(__name__)

ACTOR = "auto-verify"
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class VerifyAction:
    case_id: int
    action: Literal["verified", "escalated"]
    at: datetime
    after_image_sha256: str | None = None


@dataclass
class _CameraState:
    last_frame_at: datetime | None = None
    clear_since: dict[int, datetime] = field(default_factory=dict)  # case id → first frame of the current clear run
    clear_frame: dict[int, bytes] = field(default_factory=dict)  # case id → latest clear frame (JPEG), the after-image


class AutoVerifier:
    """Per-frame re-checks of dispatched camera cases. One instance per process, held by its `Intake`."""

    def __init__(self, store: CaseStore, config: AutoVerifyConfig | None = None):
        self.store = store
        self.config = config or store.config.autoverify
        self._cameras: dict[str, _CameraState] = {}

    def check(self, camera_id: str, at: datetime, present: Sequence[tuple[str, Box]], frame_jpeg: bytes | None = None, watched: list | None = None) -> list[VerifyAction]:
        """Re-check `camera_id`'s dispatched cases against one frame taken at `at`.

        `present` lists what the detector/rules see in this frame as (violation type, xyxy box on the frame).
        `watched`: `store.camera_watch(camera_id)` if the caller just read it (one query per frame, not two).
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise LedgerError(f"frame time {at.isoformat()} has no time zone")
        state = self._cameras.setdefault(camera_id, _CameraState())
        if state.last_frame_at is not None and not (0 <= (at - state.last_frame_at).total_seconds() <= self.config.max_frame_gap_s):
            state.clear_since.clear()  # a gap or a clock jump: start watching again
            state.clear_frame.clear()
        state.last_frame_at = at

        watched = self.store.camera_watch(camera_id) if watched is None else watched
        live = {c.id for c in watched}
        for gone in set(state.clear_since) - live:  # verified, rejected or re-assigned meanwhile
            state.clear_since.pop(gone, None)
            state.clear_frame.pop(gone, None)

        actions: list[VerifyAction] = []
        for case in watched:
            if at < case.dispatched_at:
                continue  # an older frame (batch lag) says nothing about rectification after dispatch
            still_there = any(t == case.type and box_iou([box], [case.box])[0, 0] >= self.config.iou_threshold for t, box in present)
            if still_there:
                state.clear_since.pop(case.id, None)
                state.clear_frame.pop(case.id, None)
                if at > case.deadline_at and case.escalated_at is None:  # dispatching clears the flag
                    action = self._escalate(case, camera_id, at)
                    if action:
                        actions.append(action)
                continue
            since = state.clear_since.setdefault(case.id, at)
            if frame_jpeg:
                state.clear_frame[case.id] = frame_jpeg
            if (at - since).total_seconds() >= self.config.gone_for_s:
                action = self._verify(case, camera_id, since, at, state.clear_frame.get(case.id))
                state.clear_since.pop(case.id, None)
                state.clear_frame.pop(case.id, None)
                if action:
                    actions.append(action)
        return actions

    def _verify(self, case: WatchedCase, camera_id: str, since: datetime, at: datetime, frame: bytes | None) -> VerifyAction | None:
        note = f"camera {camera_id}: spot clear of {case.type} from {since.isoformat()} to {at.isoformat()}"
        try:
            self.store.transitions(
                case.id,
                [Step(CaseStatus.RECTIFIED, note if frame else note + " (no frame image supplied)", frame), Step(CaseStatus.VERIFIED, f"confirmed by camera {camera_id}")],
                actor=ACTOR, at=at,
            )
        except (InvalidTransition, LedgerError) as e:  # someone else moved the case in between
            log.info("auto-verify skipped case %s: %s", case.id, e)
            return None
        return VerifyAction(case.id, "verified", at, hashlib.sha256(frame).hexdigest() if frame else None)

    def _escalate(self, case: WatchedCase, camera_id: str, at: datetime) -> VerifyAction | None:
        overdue_h = (at - case.deadline_at).total_seconds() / 3600
        try:
            self.store.escalate(case.id, actor=ACTOR, note=f"camera {camera_id} still sees {case.type} {overdue_h:.1f} h past the deadline", at=at)
        except LedgerError as e:
            log.info("auto-escalation skipped case %s: %s", case.id, e)
            return None
        return VerifyAction(case.id, "escalated", at)
