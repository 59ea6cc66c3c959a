"""Calls across the cluster, and what their failures mean to the HTTP caller.

A Ray call fails in two ways: the remote code raised (a `RayTaskError` carrying the original exception, e.g.
a 409 `Conflict` from a camera's owner, or a 202 `Accepted`), or the process that ran it went away (its node
died, it was killed). The first is handed on as what it was; the second becomes a 503 with Retry-After,
because nothing of the request was acknowledged and the camera's owner actor is being re-created elsewhere: the
camera resends the frame, and the frame order kept in the ledger refuses it (409) if it had reached the ledger.
"""

from __future__ import annotations

import hashlib
import math

from ..runtime.errors import Overloaded, ServiceError

NAMESPACE = "streetorder"  # the Ray namespace of the service's named actors
PATROL = "patrol"  # the actor that owns the patrol photos


def camera_key(camera_id: str | None) -> str:
    """A camera's own name (`camera:<id>`, the patrol photos' `patrol`): its journal and evidence folder are
    named by it, so they follow the camera from owner to owner."""
    return PATROL if camera_id is None else f"camera:{camera_id}"


def owner_count(settings, cameras: int) -> int:
    """How many owner actors share the cameras: `ray_owners`, or one per `ray_cameras_per_owner` cameras."""
    return settings.ray_owners or max(1, math.ceil(cameras / settings.ray_cameras_per_owner))


def owner_index(camera_id: str, owners: int) -> int:
    """The owner of a camera among `owners`, by rendezvous hashing: stable across processes and restarts, and a
    change of `owners` moves only the cameras whose best owner changed (about 1/owners of them)."""
    def score(k: int) -> bytes:
        return hashlib.blake2b(f"{camera_id}\x00{k}".encode(), digest_size=8).digest()

    return max(range(owners), key=score)


def owner_name(index: int | None, owners: int) -> str:
    """The named actor of owner `index` of `owners` (`owner:3-of-16`; the count is in the name, so a service
    started with another count never takes up an actor made with another assignment); None: the patrol's."""
    return PATROL if index is None else f"owner:{index}-of-{owners}"


def unwrap(e: BaseException, what: str, retry_after_s: int) -> BaseException:
    """The exception to raise for `e`, a failed call to `what` (see the module doc)."""
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError, WorkerCrashedError

    cause = getattr(e, "cause", None) if isinstance(e, RayTaskError) else None
    if isinstance(cause, ServiceError | RayActorError | ActorUnavailableError | WorkerCrashedError):
        e = cause  # a refusal of the remote code, or a call that code made and lost
    if isinstance(e, ServiceError):
        return e
    if isinstance(e, RayActorError | ActorDiedError | ActorUnavailableError | WorkerCrashedError):
        return Overloaded(
            f"{what} went away during the call ({type(e).__name__}); it is being started again on a living node and nothing of this "
            f"request was acknowledged: resend it (a frame that had reached the ledger is then refused with 409)", retry_after_s,
        )
    return e
