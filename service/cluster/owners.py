"""The ingress's directory of camera owners: the named actor of each camera, created on its first frame.

Each camera's owner is a detached named actor (`camera:<id>` in the `streetorder` namespace), so it outlives an
ingress replica, and every ingress replica finds the same one (`get_if_exists`). Ray places it on a node with
`ray_camera_cpus` free (spread over the nodes) and re-creates it on a living node when its process or node dies
(`max_restarts=-1`); calls are not retried by Ray (`max_task_retries=0`): a frame in flight is answered 503 and
resent by the camera, never run twice.

A camera whose actor cannot be placed (every node's CPUs are reserved) is answered 503 with Retry-After after
`ray_placement_wait_s`, never dropped silently; its actor stays pending and takes the camera when room appears.
"""

from __future__ import annotations

import logging
import threading

from ..runtime.errors import Overloaded
from ..settings import ServiceSettings
from .calls import NAMESPACE, owner_name, unwrap
from .camera_owner import CameraOwner, OwnerInfo

log = logging.getLogger(__name__)


class CameraOwners:
    def __init__(self, settings: ServiceSettings, detector, keeper) -> None:
        self.settings, self.detector, self.keeper = settings, detector, keeper
        self._handles: dict[str | None, object] = {}
        self._placed: set[str | None] = set()
        self._lock = threading.Lock()
        self.seen: dict[str | None, OwnerInfo] = {}  # the newest owner info each reply brought, for /metrics

    def handle(self, camera_id: str | None):
        """The camera's actor handle, its creation asked for if needed (placed or not yet)."""
        with self._lock:
            handle = self._handles.get(camera_id)
            if handle is None:
                handle = self._handles[camera_id] = create_owner(self.settings, camera_id, self.detector, self.keeper)
            return handle

    def owner(self, camera_id: str | None):
        """The camera's actor handle, once it is placed; raises Overloaded (503) if it cannot be placed in time."""
        import ray

        handle = self.handle(camera_id)
        if camera_id in self._placed:
            return handle
        ping = handle.ping.remote()
        ready, _ = ray.wait([ping], timeout=self.settings.ray_placement_wait_s)
        if not ready:
            ray.cancel(ping)
            what = f"camera '{camera_id}'" if camera_id else "the patrol photos"
            cpus = self.settings.ray_camera_cpus
            if ray.available_resources().get("CPU", 0.0) < cpus:
                why = f"its actor cannot be placed: the cluster has no room (each camera reserves {cpus:g} CPU); add a node or free one"
            else:
                why = "its actor is still starting (the cluster is busy)"
            raise Overloaded(
                f"{what} has no owner after {self.settings.ray_placement_wait_s:g} s: {why}; nothing was taken, resend the frame later",
                max(self.settings.retry_after_s, 5),
            )
        try:
            self.note(ray.get(ready[0]))
        except Exception as e:
            with self._lock:
                self._handles.pop(camera_id, None)  # its constructor failed: the next frame tries a new one
            raise unwrap(e, f"the owner of {owner_name(camera_id)}", self.settings.retry_after_s) from None
        self._placed.add(camera_id)
        return handle

    def forget(self, camera_id: str | None) -> None:
        """The camera's owner is dead for good: the next frame finds or creates a new one."""
        with self._lock:
            self._handles.pop(camera_id, None)
            self._placed.discard(camera_id)
            self.seen.pop(camera_id, None)

    def note(self, info: OwnerInfo) -> None:
        self.seen[info.camera_id] = info

    def infos(self) -> list[OwnerInfo]:
        return list(self.seen.values())

    def refresh(self, timeout_s: float = 5.0) -> None:
        """Ask every owner how it goes (its stream, its backlog): owners of streamed cameras, or of cameras that
        send nothing, would otherwise be seen only through the replies of their frames."""
        import ray

        with self._lock:
            handles = dict(self._handles)
        refs = {h.ping.remote(): cid for cid, h in handles.items()}
        ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        for ref in pending:
            ray.cancel(ref)  # an owner still being placed: asked again next time
        for ref in ready:
            try:
                self.note(ray.get(ref))
                self._placed.add(refs[ref])  # one that was still starting when its camera was first asked for
            except Exception as e:  # that owner is being re-created: its next answer tells
                log.debug("owner of %s did not answer: %s", owner_name(refs[ref]), e)


def create_owner(settings: ServiceSettings, camera_id: str | None, detector, keeper, scheduling_strategy: object = "SPREAD"):
    """The camera's owner actor: the running one if it exists, else a new one (see the module doc)."""
    import ray

    remote = ray.remote(concurrency_groups={"info": 2})(CameraOwner)  # `ping` beside the frames, which go one at a time
    return remote.options(
        name=owner_name(camera_id), namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
        max_restarts=-1, max_task_retries=0, num_cpus=settings.ray_camera_cpus, scheduling_strategy=scheduling_strategy,
    ).remote(settings, camera_id, detector, keeper)
