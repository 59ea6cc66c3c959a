"""The ingress's directory of camera owners: the named actor that owns each camera's shard, created at start.

The cameras are shared among `owners` actors (`calls.owner_count`: `ray_owners`, or one per
`ray_cameras_per_owner` configured cameras), each camera to one of them by rendezvous hashing of its id
(`calls.owner_index`), so every ingress replica, and the owner itself after a restart, agree on who owns it
without asking anyone. Each owner is a detached named actor (`owner:<k>-of-<n>` in the `streetorder`
namespace; the patrol photos' is `patrol`), so it outlives an ingress replica, and every ingress replica finds
the same one (`get_if_exists`). Ray places it on a node with `ray_camera_cpus` free (spread over the nodes) and
re-creates it on a living node when its process or node dies (`max_restarts=-1`); calls are not retried by Ray
(`max_task_retries=0`): a frame in flight is answered 503 and resent by the camera, never run twice.

A camera whose owner cannot be placed (every node's CPUs are reserved) is answered 503 with Retry-After after
`ray_placement_wait_s`, never dropped silently; its actor stays pending and takes its cameras when room appears.
"""

from __future__ import annotations

import logging
import threading

from ..runtime.errors import Overloaded
from ..settings import ServiceSettings
from .calls import NAMESPACE, owner_index, owner_name, unwrap
from .camera_owner import CameraOwner, OwnerInfo, OwnerReport

log = logging.getLogger(__name__)

CONCURRENCY = 64  # an owner's calls at once: one camera's frames still go one at a time (its `order` lock)


class CameraOwners:
    def __init__(self, settings: ServiceSettings, detector, keeper, owners: int) -> None:
        self.settings, self.detector, self.keeper, self.count = settings, detector, keeper, owners
        self._handles: dict[str, object] = {}
        self._placed: set[str] = set()
        self._lock = threading.Lock()
        self.seen: dict[str | None, OwnerInfo] = {}  # the newest owner info each reply brought, for /metrics

    def index(self, camera_id: str | None) -> int | None:
        return None if camera_id is None else owner_index(camera_id, self.count)

    def name(self, camera_id: str | None) -> str:
        """The name of the actor that owns the camera (None: the patrol photos)."""
        return owner_name(self.index(camera_id), self.count)

    def handle(self, camera_id: str | None):
        """The camera's owner handle, its creation asked for if needed (placed or not yet)."""
        name = self.name(camera_id)
        with self._lock:
            handle = self._handles.get(name)
            if handle is None:
                handle = self._handles[name] = create_owner(self.settings, self.index(camera_id), self.count, self.detector, self.keeper)
            return handle

    def owner(self, camera_id: str | None):
        """The camera's owner handle, once it is placed; raises Overloaded (503) if it cannot be placed in time."""
        import ray

        handle, name = self.handle(camera_id), self.name(camera_id)
        if name in self._placed:
            return handle
        ping = handle.ping.remote()
        ready, _ = ray.wait([ping], timeout=self.settings.ray_placement_wait_s)
        if not ready:
            ray.cancel(ping)
            what = f"camera '{camera_id}'" if camera_id else "the patrol photos"
            cpus = self.settings.ray_camera_cpus
            if ray.available_resources().get("CPU", 0.0) < cpus:
                why = f"its owner actor ({name}) cannot be placed: the cluster has no room (each owner reserves {cpus:g} CPU); add a node or free one"
            else:
                why = f"its owner actor ({name}) is still starting (the cluster is busy)"
            raise Overloaded(
                f"{what} has no owner after {self.settings.ray_placement_wait_s:g} s: {why}; nothing was taken, resend the frame later",
                max(self.settings.retry_after_s, 5),
            )
        try:
            self.note(ray.get(ready[0]))
        except Exception as e:
            with self._lock:
                self._handles.pop(name, None)  # its constructor failed: the next frame tries a new one
            raise unwrap(e, f"the owner of {name}", self.settings.retry_after_s) from None
        self._placed.add(name)
        return handle

    def forget(self, camera_id: str | None) -> None:
        """The camera's owner is dead for good: the next frame finds or creates a new one."""
        name = self.name(camera_id)
        with self._lock:
            self._handles.pop(name, None)
            self._placed.discard(name)
            for cid in [cid for cid, i in self.seen.items() if i.owner == name]:
                self.seen.pop(cid, None)

    def note(self, info: OwnerInfo | OwnerReport) -> None:
        for one in info.cameras if isinstance(info, OwnerReport) else (info,):
            self.seen[one.camera_id] = one

    def infos(self) -> list[OwnerInfo]:
        return list(self.seen.values())

    def refresh(self, timeout_s: float = 5.0) -> None:
        """Ask every owner how it and its cameras go (their streams, their backlogs): owners of streamed
        cameras, or of cameras that send nothing, would otherwise be seen only through their frames' replies."""
        import ray

        with self._lock:
            handles = dict(self._handles)
        refs = {h.ping.remote(): name for name, h in handles.items()}
        ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        for ref in pending:
            ray.cancel(ref)  # an owner still being placed: asked again next time
        for ref in ready:
            try:
                self.note(ray.get(ref))
                self._placed.add(refs[ref])  # one that was still starting when its camera was first asked for
            except Exception as e:  # that owner is being re-created: its next answer tells
                log.debug("owner %s did not answer: %s", refs[ref], e)


def create_owner(settings: ServiceSettings, index: int | None, owners: int, detector, keeper, scheduling_strategy: object = "SPREAD"):
    """Owner `index` of `owners` (None: the patrol photos'): the running one if it exists, else a new one (see
    the module doc)."""
    import ray

    remote = ray.remote(concurrency_groups={"info": 2})(CameraOwner)  # `ping` beside the frames
    return remote.options(
        name=owner_name(index, owners), namespace=NAMESPACE, get_if_exists=True, lifetime="detached", max_concurrency=CONCURRENCY,
        max_restarts=-1, max_task_retries=0, num_cpus=settings.ray_camera_cpus, scheduling_strategy=scheduling_strategy,
    ).remote(settings, index, owners, detector, keeper)
