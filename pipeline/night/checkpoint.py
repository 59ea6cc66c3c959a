"""A unit's engine state as bytes, and back: what resuming inside a source needs for the same cases.

The state is the camera's tracker, open incidents and static-scene pictures (or the patrol incidents) and what
was already reported.
A best frame whose evidence was already written is never needed again (evidence is rewritten only when a better
frame comes), so its pixels are left out: the checkpoint stays small however long the incident lasts.
"""

from __future__ import annotations

import io
import pickle
import zlib

from ..engine import Engine
from ..incidents import Snapshot


class _Pickler(pickle.Pickler):
    def __init__(self, file, written: set[int]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.written = written

    def reducer_override(self, obj):
        if type(obj) is Snapshot and id(obj) in self.written:
            return Snapshot, (None, obj.at, obj.box, obj.detections, obj.members, obj.quality, obj.private)
        return NotImplemented


def save_state(engine: Engine) -> bytes:
    """The engine's per-camera and patrol state, compressed. Zones are left out: they are rebuilt from the config."""
    cameras = {cid: (cam.tracker, cam.incidents, cam.camera, cam.static, cam.static_key) for cid, cam in engine.cameras.items()}
    incidents = [inc for cam in engine.cameras.values() for inc in cam.incidents.open] + list(engine.patrol.incidents)
    written = {id(inc.best) for inc in incidents if inc.best is not None and (r := engine._reported.get(inc.id)) and r.best_version == inc.best_version}
    buf = io.BytesIO()
    _Pickler(buf, written).dump({"cameras": cameras, "patrol": engine.patrol, "reported": engine._reported})
    return zlib.compress(buf.getvalue(), 1)


def load_state(engine: Engine, blob: bytes) -> None:
    from ..engine import _Camera

    state = pickle.loads(zlib.decompress(blob))
    for cid, (tracker, incidents, camera, *static) in state["cameras"].items():  # a record from before static scenes has 3
        engine.cameras[cid] = _Camera(tracker, incidents, camera)
        if static:
            engine.cameras[cid].static, engine.cameras[cid].static_key = static
    engine.patrol = state["patrol"]
    engine._reported = state["reported"]
